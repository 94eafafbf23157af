import CAMX
import Foundation

/// bf16 attention one head at a time on AMX tiles, by Diffuse's own kernel (Sources/CAMX,
/// amx_attention.c): the U-Net's heads (a few hundred queries and keys, 32-256 wide) whose
/// scores fit in L2.
///
/// `ChunkedAttention` runs the same products as oneDNN matmuls over chunks of the batch, with
/// the chunk's P and dS (8-16 MB) stored and read again between them; here a head's scores
/// are made 32 query rows at a time and turned into P (and dS) while in L1, and the backward
/// keeps one head's P and dS (bf16) in L2 for dV and dK. Every product accumulates in float32;
/// P, dS and the outputs are rounded to bf16 once each (as `ChunkedAttention`'s), and the
/// softmax takes each row's exact maximum, so no bound on the scores is needed.
///
/// Operands are [B, H, L, D] views with unit stride in D (heads as strided views of
/// [B, L, H, D]); lengths and widths multiples of 32 (`supports`), else the caller takes
/// `ChunkedAttention`.
enum AMXAttention {
    /// Whether the kernels run here: AMX as for `TapGEMMConvolution.amxAvailable`, unless
    /// `DIFFUSE_ATTENTION` names another way (`chunked`, `fused`).
    static let available: Bool = TapGEMMConvolution.amxAvailable
        && !["chunked", "fused"].contains(ProcessInfo.processInfo.environment["DIFFUSE_ATTENTION"] ?? "")

    /// The most scores a head may have: the backward keeps its P and dS (2 bytes each) in L2.
    static let maxScores = 1 << 18

    /// bf16 q [B, H, Lq, D], k [B, H, Lk, D], v [B, H, Lk, Dv] (unit stride in D) with Lq, Lk,
    /// D and Dv multiples of 32 and Lq Lk <= `maxScores`, on a CPU where the kernels run.
    static func supports(_ q: Tensor, _ k: Tensor, _ v: Tensor) -> Bool {
        guard [q, k, v].allSatisfy({ $0.rank == 4 && $0.dtype == .bfloat16 && $0.strides[3] == 1 }) else { return false }
        return supports(lq: q.shape[2], lk: k.shape[2], d: q.shape[3], dv: v.shape[3]) && k.shape[3] == q.shape[3]
            && q.shape[0] == k.shape[0] && k.shape[0] == v.shape[0] && q.shape[1] == k.shape[1] && k.shape[1] == v.shape[1]
    }

    /// Whether heads of these sizes run here (bf16 operands with unit stride in D).
    static func supports(lq: Int, lk: Int, d: Int, dv: Int) -> Bool {
        available && [lq, lk, d, dv].allSatisfy { $0 > 0 && $0 % 32 == 0 } && lq * lk <= maxScores
    }

    /// out (bf16, laid out [B, Lq, H, Dv], returned as the [B, H, Lq, Dv] view) and the
    /// log-sum-exp of each query row's scaled scores [B, H, Lq], as `ChunkedAttention.forward`.
    static func forward(_ q: Tensor, _ k: Tensor, _ v: Tensor, scale: Float) -> (out: Tensor, lse: Tensor) {
        precondition(supports(q, k, v), "AMXAttention: operands it does not take")
        let (b, h, lq, d, lk, dv) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3], k.shape[2], v.shape[3])
        let out = Tensor(uninitializedShape: [b, lq, h, dv], dtype: .bfloat16).permuted(0, 2, 1, 3)
        let lse = Tensor(uninitializedShape: [b, h, lq], dtype: .float32)
        let (Q, K, V, O) = (heads(q), heads(k), heads(v), heads(out))
        let lp = SendablePointer(lse.pointer(as: Float.self))
        perThread(pairs: b * h, lq, lk, d, dv) { scratch, range in
            camx_attention_forward(Q, K, V, O, lp.p, h, lq, lk, d, dv, scale, scratch, range.lowerBound, range.upperBound)
        }
        withExtendedLifetime((q, k, v)) {}
        return (out, lse)
    }

    /// dQ, dK, dV (bf16, each laid out [B, L, H, D] and returned as the [B, H, L, D] view) from
    /// the forward's bf16 `out` and `lse` and dL/dout `gout` (rounded to bf16 once if it is not).
    static func backward(_ q: Tensor, _ k: Tensor, _ v: Tensor, out: Tensor, lse: Tensor, gout: Tensor,
                         scale: Float) -> (Tensor, Tensor, Tensor) {
        precondition(supports(q, k, v), "AMXAttention: operands it does not take")
        let (b, h, lq, d, lk, dv) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3], k.shape[2], v.shape[3])
        let (o, g) = (FusedAttention.rows(out, as: .bfloat16), FusedAttention.rows(gout, as: .bfloat16))
        let lse = lse.contiguous()
        let gradient = { (x: Tensor) in
            Tensor(uninitializedShape: [x.shape[0], x.shape[2], x.shape[1], x.shape[3]], dtype: .bfloat16).permuted(0, 2, 1, 3)
        }
        let (dq, dk, dvt) = (gradient(q), gradient(k), gradient(v))
        let (Q, K, V, O, G) = (heads(q), heads(k), heads(v), heads(o), heads(g))
        let (DQ, DK, DV) = (heads(dq), heads(dk), heads(dvt))
        let lp = SendablePointer(lse.pointer(as: Float.self))
        perThread(pairs: b * h, lq, lk, d, dv) { scratch, range in
            camx_attention_backward(Q, K, V, O, G, lp.p, h, lq, lk, d, dv, scale, DQ, DK, DV, scratch,
                                    range.lowerBound, range.upperBound)
        }
        withExtendedLifetime((q, k, v, o, g, lse)) {}
        return (dq, dk, dvt)
    }

    /// A [B, H, L, D] bf16 view as the kernel reads it.
    private static func heads(_ t: Tensor) -> camx_heads {
        camx_heads(base: t.pointer(as: UInt16.self), sb: t.strides[0], sh: t.strides[1], sl: t.strides[2])
    }

    /// `body(scratch, heads)` on each thread of the team with its share of the (batch, head)
    /// pairs and scratch of its own (64-byte aligned).
    ///
    /// The threads' scratch is one buffer from the caching allocator, so that the next call
    /// (the next layer, the next step) reuses its pages: taken from malloc per thread and call,
    /// a backward's ~1 MB came back as fresh pages each time, 1,000-1,500 page faults a ddpm
    /// training step.
    private static func perThread(pairs: Int, _ lq: Int, _ lk: Int, _ d: Int, _ dv: Int,
                                  _ body: (UnsafeMutableRawPointer, Range<Int>) -> Void) {
        let bytes = (camx_attention_scratch(lq, lk, d, dv) + 63) & ~63
        let slots = Swift.min(Parallel.threadCount, pairs)
        let scratch = Storage(byteCount: bytes * slots)
        Parallel.team(threads: slots) { t, threads in
            let range = (pairs * t / threads)..<(pairs * (t + 1) / threads)
            guard !range.isEmpty else { return }
            body(scratch.base + t * bytes, range)
        }
        withExtendedLifetime(scratch) {}
    }
}

extension camx_heads: @retroactive @unchecked Sendable {}
