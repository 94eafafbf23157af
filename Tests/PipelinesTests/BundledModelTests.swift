import Datasets
import Diffusion
import Foundation
import ImageIO
import Models
import Pipelines
import Testing
import Tensors
import Training

/// The models that ship with Diffuse load and sample as their README says.
@Suite struct BundledModelTests {
    @Test func bundledModelsLoadAndSample() throws {
        #expect(BundledModel.names == ["fashion-mnist", "fashion-mnist-classes", "fashion-mnist-inpaint", "fashion-mnist-sr",
                                       "fashion-mnist-text"])
        var request = SamplingRequest(model: "fashion-mnist-classes", steps: 2)
        request.batch = 2
        request.classLabels = [7]
        request.guidance = 3
        let prepared = try request.prepare(in: ModelStore())
        guard case .unet(let model) = prepared.model.network else { Issue.record("not a UNet2DModel"); return }
        #expect(model.config.numClassEmbeds == 11)
        #expect(prepared.request.sampler == .dpmSolverSDE2M)
        #expect(prepared.notes.contains { $0.hasPrefix("null class 10") })
        let samples = try prepared.run()
        #expect(samples.shape == [2, 1, 28, 28] && samples.scalars.allSatisfy { $0.isFinite })
        #expect(throws: PipelineError.self) { _ = try BundledModel.folder("cifar-10") }
    }

    /// The bundled SR3 model (x4, 7x7 -> 28x28) on 16 Fashion-MNIST test images with its
    /// default sampler (20 SDE-DPM-Solver++ steps): its output pooled back down matches the
    /// input within 0.02 (mean |difference| in [0, 1] units; about 0.007 measured on 200
    /// images), and it beats bicubic upscaling on PSNR and SSIM.
    @Test func bundledSuperResolutionModelMatchesItsInputAndBeatsBicubic() throws {
        let stored = try ModelStore().model("fashion-mnist-sr")
        let (config, kind, _) = try stored.scheduler(nil)
        guard case .unet(let model) = stored.network else { Issue.record("not a UNet2DModel"); return }
        #expect(kind == .dpmSolverSDE2M)
        #expect(model.conditioningChannels == 1 && model.defaultSampleShape == [1, 28, 28])
        let test = try Datasets.load(name: "fashion-mnist", split: .test)
        var request = GenerationRequest(sampler: kind, steps: 20, sampleShape: [1, 28, 28])
        request.seed = 0
        let report = try UpscaleEvaluation.evaluate(GenerationPipeline(model: model, schedulerConfig: config),
                                                    originals: test.images.sliced(axis: 0, start: 0, end: 16), scale: 4,
                                                    request: request, batchSize: 16)
        #expect(report.consistency < 0.02, "\(report)")
        #expect(report.model.psnr > report.bicubic.psnr && report.model.ssim > report.bicubic.ssim, "\(report)")
    }

    /// The bundled text-to-image model loads as a pipeline folder, with its SDE-DPM-Solver++
    /// scheduler and the Fashion-MNIST class words, and generates; the bundled inpainting
    /// model takes the mask and masked image as its 2 extra channels and keeps the known pixels.
    @Test func bundledTextAndInpaintingModelsRun() throws {
        var text = SamplingRequest(model: "fashion-mnist-text", steps: 2)
        text.prompts = ["a sneaker", "a photo of a bag"]
        text.guidance = 3
        let prepared = try text.prepare(in: ModelStore())
        #expect(prepared.request.sampler == .dpmSolverSDE2M)
        guard case .textToImage(let textModel) = prepared.model.network else { Issue.record("not a text-to-image model"); return }
        #expect(["sneaker", "bag", "ankle", "boot", "photo"].allSatisfy(textModel.tokenizer.vocabulary.contains))
        let samples = try prepared.run()
        #expect(samples.shape == [2, 1, 28, 28] && samples.scalars.allSatisfy { $0.isFinite })

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("diffuse-bundled-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let test = try Datasets.load(name: "fashion-mnist", split: .test)
        let image = Image(tensor: test.images.sliced(axis: 0, start: 0, end: 1))
        try image.write(to: dir + "/in.png")
        try Image(width: 28, height: 28, channels: 1, pixels: (0..<784).map { $0 % 28 >= 14 ? 255 : 0 }).write(to: dir + "/mask.png")
        var inpaint = SamplingRequest(model: "fashion-mnist-inpaint", steps: 4)
        inpaint.images = .inpaint(image: EncodedImage(file: dir + "/in.png"), mask: EncodedImage(file: dir + "/mask.png"), resampling: .init())
        let inpainting = try inpaint.prepare(in: ModelStore())
        guard case .unet(let inpaintModel) = inpainting.model.network else { Issue.record("not a UNet2DModel"); return }
        #expect(inpaintModel.conditioningChannels == 2)
        let out = Image(tensor: try inpainting.run().clamped(min: -1, max: 1))
        #expect((0..<784).filter { $0 % 28 < 14 }.allSatisfy { out.pixels[$0] == image.pixels[$0] }, "kept pixels changed")
    }

    /// The share of `samples` the shipped Fashion-MNIST classifier assigns to `requested`, as
    /// `diffuse eval --class-labels` reports it (`SampleEvaluation.requestedClassAccuracy`).
    static func requestedClassShare(_ samples: Tensor, _ requested: [Int]) throws -> Double {
        let predicted = try FeatureClassifier.bundled(for: "fashion-mnist").predictions(samples)
        #expect(predicted.count == requested.count)
        return Double(zip(predicted, requested).filter { $0 == $1 }.count) / Double(requested.count)
    }

    /// The README's 98.7% (1000 samples, 20 steps, guidance 3, the default SDE-DPM-Solver++)
    /// held to a floor: 64 samples cycling through the classes at 10 steps must be at least 70%
    /// their requested class (chance: 10%). A model or sampler that lost its conditioning
    /// falls to about 10-20%.
    @Test func bundledClassModelSamplesAreTheirClass() throws {
        var request = SamplingRequest(model: "fashion-mnist-classes", steps: 10)
        request.guidance = 3
        request.seed = 0
        let requested = (0..<64).map { $0 % 10 }
        request.classLabels = requested
        request.batch = 64
        let samples = try request.prepare(in: ModelStore()).run()
        let share = try Self.requestedClassShare(samples, requested)
        print("bundled fashion-mnist-classes, 64 samples, 10 steps, guidance 3: requested class \(share)")
        #expect(share >= 0.7, "only \(share) of the samples are classified as their class")
    }

    /// The README's 97.0% for the text model (1000 samples of the ten prompts "a t-shirt or
    /// top", "a trouser", ...: the class names as its training captions wrote them) held to the
    /// same floor: 7 samples per prompt, 10 steps, guidance 3, at least 70% classified as the
    /// class their prompt names.
    @Test func bundledTextModelSamplesAreTheirPromptsClass() throws {
        let names = FashionMNIST.classNames.map { $0.lowercased().replacingOccurrences(of: "/", with: " or ") }
        var request = SamplingRequest(model: "fashion-mnist-text", steps: 10)
        request.prompts = names.map { "a \($0)" }
        request.batch = 7
        request.guidance = 3
        request.seed = 0
        let prepared = try request.prepare(in: ModelStore())
        #expect(prepared.request.sampler == .dpmSolverSDE2M)
        #expect(!prepared.notes.contains { $0.hasPrefix("words the model never saw") }, "\(prepared.notes)")
        let samples = try prepared.run()
        let requested = (0..<70).map { $0 / 7 }
        let share = try Self.requestedClassShare(samples, requested)
        print("bundled fashion-mnist-text, 70 samples, 10 steps, guidance 3: requested class \(share)")
        #expect(share >= 0.7, "only \(share) of the samples are classified as the class their prompt names")
    }
}
