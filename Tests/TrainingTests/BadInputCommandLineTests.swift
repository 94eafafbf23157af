import Foundation
import ModelIO
import Testing
import Tensors
import Training

/// Bad input to `diffuse train` (issue 13), run as a user runs it: each case exits non-zero
/// with one line naming the file or option and the problem.
@Suite(.serialized) struct BadInputCommandLineTests {
    let cli = CommandLineTests()

    /// A new run's options on the tiny model, without the checkpoint and sample settings.
    func newRun(_ data: String, _ out: String, steps: Int = 2) -> [String] {
        ["--data", data, "--model", "tiny", "--out", out, "--steps", "\(steps)", "--batch-size", "4", "--timesteps", "100"]
    }

    func expectRefused(_ arguments: [String], _ message: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let run = try cli.train(arguments)
        #expect(run.status != 0, "\(arguments) exited 0", sourceLocation: sourceLocation)
        #expect(run.error.contains(message), "\(arguments): \(run.error)", sourceLocation: sourceLocation)
    }

    /// Data outside [-1, 1], integer data and non-finite data are refused at load.
    @Test func badDataIsRefused() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try BadInputTests.writeUInt8NPY((0..<(32 * 64)).map { UInt8($0 % 256) }, shape: [32, 1, 8, 8], to: dir + "/bytes.npy")
        try expectRefused(newRun(dir + "/bytes.npy", dir + "/a"), "\(dir)/bytes.npy: images must be floats in [-1, 1], found uint8 values")
        try NPY.save(Tensor((0..<(32 * 64)).map { Float($0 % 256) }, shape: [32, 1, 8, 8]), to: dir + "/floats.npy")
        try expectRefused(newRun(dir + "/floats.npy", dir + "/a"),
                          "\(dir)/floats.npy: values must lie in [-1, 1], found min 0 max 255 (8-bit images? scale them to [-1, 1]: x / 127.5 - 1)")
        var values = [Float](repeating: 0, count: 32 * 64)
        values[5 * 64] = .nan
        try NPY.save(Tensor(values, shape: [32, 1, 8, 8]), to: dir + "/nan.npy")
        try expectRefused(newRun(dir + "/nan.npy", dir + "/a"), "\(dir)/nan.npy: image 5 holds nan")
        try FileManager.default.createDirectory(atPath: dir + "/folder.npy", withIntermediateDirectories: true)
        try expectRefused(newRun(dir + "/folder.npy", dir + "/a"), "\(dir)/folder.npy is a folder, not a .npy file")
        // A refused new run leaves no run directory behind.
        #expect(!FileManager.default.fileExists(atPath: dir + "/a"))
    }

    /// Every floating option is refused when not finite or out of range, naming the option.
    @Test func badNumbersAreRefused() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = try cli.writeData(in: dir)
        let cases: [([String], String)] = [
            (["--clip-norm", "nan"], "--clip-norm must be positive and finite, got nan"),
            (["--clip-norm=-1"], "--clip-norm must be positive and finite, got -1.0"),
            (["--lr", "inf"], "--lr must be positive and finite, got inf"),
            (["--lr", "nan"], "--lr must be positive and finite, got nan"),
            (["--warmup=-1"], "--warmup must be at least 0, got -1"),
            (["--weight-decay", "nan"], "--weight-decay must be finite and at least 0, got nan"),
            (["--ema-decay", "1"], "--ema-decay must be in (0, 1), got 1.0"),
            (["--beta-start", "nan"], "--beta-start must be in (0, 1), got nan"),
            (["--beta-end", "inf"], "--beta-end must be in (0, 1), got inf"),
            (["--min-snr-gamma", "nan"], "--min-snr-gamma must be positive and finite, got nan"),
            (["--class-conditional", "--label-dropout", "nan"], "--label-dropout must be in [0, 1), got nan"),
            (["--text-conditional", "--caption-dropout", "1.5"], "--caption-dropout must be in [0, 1), got 1.5"),
        ]
        for (options, message) in cases {
            try expectRefused(newRun(data, dir + "/a") + options, message)
        }
        #expect(!FileManager.default.fileExists(atPath: dir + "/a"), "refused before anything was written")
    }

    /// --out through a file, --steps not beyond a resumed checkpoint.
    @Test func badRunDirectoriesAreRefused() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = try cli.writeData(in: dir)
        _ = FileManager.default.createFile(atPath: dir + "/afile", contents: Data("x".utf8))
        try expectRefused(newRun(data, dir + "/afile/run"), "\(dir)/afile is a file, not a folder")
        try expectRefused(["--resume", dir + "/afile"], "\(dir)/afile is a file, not a folder")

        let done = try cli.train(newRun(data, dir + "/r", steps: 2))
        #expect(done.status == 0, "\(done.error)")
        try expectRefused(["--resume", dir + "/r", "--steps", "2"], "\(dir)/r's checkpoint is at step 2; --steps 2 is not beyond it")
        try expectRefused(["--resume", dir + "/r", "--steps", "1"], "\(dir)/r's checkpoint is at step 2; --steps 1 is not beyond it")
        let state = dir + "/r/checkpoint/training_state.json"
        var json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: state))) as? [String: Any])
        json["step"] = 1000
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: state))
        try expectRefused(["--resume", dir + "/r", "--steps", "2000"], "\(state): step 1000 is past the end of the run (total_steps 2)")
    }

    /// While a run trains, a second run with the same --out and a --resume of it are refused
    /// at once, naming the first's pid; the first goes on. After kill -9 the lock is gone.
    @Test func aRunDirectoryHasOneWriter() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = try cli.writeData(in: dir)
        let out = dir + "/run"
        let arguments = newRun(data, out, steps: 1_000_000) + ["--checkpoint-every", "0", "--sample-every", "0", "--log-every", "1000000"]
        let (first, err) = CommandLineTests.process(arguments)
        try first.run()
        defer { if first.isRunning { kill(first.processIdentifier, SIGKILL) } }
        // Wait until the first holds the lock (its pid is in the lock file).
        let deadline = Date().addingTimeInterval(60)
        while (try? String(contentsOfFile: out + "/.lock", encoding: .utf8))?.contains("\(first.processIdentifier)") != true
                && first.isRunning && Date() < deadline {
            usleep(10_000)
        }
        let inUse = "\(out) is in use by another diffuse train (pid \(first.processIdentifier))"
        try expectRefused(arguments, inUse)
        try expectRefused(["--resume", out], inUse)
        #expect(first.isRunning, "the first run was disturbed")
        kill(first.processIdentifier, SIGKILL)
        _ = err.fileHandleForReading.readDataToEndOfFile()
        first.waitUntilExit()
        #expect(first.terminationReason == .uncaughtSignal)
        // The system released the lock: resuming is refused only for want of a checkpoint.
        try expectRefused(["--resume", out], "no checkpoint to resume from")
    }

    /// Whether this process may make a private mount namespace with a tmpfs (root with
    /// unshare and mount); where not, the disk-full test is skipped.
    static let canMountTmpfs: Bool = {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare") else { return false }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("diffuse-mount-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        probe.arguments = ["-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs \"$1\"", "sh", dir]
        probe.standardError = FileHandle.nullDevice
        guard (try? probe.run()) != nil else { return false }
        probe.waitUntilExit()
        if probe.terminationStatus != 0 { print("BadInputCommandLineTests: skipping the disk-full test: cannot mount a tmpfs (needs root, unshare -m and mount)") }
        return probe.terminationStatus == 0
    }()

    /// `diffuse train` with its run directory on a tmpfs of `kilobytes`, in a mount namespace
    /// of its own; returns the run and what the run directory holds afterwards.
    func trainOnTmpfs(kilobytes: Int, _ arguments: [String], in dir: String) throws -> (CommandLineTests.Run, [String]) {
        let mountPoint = dir + "/disk"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        let script = """
            disk=$1; shift; mount -t tmpfs -o size=\(kilobytes)k tmpfs "$disk" || exit 99
            "$@"; status=$?
            echo "LEFT: $(ls -A "$disk/run" | tr '\\n' ' ')" >&2; exit $status
            """
        let (process, err) = CommandLineTests.process(arguments.map { $0.replacingOccurrences(of: "DISK", with: mountPoint) },
                                                      launcher: ["unshare", "-m", "sh", "-c", script, "sh", mountPoint])
        try process.run()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let left = text.components(separatedBy: "LEFT: ").last.map { $0.split(whereSeparator: \.isWhitespace).map(String.init) } ?? []
        return (CommandLineTests.Run(status: process.terminationStatus, error: text), left)
    }

    /// A full disk: the failed checkpoint leaves no checkpoint.tmp behind, names the file and
    /// the disk being full, and keeps the previous checkpoint (or says there is none).
    @Test(.enabled(if: BadInputCommandLineTests.canMountTmpfs, "needs root to mount a tmpfs in a private mount namespace"))
    func fullDiskLeavesNoTemporaryCheckpoint() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = try cli.writeData(in: dir)
        // The size of one checkpoint, from a run on the ordinary disk.
        let reference = try cli.train(newRun(data, dir + "/reference") + ["--checkpoint-every", "2", "--sample-every", "0"])
        #expect(reference.status == 0, "\(reference.error)")
        let files = FileManager.default.enumerator(atPath: dir + "/reference")!.compactMap { $0 as? String }
        let bytes = try files.reduce(0) { sum, f in
            let attributes = try FileManager.default.attributesOfItem(atPath: dir + "/reference/" + f)
            return sum + (attributes[.type] as? FileAttributeType == .typeRegular ? (attributes[.size] as? Int) ?? 0 : 0)
        }
        let checkpointKB = bytes / 1024

        // Half a checkpoint: the first fails.
        let options = newRun(data, "DISK/run", steps: 4) + ["--checkpoint-every", "2", "--sample-every", "0"]
        let (first, firstLeft) = try trainOnTmpfs(kilobytes: checkpointKB / 2, options, in: dir)
        #expect(first.status != 0 && first.status != 99, "\(first.error)")
        #expect(first.error.contains("checkpoint at step 2 not written: "), "\(first.error)")
        #expect(first.error.lowercased().contains("no space left on device"), "\(first.error)")
        #expect(first.error.contains("/run/checkpoint.tmp/"), "the file is named: \(first.error)")
        #expect(first.error.contains("no checkpoint has been written yet"), "\(first.error)")
        #expect(!firstLeft.contains("checkpoint.tmp") && !firstLeft.isEmpty, "left: \(firstLeft)")

        // A checkpoint and a half: the first is written, the second fails and the first stays.
        let (second, secondLeft) = try trainOnTmpfs(kilobytes: checkpointKB * 3 / 2, options, in: dir)
        #expect(second.status != 0 && second.status != 99, "\(second.error)")
        #expect(second.error.contains("checkpoint at step 4 not written: "), "\(second.error)")
        #expect(second.error.lowercased().contains("no space left on device"), "\(second.error)")
        #expect(second.error.contains("the last checkpoint is step 2"), "\(second.error)")
        #expect(secondLeft.contains("checkpoint") && !secondLeft.contains("checkpoint.tmp"), "left: \(secondLeft)")
    }
}
