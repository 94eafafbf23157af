import Foundation
import Testing
import Tensors
import Diffusion

struct SchedulerFixture: Decodable {
    struct Step: Decodable { let sample: [Float], input: [Float], output: [Float], prev: [Float] }
    struct Case: Decodable {
        let name: String
        let steps: Int
        let eta: Float
        let timesteps: [Double]
        let sigmas: [Float]?
        let init_noise_sigma: Float
        let alphas_cumprod: [Float]
        let record: [Step]
    }
    /// The CPU capability torch had when it made the fixture (its randn kernel).
    let cpu_capability: String
    let shape: [Int]
    let cases: [Case]

    static let decoded: (SchedulerFixture, [String: Data]) = {
        let url = Bundle.module.url(forResource: "schedulers", withExtension: "json", subdirectory: "Fixtures")!
        let data = try! Data(contentsOf: url)
        let decoder = JSONDecoder()
        decoder.allowsJSON5 = true
        let fixture = try! decoder.decode(SchedulerFixture.self, from: data)
        // Each case's config as raw JSON, to go through SchedulerConfig's own decoder.
        let raw = try! JSONSerialization.jsonObject(with: data) as! [String: Any]
        var configs: [String: Data] = [:]
        for c in raw["cases"] as! [[String: Any]] {
            configs[c["name"] as! String] = try! JSONSerialization.data(withJSONObject: c["config"]!, options: [])
        }
        return (fixture, configs)
    }()
}

func expectClose(_ a: [Float], _ b: [Float], atol: Float, rtol: Float, _ what: @autoclosure () -> String,
                 sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(a.count == b.count, "\(what()): \(a.count) vs \(b.count)", sourceLocation: sourceLocation)
    var worst: Float = 0, at = 0
    for (i, (x, y)) in zip(a, b).enumerated() {
        let e = abs(x - y) / (atol + rtol * abs(y))
        if e > worst || e.isNaN { worst = e.isNaN ? .infinity : e; at = i }
    }
    #expect(worst <= 1, "\(what()): element \(at): \(a.isEmpty ? 0 : a[at]) vs \(b.isEmpty ? 0 : b[at])", sourceLocation: sourceLocation)
}

@Suite struct DiffusersAgreementTests {
    static var names: [String] { SchedulerFixture.decoded.0.cases.map(\.name) }

    /// Timesteps, sigmas, initial noise and each step's output for given inputs agree with
    /// diffusers 0.42 to 1e-5 (stochastic steps drawing from the torch-generator mode).
    @Test(arguments: names)
    func matchesDiffusers(name: String) throws {
        let (fixture, configs) = SchedulerFixture.decoded
        let c = fixture.cases.first { $0.name == name }!
        let config = try JSONDecoder().decode(SchedulerConfig.self, from: configs[name]!)
        let schedule = try NoiseSchedule(config)
        expectClose(stride(from: 0, to: schedule.trainTimesteps, by: 97).map { schedule.alphasCumprod[$0] }, c.alphas_cumprod,
                    atol: 0, rtol: config.rescaleBetasZeroSNR ? 2e-6 : 2e-7, "\(name) alphas_cumprod")
        let sampler: any Sampler
        switch config.className {
        case "DDPMScheduler": sampler = try DDPMSampler(config, steps: c.steps)
        case "DDIMScheduler": sampler = try DDIMSampler(config, steps: c.steps, eta: c.eta)
        case "DPMSolverMultistepScheduler": sampler = try DPMSolverSampler(config, steps: c.steps)
        case "EulerDiscreteScheduler": sampler = try EulerSampler(config, steps: c.steps)
        case "EulerAncestralDiscreteScheduler": sampler = try EulerAncestralSampler(config, steps: c.steps)
        case "HeunDiscreteScheduler": sampler = try HeunSampler(config, steps: c.steps)
        case "PNDMScheduler": sampler = try PNDMSampler(config, steps: c.steps)
        default: Issue.record("unknown class \(config.className)"); return
        }
        if config.useKarrasSigmas && config.className != "DPMSolverMultistepScheduler" {
            // Fractional timesteps from log-sigma interpolation: float32 logs differ in the last bit.
            expectClose(sampler.timesteps.map(Float.init), c.timesteps.map(Float.init), atol: 1e-4, rtol: 1e-6, "\(name) timesteps")
        } else {
            #expect(sampler.timesteps == c.timesteps, "\(name) timesteps \(sampler.timesteps) vs \(c.timesteps)")
        }
        if let want = c.sigmas {
            let got: [Float]
            switch sampler {
            case let s as EulerSampler: got = s.sigmas
            case let s as EulerAncestralSampler: got = s.sigmas
            case let s as HeunSampler: got = s.sigmas
            case let s as DPMSolverSampler: got = s.sigmas
            default: got = want
            }
            expectClose(got, want, atol: 1e-7, rtol: 1e-6, "\(name) sigmas")
        }
        #expect(abs(sampler.initialNoiseSigma - c.init_noise_sigma) <= 1e-6 * c.init_noise_sigma, "\(name) init noise sigma")
        try run(sampler, c, fixture.shape, name, kernel: TorchGenerator.Kernel(torchCapability: fixture.cpu_capability))
    }

    private func run<S: Sampler>(_ sampler: S, _ c: SchedulerFixture.Case, _ shape: [Int], _ name: String, kernel: TorchGenerator.Kernel) throws {
        var state = sampler.makeState()
        let generator = TorchGenerator(seed: 7, kernel: kernel)
        for (i, step) in c.record.enumerated() {
            let sample = Tensor(step.sample, shape: shape)
            expectClose(sampler.modelInput(sample, step: i).scalars, step.input, atol: 1e-5, rtol: 1e-5, "\(name) step \(i) model input")
            let next = sampler.step(Tensor(step.output, shape: shape), step: i, sample: sample, state: &state, generator: generator)
            expectClose(next.sample.scalars, step.prev, atol: 1e-5, rtol: 1e-5, "\(name) step \(i) output")
        }
    }
}
