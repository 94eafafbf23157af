import Tensors

/// y = x W^T + b (torch.nn.Linear), W [out, in], over the last axis of x.
///
/// Initialised as torch does: W ~ kaiming_uniform(a = sqrt 5), b ~ U(-1/sqrt(in), 1/sqrt(in)).
public final class Linear: Module, UnaryLayer {
    public let weight: Parameter
    public let bias: Parameter?

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, generator: RandomGenerator? = nil) {
        weight = Parameter(Initialization.kaimingUniform([outFeatures, inFeatures], fanIn: inFeatures, generator: generator))
        self.bias = bias ? Parameter(Initialization.fanInUniform([outFeatures], fanIn: inFeatures, generator: generator)) : nil
        super.init()
    }

    public var inFeatures: Int { weight.shape[1] }
    public var outFeatures: Int { weight.shape[0] }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.shape.last == inFeatures,
                     "Linear: input \(x.shape) has \(x.shape.last ?? 0) features, the layer takes \(inFeatures)")
        // The bias is added inside the product, in float32 before a bf16 output is rounded.
        return matmul(compute(x), computeParameter(weight).transposed(), bias: bias?.value)
    }
}
