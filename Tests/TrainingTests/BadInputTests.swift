import Datasets
import Foundation
import ModelIO
import Testing
import Tensors
import Training

/// Bad input to the training library (issue 13): data, checkpoints and settings that would
/// train silently on something wrong are refused by name, before a step is taken.
@Suite struct BadInputTests {
    /// A version 1.0 `.npy` file of uint8 values [N, C, H, W], as NumPy writes 8-bit images.
    static func writeUInt8NPY(_ values: [UInt8], shape: [Int], to path: String) throws {
        var header = "{'descr': '|u1', 'fortran_order': False, 'shape': (" + shape.map(String.init).joined(separator: ", ") + "), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var bytes: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)]
        bytes += Array(header.utf8) + values
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    func message(_ body: () throws -> Void) -> String {
        do { try body() } catch { return "\(error)" }
        return "(no error)"
    }

    /// .npy data: integers (8-bit images), values outside [-1, 1], NaN and infinity are
    /// refused at load, naming the file and what was found.
    @Test func npyDataIsCheckedAtLoad() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let n = 4 * 64
        try Self.writeUInt8NPY((0..<n).map { UInt8($0 % 256) }, shape: [4, 1, 8, 8], to: dir + "/bytes.npy")
        #expect(message { _ = try TrainingData.load(dir + "/bytes.npy") }
                == "\(dir)/bytes.npy: images must be floats in [-1, 1], found uint8 values "
                + "(8-bit images? convert them to float32 and scale them: x / 127.5 - 1)")
        try NPY.save(Tensor(integers: Array(0..<n), shape: [4, 1, 8, 8]), to: dir + "/ints.npy")
        #expect(message { _ = try TrainingData.load(dir + "/ints.npy") }.contains("found int64 values"))

        let pixels = (0..<n).map { Float($0 % 256) }
        try NPY.save(Tensor(pixels, shape: [4, 1, 8, 8]), to: dir + "/bytes-as-floats.npy")
        #expect(message { _ = try TrainingData.load(dir + "/bytes-as-floats.npy") }
                == "\(dir)/bytes-as-floats.npy: values must lie in [-1, 1], found min 0 max 255 "
                + "(8-bit images? scale them to [-1, 1]: x / 127.5 - 1)")
        try NPY.save(Tensor(pixels.map { $0 / 255 * 4 - 3 }, shape: [4, 1, 8, 8]), to: dir + "/shifted.npy")
        #expect(message { _ = try TrainingData.load(dir + "/shifted.npy") }.contains("found min -3 max 1"))

        for (name, bad) in [("nan", Float.nan), ("inf", Float.infinity)] {
            var values = [Float](repeating: 0.5, count: n)
            values[2 * 64 + 10] = bad
            try NPY.save(Tensor(values, shape: [4, 1, 8, 8]), to: dir + "/\(name).npy")
            #expect(message { _ = try TrainingData.load(dir + "/\(name).npy") }
                    == "\(dir)/\(name).npy: image 2 holds \(bad) (element 10 of 64); the data must be finite values in [-1, 1]")
        }
        // Values in [-1, 1] load.
        try NPY.save(Tensor(pixels.map { $0 / 127.5 - 1 }, shape: [4, 1, 8, 8]), to: dir + "/good.npy")
        #expect(try TrainingData.load(dir + "/good.npy").count == 4)

        try FileManager.default.createDirectory(atPath: dir + "/folder.npy", withIntermediateDirectories: true)
        #expect(message { _ = try TrainingData.load(dir + "/folder.npy") } == "\(dir)/folder.npy is a folder, not a .npy file")
        _ = FileManager.default.createFile(atPath: dir + "/empty.npy", contents: Data())
        #expect(message { _ = try TrainingData.load(dir + "/empty.npy") } == "\(dir)/empty.npy: is empty")
    }

    /// Non-finite or out-of-range numbers are refused by field, for every floating setting.
    @Test func settingsMustBeFiniteAndInRange() throws {
        let base = try tinyConfiguration(steps: 10)
        let cases: [(String, (inout TrainingConfiguration) -> Void)] = [
            ("learning_rate", { $0.learningRate = .nan }), ("learning_rate", { $0.learningRate = .infinity }),
            ("clip_norm", { $0.clipNorm = .nan }), ("clip_norm", { $0.clipNorm = -1 }),
            ("weight_decay", { $0.weightDecay = .nan }), ("weight_decay", { $0.weightDecay = -1 }),
            ("weight_decay", { $0.weightDecay = 2000 }), ("ema_decay", { $0.emaDecay = .nan }),
            ("beta_start", { $0.betaStart = .nan }), ("beta_end", { $0.betaEnd = .infinity }),
            ("min_snr_gamma", { $0.minSNRGamma = .nan }), ("min_snr_gamma", { $0.minSNRGamma = .infinity }),
            ("label_dropout", { $0.labelDropout = .nan }), ("warmup_steps", { $0.warmupSteps = -1 }),
            ("adam_epsilon", { $0.adamEpsilon = .nan }), ("ema_power", { $0.emaPower = .infinity }),
        ]
        for (field, change) in cases {
            var c = base
            change(&c)
            let error = #expect(throws: TrainingError.self) { try c.validate() }
            #expect(error?.field == field && error?.message.hasPrefix(field + " ") == true, "\(field): \(String(describing: error))")
            #expect(error?.naming("--option").message.hasPrefix("--option ") == true)
        }
        var c = base
        c.clipNorm = .nan
        #expect(throws: TrainingError("clip_norm must be positive and finite, got nan")) { try c.validateSettings() }
        #expect(throws: TrainingError("caption_dropout must be in [0, 1), got nan")) { try TextConditioning.validate(captionDropout: .nan) }
    }

    /// NaN in the data: the divergence message names the possible causes and says that no
    /// checkpoint has been written yet, rather than pointing at a step-0 checkpoint.
    @Test func divergenceWithoutACheckpointSaysSo() throws {
        let data = try syntheticDataset()
        let poisoned = try ImageDataset(name: "poisoned", images: Tensor([Float](repeating: .nan, count: data.images.count), shape: data.images.shape),
                                        labels: data.labels, classNames: data.classNames)
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = TrainingRun(trainer: try Trainer(configuration: try tinyConfiguration(steps: 4), dataset: poisoned), runDirectory: dir + "/run")
        let error = #expect(throws: TrainingError.self) { try run.run() }
        let text = error?.message ?? ""
        #expect(text.hasPrefix("the loss is nan at step 1: "), "\(text)")
        #expect(text.contains("no checkpoint has been written yet"), "\(text)")
        #expect(text.contains("NaN or infinity") && text.contains("learning rate"), "\(text)")
        #expect(!text.contains("step 0"), "\(text)")
    }

    /// A trained run's checkpoint in `dir`, at step 2 of 10.
    func checkpointed(in dir: String) throws -> Trainer {
        let trainer = try Trainer(configuration: try tinyConfiguration(steps: 10), dataset: try syntheticDataset())
        for _ in 0..<2 { trainer.trainStep() }
        try Checkpoint.save(trainer, runDirectory: dir)
        return trainer
    }

    func resumeError(_ dir: String) -> String {
        message { _ = try Trainer(checkpoint: try Checkpoint.locate(runDirectory: dir), dataset: try syntheticDataset()) }
    }

    /// Rewrites one safetensors file of the checkpoint through `change`, runs `body`, and puts
    /// the original back.
    func editing(_ path: String, _ change: (inout [String: Tensor]) -> Void, _ body: () -> Void) throws {
        let original = try Data(contentsOf: URL(fileURLWithPath: path))
        var tensors = try Safetensors.load(path, memoryMapped: false).tensors
        change(&tensors)
        try Safetensors(tensors: tensors, metadata: ["format": "pt"]).save(path)
        body()
        try original.write(to: URL(fileURLWithPath: path))
    }

    /// The optimizer state must hold exactly the model's moments: a missing, mis-shaped or
    /// extra tensor is refused, naming optimizer.safetensors and the tensor.
    @Test func optimizerStateMustMatchTheModel() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try checkpointed(in: dir)
        let file = dir + "/checkpoint/optimizer.safetensors"
        let key = try #require(try Safetensors.load(file).tensors.keys.filter { $0.hasPrefix("exp_avg_sq.") }.sorted().first)
        let shape = try Safetensors.load(file).tensors[key]!.shape
        try editing(file, { $0[key] = nil }) {
            let text = resumeError(dir)
            #expect(text == "\(file): tensor \(key) is missing (step 2 has moments for every parameter)", "\(text)")
        }
        try editing(file, { $0[key] = Tensor.zeros([shape.reduce(1, *) + 1]) }) {
            let text = resumeError(dir)
            #expect(text == "\(file): tensor \(key) has shape [\(shape.reduce(1, *) + 1)], expected \(shape)", "\(text)")
        }
        try editing(file, { $0["exp_avg.no.such.weight"] = Tensor.zeros([3]) }) {
            let text = resumeError(dir)
            #expect(text == "\(file): unexpected tensor exp_avg.no.such.weight (the model has no such parameter)", "\(text)")
        }
        #expect(try Trainer(checkpoint: try Checkpoint.locate(runDirectory: dir), dataset: try syntheticDataset()).step == 2)
    }

    /// A wrong-shaped EMA tensor (the checkpoint's main weights) is refused by name with both
    /// shapes, even with the same number of elements; a missing one likewise.
    @Test func emaWeightsMustMatchTheModel() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let trainer = try checkpointed(in: dir)
        let file = dir + "/checkpoint/diffusion_pytorch_model.safetensors"
        let key = try #require(trainer.ema!.shadow.filter { $0.value.rank == 4 }.keys.sorted().first)
        let shape = trainer.ema!.shadow[key]!.shape
        try editing(file, { $0[key] = $0[key]!.reshaped([shape.reduce(1, *)]) }) {
            let text = resumeError(dir)
            #expect(text == "\(file): EMA weights: tensor \(key) has shape [\(shape.reduce(1, *))], expected \(shape)", "\(text)")
        }
        try editing(file, { $0[key] = Tensor.zeros([shape[0] + 1] + shape.dropFirst()) }) {
            #expect(resumeError(dir).contains("tensor \(key) has shape [\(shape[0] + 1)"))
        }
        try editing(file, { $0[key] = nil }) {
            #expect(resumeError(dir) == "\(file): EMA weights: tensor \(key) is missing")
        }
    }

    /// A state whose step is past its run's end (hand-edited) is refused, and a run cannot be
    /// shortened to or below the steps it has taken.
    @Test func stepsPastTheEndAreRefused() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let trainer = try checkpointed(in: dir)
        #expect(throws: TrainingError("total_steps 2 is not beyond the 2 steps already taken")) { try trainer.setTotalSteps(2) }
        try trainer.setTotalSteps(3)
        let path = dir + "/checkpoint/training_state.json"
        var json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        json["step"] = 1000
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
        #expect(throws: TrainingError("\(path): step 1000 is past the end of the run (total_steps 10)")) { _ = try TrainingState.load(path) }
    }

    /// A checkpoint save that fails removes its temporary folder and keeps the previous
    /// checkpoint; the run's message says which checkpoint remains.
    @Test func failedSaveRemovesItsTemporaryFolder() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let trainer = try checkpointed(in: dir)
        trainer.trainStep()
        #expect(throws: TrainingError("disk full")) {
            try Checkpoint.save(trainer, runDirectory: dir) { _ in throw TrainingError("disk full") }
        }
        #expect(!FileManager.default.fileExists(atPath: dir + "/checkpoint.tmp"))
        #expect(try TrainingState.load(dir + "/checkpoint/training_state.json").step == 2)

        let run = TrainingRun(trainer: trainer, runDirectory: dir)
        #expect(run.lastCheckpoint == 2, "the run directory's checkpoint")
        let fresh = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: fresh) }
        #expect(TrainingRun(trainer: trainer, runDirectory: fresh).lastCheckpoint == nil)
    }

    /// The run-directory lock: a second holder is refused at once with the owner's pid, and
    /// a path through a file is refused as such.
    @Test func runDirectoryLockIsExclusive() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = try RunDirectoryLock(dir + "/run", create: true)
        #expect(first.createdDirectory)
        #expect(throws: TrainingError("\(dir)/run is in use by another diffuse train (pid \(getpid()))")) {
            _ = try RunDirectoryLock(dir + "/run", create: false)
        }
        first.release()
        let again = try RunDirectoryLock(dir + "/run", create: false)
        again.releaseAndRemoveIfUnused()
        #expect(FileManager.default.fileExists(atPath: dir + "/run"), "only a directory the lock created is removed")
        _ = FileManager.default.createFile(atPath: dir + "/afile", contents: Data("x".utf8))
        #expect(throws: TrainingError("\(dir)/afile is a file, not a folder")) { _ = try RunDirectoryLock(dir + "/afile/run", create: true) }
        #expect(throws: TrainingError("\(dir)/afile is a file, not a folder")) { _ = try RunDirectoryLock(dir + "/afile", create: false) }
        let fresh = try RunDirectoryLock(dir + "/new/run", create: true)
        fresh.releaseAndRemoveIfUnused()
        #expect(!FileManager.default.fileExists(atPath: dir + "/new/run"))
    }
}
