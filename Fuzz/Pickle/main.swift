import CFuzzer
import Glibc
import ModelIO

/// libFuzzer input callback: a pickle (after gzip, as the MNIST loader reads it) is unpickled, and
/// every numpy array in it read as floats and as integers, as the loader does.
func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    // Both vocabularies: MNIST's numpy arrays, and torch checkpoints' containers and tensors.
    if let value = try? Pickle.load(bytes, name: "fuzz.pkl") { visit(value) }
    if let value = try? Pickle.load(bytes, name: "fuzz.pkl", vocabulary: [.torch, .torchScript]) { visit(value) }
    return 0
}

/// Visits arrays at most 64 containers deep (a list may hold itself).
func visit(_ value: Pickle.Value, depth: Int = 0) {
    guard depth < 64 else { return }
    switch value {
    case .tuple(let items): items.forEach { visit($0, depth: depth + 1) }
    case .list(let list): list.items.forEach { visit($0, depth: depth + 1) }
    case .dict(let dict): dict.items.forEach { visit($0.value, depth: depth + 1) }
    case .array(let array):
        _ = try? array.floats(name: "fuzz.pkl")
        _ = try? array.integers(name: "fuzz.pkl")
    default: break
    }
}

exit(fuzzerMain(CommandLine.argc, CommandLine.unsafeArgv, fuzz))
