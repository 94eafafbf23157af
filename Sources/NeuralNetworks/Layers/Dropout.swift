import Tensors

/// Zeroes elements with probability p while training and scales the rest by 1 / (1 - p)
/// (torch.nn.Dropout); the identity in evaluation. The mask comes from the layer's own
/// generator, so a run is reproducible and its state can be checkpointed.
public final class Dropout: Module, UnaryLayer {
    public let p: Float
    public let generator: RandomGenerator

    public init(_ p: Float = 0.5, generator: RandomGenerator = PhiloxGenerator(seed: 0)) {
        precondition(p >= 0 && p < 1, "Dropout: probability \(p) is not in [0, 1)")
        self.p = p
        self.generator = generator
        super.init()
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        guard isTraining && p > 0 else { return x }
        let keep = generator.uniform(x.shape, low: 0, high: 1) .>= Tensor(p)
        return Tensor.where(keep, x * (1 / (1 - p)), Tensor(Float(0)))
    }
}
