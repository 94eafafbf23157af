import CFuzzer
import Foundation
import Models

/// libFuzzer input callback: the input is a UNet2DModel `config.json`, read with `UNet2DConfig.load`
/// (decode and validate); an accepted one has its derived values read and is saved and
/// loaded back, which must give the same config. No model is built (that allocates weights).
func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = scratchFile("in"), output = scratchFile("out")
    try! Data(UnsafeBufferPointer(start: data, count: size)).write(to: URL(fileURLWithPath: input))
    guard let config = try? UNet2DConfig.load(input) else { return 0 }
    blackHole(config.timeEmbedDim)
    guard (try? config.save(output)) != nil else { return 0 }
    let back = try! UNet2DConfig.load(output)
    precondition(back == config, "the config changes in a save/load round trip")
    return 0
}

/// A file of this process's for `role` ("in", "out"), in memory where /dev/shm exists.
func scratchFile(_ role: String) -> String {
    let folder = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
    return "\(folder)/diffuse-fuzz-\(getpid())-\(role).json"
}

@inline(never) func blackHole<T>(_ value: T) { _ = value }

exit(fuzzerMain(CommandLine.argc, CommandLine.unsafeArgv, fuzz))
