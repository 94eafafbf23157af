import Foundation

/// Runs a PyTorch peer benchmark script and reads the JSON lines it prints.
struct PeerRunner {
    let python: String

    /// The peer's Python: an explicit path, or the project's `.venv-peer` when it exists.
    static func resolve(_ option: String) -> PeerRunner? {
        switch option {
        case "none": return nil
        case "auto":
            let candidate = FileManager.default.currentDirectoryPath + "/.venv-peer/bin/python"
            return FileManager.default.isExecutableFile(atPath: candidate) ? PeerRunner(python: candidate) : nil
        default:
            return PeerRunner(python: option)
        }
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// The largest peak resident set size of any peer run so far (the kernel's ru_maxrss of
    /// the terminated children), in bytes.
    static func peakChildRSSBytes() -> Int {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_CHILDREN.rawValue), &usage)
        return usage.ru_maxrss * 1024
    }

    /// Runs `script args...` and decodes each output line that is a JSON object.
    func run(script: String, arguments: [String]) throws -> [[String: Any]] {
        guard FileManager.default.fileExists(atPath: script) else {
            throw Failure(description: "peer script \(script) not found (run from the repository root)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [script] + arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.standardError
        do { try process.run() } catch {
            throw Failure(description: "cannot start the peer \(python): \(error.localizedDescription)")
        }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failure(description: "peer \(script) exited with status \(process.terminationStatus)")
        }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }
    }
}
