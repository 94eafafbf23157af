#if canImport(Glibc)
import Glibc
#endif

/// A whole file mapped into memory copy-on-write (MAP_PRIVATE): tensors can borrow its
/// pages without copying, and writes through them never reach the file.
final class MappedFile: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let size: Int

    init(path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw FileError(path: path, problem: "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FileError(path: path, problem: "cannot stat: \(String(cString: strerror(errno)))") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw FileError(path: path, problem: "is not a regular file") }
        size = Int(st.st_size)
        guard size > 0 else { throw FileError(path: path, problem: "is empty") }
        guard let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw FileError(path: path, problem: "cannot map \(size) bytes: \(String(cString: strerror(errno)))")
        }
        base = p
    }

    deinit { munmap(base, size) }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: size) }
}

/// A file that could not be read or written, and why.
public struct FileError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let problem: String
    public init(path: String, problem: String) { (self.path, self.problem) = (path, problem) }
    public var description: String { "\(path): \(problem)" }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, flushed to
/// disk, then renamed over the target, so a crash never leaves a half-written file.
func writeAtomically(_ path: String, _ fill: (Int32) throws -> Void) throws {
    let dir = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
    var template = Array("\(dir)/.\(path.split(separator: "/").last ?? "file").tmp-XXXXXX".utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    guard fd >= 0 else { throw FileError(path: path, problem: "cannot create a temporary file in \(dir): \(String(cString: strerror(errno)))") }
    // mkstemp makes the file owner-only; give it the permissions a plain create would (0666 & ~umask).
    let mask = umask(0); umask(mask); fchmod(fd, 0o666 & ~mask)
    let tmp = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    var ok = false
    defer {
        if !ok { unlink(tmp) }
    }
    do {
        try fill(fd)
        guard fsync(fd) == 0 else { throw FileError(path: path, problem: "cannot flush: \(String(cString: strerror(errno)))") }
        close(fd)
    } catch {
        close(fd)
        throw error
    }
    guard rename(tmp, path) == 0 else { throw FileError(path: path, problem: "cannot rename into place: \(String(cString: strerror(errno)))") }
    ok = true
}

/// Writes all of `bytes` to `fd`.
func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
    var done = 0
    while done < bytes.count {
        let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
        if n < 0 {
            if errno == EINTR { continue }
            throw FileError(path: path, problem: "write failed: \(String(cString: strerror(errno)))")
        }
        done += n
    }
}
