import Foundation
import ImageIO
import ModelIO
import Testing
import Tensors
import Training

/// `diffuse train` run as a user runs it: the built binary beside the test bundle.
@Suite(.serialized) struct CommandLineTests {
    struct Run { let status: Int32, error: String }

    static var binary: String {
        URL(fileURLWithPath: Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.path)
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("diffuse").path
    }

    /// The convolution algorithm is pinned so that separate processes compute the same bits.
    /// `launcher` (a command line ending where the binary's path goes) runs the binary
    /// through another program, e.g. `unshare -m sh -c SCRIPT sh`.
    static func process(_ arguments: [String], launcher: [String] = []) -> (Process, Pipe) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: launcher.isEmpty ? binary : "/usr/bin/env")
        // One thread: the test machines are shared, and a 2-thread team on a busy 2-core
        // machine waits on its descheduled partner at every op (the results are the same).
        process.arguments = (launcher.isEmpty ? [] : launcher + [binary]) + ["train"] + arguments + ["--threads", "1"]
        var environment = ProcessInfo.processInfo.environment
        environment["DIFFUSE_CONV_ALGORITHM"] = "onednn"
        process.environment = environment
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        return (process, err)
    }

    func train(_ arguments: [String]) throws -> Run {
        let (process, err) = Self.process(arguments)
        try process.run()
        let error = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, error: String(decoding: error, as: UTF8.self))
    }

    /// The synthetic data as data.npy (+ data.labels.npy) in `dir`.
    func writeData(in dir: String) throws -> String {
        let data = try syntheticDataset()
        try NPY.save(data.images, to: dir + "/data.npy")
        try NPY.save(Tensor(integers: data.labels!), to: dir + "/data.labels.npy")
        return dir + "/data.npy"
    }

    func options(_ data: String, _ out: String, steps: Int) -> [String] {
        ["--data", data, "--model", "tiny", "--out", out, "--steps", "\(steps)", "--batch-size", "4", "--lr", "1e-3",
         "--warmup", "2", "--timesteps", "100", "--checkpoint-every", "2", "--sample-every", "0", "--flip"]
    }

    func losses(_ runDirectory: String) throws -> [Float] {
        try TrainingState.load(runDirectory + "/checkpoint/training_state.json").losses
    }

    /// An uninterrupted run, a run killed with SIGKILL after a checkpoint and resumed, and a
    /// run stopped by Ctrl-C (SIGINT) and resumed all end with the same losses, bit for bit.
    @Test func killedAndInterruptedRunsResumeExactly() throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.binary), "no diffuse binary at \(Self.binary)")
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = try writeData(in: dir)
        let steps = 40

        let straight = try train(options(data, dir + "/straight", steps: steps) + ["--log-every", "10"])
        #expect(straight.status == 0, "\(straight.error)")
        #expect(straight.error.contains("step 40/40"), "\(straight.error)")
        #expect(straight.error.contains("ETA") && straight.error.contains("img/s"), "\(straight.error)")
        let reference = try losses(dir + "/straight")
        #expect(reference.count == steps)
        #expect(FileManager.default.fileExists(atPath: dir + "/straight/samples-000040.png"))
        let grid = try Image(contentsOf: dir + "/straight/samples-000040.png")
        #expect(grid.width == 4 * (8 + 2) + 2 && grid.height == grid.width && grid.channels == 1)
        #expect(FileManager.default.fileExists(atPath: dir + "/straight/loss.svg"))

        for (name, signal) in [("killed", SIGKILL), ("interrupted", SIGINT)] {
            let out = dir + "/" + name
            let (process, err) = Self.process(options(data, out, steps: steps))
            try process.run()
            // Wait for the first checkpoint, then signal.
            let state = out + "/checkpoint/training_state.json"
            let deadline = Date().addingTimeInterval(60)
            while !FileManager.default.fileExists(atPath: state) && process.isRunning && Date() < deadline { usleep(1000) }
            kill(process.processIdentifier, signal)
            let error = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            let saved = try TrainingState.load(state)
            // The signal came 38 steps before the end: the run stopped part-way.
            #expect(saved.step < steps, "\(name): the run was not stopped (step \(saved.step))")
            if signal == SIGKILL {
                #expect(process.terminationReason == .uncaughtSignal)
            } else {
                #expect(process.terminationStatus == 130, "\(error)")
                #expect(error.contains("interrupted at step \(saved.step)"), "\(error)")
            }
            #expect(saved.losses.map(\.bitPattern) == reference.prefix(saved.step).map(\.bitPattern), "\(name)")
            let resumed = try train(["--resume", out])
            #expect(resumed.status == 0, "\(name): \(resumed.error)")
            #expect(resumed.error.contains("resuming \(out) at step"), "\(resumed.error)")
            #expect(try losses(out).map(\.bitPattern) == reference.map(\.bitPattern), "\(name) then resumed")
            let a = try Safetensors.load(out + "/checkpoint/diffusion_pytorch_model.safetensors").tensors
            let b = try Safetensors.load(dir + "/straight/checkpoint/diffusion_pytorch_model.safetensors").tensors
            #expect(bitIdentical(a, b), "\(name): final EMA weights differ")
        }
    }

    /// A named data set (scikit-learn's 8x8 digits, first 64), class-conditional: the
    /// checkpoint's model has 10 + 1 class embeddings and the configuration records the data.
    @Test func namedDataClassConditional() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = try train(["--data", "digits", "--limit", "64", "--model", "tiny", "--out", dir + "/run", "--steps", "2",
                             "--batch-size", "8", "--timesteps", "50", "--class-conditional", "--label-dropout", "0.2"])
        #expect(run.status == 0, "\(run.error)")
        #expect(run.error.contains("64 images 1x8x8"), "\(run.error)")
        let state = try TrainingState.load(dir + "/run/checkpoint/training_state.json")
        #expect(state.configuration.data == "digits" && state.configuration.limit == 64)
        #expect(state.configuration.unet.numClassEmbeds == 11)
        #expect(state.configuration.nullClass == 10)
        let resumed = try train(["--resume", dir + "/run", "--steps", "3"])
        #expect(resumed.status == 0, "\(resumed.error)")
        #expect(try TrainingState.load(dir + "/run/checkpoint/training_state.json").step == 3)
    }

    /// Bad input: a non-zero exit with the reason on stderr.
    @Test func badInputFailsCleanly() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = try writeData(in: dir)
        let cases: [([String], String)] = [
            (options(dir + "/nothing.npy", dir + "/a", steps: 2), "no such data: \(dir)/nothing.npy does not exist"),
            (options("fashion-nowhere", dir + "/a", steps: 2), "no such data: unknown data set \"fashion-nowhere\""),
            (["--data", data, "--model", "huge", "--out", dir + "/a", "--steps", "2"], "model 'huge' is neither a preset"),
            (["--resume", dir + "/nowhere"], "no such run directory"),
            (["--resume", dir], "no checkpoint to resume from"),
            (["--data", data, "--model", "tiny", "--out", dir + "/a"], "give one of --steps and --epochs"),
            (options(data, dir + "/a", steps: 2) + ["--batch-size", "100"], "fewer than the batch size 100"),
            // A resumed run keeps its settings: changing one is refused, never silently ignored.
            (["--resume", dir + "/a", "--lr", "1e-3"], "--lr cannot be combined with --resume"),
            (["--resume", dir + "/a", "--task", "inpainting"], "--task cannot be combined with --resume"),
            (options(data, dir + "/a", steps: 2) + ["--caption-template", "a {}"], "--caption-template needs --text-conditional"),
            (options(data, dir + "/a", steps: 2) + ["--sr-factor", "2"], "--sr-factor applies to --task super-resolution"),
            (options(data, dir + "/a", steps: 2) + ["--text-conditional"], "has no captions"),
        ]
        for (arguments, message) in cases {
            let run = try train(arguments)
            #expect(run.status != 0, "\(arguments) exited 0")
            #expect(run.error.contains(message), "\(arguments): \(run.error)")
        }
    }
}
