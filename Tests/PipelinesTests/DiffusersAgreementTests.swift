import Diffusion
import Foundation
import ModelIO
import Models
import Pipelines
import Testing
import Tensors

/// The pipeline against diffusers 0.42: DDIMPipeline (eta 0 and 1), DDPMPipeline, the
/// generic scheduler loop with DPM-Solver++ 2M, Euler, Euler ancestral and Heun, and
/// classifier-free guidance, from the same seeds through `TorchGenerator`.
@Suite struct DiffusersAgreementTests {
    /// `rng: .torch` with diffusers' seed draws diffusers' initial noise exactly, and the run,
    /// with every stochastic step's noise from the same generator after it, ends at diffusers'
    /// samples within 1e-3 of their largest value; `denormalize` gives the pipeline's images.
    @Test(arguments: PipelineCase.all)
    func seededRunsMatchDiffusers(_ c: PipelineCase) throws {
        let model = try UNet2DModel.load(folder: c.folder)
        model.eval()
        let request = c.request(shape: model.defaultSampleShape!)
        let noise = try c.array("noise")
        #expect(TorchGenerator(seed: c.seed, kernel: c.torchKernel).normal(request.batchShape).scalars == noise.scalars, "\(c.name): initial noise")
        let pipeline = GenerationPipeline(model: model, schedulerConfig: try c.schedulerConfig())
        var steps: [GenerationStep] = []
        let samples = try pipeline.generate(request) { steps.append($0) }
        expectClose(samples, try c.array("samples"), rtol: 1e-3, "\(c.name) samples")
        expectClose(denormalize(samples), try c.array("images"), rtol: 1e-3, "\(c.name) images")
        // One report per model evaluation, in order, the last one the result.
        let evaluations = c.kind == .heun ? 2 * c.steps - 1 : c.steps
        #expect(steps.map(\.index) == Array(1...evaluations))
        #expect(steps.allSatisfy { $0.count == evaluations })
        #expect(steps.last?.sample.scalars == samples.scalars)
        print("\(c.name): max relative error \(relativeError(samples, try c.array("samples")))")
    }

    /// Deterministic samplers from the noise as a tensor give the same samples (the generator
    /// draws nothing).
    @Test(arguments: PipelineCase.all.filter { ["ddim", "dpm++2m", "euler", "heun", "class-guided"].contains($0.name) })
    func givenNoiseMatchesDiffusers(_ c: PipelineCase) throws {
        let model = try UNet2DModel.load(folder: c.folder)
        model.eval()
        var request = c.request(shape: model.defaultSampleShape!)
        request.noise = try c.array("noise")
        request.seed = 12345
        request.rng = .philox
        let samples = try GenerationPipeline(model: model, schedulerConfig: try c.schedulerConfig()).generate(request)
        expectClose(samples, try c.array("samples"), rtol: 1e-3, "\(c.name) from given noise")
    }

    /// With a stochastic sampler the seed matters beyond the initial noise: the same noise
    /// tensor with two seeds gives different samples, and the same seed the same samples.
    @Test func stochasticStepsDrawFromTheGenerator() throws {
        let c = PipelineCase.all.first { $0.name == "ddpm" }!
        let model = try UNet2DModel.load(folder: c.folder)
        model.eval()
        let pipeline = GenerationPipeline(model: model, schedulerConfig: try c.schedulerConfig())
        var request = GenerationRequest(sampler: .ddpm, steps: 5, noise: try c.array("noise"))
        func run(_ seed: UInt64, _ rng: RandomSource) throws -> [Float] {
            request.seed = seed
            request.rng = rng
            return try pipeline.generate(request).scalars
        }
        #expect(try run(1, .philox) == run(1, .philox))
        #expect(try run(1, .philox) != run(2, .philox))
        #expect(try run(1, .torch) != run(1, .philox))
    }

    /// `denormalize` is diffusers' (x / 2 + 0.5).clamp(0, 1).
    @Test func denormalizeMapsToTheUnitRange() {
        let x = Tensor([-3, -1, -0.5, 0, 0.25, 1, 2.5])
        #expect(denormalize(x).scalars == [0, 0, 0.25, 0.5, 0.625, 1, 1])
    }
}
