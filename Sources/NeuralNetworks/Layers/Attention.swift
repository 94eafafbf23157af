import Tensors

/// Multi-head attention in diffusers' layout (`Attention`): projections `to_q`, `to_k`,
/// `to_v` and `to_out.0` (then dropout `to_out.1`).
///
/// out = to_out(concat_h softmax(q_h k_h^T / sqrt d) v_h), q from the hidden states, k and
/// v from `context` (cross-attention) or the hidden states (self-attention).
public final class Attention: Module {
    public let toQ: Linear, toK: Linear, toV: Linear
    public let toOut: [Module]
    public let heads: Int, headDim: Int

    public init(queryDim: Int, contextDim: Int? = nil, heads: Int = 8, headDim: Int = 64, dropout: Float = 0,
                bias: Bool = false, outBias: Bool = true, generator: RandomGenerator? = nil) {
        let inner = heads * headDim
        toQ = Linear(queryDim, inner, bias: bias, generator: generator)
        toK = Linear(contextDim ?? queryDim, inner, bias: bias, generator: generator)
        toV = Linear(contextDim ?? queryDim, inner, bias: bias, generator: generator)
        toOut = [Linear(inner, queryDim, bias: outBias, generator: generator), Dropout(dropout)]
        (self.heads, self.headDim) = (heads, headDim)
        super.init()
    }

    /// hidden [B, L, queryDim], context [B, S, contextDim]; `mask` broadcasts to
    /// [B, heads, L, S] (bool: true = attend, or additive).
    public func callAsFunction(_ hidden: Tensor, context: Tensor? = nil, mask: Tensor? = nil) -> Tensor {
        precondition(hidden.rank == 3, "Attention: hidden states must be [batch, length, features], got \(hidden.shape)")
        let source = context ?? hidden
        let (b, l, s) = (hidden.shape[0], hidden.shape[1], source.shape[1])
        func split(_ t: Tensor, _ length: Int) -> Tensor {
            t.reshaped(b, length, heads, headDim).permuted(0, 2, 1, 3)
        }
        let q = split(toQ(hidden), l), k = split(toK(source), s), v = split(toV(source), s)
        let attended = scaledDotProductAttention(query: q, key: k, value: v, mask: mask)
        let merged = attended.permuted(0, 2, 1, 3).reshaped(b, l, heads * headDim)
        let projected = (toOut[0] as! Linear)(merged)
        return (toOut[1] as! Dropout)(projected)
    }
}
