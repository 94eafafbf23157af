import CFuzzer
import Diffusion
import Foundation

/// libFuzzer input callback: the input is a `scheduler_config.json`, read with `SchedulerConfig.load`
/// (JSON5 decode and validate); an accepted one builds every sampler with 1 and 7 steps, as
/// a generation does first, and is saved and loaded back, which must succeed (the file
/// written keeps only the fields its class reads, so it need not compare equal).
/// Schedules longer than `maxTimesteps` are skipped: their arrays are that long, and the
/// fuzzer's memory limit is not the place to find the size limit.
func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = scratchFile("in"), output = scratchFile("out")
    try! Data(UnsafeBufferPointer(start: data, count: size)).write(to: URL(fileURLWithPath: input))
    guard let config = try? SchedulerConfig.load(input), config.numTrainTimesteps <= maxTimesteps else { return 0 }
    for kind in SamplerKind.allCases {
        for steps in [1, 7] { _ = try? makeSampler(kind, config: config, steps: steps) }
    }
    guard (try? config.save(output)) != nil else { return 0 }
    _ = try! SchedulerConfig.load(output)
    return 0
}

let maxTimesteps = 100_000

/// A file of this process's for `role` ("in", "out"), in memory where /dev/shm exists.
func scratchFile(_ role: String) -> String {
    let folder = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
    return "\(folder)/diffuse-fuzz-\(getpid())-\(role).json"
}

exit(fuzzerMain(CommandLine.argc, CommandLine.unsafeArgv, fuzz))
