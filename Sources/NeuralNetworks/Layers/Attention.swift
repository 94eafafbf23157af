import Tensors

/// Multi-head attention in diffusers' layout (`Attention`): optional `group_norm`,
/// projections `to_q`, `to_k`, `to_v` and `to_out.0` (then dropout `to_out.1`).
///
/// out = to_out(concat_h softmax(q_h k_h^T / sqrt d) v_h), q from the (group-normed) hidden
/// states, k and v from `context` (cross-attention) or the hidden states (self-attention);
/// then, as diffusers' spatial attention blocks, + the input (`residualConnection`) and
/// / `rescaleOutputFactor`. NCHW inputs attend over their H x W positions.
public final class Attention: Module {
    public let groupNorm: GroupNorm?
    public let toQ: Linear, toK: Linear, toV: Linear
    public let toOut: [Module]
    public let heads: Int, headDim: Int
    public let residualConnection: Bool
    public let rescaleOutputFactor: Float

    public init(queryDim: Int, contextDim: Int? = nil, heads: Int = 8, headDim: Int = 64, dropout: Float = 0,
                bias: Bool = false, outBias: Bool = true, normGroups: Int? = nil, eps: Float = 1e-5,
                residualConnection: Bool = false, rescaleOutputFactor: Float = 1, generator: RandomGenerator? = nil) {
        let inner = heads * headDim
        groupNorm = normGroups.map { GroupNorm(groups: $0, channels: queryDim, eps: eps) }
        toQ = Linear(queryDim, inner, bias: bias, generator: generator)
        toK = Linear(contextDim ?? queryDim, inner, bias: bias, generator: generator)
        toV = Linear(contextDim ?? queryDim, inner, bias: bias, generator: generator)
        toOut = [Linear(inner, queryDim, bias: outBias, generator: generator), Dropout(dropout)]
        (self.heads, self.headDim, self.residualConnection, self.rescaleOutputFactor) = (heads, headDim, residualConnection, rescaleOutputFactor)
        super.init()
    }

    /// hidden [B, L, queryDim] or NCHW [B, queryDim, H, W]; context [B, S, contextDim];
    /// `mask` broadcasts to [B, heads, L, S] (bool: true = attend, or additive).
    public func callAsFunction(_ hidden: Tensor, context: Tensor? = nil, mask: Tensor? = nil) -> Tensor {
        precondition(hidden.rank == 3 || hidden.rank == 4,
                     "Attention: hidden states must be [batch, length, features] or NCHW, got \(hidden.shape)")
        let residual = hidden
        var x = groupNorm.map { $0(hidden) } ?? hidden
        let spatial = hidden.rank == 4
        if spatial {  // [B, C, H, W] -> [B, H W, C] (a view for channels-last input)
            let (b, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
            x = x.permuted(0, 2, 3, 1).reshaped(b, h * w, c)
        }
        let source = context ?? x
        let (b, l, s) = (x.shape[0], x.shape[1], source.shape[1])
        func split(_ t: Tensor, _ length: Int) -> Tensor {
            t.reshaped(b, length, heads, headDim).permuted(0, 2, 1, 3)
        }
        let q = split(toQ(x), l), k = split(toK(source), s), v = split(toV(source), s)
        let attended = scaledDotProductAttention(query: q, key: k, value: v, mask: mask)
        let merged = attended.permuted(0, 2, 1, 3).reshaped(b, l, heads * headDim)
        var out = (toOut[1] as! Dropout)((toOut[0] as! Linear)(merged))
        if spatial {
            let (c, h, w) = (hidden.shape[1], hidden.shape[2], hidden.shape[3])
            out = out.reshaped(b, h, w, c).permuted(0, 3, 1, 2)
        }
        if residualConnection { out = out + residual }
        if rescaleOutputFactor != 1 { out = out / rescaleOutputFactor }
        return out
    }
}
