import Foundation
import TensorsAVX512

/// Attention as oneDNN batched products over chunks of the batch, each chunk's scores held in
/// memory: the bf16 path where oneDNN runs bf16 products on AMX tiles (`preferred`).
///
/// `FusedAttention`'s bf16 kernels are LIBXSMM's vdpbf16ps GEMMs, twice the fp32 rate on AMD
/// EPYC but no faster than fp32 FMAs on Intel Xeon (one port), where the packing then makes
/// them slower than the fp32 kernels (Xeon model 207, 2 cores: 64x2x256x32 forward 13.7 ms in
/// bf16 against 7.5 in fp32). There, oneDNN's matmul runs the products on AMX, and the
/// scores of `chunkElements` at a time are materialised between them:
///
///     forward:  S = Q K^T (fp32),  P = exp(S s - max) (rounded to bf16, lse kept),
///               O = (P V) / rowsum(P) (rounded to bf16)
///     backward: S again, P = exp(S s - lse),  dV = P^T dO,  dP = dO V^T,
///               dS = P (dP - rowsum(dO O)) s (bf16),  dQ = dS K,  dK = dS^T Q
///
/// Every product accumulates in fp32; P, dS and O are rounded once each. Operands are [B, H, L, D] views with unit stride in D (heads as strided views
/// of [B, L, H, D]); on a CPU without bf16 products the same code runs them in fp32 (tests).
enum ChunkedAttention {
    /// Whether bf16 attention runs here rather than in `FusedAttention`: oneDNN runs bf16
    /// products on AMX (`OneDNN.amx`), unless `DIFFUSE_ATTENTION=fused`.
    static let preferred: Bool = OneDNN.amx && MatmulKernel.bf16Supported
        && ProcessInfo.processInfo.environment["DIFFUSE_ATTENTION"] != "fused"

    /// Scores per chunk (fp32 S and bf16 P: 6 bytes each, about 6 MB).
    static let chunkElements = 1 << 20

    /// Runs `body` on each chunk of the batch (at least one entry, at most `elements` scores
    /// where one entry fits): the chunk's batch range, its scores S = Q K^T (fp32, [n, H, Lq,
    /// Lk]), an uninitialised P of that shape in `low`, and its rows n H Lq.
    private static func forEachChunk(_ q: Tensor, _ k: Tensor, _ elements: Int, low: DType,
                                     _ body: (Range<Int>, Tensor, Tensor, Int) -> Void) {
        let (b, rowsPerEntry) = (q.shape[0], q.shape[1] * q.shape[2])
        let n = Swift.max(1, elements / Swift.max(1, rowsPerEntry * k.shape[2]))
        for b0 in stride(from: 0, to: b, by: n) {
            let r = b0..<Swift.min(b, b0 + n)
            let s = MatmulKernel.product(q[r], k[r].transposed())
            body(r, s, Tensor(uninitializedShape: s.shape, dtype: low), r.count * rowsPerEntry)
        }
    }

    /// out [B, Lq, H, Dv] in the operands' type (bf16 rounded once from the fp32 rows; returned
    /// as the [B, H, Lq, Dv] view) and the log-sum-exp of each query row's scaled scores [B, H,
    /// Lq], as `FusedAttention.forward`.
    static func forward(_ q: Tensor, _ k: Tensor, _ v: Tensor, scale: Float,
                        chunkElements: Int = chunkElements) -> (out: Tensor, lse: Tensor) {
        let (b, h, lq, lk, dv) = (q.shape[0], q.shape[1], q.shape[2], k.shape[2], v.shape[3])
        let low: DType = q.dtype == .bfloat16 ? .bfloat16 : .float32
        let out = Tensor(uninitializedShape: [b, lq, h, dv], dtype: low).permuted(0, 2, 1, 3)
        let (O16, O32) = (FusedAttention.Operand<UInt16>(out), FusedAttention.Operand<Float>(out))
        let lse = Tensor(uninitializedShape: [b, h, lq], dtype: .float32)
        forEachChunk(q, k, chunkElements, low: low) { r, s, p, rows in
            let sp = SendablePointer(s.pointer(as: Float.self))
            let lp = SendablePointer(lse.pointer(as: Float.self) + r.lowerBound * h * lq)
            let norms = SendablePointer(UnsafeMutablePointer<Float>.allocate(capacity: rows))
            defer { norms.p.deallocate() }
            // P stays unnormalised (exp(x s - max)); each output row is divided by its sum
            // after the product instead: dv values per row rather than lk.
            let fused = CPUFeatures.avx512 && low == .bfloat16
            let pp = SendablePointer(p.pointer(as: UInt16.self))
            Parallel.forEach(rows, cost: 24 * lk) { row in
                let x = sp.p + row * lk
                if fused {
                    let (m, total) = AVX512Kernels.exponentiate(x, lk, scale: scale, bf16: pp.p + row * lk)
                    (lp.p[row], norms.p[row]) = (m + Foundation.log(total), 1 / total)
                } else {
                    let (l, total) = FusedAttention.exponentiateRow(x, lk, scale: scale)
                    (lp.p[row], norms.p[row]) = (l, 1 / total)
                    store(x, into: p, row: row, count: lk)
                }
            }
            // Each row of P V over its sum, into the output rows (rounded once where bf16).
            let o = MatmulKernel.product(p, v[r])
            let (op, base) = (SendablePointer(o.pointer(as: Float.self)), r.lowerBound * h * lq)
            Parallel.forEach(rows, cost: 2 * dv) { row in
                let x = op.p + row * dv, inv = norms.p[row]
                for e in 0..<dv { x[e] *= inv }
                let whole = base + row
                let (bi, hi, i) = (whole / (h * lq), whole / lq % h, whole % lq)
                if low == .bfloat16 {
                    BFloat16Runs.narrow(x, 1, O16.at(bi, hi, i), 1, dv)
                } else {
                    O32.at(bi, hi, i).update(from: x, count: dv)
                }
            }
        }
        return (out, lse)
    }

    /// dQ, dK, dV (float32 [B, H, L, D]) for q, k, v, the forward's `out` (bf16 or fp32) and
    /// `lse`, and dL/dout `gout` (rounded to bf16 once where the products run in bf16).
    static func backward(_ q: Tensor, _ k: Tensor, _ v: Tensor, out: Tensor, lse: Tensor, gout: Tensor,
                         scale: Float, chunkElements: Int = chunkElements) -> (Tensor, Tensor, Tensor) {
        let (h, lq, lk, dv) = (q.shape[1], q.shape[2], k.shape[2], v.shape[3])
        let low: DType = q.dtype == .bfloat16 ? .bfloat16 : .float32
        let g = gout.converted(to: low).contiguous()
        let (dq, dk, dvOut) = (Tensor(uninitializedShape: q.shape, dtype: .float32),
                               Tensor(uninitializedShape: k.shape, dtype: .float32),
                               Tensor(uninitializedShape: v.shape, dtype: .float32))
        let (G16, G32) = (SendablePointer(g.pointer(as: UInt16.self)), SendablePointer(g.pointer(as: Float.self)))
        let (O16, O32) = (FusedAttention.Operand<UInt16>(out), FusedAttention.Operand<Float>(out))
        let outLow = out.dtype == .bfloat16
        forEachChunk(q, k, chunkElements, low: low) { r, s, p, rows in
            let sp = SendablePointer(s.pointer(as: Float.self))
            let lp = SendablePointer(lse.pointer(as: Float.self) + r.lowerBound * h * lq)
            Parallel.forEach(rows, cost: 24 * lk) { row in
                let x = sp.p + row * lk
                FusedAttention.exponentiateRow(x, lk, scale: scale, shift: lp.p[row])
                store(x, into: p, row: row, count: lk)
            }
            MatmulKernel.multiply(p.transposed(), g[r], into: dvOut[r])
            let dp = MatmulKernel.product(g[r], v[r].transposed())
            let dpp = SendablePointer(dp.pointer(as: Float.self))
            Parallel.forEach(rows, cost: 8 * lk) { row in
                // rowsum(dO O), dO as the products see it and O as the forward gave it.
                let whole = r.lowerBound * h * lq + row
                let (bi, hi, i) = (whole / (h * lq), whole / lq % h, whole % lq)
                var delta: Float = 0
                for e in 0..<dv {
                    let go = low == .bfloat16 ? Float(bitPattern: UInt32(G16.p[whole * dv + e]) &<< 16) : G32.p[whole * dv + e]
                    let o = outLow ? Float(bitPattern: UInt32(O16.at(bi, hi, i)[e]) &<< 16) : O32.at(bi, hi, i)[e]
                    delta += go * o
                }
                let x = dpp.p + row * lk
                FusedAttention.scoreGradientRow(sp.p + row * lk, x, lk, delta: delta, scale: scale)
                store(x, into: p, row: row, count: lk)
            }
            MatmulKernel.multiply(p, k[r], into: dq[r])
            MatmulKernel.multiply(p.transposed(), q[r], into: dk[r])
        }
        withExtendedLifetime(g) {}
        return (dq, dk, dvOut)
    }

    /// Row `row` of `count` fp32 values into the contiguous `dst` (bf16 rounded, or fp32 copied).
    @inline(__always)
    private static func store(_ x: UnsafeMutablePointer<Float>, into dst: Tensor, row: Int, count: Int) {
        if dst.dtype == .bfloat16 {
            BFloat16Runs.narrow(x, 1, dst.pointer(as: UInt16.self) + row * count, 1, count)
        } else {
            (dst.pointer(as: Float.self) + row * count).update(from: x, count: count)
        }
    }
}
