import Datasets
import Diffusion
import Foundation
import ModelIO
import Models
import Pipelines
import Testing
import Tensors
import Training

/// A DiT of two blocks of width 16 (2 heads of 8) on 8x8 images cut into 2x2 patches (16
/// tokens): small enough for tests, every part of the architecture present.
func tinyDiT(learnedSigma: Bool = false) -> DiTTransformer2DConfig {
    var d = DiTTransformer2DConfig()
    d.numAttentionHeads = 2
    d.attentionHeadDim = 8
    d.numLayers = 2
    d.patchSize = 2
    d.sampleSize = 8
    d.inChannels = 1
    d.outChannels = learnedSigma ? 2 : 1
    return d
}

/// The tiny DiT on the synthetic data: `tinyConfiguration` with the model a DiT config file
/// (written into `dir`), resolved as `diffuse train --model CONFIG.json` resolves it.
func tinyDiTConfiguration(steps: Int, in dir: String, classConditional: Bool = false,
                          learnedSigma: Bool = false) throws -> TrainingConfiguration {
    let path = dir + "/dit-config.json"
    try tinyDiT(learnedSigma: learnedSigma).save(path)
    var c = try tinyConfiguration(steps: steps, classConditional: classConditional)
    c.model = path
    try c.resolveModel()
    return c
}

/// DiT runs: the class table as diffusers' DiT has it, the trainer's own label dropout, the
/// prediction half of a learned-sigma output trained alone, exact resume, and a checkpoint that
/// is a DiTTransformer2DModel folder the sampling path opens.
@Suite struct DiTTrainingTests {
    /// The config resolves from the file and the data: num_embeds_ada_norm = classes (the
    /// null class is label 4), or 1 for an unconditional run (whose label is always the null
    /// class, 1); sample size and channels from the data; learned sigma keeps 2x the channels.
    @Test func configResolvesFromTheData() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let conditional = try tinyDiTConfiguration(steps: 2, in: dir, classConditional: true, learnedSigma: true)
        #expect(conditional.dit?.numEmbedsAdaNorm == 4 && conditional.nullClass == 4)
        #expect(conditional.dit?.outChannels == 2 && conditional.dit?.sampleSize == 8)
        let model = try #require(try Trainer(configuration: conditional, dataset: try syntheticDataset()).model as? DiTTransformer2DModel)
        #expect(model.nullClassLabel == 4 && !model.dropsLabelsWhileTraining)
        let plain = try tinyDiTConfiguration(steps: 2, in: dir)
        #expect(plain.dit?.numEmbedsAdaNorm == 1 && plain.dit?.outChannels == 1 && plain.nullClass == nil)

        // The presets, on Fashion-MNIST's shape: 7x7 = 49 tokens of 4x4 patches.
        for (name, width, blocks) in [("dit-s", 256, 8), ("dit-b", 384, 12)] {
            let c = try TrainingConfiguration(data: "fashion-mnist", model: name, imageSize: 28, channels: 1, numClasses: 10,
                                              classConditional: true, totalSteps: 1)
            #expect(c.dit?.innerDim == width && c.dit?.patchSize == 4 && c.dit?.numLayers == blocks && c.dit?.numEmbedsAdaNorm == 10)
            try c.validate()
        }
    }

    /// Class-conditional with label dropout, flips and learned sigma: resuming from a
    /// checkpoint takes the uninterrupted run's steps bit for bit (the label dropout is the
    /// trainer's, drawn per image from the step's seed, not the model's own generator).
    @Test func resumedDiTRunMatchesUninterruptedRun() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var c = try tinyDiTConfiguration(steps: 6, in: dir, classConditional: true, learnedSigma: true)
        c.labelDropout = 0.5
        c.horizontalFlip = true
        c.lrSchedule = .cosine
        try expectExactResume(c, data: try syntheticDataset())
    }

    /// adaLN-Zero: a fresh DiT predicts 0 and its blocks start as the identity; training moves
    /// the prediction half, and with learned sigma the variance half (never in the loss) stays
    /// at its zero initialisation, so its outputs are exactly 0.
    @Test func learnedSigmaHalfIsNotTrained() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let c = try tinyDiTConfiguration(steps: 3, in: dir, classConditional: true, learnedSigma: true)
        let trainer = try Trainer(configuration: c, dataset: try syntheticDataset())
        let model = try #require(trainer.model as? DiTTransformer2DModel)
        let x = PhiloxGenerator(seed: 3).normal([2, 1, 8, 8], mean: 0, std: 1)
        let t = Tensor(integers: [5, 50]), y = Tensor(integers: [0, 3])
        model.eval()
        #expect(model(x, timesteps: t, classLabels: y).scalars.allSatisfy { $0 == 0 })
        model.train()
        for _ in 0..<3 { trainer.trainStep() }
        model.eval()
        let out = model(x, timesteps: t, classLabels: y)
        #expect(out.shape == [2, 2, 8, 8])
        #expect(out.sliced(axis: 1, start: 0, end: 1).scalars.contains { $0 != 0 }, "the prediction half trains")
        #expect(out.sliced(axis: 1, start: 1, end: 2).contiguous().scalars.allSatisfy { $0 == 0 }, "the variance half stays untrained")
    }

    /// The checkpoint is a DiTTransformer2DModel folder (config.json with its _class_name,
    /// weights, a DDPMScheduler config): loaded, it computes what the trainer's sampling model
    /// computes, bit for bit; the model store opens it, lists it as class-conditional with its
    /// null class, and a guided request through the one request model is deterministic.
    @Test func checkpointIsADiTFolderThatSamples() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let c = try tinyDiTConfiguration(steps: 3, in: dir, classConditional: true)
        let trainer = try Trainer(configuration: c, dataset: try syntheticDataset())
        for _ in 0..<3 { trainer.trainStep() }
        try Checkpoint.save(trainer, runDirectory: dir + "/run")
        let folder = dir + "/run/" + Checkpoint.folderName
        #expect(DiTTransformer2DConfig.describesDiT(configFile: folder + "/config.json"))
        #expect(try SchedulerConfig.load(folder + "/scheduler_config.json").className == "DDPMScheduler")
        let loaded = try DiTTransformer2DModel.load(folder: folder)
        loaded.eval()
        #expect(loaded.config == c.dit)
        let sampling = try #require(try trainer.samplingModel() as? DiTTransformer2DModel)
        let x = PhiloxGenerator(seed: 3).normal([3, 1, 8, 8], mean: 0, std: 1)
        let t = Tensor(integers: [5, 50, 99]), y = Tensor(integers: [0, 3, 4])
        ConvolutionAlgorithm.with(.onednn) {
            let expected = sampling(x, timesteps: t, classLabels: y)
            #expect(loaded(x, timesteps: t, classLabels: y).scalars.map(\.bitPattern) == expected.scalars.map(\.bitPattern))
            #expect(expected.scalars.contains { $0 != 0 })
        }

        let store = ModelStore()
        let info = try store.model(folder).info
        #expect(info.kind == .classConditional && info.classes == 4 && info.nullClass == 4 && info.sampleShape == [1, 8, 8])
        var request = SamplingRequest(model: folder, steps: 5)
        request.sampler = .ddim
        request.classLabels = [0, 1, 2, 3]
        request.guidance = 2
        request.batch = 4
        let run = try request.prepare(in: store)
        #expect(run.notes.contains { $0.contains("null class 4") }, "\(run.notes)")
        let a = try run.run(), b = try request.prepare(in: store).run()
        #expect(a.shape == [4, 1, 8, 8])
        let finite = a.scalars.allSatisfy { $0.isFinite }
        #expect(finite)
        #expect(a.scalars.map(\.bitPattern) == b.scalars.map(\.bitPattern), "the same request gives the same samples")
        // Labels outside the class table (4 classes + the null class) are refused before running.
        request.classLabels = [5]
        #expect(message { _ = try request.prepare(in: store) }.contains("class label 5 in the conditioning is outside"))
    }

    /// Configs no DiT run can use are refused, naming the field.
    @Test func badDiTConfigsAreRefusedByField() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var c = try tinyDiTConfiguration(steps: 2, in: dir, classConditional: true)
        var patch3 = c
        patch3.dit?.patchSize = 3
        #expect(field { try patch3.validate() } == "patch_size")
        var classes = c
        classes.dit?.numEmbedsAdaNorm = 7
        #expect(field { try classes.validate() } == "num_embeds_ada_norm")
        var channels = c
        channels.dit?.outChannels = 3
        #expect(field { try channels.validate() } == "out_channels")
        c.task = .inpainting
        #expect(field { try c.validate() } == "task")

        // Fields the model cannot build, from the config file, named.
        for (key, value, name) in [("norm_type", "\"layer_norm\"", "norm_type"), ("patch_size", "0", "patch_size"),
                                   ("activation_fn", "\"swish\"", "activation_fn")] {
            let path = dir + "/bad-\(key).json"
            try Data("{\"_class_name\": \"DiTTransformer2DModel\", \"\(key)\": \(value)}".utf8).write(to: URL(fileURLWithPath: path))
            let text = message { _ = try TrainingConfiguration(data: "synthetic", model: path, imageSize: 8, channels: 1, totalSteps: 1) }
            #expect(text.contains(name) && text.contains(path), "\(text)")
        }
    }

    private func message(_ body: () throws -> Void) -> String {
        do { try body(); return "no error" } catch { return "\(error)" }
    }

    private func field(_ body: () throws -> Void) -> String? {
        do { try body(); return "no error" } catch let e as TrainingError { return e.field } catch { return "\(error)" }
    }
}

/// `diffuse train --model CONFIG.json` with a DiT config, then `diffuse sample` on its
/// checkpoint, as a user runs them.
@Suite struct DiTCommandLineTests {
    typealias Run = DiffuseRun

    /// Runs the built binary (`CommandLineTests.binary`) with one thread and the convolution
    /// algorithm pinned, so that separate processes compute the same bits.
    func diffuse(_ arguments: [String]) throws -> Run {
        try runDiffuse(arguments + ["--threads", "1"], environment: ["DIFFUSE_CONV_ALGORITHM": "onednn"])
    }

    /// A tiny class-conditional DiT trained 4 steps straight, and 2 steps then resumed to 4:
    /// the same losses and EMA weights bit for bit; samples written during training; the
    /// checkpoint samples with --class and --guidance, the same bits twice; a bad class label
    /// and a patch size that does not divide the images are refused with the reason.
    @Test func ditTrainsResumesAndSamples() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = try CommandLineTests().writeData(in: dir)
        let config = dir + "/dit.json"
        try tinyDiT().save(config)
        func options(_ out: String, steps: Int) -> [String] {
            ["train", "--data", data, "--model", config, "--out", out, "--steps", "\(steps)", "--batch-size", "4", "--lr", "1e-3",
             "--warmup", "2", "--timesteps", "100", "--checkpoint-every", "2", "--sample-every", "4", "--class-conditional"]
        }
        let straight = try diffuse(options(dir + "/straight", steps: 4))
        #expect(straight.status == 0, "\(straight.error)")
        #expect(straight.error.contains("training \(config) ("), "\(straight.error)")
        #expect(FileManager.default.fileExists(atPath: dir + "/straight/samples-000004.png"))
        let first = try diffuse(options(dir + "/resumed", steps: 2))
        #expect(first.status == 0, "\(first.error)")
        let resumed = try diffuse(["train", "--resume", dir + "/resumed", "--steps", "4"])
        #expect(resumed.status == 0, "\(resumed.error)")
        let a = try TrainingState.load(dir + "/straight/checkpoint/training_state.json")
        let b = try TrainingState.load(dir + "/resumed/checkpoint/training_state.json")
        #expect(a.losses.count == 4 && a.losses.map(\.bitPattern) == b.losses.map(\.bitPattern), "\(a.losses) vs \(b.losses)")
        #expect(a.configuration.dit?.numEmbedsAdaNorm == 4)
        let weights = { (run: String) in try Safetensors.load(dir + "/\(run)/checkpoint/diffusion_pytorch_model.safetensors").tensors }
        #expect(bitIdentical(try weights("straight"), try weights("resumed")), "final EMA weights differ")

        let sample = ["sample", "--model", dir + "/straight/checkpoint", "--sampler", "ddim", "--steps", "5", "--batch", "4",
                      "--class", "0,1,2,3", "--guidance", "2"]
        let one = try diffuse(sample + ["--out-npy", dir + "/one.npy"]), two = try diffuse(sample + ["--out-npy", dir + "/two.npy"])
        #expect(one.status == 0 && two.status == 0, "\(one.error)\(two.error)")
        #expect(one.output.contains("DiTTransformer2DModel") && one.output.contains("null class 4"), "\(one.output)")
        let x = try NPY.load(dir + "/one.npy"), y = try NPY.load(dir + "/two.npy")
        let finite = x.scalars.allSatisfy { $0.isFinite }
        #expect(x.shape == [4, 1, 8, 8] && finite)
        #expect(x.scalars.map(\.bitPattern) == y.scalars.map(\.bitPattern), "the same command gives the same samples")

        let badClass = try diffuse(["sample", "--model", dir + "/straight/checkpoint", "--steps", "2", "--class", "9", "--out-npy", dir + "/bad.npy"])
        #expect(badClass.status != 0 && badClass.error.contains("class label 9"), "\(badClass.error)")
        var patch3 = tinyDiT()
        patch3.patchSize = 3
        try patch3.save(config)
        let badPatch = try diffuse(options(dir + "/bad", steps: 2))
        #expect(badPatch.status != 0 && badPatch.error.contains("patch_size 3"), "\(badPatch.error)")
    }
}
