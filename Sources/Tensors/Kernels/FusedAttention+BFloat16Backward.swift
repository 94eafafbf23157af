import CXSMM
import Foundation

/// The backward pass on bf16 Q, K, V and dO where LIBXSMM makes bf16 kernels: the five
/// products of `backward` (S = K Q^T, dV += P^T dO, dP = dO V^T, dQ = dS K, dK += dS^T Q) on
/// bf16 operands with float32 accumulation; P, dP and dS are float32 between them and rounded
/// to bf16 as operands. Each product's A operand is packed in VNNI-2 form: per (batch, head)
/// K and V by key blocks ([D/2][keys][2], for S and dP) and K by pairs of keys ([Lk/2][D][2],
/// for dQ); per query block P and dS by pairs of queries ([rows/2][keys][2], rounded and
/// interleaved in one pass), for dV^T and dK^T. Their B operands are the block's dO and Q
/// transposed (D x rows, small); dV^T and dK^T accumulate over the query blocks in float32
/// and are transposed into dV and dK once per (batch, head). (Transposing P and dS instead,
/// keys x rows each block, took a quarter of the pass at 64x2x256x32.) Odd counts get zero
/// pairs.
extension FusedAttention {
    /// Whether `backwardBF16` takes these operands (besides `supportsBF16`): even value
    /// width and row stride.
    static func supportsBF16Backward(_ q: Tensor, _ k: Tensor, _ v: Tensor) -> Bool {
        supportsBF16(q, k, v) && v.shape[3] % 2 == 0 && v.strides[2] % 2 == 0
    }

    /// dQ, dK, dV (float32, each [B, L, H, D] in memory, returned as [B, H, L, D] views) for
    /// bf16 q, k, v (`supportsBF16Backward`), the forward's float32 `out` and `lse`, and
    /// dL/dout `gout` (any type: rounded to bf16 once if it is not).
    static func backwardBF16(_ q: Tensor, _ k: Tensor, _ v: Tensor, out: Tensor, lse: Tensor, gout: Tensor,
                             scale: Float) -> (Tensor, Tensor, Tensor) {
        let (b, h, lq, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let (lk, dv) = (k.shape[2], v.shape[3])
        let lkPad = lk + lk % 2
        let g = rows(gout, as: .bfloat16)
        let dq = Tensor(uninitializedShape: [b, lq, h, d], dtype: .float32)
        let dk = Tensor(uninitializedShape: [b, lk, h, d], dtype: .float32)
        let dvt = Tensor(uninitializedShape: [b, lk, h, dv], dtype: .float32)
        let (Q, K, V, G) = (Operand<UInt16>(q), Operand<UInt16>(k), Operand<UInt16>(v), Operand<UInt16>(g))
        let O = Operand<Float>(out)
        let (dQ, dK, dV) = (SendablePointer(dq.pointer(as: Float.self)), SendablePointer(dk.pointer(as: Float.self)),
                            SendablePointer(dvt.pointer(as: Float.self)))
        let lp = SendablePointer(lse.pointer(as: Float.self))
        let mb = Swift.min(queryBlock, lq)
        let mbPad = mb + mb % 2
        let keyBlocks = keyBlocks(lk)
        struct Kernels {
            let scores, gradP: [libxsmm_bsmmfunction_reducebatch_addr]
            let gradV0, gradV1, gradQ, gradK0, gradK1: libxsmm_bsmmfunction_reducebatch_addr
        }
        func kernels(_ n: Int) -> Kernels {
            let nPad = n + n % 2
            // dV^T (lk x dv, column-major: [dv][lk]) (+)= P^T dO and dK^T likewise.
            return Kernels(scores: keyBlocks.map { bf16Kernel(m: $0.1, n: n, k: d, lda: $0.1, ldb: Q.sl, ldc: lkPad, beta: 0) },
                           gradP: keyBlocks.map { bf16Kernel(m: $0.1, n: n, k: dv, lda: $0.1, ldb: G.sl, ldc: lkPad, beta: 0) },
                           gradV0: bf16Kernel(m: lk, n: dv, k: nPad, lda: lk, ldb: nPad, ldc: lk, beta: 0),
                           gradV1: bf16Kernel(m: lk, n: dv, k: nPad, lda: lk, ldb: nPad, ldc: lk, beta: 1),
                           gradQ: bf16Kernel(m: d, n: n, k: lkPad, lda: d, ldb: lkPad, ldc: h * d, beta: 0),
                           gradK0: bf16Kernel(m: lk, n: d, k: nPad, lda: lk, ldb: nPad, ldc: lk, beta: 0),
                           gradK1: bf16Kernel(m: lk, n: d, k: nPad, lda: lk, ldb: nPad, ldc: lk, beta: 1))
        }
        let full = kernels(mb), tail = lq % mb == 0 ? full : kernels(lq % mb)
        let pairs = b * h
        Parallel.team { t, threads in
            let kS = UnsafeMutablePointer<UInt16>.allocate(capacity: lk * d)       // K for S, by key blocks
            let vP = UnsafeMutablePointer<UInt16>.allocate(capacity: lk * dv)      // V for dP, by key blocks
            let kQ = UnsafeMutablePointer<UInt16>.allocate(capacity: lkPad * d)    // K for dQ, by pairs of keys
            let qT = UnsafeMutablePointer<UInt16>.allocate(capacity: d * mbPad)    // Q block transposed, for dK^T
            let gT = UnsafeMutablePointer<UInt16>.allocate(capacity: dv * mbPad)   // dO block transposed, for dV^T
            let p = UnsafeMutablePointer<Float>.allocate(capacity: mb * lkPad)
            let dp = UnsafeMutablePointer<Float>.allocate(capacity: mb * lkPad)
            let pPairs = UnsafeMutablePointer<UInt16>.allocate(capacity: mbPad * lk)   // P by pairs of queries, bf16
            let dS = UnsafeMutablePointer<UInt16>.allocate(capacity: mb * lkPad)       // dS, bf16
            let dSPairs = UnsafeMutablePointer<UInt16>.allocate(capacity: mbPad * lk)  // dS by pairs of queries, bf16
            let dvT = UnsafeMutablePointer<Float>.allocate(capacity: dv * lk), dkT = UnsafeMutablePointer<Float>.allocate(capacity: d * lk)
            defer {
                for buffer in [kS, vP, kQ, qT, gT, pPairs, dS, dSPairs] { buffer.deallocate() }
                for buffer in [p, dp, dvT, dkT] { buffer.deallocate() }
            }
            for pair in (pairs * t / threads)..<(pairs * (t + 1) / threads) {
                let (bi, hi) = (pair / h, pair % h)
                packKeyBlocks(K.at(bi, hi), stride: K.sl, width: d, blocks: keyBlocks, into: kS)
                packKeyBlocks(V.at(bi, hi), stride: V.sl, width: dv, blocks: keyBlocks, into: vP)
                packPairs(K.at(bi, hi), stride: K.sl, rows: lk, width: d, into: kQ)
                let dkBase = dK.p + bi * lk * h * d + hi * d, dvBase = dV.p + bi * lk * h * dv + hi * dv
                var i0 = 0
                while i0 < lq {
                    let rows = Swift.min(mb, lq - i0), rowsPad = rows + rows % 2
                    let f = rows == mb ? full : tail
                    // P = exp(S s - lse), recomputed; dP = dO V^T.
                    for (index, (j0, _)) in keyBlocks.enumerated() {
                        gemm(f.scores[index], kS + j0 * d, Q.at(bi, hi, i0), p + j0)
                        gemm(f.gradP[index], vP + j0 * dv, G.at(bi, hi, i0), dp + j0)
                    }
                    for r in 0..<rows { exponentiateRow(p + r * lkPad, lk, scale: scale, shift: lp.p[(bi * h + hi) * lq + i0 + r]) }
                    // dV^T (+)= P^T dO.
                    narrowPairs(p, stride: lkPad, rows: rows, width: lk, into: pPairs)
                    transpose16(G.at(bi, hi, i0), stride: G.sl, rows: rows, cols: dv, into: gT, ld: rowsPad)
                    gemm(i0 == 0 ? f.gradV0 : f.gradV1, pPairs, gT, dvT)
                    // dS = P (dP - rowsum(dO O)) s.
                    for r in 0..<rows {
                        let go = G.at(bi, hi, i0 + r), o = O.at(bi, hi, i0 + r)
                        var delta: Float = 0
                        for e in 0..<dv { delta += Float(bitPattern: UInt32(go[e]) &<< 16) * o[e] }
                        let drow = dp + r * lkPad
                        scoreGradientRow(p + r * lkPad, drow, lk, delta: delta, scale: scale)
                        BFloat16Runs.narrow(drow, 1, dS + r * lkPad, 1, lk)
                        if lkPad > lk { dS[r * lkPad + lk] = 0 }
                    }
                    // dQ = dS K; dK^T (+)= dS^T Q.
                    gemm(f.gradQ, kQ, dS, dQ.p + (bi * lq + i0) * h * d + hi * d)
                    narrowPairs(dp, stride: lkPad, rows: rows, width: lk, into: dSPairs)
                    transpose16(Q.at(bi, hi, i0), stride: Q.sl, rows: rows, cols: d, into: qT, ld: rowsPad)
                    gemm(i0 == 0 ? f.gradK0 : f.gradK1, dSPairs, qT, dkT)
                    i0 += rows
                }
                transpose(dvT, bytes: 4, stride: lk, rows: dv, cols: lk, into: dvBase, ld: h * dv)
                transpose(dkT, bytes: 4, stride: lk, rows: d, cols: lk, into: dkBase, ld: h * d)
            }
        }
        withExtendedLifetime((q, k, v, out, g, lse)) {}
        return (dq.permuted(0, 2, 1, 3), dk.permuted(0, 2, 1, 3), dvt.permuted(0, 2, 1, 3))
    }

    /// Rows (keys) of `width` values as VNNI-2 A operands of m = keys, k = width, one per key
    /// block: block (j0, n) at out + j0 width holds [width/2][n][2].
    static func packKeyBlocks(_ x: UnsafePointer<UInt16>, stride: Int, width: Int, blocks: [(Int, Int)],
                              into out: UnsafeMutablePointer<UInt16>) {
        for (j0, n) in blocks {
            transpose(x + j0 * stride, bytes: 4, stride: stride / 2, rows: n, cols: width / 2, into: out + j0 * width, ld: n)
        }
    }

    /// bf16 rows as the VNNI-2 A operand of m = width, k = rows: [rows/2][width][2], rows 2i
    /// and 2i + 1 side by side; an odd last row is paired with zeros.
    static func packPairs(_ x: UnsafePointer<UInt16>, stride: Int, rows: Int, width: Int, into out: UnsafeMutablePointer<UInt16>) {
        pairRows(x, stride: stride, rows: rows, width: width, into: out) { $0 }
    }

    /// Float32 rows rounded to bf16, as `packPairs` lays out bf16 ones.
    static func narrowPairs(_ x: UnsafePointer<Float>, stride: Int, rows: Int, width: Int, into out: UnsafeMutablePointer<UInt16>) {
        pairRows(x, stride: stride, rows: rows, width: width, into: out) { BFloat16Runs.narrow($0.bitPattern) }
    }

    /// Rows of `width` values (`stride` apart) as bf16 pairs: each pair one 32-bit word, the
    /// low half first; plain loops the compiler vectorizes (explicit 8-lane code timed the same).
    @inline(__always)
    private static func pairRows<T>(_ x: UnsafePointer<T>, stride: Int, rows: Int, width: Int,
                                    into out: UnsafeMutablePointer<UInt16>, _ bf16: (T) -> UInt16) {
        let words = UnsafeMutableRawPointer(out).assumingMemoryBound(to: UInt32.self)
        var j = 0
        while j < rows {
            let a = x + j * stride, o = words + j / 2 * width
            if j + 1 < rows {
                let b = a + stride
                for c in 0..<width { o[c] = UInt32(bf16(a[c])) | UInt32(bf16(b[c])) &<< 16 }
            } else {
                for c in 0..<width { o[c] = UInt32(bf16(a[c])) }
            }
            j += 2
        }
    }

    /// out[c ld + r] = x[r stride + c] for r < rows, c < cols (`transpose` of 2-byte
    /// elements), and 0 in row `rows` of each column when ld > rows (the zero pair of an odd count).
    static func transpose16(_ x: UnsafePointer<UInt16>, stride: Int, rows: Int, cols: Int,
                            into out: UnsafeMutablePointer<UInt16>, ld: Int) {
        transpose(x, bytes: 2, stride: stride, rows: rows, cols: cols, into: out, ld: ld)
        if ld > rows { for c in 0..<cols { out[c * ld + rows] = 0 } }
    }
}
