import Foundation

/// The entries of a zip archive as `torch.save` and `torch.jit.save` write them (PKWARE
/// APPNOTE: the end-of-central-directory record, ZIP64 where sizes need it, the central
/// directory, each entry's local header), read from a memory-mapped file. Stored entries are
/// handed out in place (no copy); compressed ones are refused when read (torch stores its
/// data uncompressed). Every offset is checked against the file, so a damaged archive gives a
/// message, never a crash.
struct ZipArchive {
    struct Entry {
        let name: String
        let method: Int
        let compressedSize: Int
        let size: Int
        let localHeaderOffset: Int
    }

    let file: MappedFile
    let path: String
    let entries: [String: Entry]

    var bytes: UnsafeRawBufferPointer { file.bytes }

    init(path: String) throws {
        self.path = path
        do { file = try MappedFile(path: path) } catch let e as FileError { throw ZipError("\(path): \(e.problem)") }
        let bytes = file.bytes
        func fail(_ what: String) -> ZipError { ZipError("\(path): not a readable zip archive: \(what)") }
        func u16(_ at: Int) throws -> Int {
            guard at >= 0, at + 2 <= bytes.count else { throw fail("a record runs past the end of the file") }
            return Int(bytes.loadUnaligned(fromByteOffset: at, as: UInt16.self).littleEndian)
        }
        func u32(_ at: Int) throws -> Int {
            guard at >= 0, at + 4 <= bytes.count else { throw fail("a record runs past the end of the file") }
            return Int(bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self).littleEndian)
        }
        func u64(_ at: Int) throws -> Int {
            guard at >= 0, at + 8 <= bytes.count else { throw fail("a record runs past the end of the file") }
            let v = bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self).littleEndian
            guard v <= UInt64(Int.max) else { throw fail("a 64-bit size is too large") }
            return Int(v)
        }
        // The end-of-central-directory record: in the last 64 KiB + 22 bytes (its comment).
        var eocd = -1
        var i = bytes.count - 22
        while i >= Swift.max(0, bytes.count - 22 - 65_535) {
            if try u32(i) == 0x0605_4B50 { eocd = i; break }
            i -= 1
        }
        guard eocd >= 0 else { throw fail("no end-of-central-directory record (a legacy torch.save file, or not a zip)") }
        var count = try u16(eocd + 10), directorySize = try u32(eocd + 12), directoryOffset = try u32(eocd + 16)
        if count == 0xFFFF || directorySize == 0xFFFF_FFFF || directoryOffset == 0xFFFF_FFFF {
            // ZIP64: the locator just before the record points at the ZIP64 record.
            guard eocd >= 20, try u32(eocd - 20) == 0x0706_4B50 else { throw fail("ZIP64 sizes without a ZIP64 locator") }
            let record = try u64(eocd - 20 + 8)
            guard try u32(record) == 0x0606_4B50 else { throw fail("the ZIP64 locator points at no ZIP64 record") }
            count = try u64(record + 32)
            directorySize = try u64(record + 40)
            directoryOffset = try u64(record + 48)
        }
        guard directoryOffset <= bytes.count, directorySize <= bytes.count - directoryOffset else {
            throw fail("the central directory lies outside the file")
        }
        var entries: [String: Entry] = [:]
        var at = directoryOffset
        for _ in 0..<count {
            guard try u32(at) == 0x0201_4B50 else { throw fail("a central directory entry has a bad signature") }
            let method = try u16(at + 10)
            var compressed = try u32(at + 20), size = try u32(at + 24)
            let nameLength = try u16(at + 28), extraLength = try u16(at + 30), commentLength = try u16(at + 32)
            var local = try u32(at + 42)
            guard at + 46 + nameLength <= bytes.count else { throw fail("an entry name runs past the end of the file") }
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[(at + 46)..<(at + 46 + nameLength)]), as: UTF8.self)
            // ZIP64 extra field: the 64-bit values of the fields that hold 0xFFFFFFFF, in order.
            var extra = at + 46 + nameLength
            let extraEnd = extra + extraLength
            while extra + 4 <= extraEnd {
                let id = try u16(extra), length = try u16(extra + 2)
                if id == 0x0001 {
                    var field = extra + 4
                    if size == 0xFFFF_FFFF { size = try u64(field); field += 8 }
                    if compressed == 0xFFFF_FFFF { compressed = try u64(field); field += 8 }
                    if local == 0xFFFF_FFFF { local = try u64(field) }
                }
                extra += 4 + length
            }
            entries[name] = Entry(name: name, method: method, compressedSize: compressed, size: size, localHeaderOffset: local)
            at = extraEnd + commentLength
        }
        self.entries = entries
    }

    /// The bytes of a stored entry, in place.
    func data(_ name: String) throws -> UnsafeRawBufferPointer {
        guard let e = entries[name] else { throw ZipError("\(path): no entry \(name) in the archive") }
        guard e.method == 0 else {
            throw ZipError("\(path): entry \(name) is compressed (method \(e.method)); only stored entries are read, as torch writes them")
        }
        let bytes = file.bytes
        let header = e.localHeaderOffset
        guard header >= 0, header + 30 <= bytes.count,
              bytes.loadUnaligned(fromByteOffset: header, as: UInt32.self).littleEndian == 0x0403_4B50 else {
            throw ZipError("\(path): entry \(name) has no local header where the directory says")
        }
        let nameLength = Int(bytes.loadUnaligned(fromByteOffset: header + 26, as: UInt16.self).littleEndian)
        let extraLength = Int(bytes.loadUnaligned(fromByteOffset: header + 28, as: UInt16.self).littleEndian)
        let start = header + 30 + nameLength + extraLength
        guard start <= bytes.count, e.size <= bytes.count - start else {
            throw ZipError("\(path): entry \(name) (\(e.size) bytes) runs past the end of the file")
        }
        return UnsafeRawBufferPointer(rebasing: bytes[start..<(start + e.size)])
    }
}

/// An archive this reader refuses, with the reason.
public struct ZipError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}
