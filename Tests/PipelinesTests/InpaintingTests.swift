import Diffusion
import Foundation
import ImageIO
import ModelIO
import Models
import Pipelines
import Testing
import Tensors

/// RePaint inpainting: against diffusers' RePaintPipeline (scripts/fixtures/diffusers_repaint.py),
/// its walk, the jump back up against the closed form, and the kept pixels.
@Suite struct InpaintingTests {
    static let folder = fixturesFolder() + "/unet-rgb"
    static let model: UNet2DModel = {
        let m = try! UNet2DModel.load(folder: folder)
        m.eval()
        return m
    }()
    static let config = try! DiffusersFolder.schedulerConfig(folder)!
    static var pipeline: GenerationPipeline<UNet2DModel> { GenerationPipeline(model: model, schedulerConfig: config) }
    nonisolated(unsafe) static let fixture = try! JSONSerialization.jsonObject(
        with: Data(contentsOf: URL(fileURLWithPath: fixturesFolder() + "/repaint-cases.json"))) as! [String: Any]
    static func array(_ name: String) -> Tensor { try! NPY.load(fixturesFolder() + "/repaint-\(name).npy") }

    func request(steps: Int, sampler: SamplerKind = .ddim, eta: Float = 0, seed: UInt64, rng: RandomSource = .torch(capability: Self.fixture["cpu_capability"] as! String),
                 samples: Int = 1) -> GenerationRequest {
        var r = GenerationRequest(sampler: sampler, steps: steps, batchSize: 2, sampleShape: [3, 16, 16])
        (r.seed, r.rng, r.eta) = (seed, rng, eta)
        r.initImage = Self.array("image")
        r.mask = 1 - Self.array("keep")
        r.resampling = .init(jumpLength: 10, samples: samples)
        return r
    }

    /// Without resampling, the run equals diffusers' RePaintPipeline from the same torch seed
    /// (initial noise, then one draw per step shared by both regions) within 1e-3, for eta 0
    /// and 1; the kept pixels are the image's exactly.
    @Test(arguments: ["eta0", "eta1"])
    func matchesDiffusers(_ name: String) throws {
        let c = (Self.fixture["cases"] as! [String: [String: Any]])[name]!
        let r = request(steps: c["steps"] as! Int, eta: Float(c["eta"] as! Double), seed: UInt64(c["seed"] as! Int))
        let samples = try Self.pipeline.generate(r)
        expectClose(samples, Self.array("\(name)-samples"), rtol: 1e-3, name)
        expectKept(samples, r)
    }

    /// The walk is diffusers' get_schedule_jump, with resampling.
    @Test func walkIsDiffusers() throws {
        for w in Self.fixture["walks"] as! [[String: Any]] {
            let steps = w["steps"] as! Int
            let sampler = try RePaintSampler(SchedulerConfig(), steps: steps, known: Tensor.zeros([1]), keep: Tensor.zeros([1]),
                                             jumpLength: w["jump_length"] as! Int, jumpSamples: w["jump_n_sample"] as! Int)
            #expect(sampler.walk == w["timesteps"] as! [Int], "walk of \(steps) steps")
            let downs = zip(sampler.walk, [sampler.walk[0] + 1] + sampler.walk).filter { $0 < $1 }.map { Double($0.0) }
            #expect(sampler.timesteps == downs)
        }
    }

    /// A step followed by jumps back up gives the forward marginal at the level it ends on:
    /// with everything kept, x = sqrt(abar_t) x_known + sqrt(1 - abar_t) z, so its mean and
    /// standard deviation over 200k values match (the jump is q(x_t | x_{t - T/steps}) exactly).
    @Test func jumpsReachTheForwardMarginal() throws {
        let config = Self.config
        let known = Tensor.full([200_000], 0.6)
        let sampler = try RePaintSampler(config, steps: 10, known: known, keep: Tensor.ones([200_000]), jumpLength: 3, jumpSamples: 2)
        // The first evaluation followed by jumps: the walk 9, 8, 7, 6, 7, 8, 9, ... has the
        // evaluation at 6 (x at level 5) followed by three jumps, to level 8.
        let i = sampler.timesteps.firstIndex(of: 600)!
        var state: Void = ()
        let x = sampler.step(Tensor.zeros([200_000]), step: i, sample: Tensor.zeros([200_000]), state: &state,
                             generator: PhiloxGenerator(seed: 1)).sample
        let abar = try NoiseSchedule(config).alphasCumprod[800]
        let values = x.scalars.map(Double.init)
        let mean = values.reduce(0, +) / Double(values.count)
        let std = (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)).squareRoot()
        #expect(Swift.abs(mean - 0.6 * Double(abar.squareRoot())) < 0.006)
        #expect(Swift.abs(std - Double((1 - abar).squareRoot())) < 0.006)
    }

    /// With resampling, DDPM steps, Philox: the kept pixels are the image's, exactly.
    @Test func keepsTheKnownPixelsExactly() throws {
        let r = request(steps: 20, sampler: .ddpm, seed: 3, rng: .philox, samples: 3)
        expectKept(try Self.pipeline.generate(r), r)
    }

    /// Through PNG files: every byte of the kept region comes back, for all 256 values.
    @Test func pngRoundTripKeepsTheBytes() throws {
        let bytes = (0..<(16 * 16 * 3)).map { UInt8($0 % 256) }
        let image = Image(width: 16, height: 16, channels: 3, pixels: bytes)
        var r = request(steps: 4, seed: 1, rng: .philox)
        r.batchSize = 1
        r.initImage = image.tensor().reshaped([1, 3, 16, 16])
        let samples = try Self.pipeline.generate(r)
        let out = Image(tensor: samples)
        let keep = Self.array("keep").scalars
        for p in 0..<(16 * 16) where keep[p] == 1 {
            for c in 0..<3 { #expect(out.pixels[p * 3 + c] == bytes[p * 3 + c]) }
        }
    }

    @Test func refusesBadInputs() {
        func message(_ change: (inout GenerationRequest) -> Void) -> String {
            var r = request(steps: 10, seed: 0)
            change(&r)
            let request = r
            return errorMessage { _ = try Self.pipeline.generate(request) } ?? "no error"
        }
        #expect(message { _ in } == "no error")
        #expect(message { $0.mask = Tensor.ones([1, 1, 8, 8]) }.contains("the mask has shape [1, 1, 8, 8]"))
        #expect(message { $0.initImage = nil }.contains("inpainting needs the image"))
        #expect(message { $0.sampler = .dpmSolver2M }.contains("DDIM (with eta) or DDPM, not dpm++2m"))
        #expect(message { $0.strength = 0.5 }.contains("strength must be 1"))
        #expect(message { $0.resampling.jumpLength = 0 }.contains("at least 1"))
    }

    func expectKept(_ samples: Tensor, _ r: GenerationRequest, sourceLocation: SourceLocation = #_sourceLocation) {
        let keep = (1 - r.mask!).expanded([2, 3, 16, 16]).contiguous().scalars
        let image = r.initImage!.expanded(samples.shape).contiguous().scalars
        let out = samples.scalars
        let wrong = (0..<out.count).filter { keep[$0] == 1 && out[$0] != image[$0] }.count
        #expect(wrong == 0, "\(wrong) kept values changed", sourceLocation: sourceLocation)
        #expect(keep.contains(0) && keep.contains(1))
    }
}
