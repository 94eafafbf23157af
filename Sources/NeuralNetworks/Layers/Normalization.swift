import Tensors

/// Group normalisation (torch.nn.GroupNorm): weight ones, bias zeros.
public final class GroupNorm: Module, UnaryLayer {
    public let weight: Parameter?
    public let bias: Parameter?
    public let groups: Int
    public let eps: Float

    public init(groups: Int, channels: Int, eps: Float = 1e-5, affine: Bool = true) {
        precondition(groups >= 1 && channels % groups == 0, "GroupNorm: \(groups) groups do not divide \(channels) channels")
        weight = affine ? Parameter(Tensor.ones([channels])) : nil
        bias = affine ? Parameter(Tensor.zeros([channels])) : nil
        (self.groups, self.eps) = (groups, eps)
        super.init()
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { callAsFunction(x, activation: .none) }

    /// With SiLU fused into the same pass; `shift` ([N, C]) is added to x first, in the same
    /// pass (a time embedding's projection, as diffusers' `norm2(h + temb[:, :, None, None])`).
    public func callAsFunction(_ x: Tensor, shift: Tensor? = nil, activation: ConvActivation) -> Tensor {
        x.groupNorm(groups: groups, weight: weight?.value, bias: bias?.value, eps: eps, shift: shift, activation: activation)
    }
}

/// Layer normalisation over the trailing `normalizedShape` axes (torch.nn.LayerNorm).
public final class LayerNorm: Module, UnaryLayer {
    public let weight: Parameter?
    public let bias: Parameter?
    public let normalizedShape: [Int]
    public let eps: Float

    public init(_ normalizedShape: [Int], eps: Float = 1e-5, elementwiseAffine: Bool = true, bias: Bool = true) {
        weight = elementwiseAffine ? Parameter(Tensor.ones(normalizedShape)) : nil
        self.bias = elementwiseAffine && bias ? Parameter(Tensor.zeros(normalizedShape)) : nil
        (self.normalizedShape, self.eps) = (normalizedShape, eps)
        super.init()
    }

    public convenience init(_ features: Int, eps: Float = 1e-5, elementwiseAffine: Bool = true, bias: Bool = true) {
        self.init([features], eps: eps, elementwiseAffine: elementwiseAffine, bias: bias)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(Array(x.shape.suffix(normalizedShape.count)) == normalizedShape,
                     "LayerNorm: input \(x.shape) does not end in the normalized shape \(normalizedShape)")
        return x.layerNorm(normalizedRank: normalizedShape.count, weight: weight?.value, bias: bias?.value, eps: eps)
    }
}
