import Datasets
import Diffusion
import Foundation
import Models
import Pipelines
import Testing
import Tensors
import Training

/// Super-resolution and inpainting runs: the conditioning images, the model's channels, the
/// trained model in the pipeline, and the image-quality metrics.
@Suite struct TrainingTaskTests {
    /// The low-resolution image is the block mean, repeated over each block.
    @Test func lowResolutionIsTheBlockMean() {
        let x = Tensor((0..<16).map(Float.init), shape: [1, 1, 4, 4])
        let low = ConditioningImages.lowResolution(of: x, factor: 2).scalars
        #expect(low == [2.5, 2.5, 4.5, 4.5, 2.5, 2.5, 4.5, 4.5, 10.5, 10.5, 12.5, 12.5, 10.5, 10.5, 12.5, 12.5])
    }

    /// Masks are 0/1 rectangles with sides in [H/4, 3H/4], about one in four covering the whole
    /// image, and the same for the same generator state.
    @Test func randomMasksAreRectangles() {
        let masks = TrainingTask.randomMasks(batch: 400, height: 16, width: 16, generator: PhiloxGenerator(seed: 3))
        let v = masks.scalars
        #expect(v.allSatisfy { $0 == 0 || $0 == 1 })
        var full = 0
        for b in 0..<400 {
            let m = Array(v[(b * 256)..<((b + 1) * 256)])
            let rows = (0..<16).filter { y in (0..<16).contains { m[y * 16 + $0] == 1 } }
            let cols = (0..<16).filter { x in (0..<16).contains { m[$0 * 16 + x] == 1 } }
            #expect(m.filter { $0 == 1 }.count == rows.count * cols.count, "mask \(b) is not a rectangle")
            if rows.count == 16 && cols.count == 16 { full += 1 } else {
                #expect((4...12).contains(rows.count) && (4...12).contains(cols.count), "mask \(b): \(rows.count)x\(cols.count)")
            }
        }
        #expect((70...130).contains(full), "\(full) of 400 masks cover everything")
        #expect(TrainingTask.randomMasks(batch: 3, height: 8, width: 8, generator: PhiloxGenerator(seed: 5)).scalars
                == TrainingTask.randomMasks(batch: 3, height: 8, width: 8, generator: PhiloxGenerator(seed: 5)).scalars)
    }

    /// The model takes the task's channels: C + C for super-resolution, C + C + 1 for inpainting,
    /// and a configuration whose model does not fit is refused with both counts.
    @Test func modelChannelsFollowTheTask() throws {
        for (task, inputs) in [(TrainingTask.superResolution, 2), (.inpainting, 3), (.generation, 1)] {
            var c = try tinyConfiguration(steps: 2)
            c.task = task
            c.superResolutionFactor = task == .superResolution ? 2 : nil
            try c.resolveModel()
            #expect(c.unet.inChannels == inputs && c.unet.outChannels == 1)
            try c.validate()
        }
        var c = try tinyConfiguration(steps: 2)
        c.task = .inpainting
        #expect(throws: TrainingError.self) { try c.validate() }
        c.task = .superResolution
        c.superResolutionFactor = 3
        try c.resolveModel()
        let message = errorText { try c.validate() }
        #expect(message.contains("super_resolution_factor must be at least 2 and divide the image side 8, got 3"))
    }

    /// A few steps of each task train (finite, falling loss on the synthetic ramps), and the
    /// trained models run in the pipeline: the SR model from a low-resolution image, the
    /// inpainting model with any sampler, keeping the unmasked pixels exactly.
    @Test(arguments: [TrainingTask.superResolution, .inpainting])
    func trainsAndGenerates(_ task: TrainingTask) throws {
        var c = try tinyConfiguration(steps: 30)
        c.task = task
        c.superResolutionFactor = task == .superResolution ? 2 : nil
        c.useEMA = false
        try c.resolveModel()
        let data = try syntheticDataset()
        let trainer = try Trainer(configuration: c, dataset: data)
        for _ in 0..<30 { trainer.trainStep() }
        let losses = trainer.losses
        #expect(losses.allSatisfy { $0.isFinite })
        #expect(losses.suffix(10).reduce(0, +) < losses.prefix(10).reduce(0, +))
        let model = try #require(try trainer.samplingModel() as? UNet2DModel)
        let pipeline = GenerationPipeline(model: model, schedulerConfig: c.schedulerConfig)
        #expect(model.defaultSampleShape == [1, 8, 8])
        let x0 = data.images.sliced(axis: 0, start: 0, end: 2)
        var r = GenerationRequest(sampler: .dpmSolver2M, steps: 5, batchSize: 2, sampleShape: [1, 8, 8])
        if task == .superResolution {
            r.conditioning = Conditioning(image: ConditioningImages.lowResolution(of: x0, factor: 2))
            #expect(try pipeline.generate(r).shape == [2, 1, 8, 8])
            r.conditioning = nil
            #expect(errorText { _ = try pipeline.generate(r) }.contains("takes 1 conditioning channels"))
        } else {
            r.initImage = x0
            var m = [Float](repeating: 0, count: 64)
            for y in 2..<6 { for x in 2..<6 { m[y * 8 + x] = 1 } }
            r.mask = Tensor(m, shape: [1, 1, 8, 8])
            let out = try pipeline.generate(r).scalars, image = x0.scalars
            for i in out.indices where m[i % 64] == 0 { #expect(out[i] == image[i]) }
            #expect(out.indices.contains { m[$0 % 64] == 1 && out[$0] != image[$0] })
        }
    }

    /// PSNR of a known error; SSIM of an image with itself, and of two constant images (only
    /// the luminance term remains: (2ab + C1) / (a^2 + b^2 + C1)).
    @Test func imageQualityClosedForms() {
        let a = [Float](repeating: 0.2, count: 3 * 16 * 16), b = [Float](repeating: 0.6, count: 3 * 16 * 16)
        #expect(Swift.abs(ImageQuality.psnr(a, a.map { $0 + 0.1 }) - 20) < 1e-4)
        #expect(ImageQuality.psnr(a, a) == .infinity)
        let noise = PhiloxGenerator(seed: 1).uniform([3 * 16 * 16], low: 0, high: 1).scalars
        #expect(Swift.abs(ImageQuality.ssim(noise, noise, channels: 3, height: 16, width: 16) - 1) < 1e-12)
        let c1 = 0.0001
        let expected = (2 * 0.2 * 0.6 + c1) / (0.04 + 0.36 + c1)
        #expect(Swift.abs(ImageQuality.ssim(a, b, channels: 3, height: 16, width: 16) - expected) < 1e-5)
        let other = PhiloxGenerator(seed: 2).uniform([3 * 16 * 16], low: 0, high: 1).scalars
        let s = ImageQuality.ssim(noise, other, channels: 3, height: 16, width: 16)
        #expect(s < 0.2 && Swift.abs(s - ImageQuality.ssim(other, noise, channels: 3, height: 16, width: 16)) < 1e-12)
    }
}

/// The text of the error `body` throws ("no error" without one).
func errorText(_ body: () throws -> Void) -> String {
    do { try body() } catch { return "\(error)" }
    return "no error"
}
