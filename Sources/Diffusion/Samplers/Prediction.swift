import Tensors

/// Conversions between what a model predicts and x0, in the variance-preserving form
/// x_t = a x0 + s eps with a = sqrt(abar), s = sqrt(1 - abar) (float32 coefficients, as
/// diffusers evaluates them).
enum Prediction {
    /// x0 from the model output.
    static func original(_ output: Tensor, sample: Tensor, type: PredictionType, a: Float, s: Float) -> Tensor {
        switch type {
        case .epsilon: return (sample - output * s) / a
        case .sample: return output
        case .vPrediction: return sample * a - output * s
        }
    }

    /// eps from the model output.
    static func noise(_ output: Tensor, sample: Tensor, type: PredictionType, a: Float, s: Float) -> Tensor {
        switch type {
        case .epsilon: return output
        case .sample: return (sample - output * a) / s
        case .vPrediction: return output * a + sample * s
        }
    }

    /// Clipping or dynamic thresholding of x0, per the config.
    static func limit(_ x0: Tensor, _ config: SchedulerConfig, clip: Bool) -> Tensor {
        if config.thresholding { return threshold(x0, ratio: config.dynamicThresholdingRatio, maxValue: Float(config.sampleMaxValue)) }
        if clip { return x0.clamped(min: -Float(config.clipSampleRange), max: Float(config.clipSampleRange)) }
        return x0
    }

    /// Dynamic thresholding (Saharia et al. 2022): per sample, s = the `ratio` quantile of
    /// |x0| (linear interpolation, as torch.quantile), clamped to [1, maxValue]; x0 is
    /// clipped to [-s, s] and divided by s.
    static func threshold(_ x0: Tensor, ratio: Double, maxValue: Float) -> Tensor {
        let batch = x0.shape[0]
        let flat = x0.reshaped(batch, -1)
        let n = flat.shape[1]
        let values = flat.scalars
        var limits = [Float]()
        for b in 0..<batch {
            let sorted = values[(b * n)..<((b + 1) * n)].map { Swift.abs($0) }.sorted()
            let position = ratio * Double(n - 1)
            let lo = Int(position.rounded(.down)), hi = Swift.min(lo + 1, n - 1)
            let frac = Float(position - Double(lo))
            let q = sorted[lo] + (sorted[hi] - sorted[lo]) * frac
            limits.append(Swift.min(Swift.max(q, 1), maxValue))
        }
        let s = Tensor(limits, shape: [batch, 1])
        let clipped = flat.maximum(-s).minimum(s) / s
        return clipped.reshaped(x0.shape)
    }
}
