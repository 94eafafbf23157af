import CXSMM
import Foundation
import TensorsAVX512

/// softmax(Q K^T s) V without materialising the scores (the scheme of FlashAttention, Dao et
/// al. 2022): per (batch, head) and block of queries, the block's scores S = Q K^T over a
/// step of keys live in cache, are turned into probabilities P in place and multiplied by V
/// at once (the softmax online across steps in the forward). The backward
/// pass recomputes P from the saved log-sum-exp of each query row instead of storing it:
///
///     dV = P^T dO,  dP = dO V^T,  dS = P ⊙ (dP - rowsum(dO ⊙ O)) s,  dQ = dS K,  dK = dS^T Q.
///
/// Every product is a LIBXSMM JIT GEMM (column-major): a row-major [rows, D] operand with row
/// stride r is a (D x rows) column-major matrix with leading dimension r, so queries, keys and
/// values are read in place from their strided head views; K and V are transposed once per
/// (batch, head) where a product wants them key-major. Float32 here; bf16 Q, K, V run
/// `forwardBF16` / `backwardBF16` where LIBXSMM makes bf16 kernels (else the caller widens
/// them). Q/K/V [B, H, L, D] with unit stride in D and no broadcast batch dimensions.
enum FusedAttention {
    /// Query rows per block: the block's scores (rows x a step of keys) stay in L2.
    static let queryBlock = 64
    /// Keys per score GEMM call.
    static let keyBlock = 64

    /// A strided [B, H, L, D] operand of float32 or (UInt16) bf16 elements: element
    /// (b, h, i, d) at base + b sb + h sh + i sl + d.
    struct Operand<Element>: @unchecked Sendable {
        let base: UnsafeMutablePointer<Element>
        let sb: Int, sh: Int, sl: Int
        init(_ t: Tensor) {
            base = t.pointer(as: Element.self)
            (sb, sh, sl) = (t.strides[0], t.strides[1], t.strides[2])
        }
        @inline(__always) func at(_ b: Int, _ h: Int, _ i: Int = 0) -> UnsafeMutablePointer<Element> { base + b * sb + h * sh + i * sl }
    }

    /// x [B, H, L, D] in `type` with its rows read as runs of D (unit stride), copied only
    /// where they are not: a sum's gradient comes expanded, every stride 0.
    static func rows(_ x: Tensor, as type: DType) -> Tensor {
        let t = x.converted(to: type)
        return t.strides[3] == 1 || t.shape[3] == 1 ? t : t.contiguous()
    }

    static func supports(_ q: Tensor, _ k: Tensor, _ v: Tensor) -> Bool {
        guard q.rank == 4, k.rank == 4, v.rank == 4, BRGEMMConvolution.available,
              [q, k, v].allSatisfy({ $0.dtype == .float32 || $0.dtype == .bfloat16 }) else { return false }
        for t in [q, k, v] {
            guard t.strides[3] == 1, t.strides[0] != 0 || t.shape[0] == 1, t.strides[1] != 0 || t.shape[1] == 1 else { return false }
        }
        // Empty sequences take the composite path (the kernels need a query and a key).
        return q.shape[0] == k.shape[0] && q.shape[0] == v.shape[0] && q.shape[1] == k.shape[1] && q.shape[1] == v.shape[1]
            && q.shape[2] > 0 && k.shape[2] > 0
    }

    private static func kernel(m: Int, n: Int, k: Int, lda: Int, ldb: Int, ldc: Int, beta: Float,
                               transposeB: Bool = false) -> libxsmm_smmfunction_reducebatch_addr {
        guard let f = BRGEMMConvolution.kernel(m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc, beta: beta, transposeB: transposeB) else {
            fatalError("Tensors.attention: LIBXSMM has no kernel for \(m)x\(n)x\(k)")
        }
        return f
    }

    @inline(__always)
    private static func gemm(_ f: libxsmm_smmfunction_reducebatch_addr, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                             _ c: UnsafeMutablePointer<Float>) {
        BRGEMMConvolution.gemm(f, a, b, c)
    }

    /// rows x cols elements of `bytes` bytes each at `src` (row stride `stride` elements) into
    /// `dst` as cols x rows with row stride `ld` (LIBXSMM's blocked transpose). The fp32
    /// path's key-major K and V, and the bf16 paths' VNNI packing (pairs as 4-byte elements)
    /// and transposed operands.
    @inline(__always)
    static func transpose(_ src: UnsafeRawPointer, bytes: Int, stride: Int, rows: Int, cols: Int,
                          into dst: UnsafeMutableRawPointer, ld: Int) {
        libxsmm_otrans(dst, src, UInt32(bytes), libxsmm_blasint(cols), libxsmm_blasint(rows), libxsmm_blasint(stride),
                       libxsmm_blasint(ld))
    }

    /// The blocks of `keyBlock` keys (start, count) the score products run over.
    static func keyBlocks(_ lk: Int) -> [(Int, Int)] {
        stride(from: 0, to: lk, by: keyBlock).map { ($0, Swift.min(keyBlock, lk - $0)) }
    }

    /// Keys per step of the forward: the step's scores (a query block's rows) and its part of V
    /// stay in L2, under `stepBytes` each. One pass over all keys, with a row's full scores
    /// in memory, took 1 MB of scores and 640 KB of V at 4096 keys of 40-wide heads (SD's
    /// 64x64 latents), more than Zen 3's 512 KB L2: the forward 2x8x4096x40 ran 0.69x
    /// PyTorch's speed there.
    static let stepBytes = 64 << 10

    /// The key ranges (start, count) the forward runs over, one after another: whole key
    /// blocks with at most `stepBytes` of V each and of a query block's scores, or all keys in one.
    static func keySteps(_ lk: Int, width dv: Int) -> [(Int, Int)] {
        let perKey = Swift.max(dv, queryBlock) * MemoryLayout<Float>.size
        let keys = Swift.max(keyBlock, stepBytes / perKey / keyBlock * keyBlock)
        return stride(from: 0, to: lk, by: keys).map { ($0, Swift.min(keys, lk - $0)) }
    }

    /// out [B, Lq, H, Dv] (returned as the [B, H, Lq, Dv] view) and the log-sum-exp of each
    /// query row's scaled scores [B, H, Lq].
    ///
    /// Per block of queries, the keys in steps (`keySteps`), with the softmax online (Milakov
    /// and Gimelshein 2018, as FlashAttention runs it): a step's scores S = K Q^T are
    /// exponentiated against their own row maxima m', then joined to the running maxima m
    /// and sums l: where m' > m, O and l are scaled by e^(m - m'); else the step's row by
    /// e^(m' - m), so no factor exceeds 1. Then O (+)= V P. At the end O / l, lse = m + log l.
    static func forward(_ q: Tensor, _ k: Tensor, _ v: Tensor, scale: Float) -> (out: Tensor, lse: Tensor) {
        let (b, h, lq, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let (lk, dv) = (k.shape[2], v.shape[3])
        let out = Tensor(uninitializedShape: [b, lq, h, dv], dtype: .float32)
        let lse = Tensor(uninitializedShape: [b, h, lq], dtype: .float32)
        let (Q, K, V) = (Operand<Float>(q), Operand<Float>(k), Operand<Float>(v))
        let op = SendablePointer(out.pointer(as: Float.self)), lp = SendablePointer(lse.pointer(as: Float.self))
        let mb = Swift.min(queryBlock, lq)
        let blocks = (lq + mb - 1) / mb
        let keyBlocks = keyBlocks(lk)
        let steps = keySteps(lk, width: dv)
        let ls = steps[0].1  // the step buffer's row stride
        func kernels(_ n: Int) -> ([libxsmm_smmfunction_reducebatch_addr], [libxsmm_smmfunction_reducebatch_addr]) {
            (keyBlocks.map { kernel(m: $0.1, n: n, k: d, lda: $0.1, ldb: Q.sl, ldc: ls, beta: 0) },  // S = K Q^T, by key blocks
             steps.enumerated().map { kernel(m: dv, n: n, k: $0.element.1, lda: V.sl, ldb: ls, ldc: h * dv, beta: $0.offset == 0 ? 0 : 1) })  // O (+)= V P
        }
        let full = kernels(mb), tail = lq % mb == 0 ? full : kernels(lq % mb)
        let jobs = b * h * blocks
        let ow = h * dv  // O's row stride
        Parallel.team { t, threads in
            // K transposed a key block at a time (each block's d x n rows contiguous): with
            // one transpose of all keys a block's rows lay lk floats apart, at 4096 keys all
            // in one L1 set.
            let kt = UnsafeMutablePointer<Float>.allocate(capacity: lk * d)
            let s = UnsafeMutablePointer<Float>.allocate(capacity: mb * ls)
            defer { kt.deallocate(); s.deallocate() }
            var current = -1
            var maxima = [Float](repeating: 0, count: mb), sums = [Float](repeating: 0, count: mb)
            var norms = [Float](repeating: 0, count: mb)
            for job in (jobs * t / threads)..<(jobs * (t + 1) / threads) {
                let pair = job / blocks, i0 = job % blocks * mb
                let (bi, hi) = (pair / h, pair % h)
                let rows = Swift.min(mb, lq - i0)
                if pair != current {
                    for (j0, n) in keyBlocks {
                        transpose(K.at(bi, hi, j0), bytes: 4, stride: K.sl, rows: n, cols: d, into: kt + j0 * d, ld: n)
                    }
                    current = pair
                }
                let (scores, product) = rows == mb ? full : tail
                let o = op.p + ((bi * lq + i0) * h + hi) * dv
                for (index, (c0, cn)) in steps.enumerated() {
                    for j0 in stride(from: c0, to: c0 + cn, by: keyBlock) {
                        gemm(scores[j0 / keyBlock], kt + j0 * d, Q.at(bi, hi, i0), s + (j0 - c0))
                    }
                    // P stays unnormalised; each output row is divided by its sum at the end
                    // instead: dv values per row rather than lk.
                    for r in 0..<rows {
                        let row = s + r * ls
                        let (m, total) = exponentiateRowMax(row, cn, scale: scale)
                        if index == 0 {
                            (maxima[r], sums[r]) = (m, total)
                        } else if m > maxima[r] {
                            let f = Foundation.exp(maxima[r] - m)
                            (maxima[r], sums[r]) = (m, sums[r] * f + total)
                            let orow = o + r * ow
                            for c in 0..<dv { orow[c] *= f }
                        } else {
                            let f = Foundation.exp(m - maxima[r])
                            sums[r] += total * f
                            if f != 1 { for c in 0..<cn { row[c] *= f } }
                        }
                    }
                    gemm(product[index], V.at(bi, hi, c0), s, o)
                }
                let lseRow = lp.p + (bi * h + hi) * lq + i0
                for r in 0..<rows {
                    lseRow[r] = maxima[r] + Foundation.log(sums[r])
                    norms[r] = 1 / sums[r]
                }
                scaleRows(o, rows: rows, stride: ow, width: dv, by: norms)
            }
        }
        withExtendedLifetime((q, k, v)) {}
        return (out.permuted(0, 2, 1, 3), lse)
    }

    /// Each of `rows` rows (`count` scores, `stride` apart) exponentiated in place
    /// (`exponentiateRow`): its log-sum-exp into lse[r], the reciprocal of its sum into norms[r].
    @inline(__always)
    static func softmaxRows(_ s: UnsafeMutablePointer<Float>, rows: Int, stride: Int, count: Int, scale: Float,
                            lse: UnsafeMutablePointer<Float>, norms: inout [Float],
                            each: (Int, UnsafeMutablePointer<Float>) -> Void = { _, _ in }) {
        for r in 0..<rows {
            let row = s + r * stride
            let (l, total) = exponentiateRow(row, count, scale: scale)
            lse[r] = l
            norms[r] = 1 / total
            each(r, row)
        }
    }

    /// Row r of `rows` (`width` values, `stride` apart) times norms[r].
    @inline(__always)
    static func scaleRows(_ o: UnsafeMutablePointer<Float>, rows: Int, stride: Int, width: Int, by norms: [Float]) {
        for r in 0..<rows {
            let row = o + r * stride, inv = norms[r]
            for c in 0..<width { row[c] *= inv }
        }
    }

    /// x = exp(x s - shift) in place over n values: a probability row recomputed from its
    /// log-sum-exp (x s <= shift). 16 lanes where the CPU has AVX-512; the 8 lanes by
    /// `VectorMath.expNonPositive`, whose latency bounds these loops.
    @inline(__always)
    static func exponentiateRow(_ x: UnsafeMutablePointer<Float>, _ n: Int, scale: Float, shift: Float) {
        if CPUFeatures.avx512 {
            AVX512Kernels.exponentiate(x, n, scale: scale, shift: shift)
            return
        }
        let (sv, shv) = (Vec8(repeating: scale), Vec8(repeating: shift))
        var j = 0
        while j + 8 <= n { Lanes.store(VectorMath.expNonPositive(Lanes.load(x + j, 1) * sv - shv), x + j, 1); j += 8 }
        while j < n { x[j] = Foundation.exp(x[j] * scale - shift); j += 1 }
    }

    /// dS = P (dP - delta) s over n values, in dP's row.
    @inline(__always)
    static func scoreGradientRow(_ p: UnsafePointer<Float>, _ dp: UnsafeMutablePointer<Float>, _ n: Int, delta: Float, scale: Float) {
        let dl = Vec8(repeating: delta), sv = Vec8(repeating: scale)
        var j = 0
        while j + 8 <= n {
            Lanes.store(Lanes.load(p + j, 1) * (Lanes.load(dp + j, 1) - dl) * sv, dp + j, 1)
            j += 8
        }
        while j < n { dp[j] = p[j] * (dp[j] - delta) * scale; j += 1 }
    }

    /// x = exp(x s - max(x s)) in place over n values (softmax before its division); returns
    /// log Σ exp(x s) and the sum of the new x.
    @inline(__always)
    static func exponentiateRow(_ x: UnsafeMutablePointer<Float>, _ n: Int, scale: Float) -> (lse: Float, total: Float) {
        let (m, total) = exponentiateRowMax(x, n, scale: scale)
        return (m + Foundation.log(total), total)
    }

    /// x = exp(x s - max(x s)) in place over n values; returns max(x s) and the sum of the new
    /// x. 16 lanes where the CPU has AVX-512; the 8 lanes by `VectorMath.expNonPositive` (SD
    /// 1.5's self-attention forward, 2x8x4096x40, on Zen 3: 549-562 -> 525-530 ms).
    @inline(__always)
    static func exponentiateRowMax(_ x: UnsafeMutablePointer<Float>, _ n: Int, scale: Float) -> (max: Float, total: Float) {
        if CPUFeatures.avx512 { return AVX512Kernels.exponentiate(x, n, scale: scale) }
        let sv = Vec8(repeating: scale)
        var mv = Vec8(repeating: -.infinity)
        var j = 0
        while j + 8 <= n { mv = VectorMath.max(mv, Lanes.load(x + j, 1) * sv); j += 8 }
        // By halves: SIMD's max() is a scalar loop of compares and branches.
        let m4 = VectorMath.max4(mv.lowHalf, mv.highHalf)
        var m = Swift.max(Swift.max(m4[0], m4[1]), Swift.max(m4[2], m4[3]))
        while j < n { m = Swift.max(m, x[j] * scale); j += 1 }
        let mm = Vec8(repeating: m)
        var sum = Vec8()
        j = 0
        while j + 8 <= n {
            let e = VectorMath.expNonPositive(Lanes.load(x + j, 1) * sv - mm)
            Lanes.store(e, x + j, 1)
            sum += e
            j += 8
        }
        var total = sum.sum()
        while j < n { x[j] = Foundation.exp(x[j] * scale - m); total += x[j]; j += 1 }
        return (m, total)
    }

    /// dQ, dK, dV (each [B, L, H, D] in memory, returned as [B, H, L, D] views) for dL/dout `gout`.
    static func backward(_ q: Tensor, _ k: Tensor, _ v: Tensor, out: Tensor, lse: Tensor, gout: Tensor,
                         scale: Float) -> (Tensor, Tensor, Tensor) {
        let (b, h, lq, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let (lk, dv) = (k.shape[2], v.shape[3])
        let g = rows(gout, as: .float32)
        let dq = Tensor(uninitializedShape: [b, lq, h, d], dtype: .float32)
        let dk = Tensor(uninitializedShape: [b, lk, h, d], dtype: .float32)
        let dvt = Tensor(uninitializedShape: [b, lk, h, dv], dtype: .float32)
        let (Q, K, V, O, G) = (Operand<Float>(q), Operand<Float>(k), Operand<Float>(v), Operand<Float>(out), Operand<Float>(g))
        let (dQ, dK, dV) = (SendablePointer(dq.pointer(as: Float.self)), SendablePointer(dk.pointer(as: Float.self)),
                            SendablePointer(dvt.pointer(as: Float.self)))
        let lp = SendablePointer(lse.pointer(as: Float.self))
        let mb = Swift.min(queryBlock, lq)
        struct Kernels {
            let scores, gradP, gradV0, gradV1, gradQ, gradK0, gradK1: libxsmm_smmfunction_reducebatch_addr
        }
        func kernels(_ n: Int) -> Kernels {
            Kernels(scores: kernel(m: lk, n: n, k: d, lda: lk, ldb: Q.sl, ldc: lk, beta: 0),
                    gradP: kernel(m: lk, n: n, k: dv, lda: lk, ldb: G.sl, ldc: lk, beta: 0),
                    gradV0: kernel(m: dv, n: lk, k: n, lda: G.sl, ldb: lk, ldc: h * dv, beta: 0, transposeB: true),
                    gradV1: kernel(m: dv, n: lk, k: n, lda: G.sl, ldb: lk, ldc: h * dv, beta: 1, transposeB: true),
                    gradQ: kernel(m: d, n: n, k: lk, lda: K.sl, ldb: lk, ldc: h * d, beta: 0),
                    gradK0: kernel(m: d, n: lk, k: n, lda: Q.sl, ldb: lk, ldc: h * d, beta: 0, transposeB: true),
                    gradK1: kernel(m: d, n: lk, k: n, lda: Q.sl, ldb: lk, ldc: h * d, beta: 1, transposeB: true))
        }
        let full = kernels(mb), tail = lq % mb == 0 ? full : kernels(lq % mb)
        let pairs = b * h
        Parallel.team { t, threads in
            let kt = UnsafeMutablePointer<Float>.allocate(capacity: lk * d)
            let vt = UnsafeMutablePointer<Float>.allocate(capacity: lk * dv)
            let p = UnsafeMutablePointer<Float>.allocate(capacity: mb * lk)
            let dp = UnsafeMutablePointer<Float>.allocate(capacity: mb * lk)
            defer { kt.deallocate(); vt.deallocate(); p.deallocate(); dp.deallocate() }
            for pair in (pairs * t / threads)..<(pairs * (t + 1) / threads) {
                let (bi, hi) = (pair / h, pair % h)
                transpose(K.at(bi, hi), bytes: 4, stride: K.sl, rows: lk, cols: d, into: kt, ld: lk)
                transpose(V.at(bi, hi), bytes: 4, stride: V.sl, rows: lk, cols: dv, into: vt, ld: lk)
                let dkBase = dK.p + bi * lk * h * d + hi * d, dvBase = dV.p + bi * lk * h * dv + hi * dv
                var i0 = 0
                while i0 < lq {
                    let rows = Swift.min(mb, lq - i0)
                    let f = rows == mb ? full : tail
                    // P = exp(S s - lse), recomputed.
                    gemm(f.scores, kt, Q.at(bi, hi, i0), p)
                    for r in 0..<rows { exponentiateRow(p + r * lk, lk, scale: scale, shift: lp.p[(bi * h + hi) * lq + i0 + r]) }
                    // dV (+)= P^T dO; dP = dO V^T.
                    gemm(i0 == 0 ? f.gradV0 : f.gradV1, G.at(bi, hi, i0), p, dvBase)
                    gemm(f.gradP, vt, G.at(bi, hi, i0), dp)
                    // dS = P (dP - rowsum(dO O)) s, in dp.
                    for r in 0..<rows {
                        let go = G.at(bi, hi, i0 + r), o = O.at(bi, hi, i0 + r)
                        var acc = Vec8(), e = 0
                        while e + 8 <= dv { acc += Lanes.load(go + e, 1) * Lanes.load(o + e, 1); e += 8 }
                        var delta = acc.sum()
                        while e < dv { delta += go[e] * o[e]; e += 1 }
                        scoreGradientRow(p + r * lk, dp + r * lk, lk, delta: delta, scale: scale)
                    }
                    // dQ = dS K; dK (+)= dS^T Q.
                    gemm(f.gradQ, K.at(bi, hi), dp, dQ.p + (bi * lq + i0) * h * d + hi * d)
                    gemm(i0 == 0 ? f.gradK0 : f.gradK1, Q.at(bi, hi, i0), dp, dkBase)
                    i0 += rows
                }
            }
        }
        withExtendedLifetime((q, k, v, out, g, lse)) {}
        return (dq.permuted(0, 2, 1, 3), dk.permuted(0, 2, 1, 3), dvt.permuted(0, 2, 1, 3))
    }
}
