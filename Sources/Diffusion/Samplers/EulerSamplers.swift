import Foundation
import Tensors

/// Euler's method on the probability-flow ODE in sigma (Karras et al. 2022, Algorithm 1
/// with optional churn): d = (x - x0) / sigma, x' = x + d (sigma' - sigma). As diffusers'
/// EulerDiscreteScheduler.
public struct EulerSampler: Sampler {
    public let config: SchedulerConfig
    public let timesteps: [Double]
    /// sigmas[i] for each step, then the final sigma.
    public let sigmas: [Float]
    /// Stochastic churn (Karras et al.): 0 keeps the sampler deterministic.
    public var churn: Float = 0, churnMin: Float = 0, churnMax: Float = .infinity, churnNoise: Float = 1

    public init(_ config: SchedulerConfig, steps count: Int) throws {
        try checkSteps(count, config)
        self.config = config
        let schedule = try NoiseSchedule(config)
        let grid = SigmaGrid(schedule)
        var ts = Timesteps.grid(config.timestepSpacing, train: config.numTrainTimesteps, steps: count, offset: config.stepsOffset)
            .map { Double(Float($0)) }
        var s = grid.interpolated(ts)
        if config.useKarrasSigmas {
            (s, ts) = try grid.karras(s, count: count, sigmaMin: config.sigmaMin, sigmaMax: config.sigmaMax)
            ts = ts.map { Double(Float($0)) }
        }
        let last: Float = config.finalSigmasType == "sigma_min" ? schedule.sigma(0) : 0
        sigmas = s.map { Float($0) } + [last]
        timesteps = ts
    }

    public var initialNoiseSigma: Float {
        let m = sigmas.max()!
        return config.timestepSpacing == .leading ? (m * m + 1).squareRoot() : m
    }

    public func makeState() {}

    public func modelInput(_ sample: Tensor, step i: Int) -> Tensor {
        sample / (sigmas[i] * sigmas[i] + 1).squareRoot()
    }

    public func noised(_ x0: Tensor, noise: Tensor, step i: Int) -> Tensor {
        x0 + noise * sigmas[i]
    }

    public func step(_ modelOutput: Tensor, step i: Int, sample: Tensor, state: inout Void, generator: RandomGenerator) -> SamplerStep {
        let sigma = sigmas[i]
        let gamma: Float = churnMin <= sigma && sigma <= churnMax ? Swift.min(churn / Float(sigmas.count - 1), Float(2).squareRoot() - 1) : 0
        let sigmaHat = sigma * (gamma + 1)
        var x = sample
        if gamma > 0 {
            let noise = generator.normal(modelOutput.shape, mean: 0, std: 1) * churnNoise
            x = x + noise * (sigmaHat * sigmaHat - sigma * sigma).squareRoot()
        }
        let x0: Tensor
        switch config.predictionType {
        case .sample: x0 = modelOutput
        case .epsilon: x0 = x - modelOutput * sigmaHat
        case .vPrediction: x0 = modelOutput * (-sigma / (sigma * sigma + 1).squareRoot()) + x / (sigma * sigma + 1)
        }
        let derivative = (x - x0) / sigmaHat
        let dt = sigmas[i + 1] - sigmaHat
        return SamplerStep(sample: x + derivative * dt, predictedOriginal: x0)
    }
}

/// Euler ancestral: an Euler step down to sigma_down, then fresh noise of sigma_up, with
/// sigma_up^2 = sigma'^2 (sigma^2 - sigma'^2) / sigma^2 and sigma_down^2 = sigma'^2 - sigma_up^2.
/// As diffusers' EulerAncestralDiscreteScheduler (noise drawn at every step).
public struct EulerAncestralSampler: Sampler {
    public let config: SchedulerConfig
    public let timesteps: [Double]
    public let sigmas: [Float]

    public init(_ config: SchedulerConfig, steps count: Int) throws {
        try checkSteps(count, config)
        guard config.predictionType != .sample else {
            throw DiffusionError("Euler ancestral sampling needs an epsilon or v-prediction model, not sample prediction")
        }
        self.config = config
        let grid = SigmaGrid(try NoiseSchedule(config))
        let ts = Timesteps.grid(config.timestepSpacing, train: config.numTrainTimesteps, steps: count, offset: config.stepsOffset)
            .map { Double(Float($0)) }
        sigmas = grid.interpolated(ts).map { Float($0) } + [0]
        timesteps = ts
    }

    public var initialNoiseSigma: Float {
        let m = sigmas.max()!
        return config.timestepSpacing == .leading ? (m * m + 1).squareRoot() : m
    }

    public func makeState() {}

    public func modelInput(_ sample: Tensor, step i: Int) -> Tensor {
        sample / (sigmas[i] * sigmas[i] + 1).squareRoot()
    }

    public func noised(_ x0: Tensor, noise: Tensor, step i: Int) -> Tensor {
        x0 + noise * sigmas[i]
    }

    public func step(_ modelOutput: Tensor, step i: Int, sample: Tensor, state: inout Void, generator: RandomGenerator) -> SamplerStep {
        let sigma = sigmas[i], to = sigmas[i + 1]
        let x0 = config.predictionType == .epsilon ? sample - modelOutput * sigma
            : modelOutput * (-sigma / (sigma * sigma + 1).squareRoot()) + sample / (sigma * sigma + 1)
        let up = (to * to * (sigma * sigma - to * to) / (sigma * sigma)).squareRoot()
        let down = (to * to - up * up).squareRoot()
        let derivative = (sample - x0) / sigma
        var next = sample + derivative * (down - sigma)
        let noise = generator.normal(modelOutput.shape, mean: 0, std: 1)
        next = next + noise * up
        return SamplerStep(sample: next, predictedOriginal: x0)
    }
}

/// Heun's second-order method (Karras et al. 2022, Algorithm 1): an Euler predictor to the
/// next sigma, then the average of the two slopes; the last step, to sigma 0, is Euler.
/// The model runs twice per step but the last (2 N - 1 evaluations), as diffusers'
/// HeunDiscreteScheduler.
public struct HeunSampler: Sampler {
    public let config: SchedulerConfig
    public let timesteps: [Double]
    /// Interleaved as diffusers: s0, s1, s1, s2, s2, ..., s_{N-1}, s_{N-1}, 0.
    public let sigmas: [Float]

    public struct State {
        var derivative: Tensor?
        var dt: Float = 0
        var sample: Tensor?
    }

    public init(_ config: SchedulerConfig, steps count: Int) throws {
        try checkSteps(count, config)
        self.config = config
        let grid = SigmaGrid(try NoiseSchedule(config))
        var ts = Timesteps.grid(config.timestepSpacing, train: config.numTrainTimesteps, steps: count, offset: config.stepsOffset)
            .map { Double(Float($0)) }
        var s = grid.interpolated(ts)
        if config.useKarrasSigmas {
            (s, ts) = try grid.karras(s, count: count, sigmaMin: config.sigmaMin, sigmaMax: config.sigmaMax)
        }
        let base = s.map { Float($0) } + [0]
        sigmas = [base[0]] + base[1..<(base.count - 1)].flatMap { [$0, $0] } + [0]
        let tf = ts.map { Double(Float($0)) }
        timesteps = [tf[0]] + tf.dropFirst().flatMap { [$0, $0] }
    }

    public var initialNoiseSigma: Float {
        let m = sigmas.max()!
        return config.timestepSpacing == .leading ? (m * m + 1).squareRoot() : m
    }

    public func makeState() -> State { State() }

    public func modelInput(_ sample: Tensor, step i: Int) -> Tensor {
        sample / (sigmas[i] * sigmas[i] + 1).squareRoot()
    }

    public var order: Int { 2 }

    public func noised(_ x0: Tensor, noise: Tensor, step i: Int) -> Tensor {
        x0 + noise * sigmas[i]
    }

    public func step(_ modelOutput: Tensor, step i: Int, sample: Tensor, state: inout State, generator: RandomGenerator) -> SamplerStep {
        let first = state.derivative == nil
        let (sigma, next) = first ? (sigmas[i], sigmas[i + 1]) : (sigmas[i - 1], sigmas[i])
        let at = first ? sigma : next
        var x0: Tensor
        switch config.predictionType {
        case .epsilon: x0 = sample - modelOutput * at
        case .vPrediction: x0 = modelOutput * (-at / (at * at + 1).squareRoot()) + sample / (at * at + 1)
        case .sample: x0 = modelOutput
        }
        if config.clipSample { x0 = x0.clamped(min: -Float(config.clipSampleRange), max: Float(config.clipSampleRange)) }
        if first {
            let derivative = (sample - x0) / sigma
            let dt = next - sigma
            state = State(derivative: derivative, dt: dt, sample: sample)
            return SamplerStep(sample: sample + derivative * dt, predictedOriginal: x0)
        }
        let derivative = (state.derivative! + (sample - x0) / next) / 2
        let result = state.sample! + derivative * state.dt
        state = State()
        return SamplerStep(sample: result, predictedOriginal: x0)
    }
}
