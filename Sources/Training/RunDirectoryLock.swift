import Foundation
import Tensors
#if canImport(Glibc)
import Glibc
#endif

/// An exclusive lock on a run directory, so that two training processes never write the same
/// run: `flock(LOCK_EX | LOCK_NB)` on `RUN_DIR/.lock`, which holds the owner's pid for the
/// refusal message. Hold it for the life of the run (`withExtendedLifetime`); the system
/// releases it when the process ends, however it ends, so `kill -9` leaves no stale lock.
public final class RunDirectoryLock {
    public static let fileName = ".lock"
    public let runDirectory: String
    /// Whether taking the lock created the directory.
    public let createdDirectory: Bool
    private var descriptor: Int32

    /// Takes the lock of `runDirectory`, first creating the directory (and missing parents)
    /// when `create` is true, else requiring it to exist. Refuses at once, without waiting,
    /// a directory another process holds: "RUN_DIR is in use by another diffuse train (pid N)".
    public init(_ runDirectory: String, create: Bool) throws {
        self.runDirectory = runDirectory
        if create {
            createdDirectory = try Self.createDirectory(runDirectory)
        } else {
            createdDirectory = false
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: runDirectory, isDirectory: &isDirectory) else {
                throw TrainingError("\(runDirectory): no such run directory")
            }
            guard isDirectory.boolValue else { throw TrainingError("\(runDirectory) is a file, not a folder") }
        }
        let path = runDirectory + "/" + Self.fileName
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TrainingError("\(path): cannot open the run's lock file: \(ErrorText.system())") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            defer { close(fd) }
            guard code == EWOULDBLOCK else { throw TrainingError("\(path): cannot lock the run: \(ErrorText.system(code))") }
            throw TrainingError("\(runDirectory) is in use by another diffuse train (pid \(Self.owner(fd) ?? "unknown"))")
        }
        let pid = Array("\(getpid())\n".utf8)
        if ftruncate(fd, 0) != 0 || pid.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) != pid.count {
            let problem = ErrorText.system()
            close(fd)
            throw TrainingError("\(path): cannot write the run's lock file: \(problem)")
        }
        descriptor = fd
    }

    deinit { release() }

    /// Gives the lock up (the system does at exit).
    public func release() {
        guard descriptor >= 0 else { return }
        close(descriptor)
        descriptor = -1
    }

    /// Gives the lock up and, when taking it created the directory and nothing else was
    /// written there, removes the directory again (a run refused before it started).
    public func releaseAndRemoveIfUnused() {
        guard descriptor >= 0 else { return }
        if createdDirectory {
            let contents = (try? FileManager.default.contentsOfDirectory(atPath: runDirectory)) ?? []
            if contents == [Self.fileName] {
                unlink(runDirectory + "/" + Self.fileName)
                rmdir(runDirectory)
            }
        }
        release()
    }

    /// Creates `path` and missing parents; returns whether it was created. Refuses a part
    /// of the path that is a file ("afile is a file, not a folder").
    @discardableResult
    public static func createDirectory(_ path: String) throws -> Bool {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue { return false }
        // The nearest existing part of the path must be a folder.
        var part = path
        while !part.isEmpty && part != "/" && part != "." {
            if fm.fileExists(atPath: part, isDirectory: &isDirectory) {
                guard isDirectory.boolValue else { throw TrainingError("\(part) is a file, not a folder") }
                break
            }
            part = (part as NSString).deletingLastPathComponent
        }
        do { try fm.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw TrainingError("cannot create the folder \(path): \(ErrorText.describe(error))")
        }
        return true
    }

    /// The pid the lock file holds; it may be a moment before the owner has written it.
    private static func owner(_ fd: Int32) -> String? {
        for _ in 0..<20 {
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = pread(fd, &buffer, buffer.count, 0)
            if n > 0, let pid = Int(String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) {
                return String(pid)
            }
            usleep(10_000)
        }
        return nil
    }
}
