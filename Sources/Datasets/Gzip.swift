import CZlib
import Foundation

/// gzip files (RFC 1952) decompressed in memory with zlib.
package enum Gzip {
    /// The most bytes one file may decompress to (4 GiB): a damaged or hostile file cannot
    /// make the reader allocate without bound.
    static let maxOutput = 1 << 32

    /// The most bytes one byte of deflate data can decompress to.
    static let maxExpansion = 1032

    /// The decompressed contents of the gzip file at `path`. Files of several gzip members
    /// (as `cat a.gz b.gz` makes) are read as their concatenation.
    ///
    /// Throws `DatasetError` naming the file when it cannot be read, does not start with the
    /// gzip magic bytes, ends early ("truncated"), or fails zlib's checks ("corrupt": bad
    /// deflate data, CRC-32 or length mismatch in the trailer).
    static func decompress(contentsOf path: String) throws -> [UInt8] {
        try decompress(try readFile(path), name: path)
    }

    /// The size of the first output buffer: the trailer's ISIZE (length mod 2^32) + 1, at
    /// least 64 KiB. ISIZE is only a hint, and one a damaged file can set to anything, so it is
    /// believed only up to what the input can hold: deflate expands by at most 1032:1
    /// (258-byte matches in 2 bits). A 24-byte file claiming 1.5 GiB allocated them before
    /// this bound (found by scripts/fuzz).
    static func firstBufferSize(_ input: [UInt8]) -> Int {
        let n = input.count
        guard n >= 18 else { return 1 << 16 }
        let isize = Int(input[n - 4]) | Int(input[n - 3]) << 8 | Int(input[n - 2]) << 16 | Int(input[n - 1]) << 24
        return Swift.max(1 << 16, Swift.min(isize + 1, n * maxExpansion + 1, 1 << 31))
    }

    /// Decompresses gzip bytes held in memory; `name` labels errors.
    package static func decompress(_ input: [UInt8], name: String) throws -> [UInt8] {
        guard input.count >= 2, input[0] == 0x1F, input[1] == 0x8B else {
            throw DatasetError("\(name): not a gzip file (it does not start with the bytes 1f 8b)")
        }
        var output = [UInt8](repeating: 0, count: firstBufferSize(input))
        var produced = 0
        var stream = z_stream()
        // 16 + 15: a gzip wrapper around a deflate stream with a 32 KiB window.
        guard inflateInit2_(&stream, 16 + 15, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw DatasetError("\(name): zlib could not start inflating (out of memory?)")
        }
        defer { inflateEnd(&stream) }
        var consumed = 0
        try input.withUnsafeBufferPointer { src in
            stream.next_in = UnsafeMutablePointer(mutating: src.baseAddress!)
            stream.avail_in = UInt32(src.count)
            while true {
                if produced == output.count {
                    guard output.count < maxOutput else {
                        throw DatasetError("\(name): decompresses to more than \(maxOutput) bytes; refusing it")
                    }
                    output.append(contentsOf: repeatElement(0, count: output.count))
                }
                let room = Swift.min(output.count - produced, Int(UInt32.max))
                let status: Int32 = output.withUnsafeMutableBufferPointer { dst in
                    stream.next_out = dst.baseAddress! + produced
                    stream.avail_out = UInt32(room)
                    return inflate(&stream, Z_NO_FLUSH)
                }
                produced += room - Int(stream.avail_out)
                consumed = src.count - Int(stream.avail_in)
                switch status {
                case Z_OK:
                    continue
                case Z_STREAM_END:
                    // Another gzip member may follow; anything else after the end is damage.
                    if consumed == src.count { return }
                    guard src.count - consumed >= 2, src[consumed] == 0x1F, src[consumed + 1] == 0x8B else {
                        throw DatasetError("\(name): corrupt: \(src.count - consumed) unexpected bytes after the end of the gzip data")
                    }
                    guard inflateReset(&stream) == Z_OK else { throw DatasetError("\(name): zlib could not restart inflating") }
                case Z_BUF_ERROR where stream.avail_in == 0:
                    throw DatasetError("\(name): truncated: the gzip data ends after \(src.count) bytes, before the end of its compressed stream (\(produced) bytes decompressed so far)")
                case Z_BUF_ERROR:
                    continue   // the output buffer was full; it grows above
                case Z_DATA_ERROR, Z_NEED_DICT, Z_STREAM_ERROR:
                    let reason = stream.msg.map { String(cString: $0) } ?? "invalid deflate data"
                    throw DatasetError("\(name): corrupt gzip data at compressed byte \(consumed): \(reason)")
                case Z_MEM_ERROR:
                    throw DatasetError("\(name): zlib ran out of memory")
                default:
                    throw DatasetError("\(name): zlib inflate failed with status \(status)")
                }
            }
        }
        output.removeSubrange(produced...)
        return output
    }
}

/// The whole file at `path`, or a `DatasetError` naming it.
func readFile(_ path: String) throws -> [UInt8] {
    var isFolder: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
        throw DatasetError("\(path): no such file")
    }
    guard !isFolder.boolValue else { throw DatasetError("\(path): is a folder, not a file") }
    do {
        return [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    } catch {
        throw DatasetError("\(path): cannot be read: \(error.localizedDescription)")
    }
}
