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
        let y = matmul(compute(x), computeParameter(weight).transposed())
        guard let bias else { return y }
        // The bias in the compute type too, so that a bf16 product stays bf16 (as autocast's).
        return y + computeParameter(bias)
    }
}
