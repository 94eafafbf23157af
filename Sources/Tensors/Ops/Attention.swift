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

/// Attention by `FusedAttention` (no scores in memory), with its own gradient rule. Three
/// bf16 operands run `AMXAttention` where it takes them (AMX; lengths and widths in 32s), else
/// `ChunkedAttention` where oneDNN has AMX, else the fused bf16 forward and
/// backward where the CPU has them (`FusedAttention.supportsBF16`, `supportsBF16Backward`);
/// otherwise the kernel computes in float32, on operands widened when each pass runs. The
/// output (bf16 when all three are) and the gradients come back in the operands' types.
private func fusedAttention(_ q: Tensor, _ k: Tensor, _ v: Tensor, scale: Float) -> Tensor {
    let (qd, kd, vd) = (q.detached(), k.detached(), v.detached())
    // The forward's output (float32, or bf16 from `AMXAttention` and `ChunkedAttention`) and log-sum-exp.
    let (out32, lse): (Tensor, Tensor)
    let amx = AMXAttention.supports(qd, kd, vd)
    let chunked = !amx && ChunkedAttention.preferred && [qd, kd, vd].allSatisfy { $0.dtype == .bfloat16 }
    if amx {
        (out32, lse) = OpProfiler.measure("attention fwd bf16 amx-heads") { AMXAttention.forward(qd, kd, vd, scale: scale) }
    } else if chunked {
        (out32, lse) = OpProfiler.measure("attention fwd bf16 amx") { ChunkedAttention.forward(qd, kd, vd, scale: scale) }
    } else if FusedAttention.supportsBF16(qd, kd, vd) {
        (out32, lse) = OpProfiler.measure("attention fwd bf16") { FusedAttention.forwardBF16(qd, kd, vd, scale: scale) }
    } else {
        let (q32, k32, v32) = (qd.asFloat32(), kd.asFloat32(), vd.asFloat32())
        (out32, lse) = OpProfiler.measure("attention fwd") { FusedAttention.forward(q32, k32, v32, scale: scale) }
    }
    let outType = Tensor.resultType([q, k, v])
    let out = outType == .float32 ? out32 : out32.to(outType)
    guard let tape = Tape.active(q, k, v) else { return out }
    let types = (q.dtype, k.dtype, v.dtype)
    return tape.record(out, "attention", [q, k, v]) { g in
        let (dq, dk, dv): (Tensor, Tensor, Tensor)
        if amx {
            (dq, dk, dv) = OpProfiler.measure("attention bwd bf16 amx-heads") {
                AMXAttention.backward(qd, kd, vd, out: out32, lse: lse, gout: g, scale: scale)
            }
        } else if chunked {
            (dq, dk, dv) = OpProfiler.measure("attention bwd bf16 amx") {
                ChunkedAttention.backward(qd, kd, vd, out: out32, lse: lse, gout: g, scale: scale)
            }
        } else if FusedAttention.supportsBF16Backward(qd, kd, vd) {
            (dq, dk, dv) = OpProfiler.measure("attention bwd bf16") {
                FusedAttention.backwardBF16(qd, kd, vd, out: out32, lse: lse, gout: g, scale: scale)
            }
        } else {
            let (q32, k32, v32) = (qd.asFloat32(), kd.asFloat32(), vd.asFloat32())
            (dq, dk, dv) = OpProfiler.measure("attention bwd") {
                FusedAttention.backward(q32, k32, v32, out: out32, lse: lse, gout: g.asFloat32(), scale: scale)
            }
        }
        return [dq.to(types.0), dk.to(types.1), dv.to(types.2)]
    }
}
