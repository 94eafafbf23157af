import CFuzzer
import Glibc
import ModelIO
import Tensors

/// libFuzzer input callback: safetensors bytes are decoded twice, copied (no owner) and borrowed (an
/// owner keeps them alive), and every tensor's bytes are read, as a model load would.
func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    for owner in [nil, Owner()] as [Owner?] {
        guard let file = try? Safetensors.decode(bytes, owner: owner, name: "fuzz.safetensors") else { continue }
        var sum: UInt8 = 0
        for (_, tensor) in file.tensors { tensor.withUnsafeBytes { for b in $0 { sum &+= b } } }
        blackHole(sum)
    }
    return 0
}

final class Owner {}

@inline(never) func blackHole<T>(_ value: T) { _ = value }

exit(fuzzerMain(CommandLine.argc, CommandLine.unsafeArgv, fuzz))
