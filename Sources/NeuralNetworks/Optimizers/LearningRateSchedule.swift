import Foundation

/// Learning-rate multipliers by optimizer step, as diffusers' `get_scheduler` defines them
/// (torch LambdaLR: lr = base lr * factor(step), step counted from 0).
public enum LearningRateSchedule: Sendable, Equatable {
    /// factor 1.
    case constant
    /// Linear warm-up from 0 to 1 over `warmupSteps`, then 1.
    case constantWithWarmup(warmupSteps: Int)
    /// Warm-up, then linear decay to 0 at `totalSteps`.
    case linear(warmupSteps: Int, totalSteps: Int)
    /// Warm-up, then half a cosine (times `cycles`) down to 0 at `totalSteps`.
    case cosine(warmupSteps: Int, totalSteps: Int, cycles: Double = 0.5)

    /// The multiplier at `step`.
    public func factor(step: Int) -> Double {
        func warm(_ w: Int) -> Double? { step < w ? Double(step) / Double(Swift.max(1, w)) : nil }
        switch self {
        case .constant:
            return 1
        case .constantWithWarmup(let w):
            return warm(w) ?? 1
        case .linear(let w, let total):
            if let f = warm(w) { return f }
            return Swift.max(0, Double(total - step) / Double(Swift.max(1, total - w)))
        case .cosine(let w, let total, let cycles):
            if let f = warm(w) { return f }
            let progress = Double(step - w) / Double(Swift.max(1, total - w))
            return Swift.max(0, 0.5 * (1 + Foundation.cos(Double.pi * cycles * 2 * progress)))
        }
    }

    /// base * factor(step).
    public func learningRate(base: Double, step: Int) -> Double { base * factor(step: step) }
}
