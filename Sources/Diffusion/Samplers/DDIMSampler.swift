import Tensors

/// DDIM (Song et al. 2021, eq. 12): x_{t'} = sqrt(abar') x0 + sqrt(1 - abar' - s^2) eps + s z,
/// s = eta sqrt((1 - abar') / (1 - abar) (1 - abar / abar')); eta = 0 is deterministic.
/// As diffusers' DDIMScheduler (including its previous timestep t - T / steps).
public struct DDIMSampler: Sampler {
    public let config: SchedulerConfig
    public let schedule: NoiseSchedule
    public let timesteps: [Double]
    public let eta: Float
    /// Recompute eps from the clipped x0 (diffusers' `use_clipped_model_output`).
    public let useClippedModelOutput: Bool
    private let steps: [Int]
    private let stride: Int

    public init(_ config: SchedulerConfig, steps count: Int, eta: Float = 0, useClippedModelOutput: Bool = false) throws {
        try checkSteps(count, config)
        guard eta >= 0 else { throw DiffusionError("eta must not be negative, got \(eta)") }
        self.config = config
        schedule = try NoiseSchedule(config)
        var grid = Timesteps.grid(config.timestepSpacing, train: config.numTrainTimesteps, steps: count, offset: config.stepsOffset)
        if config.timestepSpacing == .linspace { grid = grid.map { $0.rounded(.toNearestOrEven) } }
        steps = grid.map { Int($0) }
        timesteps = steps.map(Double.init)
        stride = config.numTrainTimesteps / count
        (self.eta, self.useClippedModelOutput) = (eta, useClippedModelOutput)
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
        let t = steps[i], prev = t - stride
        let at = schedule.alphasCumprod[t]
        let aPrev: Float = prev >= 0 ? schedule.alphasCumprod[prev] : (config.setAlphaToOne ? 1 : schedule.alphasCumprod[0])
        let betaProd = 1 - at
        let (a, s) = (at.squareRoot(), betaProd.squareRoot())
        var x0 = Prediction.original(modelOutput, sample: sample, type: config.predictionType, a: a, s: s)
        var eps = Prediction.noise(modelOutput, sample: sample, type: config.predictionType, a: a, s: s)
        x0 = Prediction.limit(x0, config, clip: config.clipSample)
        let variance = ((1 - aPrev) / betaProd) * (1 - at / aPrev)
        let std = eta * variance.squareRoot()
        if useClippedModelOutput { eps = (sample - x0 * a) / s }
        let direction = eps * (1 - aPrev - std * std).squareRoot()
        var next = x0 * aPrev.squareRoot() + direction
        if eta > 0 {
            let noise = generator.normal(modelOutput.shape, mean: 0, std: 1)
            next = next + noise * std
        }
        return SamplerStep(sample: next, predictedOriginal: x0)
    }
}
