import CFuzzer
import Glibc
import ModelIO
import Tensors

/// libFuzzer input callback: .npy bytes are decoded and the tensor's bytes read.
func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    if let tensor = try? NPY.decode(bytes, name: "fuzz.npy") {
        var sum: UInt8 = 0
        tensor.withUnsafeBytes { for b in $0 { sum &+= b } }
        blackHole(sum)
    }
    return 0
}

@inline(never) func blackHole<T>(_ value: T) { _ = value }

exit(fuzzerMain(CommandLine.argc, CommandLine.unsafeArgv, fuzz))
