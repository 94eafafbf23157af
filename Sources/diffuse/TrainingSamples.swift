import Diffusion
import Foundation
import ImageIO
import Pipelines
import Tensors
import Training

/// The samples `diffuse train` writes while it trains: a 4x4 PNG grid of 16 images from the sampling (EMA)
/// model, 50 DDIM steps from a fixed seed (the same noise every time, so grids from different
/// steps compare), classes 0, 1, 2, ... in turn for a class-conditional model.
enum TrainingSamples {
    static let count = 16, steps = 50, seed: UInt64 = 0

    /// Generates the samples and writes them into the run directory; returns the path.
    static func write(_ trainer: Trainer, runDirectory: String) throws -> String {
        let c = trainer.configuration
        let model = try trainer.samplingModel()
        let pipeline = GenerationPipeline(model: model, schedulerConfig: c.schedulerConfig)
        var request = GenerationRequest(sampler: .ddim, steps: Swift.min(steps, c.numTrainTimesteps), batchSize: count,
                                        sampleShape: [c.channels, c.imageSize, c.imageSize])
        request.seed = seed
        if c.classConditional, let classes = c.numClasses {
            request.conditioning = Conditioning(classLabels: Tensor(integers: (0..<count).map { $0 % classes }))
        }
        let samples = try pipeline.generate(request)
        let path = runDirectory + String(format: "/samples-%06d.png", trainer.step)
        try Image.grid(samples.clamped(min: -1, max: 1), columns: 4, padding: 2).write(to: path)
        return path
    }
}
