import CFuzzer
import Glibc
import Datasets

/// libFuzzer input callback: a pickle (after gzip, as the MNIST loader reads it) is unpickled, and
/// every numpy array in it read as floats and as integers, as the loader does.
func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let value = try? Pickle.load(bytes, name: "fuzz.pkl") else { return 0 }
    visit(value)
    return 0
}

func visit(_ value: Pickle.Value) {
    switch value {
    case .tuple(let items): items.forEach(visit)
    case .array(let array):
        _ = try? array.floats(name: "fuzz.pkl")
        _ = try? array.integers(name: "fuzz.pkl")
    default: break
    }
}

exit(fuzzerMain(CommandLine.argc, CommandLine.unsafeArgv, fuzz))
