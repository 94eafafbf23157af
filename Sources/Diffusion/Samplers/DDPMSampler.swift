import Tensors

/// Ancestral sampling (Ho et al. 2020, Algorithm 2) on any subsequence of timesteps:
/// x_{t'} = c0 x0 + ct x_t + sigma z with the posterior q(x_{t'} | x_t, x0) of the skip
/// t -> t', as diffusers' DDPMScheduler.
public struct DDPMSampler: Sampler {
    public let config: SchedulerConfig
    public let schedule: NoiseSchedule
    public let timesteps: [Double]
    private let steps: [Int]

    public init(_ config: SchedulerConfig, steps count: Int) throws {
        try checkSteps(count, config)
        self.config = config
        schedule = try NoiseSchedule(config)
        var grid = Timesteps.grid(config.timestepSpacing, train: config.numTrainTimesteps, steps: count, offset: config.stepsOffset)
        if config.timestepSpacing == .linspace { grid = grid.map { $0.rounded(.toNearestOrEven) } }
        steps = grid.map { Int($0) }
        timesteps = steps.map(Double.init)
        if let bad = steps.first(where: { $0 < 0 || $0 >= config.numTrainTimesteps }) {
            throw DiffusionError("timestep \(bad) from steps_offset \(config.stepsOffset) is outside [0, \(config.numTrainTimesteps))")
        }
    }

    public func makeState() {}

    public func noised(_ x0: Tensor, noise: Tensor, step i: Int) -> Tensor {
        let abar = schedule.alphasCumprod[steps[i]]
        return x0 * abar.squareRoot() + noise * (1 - abar).squareRoot()
    }

    public func step(_ modelOutput: Tensor, step i: Int, sample: Tensor, state: inout Void, generator: RandomGenerator) -> SamplerStep {
        let t = steps[i]
        let prev = i + 1 < steps.count ? steps[i + 1] : -1
        var output = modelOutput
        var predictedVariance: Tensor? = nil
        let learned = config.varianceType == "learned" || config.varianceType == "learned_range"
        if learned && output.shape[1] == 2 * sample.shape[1] {
            let parts = output.split(sizes: [sample.shape[1], sample.shape[1]], axis: 1)
            (output, predictedVariance) = (parts[0], parts[1])
        }
        let at = schedule.alphasCumprod[t], aPrev: Float = prev >= 0 ? schedule.alphasCumprod[prev] : 1
        let betaProd = 1 - at, betaProdPrev = 1 - aPrev
        let currentAlpha = at / aPrev, currentBeta = 1 - currentAlpha
        var x0 = Prediction.original(output, sample: sample, type: config.predictionType, a: at.squareRoot(), s: betaProd.squareRoot())
        x0 = Prediction.limit(x0, config, clip: config.clipSample)
        let c0 = (aPrev.squareRoot() * currentBeta) / betaProd
        let ct = currentAlpha.squareRoot() * betaProdPrev / betaProd
        var next = x0 * c0 + sample * ct
        if t > 0 {
            let noise = generator.normal(output.shape, mean: 0, std: 1)
            let small = Swift.max((1 - aPrev) / (1 - at) * currentBeta, 1e-20)
            switch config.varianceType ?? "fixed_small" {
            case "fixed_large": next = next + noise * currentBeta.squareRoot()
            case "learned": next = next + noise * (predictedVariance ?? Tensor(small)).sqrt()
            case "learned_range":
                let frac = ((predictedVariance ?? Tensor(Float(0))) + 1) / 2
                let logVariance = frac * Foundation_log(currentBeta) + (1 - frac) * Foundation_log(small)
                next = next + noise * (logVariance * 0.5).exp()
            default: next = next + noise * small.squareRoot()
            }
        }
        return SamplerStep(sample: next, predictedOriginal: x0)
    }
}

import Foundation
@inline(__always) func Foundation_log(_ x: Float) -> Float { Foundation.log(x) }
