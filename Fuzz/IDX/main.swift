import CFuzzer
import Glibc
import Datasets

/// libFuzzer input callback: idx bytes (after gzip, as the MNIST-family loaders read them) parsed as
/// images (3 dimensions) and as labels (1 dimension).
func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    for dimensions in [1, 3] {
        if let array = try? IDXArray(bytes, dimensions: dimensions, name: "fuzz-idx") {
            // A zero dimension makes the array empty whatever the others are (their product
            // may overflow); otherwise the elements are the product of the sizes.
            let count = array.shape.contains(0) ? 0 : array.shape.reduce(1, *)
            precondition(array.bytes.count == count, "element count disagrees with the shape")
        }
    }
    return 0
}

exit(fuzzerMain(CommandLine.argc, CommandLine.unsafeArgv, fuzz))
