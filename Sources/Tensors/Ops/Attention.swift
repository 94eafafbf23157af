/// Scaled dot-product attention (Vaswani et al. 2017, eq. 1):
/// softmax(Q K^T * scale + mask) V, for query [..., Lq, D], key [..., Lk, D],
/// value [..., Lk, Dv]; scale defaults to 1/sqrt(D). `mask` is either bool (true = attend)
/// or additive float, broadcast to [..., Lq, Lk]; `causal` masks keys after each query.
public func scaledDotProductAttention(query: Tensor, key: Tensor, value: Tensor, mask: Tensor? = nil,
                                      causal: Bool = false, scale: Float? = nil) -> Tensor {
    check(query.rank >= 2 && query.rank == key.rank && key.rank == value.rank, "attention",
          "query \(query.shape), key \(key.shape) and value \(value.shape) must have the same rank >= 2")
    let d = query.shape[query.rank - 1]
    check(key.shape[key.rank - 1] == d, "attention", "query \(query.shape) and key \(key.shape) differ in feature size")
    check(key.shape[key.rank - 2] == value.shape[value.rank - 2], "attention",
          "key \(key.shape) and value \(value.shape) differ in sequence length")
    let s = scale ?? 1 / Float(d).squareRoot()
    if mask == nil && !causal && FusedAttention.supports(query, key, value) {
        return fusedAttention(query, key, value, scale: s)
    }
    var scores = matmul(query, key.transposed()) * s
    let (lq, lk) = (query.shape[query.rank - 2], key.shape[key.rank - 2])
    if let mask {
        if mask.dtype == .bool {
            scores = scores.maskedFill(.!mask, -.infinity)
        } else {
            scores = scores + mask
        }
    }
    if causal {
        var allowed = [Bool](repeating: false, count: lq * lk)
        for i in 0..<lq { for j in 0..<lk where j <= i + (lk - lq) { allowed[i * lk + j] = true } }
        scores = scores.maskedFill(.!Tensor(allowed, shape: [lq, lk]), -.infinity)
    }
    return matmul(scores.softmax(axis: -1), value)
}

/// Attention by `FusedAttention` (no scores in memory), with its own gradient rule.
private func fusedAttention(_ q: Tensor, _ k: Tensor, _ v: Tensor, scale: Float) -> Tensor {
    let (out, lse) = OpProfiler.measure("attention fwd") { FusedAttention.forward(q, k, v, scale: scale) }
    guard let tape = Tape.active(q, k, v) else { return out }
    let (qd, kd, vd, od) = (q.detached(), k.detached(), v.detached(), out.detached())
    return tape.record(out, "attention", [q, k, v]) { g in
        let (dq, dk, dv) = OpProfiler.measure("attention bwd") {
            FusedAttention.backward(qd, kd, vd, out: od, lse: lse, gout: g, scale: scale)
        }
        return [dq, dk, dv]
    }
}
