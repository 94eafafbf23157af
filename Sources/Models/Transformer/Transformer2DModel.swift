import NeuralNetworks
import Tensors

/// diffusers' `Transformer2DModel` on continuous (feature-map) input, the spatial transformer
/// of Stable Diffusion's cross-attention blocks (Rombach et al. 2022):
///
///   h = proj_in(norm(x))  as H W tokens of width heads x headDim
///   h = transformer_blocks(h, context)
///   out = proj_out(h) + x
///
/// `norm` is a group norm (eps 1e-6); proj_in/proj_out are 1x1 convolutions, or linear
/// layers on the tokens with `useLinearProjection`. Channels-last input makes the token view
/// [B, H W, C] free, and the 1x1 output convolution adds the residual in its own pass.
public final class Transformer2DModel: Module {
    public let norm: GroupNorm
    public let projInConv: Conv2d?
    public let projInLinear: Linear?
    public let transformerBlocks: [BasicTransformerBlock]
    public let projOutConv: Conv2d?
    public let projOutLinear: Linear?

    public override class var keyOverrides: [String: String] {
        ["projInConv": "proj_in", "projInLinear": "proj_in", "projOutConv": "proj_out", "projOutLinear": "proj_out"]
    }

    public init(heads: Int, headDim: Int, channels: Int, layers: Int, crossAttentionDim: Int?, normGroups: Int,
                useLinearProjection: Bool, onlyCrossAttention: Bool = false, dropout: Float = 0,
                generator: RandomGenerator? = nil) {
        let inner = heads * headDim
        let g = generator
        norm = GroupNorm(groups: normGroups, channels: channels, eps: 1e-6)
        if useLinearProjection {
            (projInLinear, projInConv) = (Linear(channels, inner, generator: g), nil)
        } else {
            (projInLinear, projInConv) = (nil, Conv2d(channels, inner, kernelSize: 1, generator: g))
        }
        transformerBlocks = (0..<layers).map { _ in
            BasicTransformerBlock(dim: inner, heads: heads, headDim: headDim, crossAttentionDim: crossAttentionDim,
                                  dropout: dropout, onlyCrossAttention: onlyCrossAttention, generator: g)
        }
        if useLinearProjection {
            (projOutLinear, projOutConv) = (Linear(inner, channels, generator: g), nil)
        } else {
            (projOutLinear, projOutConv) = (nil, Conv2d(inner, channels, kernelSize: 1, generator: g))
        }
        super.init()
    }

    /// `x` [B, C, H, W] (best channels-last), `context` [B, S, D]; `contextMask` an additive
    /// bias broadcasting to [B, heads, H W, S].
    public func callAsFunction(_ x: Tensor, context: Tensor?, contextMask: Tensor? = nil) -> Tensor {
        let (b, c, height, width) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let normed = norm(x)
        var h: Tensor
        if let projInConv {
            let y = projInConv(normed)
            h = y.permuted(0, 2, 3, 1).reshaped(b, height * width, y.shape[1])
        } else {
            h = projInLinear!(normed.permuted(0, 2, 3, 1).reshaped(b, height * width, c))
        }
        for block in transformerBlocks { h = block(h, context: context, contextMask: contextMask) }
        let inner = h.shape[2]
        if let projOutConv {
            let map = h.reshaped(b, height, width, inner).permuted(0, 3, 1, 2)  // channels-last view
            return projOutConv(map, residual: x)
        }
        return projOutLinear!(h).reshaped(b, height, width, c).permuted(0, 3, 1, 2) + x
    }
}
