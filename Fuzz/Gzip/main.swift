import CFuzzer
import Glibc
import Datasets

/// libFuzzer input callback: gzip bytes (possibly several members) are decompressed with zlib.
func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    _ = try? Gzip.decompress(bytes, name: "fuzz.gz")
    return 0
}

exit(fuzzerMain(CommandLine.argc, CommandLine.unsafeArgv, fuzz))
