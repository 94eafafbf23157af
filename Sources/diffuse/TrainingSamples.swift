import Diffusion
import Foundation
import ImageIO
import Models
import Pipelines
import Tensors
import Training

/// The samples `diffuse train` writes while it trains: a 4x4 PNG grid of 16 images from the sampling (EMA)
/// model, 50 DDIM steps from a fixed seed (the same noise every time, so grids from different
/// steps compare), classes 0, 1, 2, ... in turn for a class-conditional model, the data's first
/// distinct captions in turn with guidance 3 for a text-to-image model; for super-resolution and
/// inpainting runs, the first images of the data (low-resolution, or with a centre square masked)
/// beside the model's outputs.
enum TrainingSamples {
    static let count = 16, steps = 50, seed: UInt64 = 0, guidance: Float = 3

    /// The pipeline's samples for any denoiser (the trainer's model is an existential).
    static func generate<M: Denoiser>(_ model: M, schedulerConfig: SchedulerConfig, _ request: GenerationRequest) throws -> Tensor {
        try GenerationPipeline(model: model, schedulerConfig: schedulerConfig).generate(request)
    }

    /// The request for `count` samples of a generation run's model: DDIM with `steps` steps
    /// from `seed`, classes 0, 1, 2, ... in turn for a class-conditional model, the data's
    /// first `count` distinct captions in turn with guidance 3 for a text-to-image one.
    static func request(_ trainer: Trainer, model: any Denoiser, count: Int, steps: Int, seed: UInt64) throws -> GenerationRequest {
        let c = trainer.configuration
        var request = GenerationRequest(sampler: .ddim, steps: Swift.min(steps, c.numTrainTimesteps), batchSize: count,
                                        sampleShape: [c.channels, c.imageSize, c.imageSize])
        request.seed = seed
        if c.classConditional, let classes = c.numClasses {
            request.conditioning = Conditioning(classLabels: Tensor(integers: (0..<count).map { $0 % classes }))
        }
        if let model = model as? TextToImageModel, let captions = trainer.dataset.captions {
            var prompts: [String] = []
            for caption in captions where !prompts.contains(caption) && prompts.count < count { prompts.append(caption) }
            request.conditioning = request.conditioning ?? Conditioning()
            request.conditioning?.tokens = try model.tokens((0..<count).map { prompts[$0 % prompts.count] })
            request.unconditional = Conditioning(tokens: model.emptyCaption(batch: count))
            request.guidanceScale = guidance
        }
        return request
    }

    /// Generates the samples and writes them into the run directory; returns the path.
    static func write(_ trainer: Trainer, runDirectory: String) throws -> String {
        let c = trainer.configuration
        let model = try trainer.samplingModel()
        let task = c.task ?? .generation
        // Image-to-image tasks show the first images of the data (at most all of them).
        let n = task == .generation ? count : Swift.min(count, trainer.dataset.count)
        var request = try request(trainer, model: model, count: n, steps: steps, seed: seed)
        var inputs: Tensor? = nil
        if task != .generation {
            // The first images of the data: low-resolution versions, or a centre square masked.
            let x0 = trainer.dataset.images.sliced(axis: 0, start: 0, end: n).to(.float32)
            let image: Tensor
            if task == .superResolution {
                image = ConditioningImages.lowResolution(of: x0, factor: c.superResolutionScale)
                inputs = image
            } else {
                let side = c.imageSize / 2, start = c.imageSize / 4
                var m = [Float](repeating: 0, count: c.imageSize * c.imageSize)
                for y in start..<(start + side) { for x in start..<(start + side) { m[y * c.imageSize + x] = 1 } }
                let mask = Tensor(m, shape: [1, 1, c.imageSize, c.imageSize]).expanded([x0.shape[0], 1, c.imageSize, c.imageSize]).contiguous()
                image = ConditioningImages.maskChannels(image: x0, mask: mask)
                inputs = x0 * (1 - mask)
            }
            request.conditioning = request.conditioning ?? Conditioning()
            request.conditioning?.image = image
            request.unconditional?.image = image
        }
        var samples = try generate(model, schedulerConfig: c.schedulerConfig, request)
        if let inputs {
            // Inputs and outputs in alternate columns.
            samples = Tensor.stack([inputs, samples], axis: 1).reshaped([2 * samples.shape[0]] + Array(samples.shape.dropFirst()))
        }
        let path = runDirectory + String(format: "/samples-%06d.png", trainer.step)
        try Image.grid(samples.clamped(min: -1, max: 1), columns: 4, padding: 2).write(to: path)
        return path
    }
}
