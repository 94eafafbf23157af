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

    /// Runs the peer script under a few lines of Python that print, after the script, its
    /// own peak resident set size (VmHWM since exec; the kernel's ru_maxrss would include the
    /// forked Swift parent's) as one more JSON line: {"peer_peak_rss_kb": N}.
    static let wrapper = """
        import json, runpy, sys
        sys.argv = sys.argv[1:]
        try:
            runpy.run_path(sys.argv[0], run_name="__main__")
        finally:
            hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")]
            print(json.dumps({"peer_peak_rss_kb": int(hwm[0].split()[1]) if hwm else 0}), flush=True)
        """

    /// Runs `script args...` and decodes each output line that is a JSON object.
    func run(script: String, arguments: [String]) throws -> [[String: Any]] {
        guard FileManager.default.fileExists(atPath: script) else {
            throw Failure(description: "peer script \(script) not found (run from the repository root)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-c", PeerRunner.wrapper, script] + arguments
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
