import Synchronization
import Tensors

/// Where layers draw their initial weights: an explicit generator, or the process-wide
/// default (Philox, seed 0), which `Initialization.seed` resets. With a `TorchGenerator`
/// seeded as torch's global generator, layers built in PyTorch's order get PyTorch's exact
/// initial weights (its `uniform_` draws are reproduced).
public enum Initialization {
    private final class Box: @unchecked Sendable { var generator: RandomGenerator = PhiloxGenerator(seed: 0) }
    private static let shared = Mutex(Box())

    /// The generator layers use when none is given.
    public static var defaultGenerator: RandomGenerator {
        get { shared.withLock { $0.generator } }
        set { shared.withLock { $0.generator = newValue } }
    }

    /// Restarts the default generator from `seed` (Philox).
    public static func seed(_ seed: UInt64) { defaultGenerator = PhiloxGenerator(seed: seed) }

    /// torch's default weight initialisation for Linear and Conv (kaiming_uniform_ with
    /// a = sqrt 5): U(-b, b), b = sqrt 3 * gain / sqrt(fanIn), gain = sqrt(2 / (1 + a^2)) --
    /// 1 / sqrt(fanIn), computed in torch's order so the bound is bit-identical.
    public static func kaimingUniform(_ shape: [Int], fanIn: Int, generator: RandomGenerator?) -> Tensor {
        let a = 5.0.squareRoot()
        let gain = (2.0 / (1 + a * a)).squareRoot()
        let bound = fanIn > 0 ? 3.0.squareRoot() * (gain / Double(fanIn).squareRoot()) : 0
        return (generator ?? defaultGenerator).uniform(shape, low: Float(-bound), high: Float(bound))
    }

    /// torch's default bias initialisation: U(-1 / sqrt(fanIn), 1 / sqrt(fanIn)).
    public static func fanInUniform(_ shape: [Int], fanIn: Int, generator: RandomGenerator?) -> Tensor {
        let bound = fanIn > 0 ? 1 / Double(fanIn).squareRoot() : 0
        return (generator ?? defaultGenerator).uniform(shape, low: Float(-bound), high: Float(bound))
    }

    /// N(0, std^2).
    public static func normal(_ shape: [Int], std: Float = 1, generator: RandomGenerator?) -> Tensor {
        (generator ?? defaultGenerator).normal(shape, mean: 0, std: std)
    }
}
