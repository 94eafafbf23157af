import CFuzzer
import Glibc
import ImageIO

/// libFuzzer input callback: PNG bytes are decoded (libpng underneath) and the pixels checked
/// against the reported size.
func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let image = try? Image.decodePNG(bytes, name: "fuzz.png") {
        precondition(image.pixels.count == image.width * image.height * image.channels, "pixel count disagrees with the size")
    }
    return 0
}

exit(fuzzerMain(CommandLine.argc, CommandLine.unsafeArgv, fuzz))
