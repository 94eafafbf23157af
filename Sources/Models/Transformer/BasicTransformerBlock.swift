import NeuralNetworks
import Tensors

/// diffusers' `BasicTransformerBlock` with `norm_type="layer_norm"` (the blocks inside
/// Stable Diffusion's spatial transformers), pre-norm with residuals:
///
///   h = h + attn1(norm1(h) [, context])      self-attention (cross when `onlyCrossAttention`)
///   h = h + attn2(norm2(h), context)         cross-attention (when a context width is given)
///   h = h + ff(norm3(h))                     GEGLU feed-forward, 4x wide
///
/// on tokens [B, L, dim]; attention is softmax(q k^T / sqrt(d)) v per head (Vaswani et al.).
public final class BasicTransformerBlock: Module {
    public let norm1: LayerNorm
    public let attn1: Attention
    public let norm2: LayerNorm?
    public let attn2: Attention?
    public let norm3: LayerNorm
    public let ff: FeedForward
    public let onlyCrossAttention: Bool

    /// `crossAttentionDim` nil: no attn2 (self-attention only).
    public init(dim: Int, heads: Int, headDim: Int, crossAttentionDim: Int?, dropout: Float = 0,
                activation: FeedForwardActivation = .geglu, attentionBias: Bool = false, onlyCrossAttention: Bool = false,
                normElementwiseAffine: Bool = true, normEps: Float = 1e-5, generator: RandomGenerator? = nil) {
        precondition(!onlyCrossAttention || crossAttentionDim != nil, "BasicTransformerBlock: only cross-attention needs a context width")
        let g = generator
        norm1 = LayerNorm(dim, eps: normEps, elementwiseAffine: normElementwiseAffine)
        attn1 = Attention(queryDim: dim, contextDim: onlyCrossAttention ? crossAttentionDim : nil, heads: heads, headDim: headDim,
                          dropout: dropout, bias: attentionBias, generator: g)
        if let crossAttentionDim {
            norm2 = LayerNorm(dim, eps: normEps, elementwiseAffine: normElementwiseAffine)
            attn2 = Attention(queryDim: dim, contextDim: crossAttentionDim, heads: heads, headDim: headDim, dropout: dropout,
                              bias: attentionBias, generator: g)
        } else {
            (norm2, attn2) = (nil, nil)
        }
        norm3 = LayerNorm(dim, eps: normEps, elementwiseAffine: normElementwiseAffine)
        ff = FeedForward(dim, activation: activation, dropout: dropout, generator: g)
        self.onlyCrossAttention = onlyCrossAttention
        super.init()
    }

    /// `hidden` [B, L, dim]; `context` [B, S, contextDim]; `contextMask` an additive bias
    /// broadcasting to [B, heads, L, S] for the cross-attention (diffusers'
    /// `encoder_attention_mask`, already turned into a bias).
    public func callAsFunction(_ hidden: Tensor, context: Tensor?, contextMask: Tensor? = nil) -> Tensor {
        var h = hidden
        h = h + attn1(norm1(h), context: onlyCrossAttention ? context : nil)
        if let attn2, let norm2 {
            // diffusers: attn2 is self-attention when no context is given.
            h = h + attn2(norm2(h), context: context, mask: context == nil ? nil : contextMask)
        }
        return h + ff(norm3(h))
    }
}
