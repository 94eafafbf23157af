import Diffusion
import Foundation
import ModelIO
import Models
import Pipelines
import Testing
import Tensors

/// Image-to-image (SDEdit): where the run starts, what it starts from, and strength 1.
@Suite struct ImageToImageTests {
    static let folder = fixturesFolder() + "/unet-rgb"
    static let model: UNet2DModel = {
        let m = try! UNet2DModel.load(folder: folder)
        m.eval()
        return m
    }()
    static var pipeline: GenerationPipeline<UNet2DModel> {
        GenerationPipeline(model: model, schedulerConfig: try! DiffusersFolder.schedulerConfig(folder)!)
    }
    static let image = PhiloxGenerator(seed: 9).uniform([1, 3, 16, 16], low: -1, high: 1)

    func request(_ sampler: SamplerKind, steps: Int, strength: Double) -> GenerationRequest {
        var r = GenerationRequest(sampler: sampler, steps: steps, batchSize: 2, sampleShape: [3, 16, 16])
        r.seed = 4
        r.initImage = Self.image
        r.strength = strength
        return r
    }

    /// Strength 1 ignores the image: the samples equal generating from noise with the seed,
    /// bit for bit, for every sampler.
    @Test(arguments: SamplerKind.allCases)
    func strengthOneIsGeneration(_ kind: SamplerKind) throws {
        var plain = request(kind, steps: 6, strength: 1)
        plain.initImage = nil
        // Bit for bit: convolutions pinned to oneDNN, whatever timing would choose.
        try ConvolutionAlgorithm.with(.onednn) { () throws in
            let fromImage = try Self.pipeline.generate(request(kind, steps: 6, strength: 1))
            #expect(fromImage.scalars == (try Self.pipeline.generate(plain)).scalars)
        }
    }

    /// The run skips steps - Int(steps * strength) steps (diffusers' img2img, in float64:
    /// 50 x 0.7 = 35 runs 35), times the order for Heun, and starts from the image noised to
    /// the first step it runs with the generator's first draw.
    @Test(arguments: [(SamplerKind.ddim, 10, 0.5), (.dpmSolver2M, 50, 0.7), (.euler, 8, 0.3), (.heun, 6, 0.5), (.ddpm, 7, 0.99)])
    func startsPartWay(_ kind: SamplerKind, _ steps: Int, _ strength: Double) throws {
        let r = request(kind, steps: steps, strength: strength)
        let sampler = try Self.pipeline.sampler(for: r)
        let expectedSkip = steps - Int((Double(steps) * strength).rounded(.down))
        #expect(r.firstEvaluation(order: sampler.order) == expectedSkip * (kind == .heun ? 2 : 1))
        var seen: [GenerationStep] = []
        var firstInput: Tensor?
        let recorder = Recorder(model: Self.model) { x, _ in if firstInput == nil { firstInput = x } }
        let samples = try GenerationPipeline(model: recorder, schedulerConfig: Self.pipeline.schedulerConfig).generate(r) { seen.append($0) }
        let first = r.firstEvaluation(order: sampler.order)
        #expect(seen.count == sampler.timesteps.count - first)
        #expect(seen.first?.timestep == sampler.timesteps[first])
        let noise = PhiloxGenerator(seed: 4).normal([2, 3, 16, 16], mean: 0, std: 1)
        let start = sampler.noised(Self.image.expanded([2, 3, 16, 16]), noise: noise, step: first)
        #expect(firstInput?.scalars == sampler.modelInput(start, step: first).scalars)
        #expect(samples.shape == [2, 3, 16, 16])
        if kind == .dpmSolver2M { #expect(seen.count == 35) }
    }

    /// `noised` is each sampler's forward process at its step: sqrt(abar) x0 + sqrt(1 - abar) eps
    /// for DDPM and DDIM at their integer timesteps, alpha x0 + sigma eps for DPM-Solver, and
    /// x0 + sigma eps for Euler (the sigma-space x = x_t / sqrt(abar)).
    @Test func noisedIsTheForwardProcess() throws {
        let config = Self.pipeline.schedulerConfig
        let schedule = try NoiseSchedule(config)
        let x0 = Tensor([0.5, -0.25], shape: [2]), eps = Tensor([1.0, 2.0], shape: [2])
        let ddim = try DDIMSampler(config, steps: 10)
        let t = Int(ddim.timesteps[3])
        let abar = schedule.alphasCumprod[t]
        expectClose(ddim.noised(x0, noise: eps, step: 3), x0 * abar.squareRoot() + eps * (1 - abar).squareRoot(), rtol: 1e-6, "ddim")
        let euler = try EulerSampler(config, steps: 10)
        expectClose(euler.noised(x0, noise: eps, step: 3), x0 + eps * euler.sigmas[3], rtol: 1e-6, "euler")
        let dpm = try DPMSolverSampler(config, steps: 10)
        let s = dpm.sigmas[3], a = 1 / (s * s + 1).squareRoot()
        expectClose(dpm.noised(x0, noise: eps, step: 3), x0 * a + eps * (s * a), rtol: 1e-6, "dpm")
    }

    @Test func refusesBadStrengths() {
        func message(_ change: (inout GenerationRequest) -> Void) -> String {
            var r = request(.ddim, steps: 10, strength: 0.5)
            change(&r)
            let request = r
            return errorMessage { _ = try Self.pipeline.generate(request) } ?? "no error"
        }
        #expect(message { $0.strength = 0 }.contains("strength must be in (0, 1]"))
        #expect(message { $0.strength = 1.5 }.contains("got 1.5"))
        #expect(message { $0.strength = .nan }.contains("strength must be in (0, 1]"))
        #expect(message { $0.initImage = nil }.contains("needs an initial image"))
        #expect(message { $0.strength = 0.05 }.contains("leaves no step to run"))
        #expect(message { $0.initImage = Tensor.zeros([1, 3, 8, 8]) }.contains("initial image has shape [1, 3, 8, 8]"))
        #expect(message { $0.initImage = Tensor.zeros([3, 3, 16, 16]) }.contains("one image for the whole batch"))
    }
}

/// A denoiser that reports every call to `seen` and then runs `model`.
final class Recorder<Model: Denoiser>: Denoiser {
    let model: Model
    let seen: (Tensor, Tensor) -> Void
    init(model: Model, seen: @escaping (Tensor, Tensor) -> Void) { (self.model, self.seen) = (model, seen) }
    func callAsFunction(_ sample: Tensor, timesteps: Tensor, conditioning: Conditioning?) -> Tensor {
        seen(sample, timesteps)
        return model(sample, timesteps: timesteps, conditioning: conditioning)
    }
}
