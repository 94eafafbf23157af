import CFuzzer
import Foundation
import Models

/// libFuzzer input callback: the input is a UNet2DConditionModel `config.json`, read with
/// `UNet2DConditionConfig.load` (decode and validate); an accepted one has every per-block
/// value the model constructor reads computed, and is saved and loaded back, which must give
/// the same config. No model is built (that allocates weights).
func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = scratchFile("in"), output = scratchFile("out")
    try! Data(UnsafeBufferPointer(start: data, count: size)).write(to: URL(fileURLWithPath: input))
    guard let config = try? UNet2DConditionConfig.load(input) else { return 0 }
    var total = config.timestepInputDim &+ config.timeEmbedDim &+ config.blocksTimeEmbedDim
    blackHole(config.usesContext)
    for i in 0..<config.blockCount {
        blackHole(config.hasCrossAttention(downBlock: i) || config.hasCrossAttention(upBlock: i))
        total = total &+ config.heads(block: i) &+ config.layers(block: i)
        total = total &+ config.downTransformerLayers(block: i).reduce(0, &+)
        total = total &+ config.upTransformerLayers(block: i).reduce(0, &+)
    }
    if config.midBlockType != nil { total = total &+ config.midTransformerLayers }
    blackHole(total)
    guard (try? config.save(output)) != nil else { return 0 }
    let back = try! UNet2DConditionConfig.load(output)
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
