import CXSMM
import Foundation

/// The forward pass on bfloat16 Q, K, V where LIBXSMM makes bf16 kernels (vdpbf16ps: AVX-512
/// BF16): both products take bf16 operands and accumulate in float32, twice the fp32 GEMMs'
/// rate (measured 2.0x on AMD EPYC for 64 x 64 x 40-64 blocks). The scores, the softmax and
/// the output stay float32; the probabilities are rounded to bf16 for the second product (the
/// row sums that normalise the output are the float32 ones). A product's A operand goes in
/// LIBXSMM's VNNI-2 form, so per (batch, head) K is packed by key blocks as [D/2][keys][2]
/// (a 32-bit transpose of its rows) and V as [Lk/2][Dv][2] (an odd Lk gets a zero key, and
/// P a zero column to match).
extension FusedAttention {
    /// Whether the bf16 forward runs here (LIBXSMM makes bf16 kernels and bf16 is not turned off).
    static let bf16Available: Bool = {
        guard !BFloat16Support.disabledByEnvironment, BRGEMMConvolution.available else { return false }
        return cxsmm_dispatch_bf16(16, 16, 16, 16, 16, 16, 0) != nil
    }()

    /// bf16 operands the bf16 forward takes: all three bf16, even head size and row strides.
    static func supportsBF16(_ q: Tensor, _ k: Tensor, _ v: Tensor) -> Bool {
        bf16Available && [q, k, v].allSatisfy { $0.dtype == .bfloat16 } && q.shape[3] % 2 == 0 && k.strides[2] % 2 == 0
    }

    /// LIBXSMM's bf16 kernel C = beta C + A B (A in VNNI-2 form); LIBXSMM keeps the kernels it made.
    static func bf16Kernel(m: Int, n: Int, k: Int, lda: Int, ldb: Int, ldc: Int, beta: Float = 0) -> libxsmm_bsmmfunction_reducebatch_addr {
        guard let f = cxsmm_dispatch_bf16(Int32(m), Int32(n), Int32(k), Int32(lda), Int32(ldb), Int32(ldc), beta) else {
            fatalError("Tensors.attention: LIBXSMM has no bf16 kernel for \(m)x\(n)x\(k)")
        }
        return f
    }

    @inline(__always)
    static func gemm(_ f: libxsmm_bsmmfunction_reducebatch_addr, _ a: UnsafePointer<UInt16>, _ b: UnsafePointer<UInt16>,
                             _ c: UnsafeMutablePointer<Float>) {
        var ap: UnsafePointer<UInt16>? = a, bp: UnsafePointer<UInt16>? = b
        cxsmm_call_bf16(f, &ap, &bp, c, 1)
    }

    /// As `forward`, on bf16 operands (`supportsBF16`): out [B, Lq, H, Dv] float32 (returned as
    /// the [B, H, Lq, Dv] view) and the log-sum-exp of each query row [B, H, Lq].
    static func forwardBF16(_ q: Tensor, _ k: Tensor, _ v: Tensor, scale: Float) -> (out: Tensor, lse: Tensor) {
        let (b, h, lq, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let (lk, dv) = (k.shape[2], v.shape[3])
        let lkPad = lk + lk % 2
        let out = Tensor(uninitializedShape: [b, lq, h, dv], dtype: .float32)
        let lse = Tensor(uninitializedShape: [b, h, lq], dtype: .float32)
        let (Q, K, V) = (Operand<UInt16>(q), Operand<UInt16>(k), Operand<UInt16>(v))
        let op = SendablePointer(out.pointer(as: Float.self)), lp = SendablePointer(lse.pointer(as: Float.self))
        let mb = Swift.min(queryBlock, lq)
        let blocks = (lq + mb - 1) / mb
        let keyBlocks = keyBlocks(lk)
        func kernels(_ n: Int) -> ([libxsmm_bsmmfunction_reducebatch_addr], libxsmm_bsmmfunction_reducebatch_addr) {
            (keyBlocks.map { bf16Kernel(m: $0.1, n: n, k: d, lda: $0.1, ldb: Q.sl, ldc: lkPad) },  // S = K Q^T, by key blocks
             bf16Kernel(m: dv, n: n, k: lkPad, lda: dv, ldb: lkPad, ldc: h * dv))                   // O = V P
        }
        let full = kernels(mb), tail = lq % mb == 0 ? full : kernels(lq % mb)
        let jobs = b * h * blocks
        Parallel.team { t, threads in
            let kv = UnsafeMutablePointer<UInt16>.allocate(capacity: lk * d)
            let vv = UnsafeMutablePointer<UInt16>.allocate(capacity: lkPad * dv)
            let s = UnsafeMutablePointer<Float>.allocate(capacity: mb * lkPad)
            let p = UnsafeMutablePointer<UInt16>.allocate(capacity: mb * lkPad)
            defer { kv.deallocate(); vv.deallocate(); s.deallocate(); p.deallocate() }
            var current = -1
            var norms = [Float](repeating: 0, count: mb)
            for job in (jobs * t / threads)..<(jobs * (t + 1) / threads) {
                let pair = job / blocks, i0 = job % blocks * mb
                let (bi, hi) = (pair / h, pair % h)
                let rows = Swift.min(mb, lq - i0)
                if pair != current {
                    packKeyBlocks(K.at(bi, hi), stride: K.sl, width: d, blocks: keyBlocks, into: kv)
                    packPairs(V.at(bi, hi), stride: V.sl, rows: lk, width: dv, into: vv)
                    current = pair
                }
                let (scores, product) = rows == mb ? full : tail
                for (index, (j0, _)) in keyBlocks.enumerated() { gemm(scores[index], kv + j0 * d, Q.at(bi, hi, i0), s + j0) }
                softmaxRows(s, rows: rows, stride: lkPad, count: lk, scale: scale, lse: lp.p + (bi * h + hi) * lq + i0,
                            norms: &norms) { r, row in
                    BFloat16Runs.narrow(row, 1, p + r * lkPad, 1, lk)
                    if lkPad > lk { p[r * lkPad + lk] = 0 }
                }
                let o = op.p + ((bi * lq + i0) * h + hi) * dv
                gemm(product, vv, p, o)
                scaleRows(o, rows: rows, stride: h * dv, width: dv, by: norms)
            }
        }
        withExtendedLifetime((q, k, v)) {}
        return (out.permuted(0, 2, 1, 3), lse)
    }
}
