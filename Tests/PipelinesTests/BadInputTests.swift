import Foundation
import ModelIO
import Testing
import Tensors

/// The bad inputs and faults a probe of `diffuse sample` found crashing, hanging or lying,
/// each run through the binary as a user runs it: a clean refusal (exit status, not a
/// signal) whose first line names the file or option and the problem, and no output left.
@Suite struct BadInputTests {
    struct Run {
        let status: Int32, signalled: Bool, output: String, error: String
        /// The message ArgumentParser prints: the first line of stderr.
        var firstLine: String { error.split(separator: "\n").first.map(String.init) ?? "" }
    }

    func diffuse(_ arguments: [String], environment: [String: String] = [:], launcher: [String] = []) throws -> Run {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: launcher.isEmpty ? CommandLineTests.binary : "/usr/bin/env")
        process.arguments = launcher.isEmpty ? arguments : launcher + [CommandLineTests.binary] + arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let (out, err) = (Pipe(), Pipe())
        (process.standardOutput, process.standardError) = (out, err)
        try process.run()
        let output = out.fileHandleForReading.readDataToEndOfFile(), error = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, signalled: process.terminationReason == .uncaughtSignal,
                   output: String(decoding: output, as: UTF8.self), error: String(decoding: error, as: UTF8.self))
    }

    /// A copy of the unet-rgb fixture model with `edit` applied to its config.json object.
    func model(in dir: String, _ edit: (inout [String: Any]) -> Void = { _ in }) throws -> String {
        let folder = dir + "/model-\(UUID().uuidString.prefix(8))"
        try FileManager.default.copyItem(atPath: fixturesFolder() + "/unet-rgb", toPath: folder)
        let path = folder + "/config.json"
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        edit(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: path))
        return folder
    }

    /// Expects a clean refusal whose first line holds `message`, and no `out` file.
    func expectRefused(_ run: Run, _ message: String, out: String? = nil, _ what: String,
                       sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(!run.signalled && run.status != 0, "\(what): status \(run.status) signalled \(run.signalled)", sourceLocation: sourceLocation)
        #expect(run.firstLine.contains(message), "\(what): \(run.error)", sourceLocation: sourceLocation)
        for word in ["NSCocoaErrorDomain", "DecodingError", "Fatal error", "typeMismatch", "Swift runtime failure"] {
            #expect(!run.error.contains(word), "\(what): \(run.error)", sourceLocation: sourceLocation)
        }
        if let out { #expect(!FileManager.default.fileExists(atPath: out), "\(what) left \(out)", sourceLocation: sourceLocation) }
    }

    /// config.json values that crashed (division by zero, negative counts) or gave all-NaN
    /// samples (a negative epsilon), and sizes that ran out of memory, refused by field name
    /// before anything is allocated.
    @Test(arguments: [
        ("norm_num_groups", "0", "norm_num_groups must be at least 1, got 0"),
        ("attention_head_dim", "0", "attention_head_dim must be at least 1, got 0"),
        ("layers_per_block", "-1", "layers_per_block must be at least 1, got -1"),
        ("block_out_channels", "[8, -16]", "block_out_channels[1] must be at least 1, got -16"),
        ("norm_eps", "-1", "norm_eps must be a positive number, got -1.0"),
        ("sample_size", "1000000", "of memory, but"),
        ("block_out_channels", "[8, 4000000]", "parameters needs about"),
        ("layers_per_block", "\"two\"", "layers_per_block: expected an integer"),
    ])
    func badConfigValuesAreRefused(_ field: String, _ json: String, _ message: String) throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let value = try JSONSerialization.jsonObject(with: Data(json.utf8), options: .fragmentsAllowed)
        let folder = try model(in: dir) { $0[field] = value }
        let out = dir + "/out.npy"
        let run = try diffuse(["sample", "--model", folder, "--steps", "2", "--batch", "1", "--out-npy", out])
        expectRefused(run, message, out: out, "\(field) \(value)")
        // The file, or for the memory check the size it asks for.
        #expect(run.firstLine.contains(folder + "/config.json") || run.firstLine.contains("1000000x1000000"), "names the file: \(run.error)")
    }

    /// Weights with a NaN: refused at load by parameter name instead of a black PNG.
    @Test func nonFiniteWeightsAreRefused() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let folder = try model(in: dir)
        let path = folder + "/diffusion_pytorch_model.safetensors"
        var tensors = try Safetensors.load(path, memoryMapped: false).tensors
        var w = tensors["conv_in.weight"]!.contiguous()
        w.withUnsafeMutableFloats { $0[5] = .nan; $0[9] = .infinity }
        tensors["conv_in.weight"] = w
        try Safetensors(tensors: tensors).save(path)
        let out = dir + "/out.png"
        let run = try diffuse(["sample", "--model", folder, "--steps", "2", "--batch", "1", "--out", out])
        expectRefused(run, "conv_in.weight holds 2 NaN or infinite values (the first at element 5)", out: out, "NaN weights")
    }

    /// Initial noise with NaN or infinity: refused with the file named.
    @Test(arguments: [Float.nan, .infinity, -.infinity])
    func nonFiniteNoiseIsRefused(_ bad: Float) throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var noise = PhiloxGenerator(seed: 1).normal([1, 3, 16, 16])
        noise.withUnsafeMutableFloats { $0[3] = bad }
        let file = dir + "/noise.npy"
        try NPY.save(noise, to: file)
        let out = dir + "/out.npy"
        let run = try diffuse(["sample", "--model", fixturesFolder() + "/unet-rgb", "--steps", "2", "--noise", file, "--out-npy", out])
        expectRefused(run, "\(file): the noise holds 1 NaN or infinite value (the first at element 3)", out: out, "noise \(bad)")
    }

    /// A batch that cannot fit in memory (3.3 TB) is refused with the numbers and the way out.
    @Test func oversizedBatchIsRefused() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/out.npy"
        let run = try diffuse(["sample", "--model", fixturesFolder() + "/unet-rgb", "--steps", "2", "--batch", "1000000000", "--out-npy", out])
        expectRefused(run, "generating a batch of 1000000000 at 16x16 needs about", out: out, "batch 1e9")
        #expect(run.firstLine.contains("--batch-size"), "\(run.error)")
    }

    /// `--threads` beyond the cores is clamped with a warning (libgomp crashed at 100000 and
    /// hung at 20000); fewer than 1 is refused.
    @Test(arguments: ["100000", "20000"])
    func threadsBeyondTheCoresAreClamped(_ threads: String) throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/out.npy"
        let run = try diffuse(["sample", "--model", fixturesFolder() + "/unet-rgb", "--steps", "2", "--batch", "1",
                               "--threads", threads, "--out-npy", out])
        #expect(run.status == 0 && !run.signalled, "\(run.error)")
        let cores = ProcessInfo.processInfo.activeProcessorCount
        #expect(run.error.contains("warning: --threads \(threads) is more than the \(cores) cores: using \(cores)"), "\(run.error)")
        #expect(FileManager.default.fileExists(atPath: out))
        let zero = try diffuse(["sample", "--model", fixturesFolder() + "/unet-rgb", "--steps", "2", "--threads", "0", "--out-npy", out + "2"])
        expectRefused(zero, "--threads must be at least 1, got 0", out: out + "2", "--threads 0")
    }

    /// A negative number after a space reaches the option and is refused for the real reason
    /// (not "Missing value for '--steps'").
    @Test func negativeNumbersWithASpaceReachTheOption() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/out.npy"
        let rgb = fixturesFolder() + "/unet-rgb"
        expectRefused(try diffuse(["sample", "--model", rgb, "--steps", "-1", "--out-npy", out]),
                      "the number of sampling steps must be at least 1, got -1", out: out, "--steps -1")
        expectRefused(try diffuse(["sample", "--model", rgb, "--batch", "-4", "--out-npy", out]),
                      "the batch size must be at least 1, got -4", out: out, "--batch -4")
        expectRefused(try diffuse(["sample", "--model", rgb, "--seed", "-1", "--out-npy", out]),
                      "'-1' is invalid for '--seed", out: out, "--seed -1")
        // A negative value where one is meaningful is taken (DDIM's eta must not be negative:
        // refused for that reason, after reaching the option).
        expectRefused(try diffuse(["sample", "--model", rgb, "--sampler", "ddim", "--eta", "-0.5", "--out-npy", out]),
                      "eta must not be negative, got -0.5", out: out, "--eta -0.5")
    }

    /// Wrong outputs and models named for what they are.
    @Test func outputsAndModelsNamedForWhatTheyAre() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let rgb = fixturesFolder() + "/unet-rgb"
        FileManager.default.createFile(atPath: dir + "/afile", contents: Data("x".utf8))
        expectRefused(try diffuse(["sample", "--model", rgb, "--steps", "2", "--out", dir + "/afile/x.png"]),
                      "\(dir)/afile/x.png: \(dir)/afile is a file, not a folder", "--out afile/x.png")
        expectRefused(try diffuse(["sample", "--bundled", "fashion-mnist-text", "--steps", "2", "--out-npy", dir + "/o.npy"]),
                      "is a text-to-image pipeline (it has text_encoder/): generate from it with diffuse generate", "sample on a text model")
        // A config.json that is a folder: the system's words, not NSCocoaErrorDomain.
        let broken = try model(in: dir)
        try FileManager.default.removeItem(atPath: broken + "/config.json")
        try FileManager.default.createDirectory(atPath: broken + "/config.json", withIntermediateDirectories: false)
        expectRefused(try diffuse(["sample", "--model", broken, "--steps", "2", "--out-npy", dir + "/o.npy"]),
                      "\(broken)/config.json: cannot read: is a directory", "config.json a folder")
    }

    /// A full disk while writing `--out-dir` images leaves none of them (it left 10 of 64):
    /// the images are written into a temporary folder and moved into place together. The
    /// disk is a 64 kB tmpfs mounted for the binary alone (`unshare -m`, root only).
    @Test(.enabled(if: canMountPrivateTmpfs(), "needs root to mount a private tmpfs (unshare -m)"))
    func fullDiskLeavesNoPartialImages() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let disk = dir + "/disk"
        try FileManager.default.createDirectory(atPath: disk, withIntermediateDirectories: false)
        let script = "mount -t tmpfs -o size=64k tmpfs '\(disk)' && mkdir '\(disk)/images' && touch '\(disk)/images/keep' && "
            + "\"$0\" \"$@\"; status=$?; ls -A '\(disk)/images' > '\(dir)/left'; exit $status"
        let run = try diffuse(["sample", "--model", fixturesFolder() + "/unet-rgb", "--steps", "2", "--batch", "64",
                               "--out-dir", disk + "/images"], launcher: ["unshare", "-m", "sh", "-c", script])
        expectRefused(run, "\(disk)/images: the images could not be written, none were kept: ", "full disk")
        #expect(run.firstLine.lowercased().contains("no space left on device"), "\(run.error)")
        let left = try String(contentsOfFile: dir + "/left", encoding: .utf8).split(separator: "\n")
        #expect(left == ["keep"], "left behind: \(left)")
    }
}

/// Whether this process may mount a tmpfs in a private mount namespace (root on Linux).
func canMountPrivateTmpfs() -> Bool {
    let probe = Process()
    probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("diffuse-mount-probe-\(UUID().uuidString)").path
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    probe.arguments = ["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=16k tmpfs '\(dir)'"]
    probe.standardError = FileHandle.nullDevice
    do { try probe.run() } catch { return false }
    probe.waitUntilExit()
    return probe.terminationStatus == 0
}
