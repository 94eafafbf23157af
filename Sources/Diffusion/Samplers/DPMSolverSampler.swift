import Foundation
import Tensors

/// DPM-Solver++ (Lu et al. 2022b): multistep solvers of order 1-3 in log-SNR time
/// lambda = log(alpha / sigma), on data (x0) predictions. First order:
///   x_t = (sigma_t / sigma_s) x_s - alpha_t (e^-h - 1) x0_s,  h = lambda_t - lambda_s;
/// second order ("2M") adds the difference of the last two x0 predictions (midpoint or
/// Heun form), third order ("3M") the second difference; "sde-dpmsolver++" is the SDE
/// variant with fresh noise. Lower orders start the run and, under 15 steps, end it. As
/// diffusers' DPMSolverMultistepScheduler.
public struct DPMSolverSampler: Sampler {
    public let config: SchedulerConfig
    public let timesteps: [Double]
    /// sigmas[i] per step, then the final sigma.
    public let sigmas: [Float]

    /// The previous x0 predictions (newest last) and how many steps have run.
    public struct State {
        var outputs: [Tensor] = []
        var lowerOrderCount = 0
    }

    public init(_ config: SchedulerConfig, steps count: Int) throws {
        try checkSteps(count, config)
        try config.validate()
        self.config = config
        let schedule = try NoiseSchedule(config)
        let grid = SigmaGrid(schedule)
        var ts = Timesteps.dpmSolverGrid(config.timestepSpacing, train: config.numTrainTimesteps, last: config.numTrainTimesteps,
                                         steps: count, offset: config.stepsOffset)
        var s: [Double]
        if config.useKarrasSigmas {
            let all = grid.trainSigmas.reversed().map(Double.init)
            (s, ts) = try grid.karras(all, count: count, sigmaMin: nil, sigmaMax: nil)
            if config.betaSchedule != .squaredCosCapV2 { ts = ts.map { $0.rounded(.toNearestOrEven) } }
        } else {
            s = grid.interpolated(ts)
        }
        let last: Float = config.finalSigmasType == "sigma_min" ? schedule.sigma(0) : 0
        sigmas = s.map { Float($0) } + [last]
        timesteps = ts.map { Double(Int64($0)) }
    }

    public func makeState() -> State { State() }

    /// (alpha_t, sigma_t) of the variance-preserving process at sigma.
    private func alphaSigma(_ s: Float) -> (Float, Float) {
        let a = 1 / (s * s + 1).squareRoot()
        return (a, s * a)
    }

    private func lambda(_ s: Float) -> (alpha: Float, sigma: Float, lambda: Float) {
        let (a, sg) = alphaSigma(s)
        return (a, sg, Foundation.log(a) - Foundation.log(sg))
    }

    public func noised(_ x0: Tensor, noise: Tensor, step i: Int) -> Tensor {
        let (a, s) = alphaSigma(sigmas[i])
        return x0 * a + noise * s
    }

    public func step(_ modelOutput: Tensor, step i: Int, sample: Tensor, state: inout State, generator: RandomGenerator) -> SamplerStep {
        let n = timesteps.count
        let lowerFinal = i == n - 1 && (config.eulerAtFinal || (config.lowerOrderFinal && n < 15) || config.finalSigmasType == "zero")
        let lowerSecond = i == n - 2 && config.lowerOrderFinal && n < 15
        // The model output as an x0 prediction.
        let (a, s) = alphaSigma(sigmas[i])
        var x0 = Prediction.original(modelOutput, sample: sample, type: config.predictionType, a: a, s: s)
        if config.thresholding {
            x0 = Prediction.threshold(x0, ratio: config.dynamicThresholdingRatio, maxValue: Float(config.sampleMaxValue))
        }
        state.outputs.append(x0)
        if state.outputs.count > config.solverOrder { state.outputs.removeFirst() }
        let sde = config.algorithmType == "sde-dpmsolver++"
        let noise = sde ? generator.normal(modelOutput.shape, mean: 0, std: 1) : nil
        let next: Tensor
        if config.solverOrder == 1 || state.lowerOrderCount < 1 || lowerFinal {
            next = firstOrder(x0, i, sample, noise)
        } else if config.solverOrder == 2 || state.lowerOrderCount < 2 || lowerSecond {
            next = secondOrder(state.outputs, i, sample, noise)
        } else {
            next = thirdOrder(state.outputs, i, sample, noise)
        }
        if state.lowerOrderCount < config.solverOrder { state.lowerOrderCount += 1 }
        return SamplerStep(sample: next, predictedOriginal: x0)
    }

    private func firstOrder(_ m0: Tensor, _ i: Int, _ x: Tensor, _ noise: Tensor?) -> Tensor {
        let t = lambda(sigmas[i + 1]), s0 = lambda(sigmas[i])
        let h = t.lambda - s0.lambda
        if let noise {
            let e = Foundation.exp(-2 * h)
            return x * (t.sigma / s0.sigma * Foundation.exp(-h)) + m0 * (t.alpha * (1 - e)) + noise * (t.sigma * (1 - e).squareRoot())
        }
        return x * (t.sigma / s0.sigma) - m0 * (t.alpha * (Foundation.exp(-h) - 1))
    }

    private func secondOrder(_ outputs: [Tensor], _ i: Int, _ x: Tensor, _ noise: Tensor?) -> Tensor {
        let t = lambda(sigmas[i + 1]), s0 = lambda(sigmas[i]), s1 = lambda(sigmas[i - 1])
        let (m0, m1) = (outputs[outputs.count - 1], outputs[outputs.count - 2])
        let h = t.lambda - s0.lambda, h0 = s0.lambda - s1.lambda
        let r0 = h0 / h
        let d0 = m0, d1 = (m0 - m1) * (1 / r0)
        if let noise {
            let e = Foundation.exp(-2 * h)
            var y = x * (t.sigma / s0.sigma * Foundation.exp(-h)) + d0 * (t.alpha * (1 - e))
            if config.solverType == "midpoint" {
                y = y + d1 * (0.5 * (t.alpha * (1 - e)))
            } else {
                y = y + d1 * (t.alpha * ((1 - e) / (-2 * h) + 1))
            }
            return y + noise * (t.sigma * (1 - e).squareRoot())
        }
        let em1 = Foundation.exp(-h) - 1
        if config.solverType == "midpoint" {
            return x * (t.sigma / s0.sigma) - d0 * (t.alpha * em1) - d1 * (0.5 * (t.alpha * em1))
        }
        return x * (t.sigma / s0.sigma) - d0 * (t.alpha * em1) + d1 * (t.alpha * (em1 / h + 1))
    }

    private func thirdOrder(_ outputs: [Tensor], _ i: Int, _ x: Tensor, _ noise: Tensor?) -> Tensor {
        let t = lambda(sigmas[i + 1]), s0 = lambda(sigmas[i]), s1 = lambda(sigmas[i - 1]), s2 = lambda(sigmas[i - 2])
        let (m0, m1, m2) = (outputs[outputs.count - 1], outputs[outputs.count - 2], outputs[outputs.count - 3])
        let h = t.lambda - s0.lambda, h0 = s0.lambda - s1.lambda, h1 = s1.lambda - s2.lambda
        let r0 = h0 / h, r1 = h1 / h
        let d0 = m0
        let d10 = (m0 - m1) * (1 / r0), d11 = (m1 - m2) * (1 / r1)
        let d1 = d10 + (d10 - d11) * (r0 / (r0 + r1))
        let d2 = (d10 - d11) * (1 / (r0 + r1))
        if let noise {
            let e = Foundation.exp(-2 * h)
            return x * (t.sigma / s0.sigma * Foundation.exp(-h)) + d0 * (t.alpha * (1 - e))
                + d1 * (t.alpha * ((1 - e) / (-2 * h) + 1))
                + d2 * (t.alpha * ((1 - e - 2 * h) / ((2 * h) * (2 * h)) - 0.5))
                + noise * (t.sigma * (1 - e).squareRoot())
        }
        let em1 = Foundation.exp(-h) - 1
        return x * (t.sigma / s0.sigma) - d0 * (t.alpha * em1) + d1 * (t.alpha * (em1 / h + 1))
            - d2 * (t.alpha * ((em1 + h) / (h * h) - 0.5))
    }
}
