import Foundation
import Testing
import Tensors
import Diffusion

@Suite struct ConfigTests {
    /// A diffusers config file (with -Infinity, unknown fields, missing fields) reads with
    /// the class's defaults, and what we write reads back the same.
    @Test func readsAndWritesSchedulerConfigJSON() throws {
        let text = """
        {"_class_name": "DPMSolverMultistepScheduler", "_diffusers_version": "0.42.1", "beta_schedule": "scaled_linear",
         "beta_start": 0.00085, "beta_end": 0.012, "lambda_min_clipped": -Infinity, "use_lu_lambdas": false,
         "prediction_type": "v_prediction", "solver_order": 3}
        """
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("diffuse-cfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("scheduler_config.json").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let c = try SchedulerConfig.load(path)
        #expect(c.className == "DPMSolverMultistepScheduler" && c.betaSchedule == .scaledLinear && c.predictionType == .vPrediction)
        #expect(c.solverOrder == 3 && c.timestepSpacing == .linspace && !c.clipSample && c.lambdaMinClipped == -.infinity)
        try c.save(path)
        #expect(try SchedulerConfig.load(path) == c)
        let ddpm = try JSONDecoder().decode(SchedulerConfig.self, from: Data(#"{"_class_name": "DDPMScheduler"}"#.utf8))
        #expect(ddpm.timestepSpacing == .leading && ddpm.clipSample && ddpm.varianceType == "fixed_small")
        let heun = SchedulerConfig(className: "HeunDiscreteScheduler")
        #expect(heun.betaStart == 0.00085 && heun.betaEnd == 0.012)
    }

    @Test func invalidConfigurationsAreRefused() throws {
        let c = SchedulerConfig()
        #expect(throws: DiffusionError("the number of sampling steps must be at least 1, got 0")) { try DDIMSampler(c, steps: 0) }
        #expect(throws: DiffusionError("1001 sampling steps exceed the 1000 training timesteps")) { try EulerSampler(c, steps: 1001) }
        var bad = c
        bad.betaEnd = 1.5
        #expect(throws: DiffusionError("beta_end = 1.5 is outside (0, 1)")) { try NoiseSchedule(bad) }
        bad = c
        bad.trainedBetas = [0.1, 0]
        bad.numTrainTimesteps = 2
        #expect(throws: DiffusionError("trained_betas[1] = 0.0 is outside (0, 1)")) { try NoiseSchedule(bad) }
        bad = c
        bad.solverOrder = 5
        #expect(throws: DiffusionError("solver_order must be 1, 2 or 3, got 5")) { try DPMSolverSampler(bad, steps: 10) }
        #expect(throws: (any Error).self) {
            try JSONDecoder().decode(SchedulerConfig.self, from: Data(#"{"beta_schedule": "quadratic"}"#.utf8))
        }
        do {
            _ = try JSONDecoder().decode(SchedulerConfig.self, from: Data(#"{"beta_schedule": "quadratic"}"#.utf8))
        } catch {
            #expect("\(error)".contains("quadratic"))
        }
    }
}

@Suite struct ForwardProcessTests {
    let schedule = try! NoiseSchedule(SchedulerConfig())

    @Test func closedFormsAndConversions() {
        let f = ForwardProcess(schedule)
        let g = PhiloxGenerator(seed: 1)
        let x0 = g.normal([4, 2, 3, 3]), eps = g.normal([4, 2, 3, 3])
        let t = Tensor(integers: [0, 10, 500, 999])
        let xt = f.noised(x0, noise: eps, timesteps: t)
        // x_t = sqrt(abar) x0 + sqrt(1 - abar) eps, element by element.
        let a = schedule.alphasCumprod[500].squareRoot(), s = (1 - schedule.alphasCumprod[500]).squareRoot()
        let want = zip(x0[2].scalars, eps[2].scalars).map { a * $0 + s * $1 }
        #expect(zip(xt[2].scalars, want).allSatisfy { abs($0 - $1) < 1e-6 })
        // Every parameterisation converts back to x0 and eps.
        let v = f.velocity(x0, noise: eps, timesteps: t)
        for (type, prediction) in [(PredictionType.epsilon, eps), (.sample, x0), (.vPrediction, v)] {
            let back = f.originalSample(from: prediction, type: type, sample: xt, timesteps: t)
            let e = f.noise(from: prediction, type: type, sample: xt, timesteps: t)
            #expect(zip(back[1..<4].scalars, x0[1..<4].scalars).allSatisfy { abs($0 - $1) < 2e-4 }, "\(type) x0")
            #expect(zip(e[0..<3].scalars, eps[0..<3].scalars).allSatisfy { abs($0 - $1) < 2e-3 }, "\(type) eps")
        }
        // The score of q(x_t | x0) = N(a x0, s^2): -(x_t - a x0) / s^2 = -eps / s.
        let score = f.score(from: eps, type: .epsilon, sample: xt, timesteps: t)
        #expect(abs(score[2].scalars[0] + eps[2].scalars[0] / s) < 1e-4)
    }

    @Test func posteriorMatchesHoEtAl() {
        let t = 300
        let abar = schedule.abar(t), prev = schedule.abar(t - 1), beta = Double(schedule.betas[t])
        let tilde = (1 - prev) / (1 - abar) * beta
        #expect(abs(schedule.posteriorVariance(t) - tilde) < 1e-5 * tilde)  // beta from float32 betas vs from abar ratios
        let (c0, ct) = schedule.posteriorMeanCoefficients(t)
        #expect(abs(c0 - prev.squareRoot() * beta / (1 - abar)) < 1e-6)
        #expect(abs(ct - (1 - beta).squareRoot() * (1 - prev) / (1 - abar)) < 1e-6)
        // Karras sigmas: endpoints and rho spacing.
        let k = NoiseSchedule.karrasSigmas(count: 5, sigmaMin: 0.1, sigmaMax: 10)
        #expect(abs(k[0] - 10) < 1e-9 && abs(k[4] - 0.1) < 1e-12 && k == k.sorted(by: >))
        #expect(abs(schedule.logSNR(t) - log(abar / (1 - abar))) < 1e-12)
    }

    @Test func objectiveTargetsAndMinSNRWeights() {
        let x0 = Tensor.ones([2, 1, 2, 2]), eps = Tensor.full([2, 1, 2, 2], 2)
        let t = Tensor(integers: [5, 900])
        let plain = DiffusionObjective(schedule: schedule, prediction: .epsilon)
        #expect(plain.target(x0: x0, noise: eps, timesteps: t).scalars == eps.scalars)
        #expect(plain.loss(output: eps, x0: x0, noise: eps, timesteps: t).item == 0)
        #expect(plain.loss(output: eps + 1, x0: x0, noise: eps, timesteps: t).item == 1)
        let minSNR = DiffusionObjective(schedule: schedule, prediction: .epsilon, minSNRGamma: 5)
        let w = minSNR.weights(t)!.scalars
        #expect(abs(Double(w[0]) - 5 / schedule.snr(5)) < 1e-6)     // high SNR: clipped to 5 / SNR
        #expect(w[1] == 1)                                            // low SNR: weight 1
        let vw = DiffusionObjective(schedule: schedule, prediction: .vPrediction, minSNRGamma: 5).weights(t)!.scalars
        #expect(abs(Double(vw[1]) - schedule.snr(900) / (schedule.snr(900) + 1)) < 1e-6)
        let ts = plain.sampleTimesteps(batch: 10_000, generator: PhiloxGenerator(seed: 3)).integers
        #expect(ts.min()! >= 0 && ts.max()! == 999 && abs(Double(ts.reduce(0, +)) / 10_000 - 499.5) < 10)
    }
}

@Suite struct GuidanceTests {
    /// out = x + label, so conditional and unconditional predictions differ by the label.
    struct Toy: Denoiser {
        func callAsFunction(_ sample: Tensor, timesteps: Tensor, conditioning: Conditioning?) -> Tensor {
            let labels = conditioning?.classLabels?.to(.float32).reshaped(-1, 1, 1, 1) ?? Tensor(Float(0))
            return sample * 2 + labels
        }
    }

    @Test func guidance() {
        let x = PhiloxGenerator(seed: 2).normal([2, 1, 2, 2])
        let cond = Conditioning(classLabels: Tensor(integers: [3, 5]))
        let uncond = Conditioning(classLabels: Tensor(integers: [0, 0]))
        let t = Tensor([10, 10])
        // Scale 1 is the conditional model alone.
        let one = ClassifierFreeGuidance(Toy(), scale: 1, unconditional: uncond)(x, timesteps: t, conditioning: cond)
        #expect(one.scalars == Toy()(x, timesteps: t, conditioning: cond).scalars)
        // u + w (c - u) = 2x + w label.
        let g = ClassifierFreeGuidance(Toy(), scale: 3, unconditional: uncond)(x, timesteps: t, conditioning: cond)
        let want = (x * 2 + Tensor([9, 15]).reshaped(2, 1, 1, 1)).scalars
        #expect(zip(g.scalars, want).allSatisfy { abs($0 - $1) < 1e-5 })
        // Rescale 1: the result has the conditional prediction's standard deviation.
        let r = ClassifierFreeGuidance(Toy(), scale: 3, rescale: 1, unconditional: uncond)(x, timesteps: t, conditioning: cond)
        let c = Toy()(x, timesteps: t, conditioning: cond)
        let stdR = r[0].variance().sqrt().item, stdC = c[0].variance().sqrt().item
        #expect(abs(stdR - stdC) < 1e-4)
    }
}
