import Tensors

/// A lookup table [count, dim] (torch.nn.Embedding), rows ~ N(0, 1).
public final class Embedding: Module {
    public let weight: Parameter

    public init(_ count: Int, _ dim: Int, generator: RandomGenerator? = nil) {
        weight = Parameter(Initialization.normal([count, dim], generator: generator))
        super.init()
    }

    /// Rows for integer `ids` of any shape: [..., dim].
    public func callAsFunction(_ ids: Tensor) -> Tensor {
        weight.value.embedding(ids)
    }
}
