import Tensors

/// The forward (noising) process in closed form, the posterior, and conversions between
/// what a model may predict, for integer timesteps per batch element.
public struct ForwardProcess: Sendable {
    public let schedule: NoiseSchedule

    public init(_ schedule: NoiseSchedule) { self.schedule = schedule }

    /// sqrt(abar_t) and sqrt(1 - abar_t) for each timestep, shaped [B, 1, 1, ...] to
    /// broadcast over samples of `rank`.
    func coefficients(_ timesteps: Tensor, rank: Int) -> (Tensor, Tensor) {
        let t = timesteps.integers
        for v in t {
            precondition(v >= 0 && v < schedule.trainTimesteps,
                         "ForwardProcess: timestep \(v) is outside [0, \(schedule.trainTimesteps))")
        }
        let shape = [t.count] + Array(repeating: 1, count: Swift.max(rank - 1, 0))
        let a = Tensor(t.map { schedule.alphasCumprod[$0].squareRoot() }, shape: shape)
        let s = Tensor(t.map { (1 - schedule.alphasCumprod[$0]).squareRoot() }, shape: shape)
        return (a, s)
    }

    /// x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps ~ q(x_t | x0) (Ho et al. 2020, eq. 4).
    public func noised(_ x0: Tensor, noise: Tensor, timesteps: Tensor) -> Tensor {
        let (a, s) = coefficients(timesteps, rank: x0.rank)
        return a * x0 + s * noise
    }

    /// The velocity v = sqrt(abar) eps - sqrt(1 - abar) x0 (Salimans & Ho 2022).
    public func velocity(_ x0: Tensor, noise: Tensor, timesteps: Tensor) -> Tensor {
        let (a, s) = coefficients(timesteps, rank: x0.rank)
        return a * noise - s * x0
    }

    /// x0 from a prediction at x_t.
    public func originalSample(from prediction: Tensor, type: PredictionType, sample: Tensor, timesteps: Tensor) -> Tensor {
        let (a, s) = coefficients(timesteps, rank: sample.rank)
        switch type {
        case .epsilon: return (sample - s * prediction) / a
        case .sample: return prediction
        case .vPrediction: return a * sample - s * prediction
        }
    }

    /// eps from a prediction at x_t.
    public func noise(from prediction: Tensor, type: PredictionType, sample: Tensor, timesteps: Tensor) -> Tensor {
        let (a, s) = coefficients(timesteps, rank: sample.rank)
        switch type {
        case .epsilon: return prediction
        case .sample: return (sample - a * prediction) / s
        case .vPrediction: return a * prediction + s * sample
        }
    }

    /// The score grad log q(x_t) = -eps / sqrt(1 - abar_t).
    public func score(from prediction: Tensor, type: PredictionType, sample: Tensor, timesteps: Tensor) -> Tensor {
        let (_, s) = coefficients(timesteps, rank: sample.rank)
        return -noise(from: prediction, type: type, sample: sample, timesteps: timesteps) / s
    }

    /// The mean and variance of the posterior q(x_{t-1} | x_t, x0) (Ho et al. 2020, eqs. 6-7),
    /// for one timestep.
    public func posterior(x0: Tensor, sample: Tensor, timestep t: Int, largeVariance: Bool = false) -> (mean: Tensor, variance: Double) {
        let (c0, ct) = schedule.posteriorMeanCoefficients(t)
        return (x0 * Float(c0) + sample * Float(ct), schedule.posteriorVariance(t, large: largeVariance))
    }
}

/// The training objective: the simplified ELBO of Ho et al. (MSE between prediction and
/// target), with the target eps, x0 or v, and optional min-SNR-gamma weighting (Hang et al.
/// 2023: weight min(SNR, gamma) / SNR for eps, / (SNR + 1) for v, min(SNR, gamma) for x0).
public struct DiffusionObjective: Sendable {
    public let process: ForwardProcess
    public let prediction: PredictionType
    /// gamma of min-SNR weighting; nil: uniform weights.
    public let minSNRGamma: Double?

    public init(schedule: NoiseSchedule, prediction: PredictionType, minSNRGamma: Double? = nil) {
        process = ForwardProcess(schedule)
        self.prediction = prediction
        self.minSNRGamma = minSNRGamma
    }

    /// Timesteps uniform on [0, T).
    public func sampleTimesteps(batch: Int, generator: RandomGenerator) -> Tensor {
        generator.integers([batch], low: 0, high: process.schedule.trainTimesteps)
    }

    /// What the model should output.
    public func target(x0: Tensor, noise: Tensor, timesteps: Tensor) -> Tensor {
        switch prediction {
        case .epsilon: return noise
        case .sample: return x0
        case .vPrediction: return process.velocity(x0, noise: noise, timesteps: timesteps)
        }
    }

    /// Per-example loss weights.
    public func weights(_ timesteps: Tensor) -> Tensor? {
        guard let gamma = minSNRGamma else { return nil }
        return Tensor(timesteps.integers.map { t -> Float in
            let snr = process.schedule.snr(t)
            let clipped = Swift.min(snr, gamma)
            switch prediction {
            case .epsilon: return Float(clipped / snr)
            case .vPrediction: return Float(clipped / (snr + 1))
            case .sample: return Float(clipped)
            }
        })
    }

    /// The (weighted) mean squared error of `output` against the target.
    public func loss(output: Tensor, x0: Tensor, noise: Tensor, timesteps: Tensor) -> Tensor {
        let error = (output.to(.float32) - target(x0: x0, noise: noise, timesteps: timesteps)).square()
        guard let w = weights(timesteps) else { return error.mean() }
        let perExample = error.mean(axes: Array(1..<error.rank))
        return (perExample * w).mean()
    }
}
