import Foundation
import TensorsAVX512

/// Attention as oneDNN batched products over chunks of the batch: the bf16 path where oneDNN
/// runs bf16 products on AMX tiles (`preferred`).
///
/// `FusedAttention`'s bf16 kernels are LIBXSMM's vdpbf16ps GEMMs, twice the fp32 rate on AMD
/// EPYC but no faster than fp32 FMAs on Intel Xeon (one port), where the packing then makes
/// them slower than the fp32 kernels (Xeon model 207, 2 cores: 64x2x256x32 forward 13.7 ms in
/// bf16 against 7.5 in fp32). There, oneDNN's matmul runs the products on AMX, and the
/// softmax's exponent and the score gradient's product run in the products' epilogues, so no
/// float32 scores are stored:
///
///     forward:  P = exp(s ([Q, -m] [K, 1]^T)) (bf16),  [O', l] = P [V, 1],  O = O' / l,
///               lse = s m + log l
///     backward: P = exp(s ([Q, -lse/s] [K, 1]^T)),  dV = P^T dO,
///               dS = P * s ([dO, -rowsum(dO O)] [V, 1]^T) (bf16),  dQ = dS K,  dK = dS^T Q
///
/// Each row's shift rides in an extra column of the left operand against a column of ones
/// (in three parts where bf16 holds it: about 8 bits each). The forward's shift m is a bound
/// on the row's scores, |q| max |k| (Cauchy-Schwarz), not their maximum, so that the scores
/// need not be seen first; where 2 s m could pass `exponentLimit` (the largest term of P would
/// get too small to hold its row's precision), the part takes the materialised way instead:
/// S = Q K^T in float32, its exact row maxima, then P and O. The row sums l come from the
/// same rounded P that the product sums. Every product accumulates in fp32; P, dS and O are
/// rounded once each.
///
/// Operands are [B, H, L, D] views with unit stride in D (heads as strided views of
/// [B, L, H, D]); on a CPU without bf16 products the same code runs them in fp32 (tests).
enum ChunkedAttention {
    /// Whether bf16 attention runs here rather than in `FusedAttention`: oneDNN runs bf16
    /// products on AMX (`MatmulKernel.amxBF16`), unless `DIFFUSE_ATTENTION=fused`.
    static let preferred: Bool = MatmulKernel.amxBF16
        && ProcessInfo.processInfo.environment["DIFFUSE_ATTENTION"] != "fused"

    /// Scores per chunk (bf16 P and dS, plus fp32 S where materialised): 8-16 MB. Larger
    /// chunks were faster (fewer calls) up to 4M-8M scores (64x2x256x32 on Xeon model 207).
    static let chunkElements = 1 << 22

    /// The largest s (m_i + |q_i| max |k|) (twice the scaled bound, the most a row's largest
    /// score can lie below m_i) for which the forward's exponent runs in the product: the row's
    /// largest term of P is then at least e^-64, and every term within e^-23 of it is a normal
    /// float.
    static let exponentLimit: Float = 64

    /// A part of the batch: entries, heads within them, and queries within those.
    private struct Part {
        let entries: Range<Int>, heads: Range<Int>, queries: Range<Int>?
        /// t's part ([B, H, ...]).
        func of(_ t: Tensor) -> Tensor { t[entries].sliced(axis: 1, heads) }
        /// The part of t that is per query ([B, H, Lq, ...]).
        func queriesOf(_ t: Tensor) -> Tensor { queries.map { of(t).sliced(axis: 2, $0) } ?? of(t) }
    }

    /// The batch in parts of at most `elements` scores: whole entries where one fits, else the
    /// heads of one entry (at least one head a part), and, `splittingQueries` (the forward: its
    /// rows are independent), one head's queries.
    private static func parts(_ q: Tensor, _ k: Tensor, _ elements: Int, splittingQueries: Bool = false) -> [Part] {
        let (b, h, lq, lk) = (q.shape[0], q.shape[1], q.shape[2], k.shape[2])
        let perHead = lq * lk
        if h * perHead <= elements {
            let n = Swift.max(1, elements / Swift.max(1, h * perHead))
            return stride(from: 0, to: b, by: n).map { Part(entries: $0..<Swift.min(b, $0 + n), heads: 0..<h, queries: nil) }
        }
        if perHead <= elements || !splittingQueries {
            let n = Swift.max(1, elements / Swift.max(1, perHead))
            return (0..<b).flatMap { e in
                stride(from: 0, to: h, by: n).map { Part(entries: e..<(e + 1), heads: $0..<Swift.min(h, $0 + n), queries: nil) }
            }
        }
        let n = Swift.max(1, elements / lk)
        return (0..<b).flatMap { e in
            (0..<h).flatMap { head in
                stride(from: 0, to: lq, by: n).map { Part(entries: e..<(e + 1), heads: head..<(head + 1), queries: $0..<Swift.min(lq, $0 + n)) }
            }
        }
    }

    /// out [B, Lq, H, Dv] in the operands' type (bf16 rounded once from the fp32 rows; returned
    /// as the [B, H, Lq, Dv] view) and the log-sum-exp of each query row's scaled scores [B, H,
    /// Lq], as `FusedAttention.forward`. `inKernel: false` materialises every chunk (tests).
    static func forward(_ q: Tensor, _ k: Tensor, _ v: Tensor, scale: Float,
                        chunkElements: Int = chunkElements, inKernel: Bool = true) -> (out: Tensor, lse: Tensor) {
        let (b, h, lq, dv) = (q.shape[0], q.shape[1], q.shape[2], v.shape[3])
        let low: DType = q.dtype == .bfloat16 ? .bfloat16 : .float32
        let out = Tensor(uninitializedShape: [b, lq, h, dv], dtype: low).permuted(0, 2, 1, 3)
        let lse = Tensor(uninitializedShape: [b, h, lq], dtype: .float32)
        for r in parts(q, k, chunkElements, splittingQueries: true) where q.shape[2] > 0 {
            let chunk = Chunk(q: r.queriesOf(q), k: r.of(k), v: r.of(v), scale: scale)
            let (out, lse) = (r.queriesOf(out), r.queriesOf(lse))
            if inKernel && chunk.forwardInKernel(out: out, lse: lse) { continue }
            chunk.forwardMaterialised(out: out, lse: lse)
        }
        return (out, lse)
    }

    /// dQ, dK, dV for q, k, v, the forward's `out` (bf16 or fp32) and `lse`, and dL/dout `gout`
    /// (rounded to bf16 once where the products run in bf16): in the operands' type, each laid
    /// out [B, L, H, D] and returned as the [B, H, L, D] view (the layout heads come from, so
    /// that undoing the head split copies nothing).
    static func backward(_ q: Tensor, _ k: Tensor, _ v: Tensor, out: Tensor, lse: Tensor, gout: Tensor,
                         scale: Float, chunkElements: Int = chunkElements, inKernel: Bool = true) -> (Tensor, Tensor, Tensor) {
        let low: DType = q.dtype == .bfloat16 ? .bfloat16 : .float32
        let g = FusedAttention.rows(gout, as: low)
        let gradient = { (x: Tensor) in
            Tensor(uninitializedShape: [x.shape[0], x.shape[2], x.shape[1], x.shape[3]], dtype: low).permuted(0, 2, 1, 3)
        }
        let (dq, dk, dv) = (gradient(q), gradient(k), gradient(v))
        // No queries or no keys: nothing attends, and every gradient is 0.
        if q.shape[2] == 0 || k.shape[2] == 0 {
            for t in [dq, dk, dv] { t.fill(0) }
            return (dq, dk, dv)
        }
        for r in parts(q, k, chunkElements) {
            let chunk = Chunk(q: r.of(q), k: r.of(k), v: r.of(v), scale: scale)
            let (lse, g) = (r.of(lse), r.of(g))
            let deltas = chunk.deltas(out: r.of(out), gout: g)
            if inKernel && chunk.backwardInKernel(lse: lse, gout: g, deltas: deltas, dq: r.of(dq), dk: r.of(dk), dv: r.of(dv)) { continue }
            chunk.backwardMaterialised(lse: lse, gout: g, deltas: deltas, dq: r.of(dq), dk: r.of(dk), dv: r.of(dv))
        }
        return (dq, dk, dv)
    }

    /// One chunk's operands, [n, H, L, D] views.
    struct Chunk {
        let q: Tensor, k: Tensor, v: Tensor
        let scale: Float
        let n: Int, h: Int, lq: Int, lk: Int, d: Int, dv: Int

        init(q: Tensor, k: Tensor, v: Tensor, scale: Float) {
            (self.q, self.k, self.v, self.scale) = (q, k, v, scale)
            (n, h, lq, lk, d, dv) = (q.shape[0], q.shape[1], q.shape[2], k.shape[2], q.shape[3], v.shape[3])
        }
        var rows: Int { n * h * lq }
        var low: DType { q.dtype == .bfloat16 ? .bfloat16 : .float32 }

        // MARK: Forward

        /// The forward with P's exponent in the QK^T product; false (nothing written) where a
        /// row's bound could put P below its precision (`exponentLimit`) or oneDNN has no such
        /// kernel.
        func forwardInKernel(out: Tensor, lse: Tensor) -> Bool {
            let (h, lq, d, dv) = (self.h, self.lq, self.d, self.dv)
            let (qNorms, kNorms) = (ChunkedAttention.norms(q), ChunkedAttention.norms(k))
            // Each row's shift: |q_i| max_j |k_j|, raised by 2^-6 to stay an upper bound once
            // rounded to the operands' type.
            var shifts = [Float](repeating: 0, count: rows)
            for head in 0..<(n * h) {
                let kMax = kNorms[(head * lk)..<((head + 1) * lk)].max() ?? 0
                for i in 0..<lq {
                    let bound = qNorms[head * lq + i] * kMax
                    // NaN and infinity fail this test too: the materialised way handles them.
                    guard 2 * scale * bound <= ChunkedAttention.exponentLimit else { return false }
                    shifts[head * lq + i] = ChunkedAttention.rounded(bound * (1 + 1 / 64), to: low)
                }
            }
            let width = ChunkedAttention.padded(d + 1, to: 32)
            let qa = ChunkedAttention.augmented(q, width: width, count: 1, shifts.map { -$0 })
            let ka = ChunkedAttention.augmented(k, width: width, count: 1, [1])
            let p = Tensor(uninitializedShape: [n, h, lq, lk], dtype: low)
            guard MatmulKernel.multiply(qa, ka.transposed(), into: p, epilogue: .exp(scale: scale)) else { return false }
            // [P V, rowsum(P)] in one product, against a column of ones after V's.
            let widthV = ChunkedAttention.padded(dv + 1, to: 16)
            let va = ChunkedAttention.augmented(v, width: widthV, count: 1, [1])
            let o = MatmulKernel.product(p, va)
            let (op, width2, scale) = (SendablePointer(o.pointer(as: Float.self)), va.shape[3], self.scale)
            let lp = SendablePointer(lse.pointer(as: Float.self))
            let output = OutputRows(out, h: h, lq: lq)
            shifts.withUnsafeBufferPointer { sb in
                let sp = RawPointer(sb.baseAddress!)
                Parallel.forEach(rows, cost: 2 * dv) { row in
                    let x = op.p + row * width2, total = x[dv]
                    output.write(row, x, times: 1 / total)
                    lp.p[row] = scale * sp.p.assumingMemoryBound(to: Float.self)[row] + Foundation.log(total)
                }
            }
            return true
        }

        /// The forward through fp32 scores: S = Q K^T, each row's exact maximum, P rounded from
        /// e^(S s - max) (lse kept), O = (P V) / rowsum.
        func forwardMaterialised(out: Tensor, lse: Tensor) {
            let (h, lq, lk, dv, scale) = (self.h, self.lq, self.lk, self.dv, self.scale)
            let s = MatmulKernel.product(q, k.transposed())
            let p = Tensor(uninitializedShape: s.shape, dtype: low)
            let sp = SendablePointer(s.pointer(as: Float.self))
            let lp = SendablePointer(lse.pointer(as: Float.self))
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
                    ChunkedAttention.store(x, into: p, row: row, count: lk)
                }
            }
            // Each row of P V over its sum, into the output rows (rounded once where bf16).
            let o = MatmulKernel.product(p, v)
            let op = SendablePointer(o.pointer(as: Float.self))
            let output = OutputRows(out, h: h, lq: lq)
            Parallel.forEach(rows, cost: 2 * dv) { row in output.write(row, op.p + row * dv, times: norms.p[row]) }
        }

        // MARK: Backward

        /// rowsum(dO O) of each query row, dO as the products see it and O as the forward gave it.
        func deltas(out: Tensor, gout: Tensor) -> [Float] {
            let (h, lq, dv) = (self.h, self.lq, self.dv)
            var result = [Float](repeating: 0, count: rows)
            let (G16, G32) = (FusedAttention.Operand<UInt16>(gout), FusedAttention.Operand<Float>(gout))
            let (O16, O32) = (FusedAttention.Operand<UInt16>(out), FusedAttention.Operand<Float>(out))
            let (gLow, oLow) = (gout.dtype == .bfloat16, out.dtype == .bfloat16)
            result.withUnsafeMutableBufferPointer { rb in
                let rp = SendablePointer(rb.baseAddress!)
                Parallel.forEach(rows, cost: 2 * dv) { row in
                    let (bi, hi, i) = (row / (h * lq), row / lq % h, row % lq)
                    let (gr, or) = (G16.at(bi, hi, i), O16.at(bi, hi, i))
                    let (gf, of) = (G32.at(bi, hi, i), O32.at(bi, hi, i))
                    var delta: Float = 0
                    for e in 0..<dv {
                        let go = gLow ? Float(bitPattern: UInt32(gr[e]) &<< 16) : gf[e]
                        let o = oLow ? Float(bitPattern: UInt32(or[e]) &<< 16) : of[e]
                        delta += go * o
                    }
                    rp.p[row] = delta
                }
            }
            return result
        }

        /// The backward with P's exponent and dS's product in the kernels; false where oneDNN
        /// has no such kernel (then the gradients are not all written).
        func backwardInKernel(lse: Tensor, gout: Tensor, deltas: [Float], dq: Tensor, dk: Tensor, dv: Tensor) -> Bool {
            let (lp, scale, low) = (lse.pointer(as: Float.self), self.scale, self.low)
            let width = ChunkedAttention.padded(d + 3, to: 32), widthV = ChunkedAttention.padded(self.dv + 3, to: 32)
            let qa = ChunkedAttention.augmented(q, width: width, count: 3,
                                                ChunkedAttention.split((0..<rows).map { -lp[$0] / scale }, low))
            let ka = ChunkedAttention.augmented(k, width: width, count: 3, [1, 1, 1])
            let p = Tensor(uninitializedShape: [n, h, lq, lk], dtype: low)
            guard MatmulKernel.multiply(qa, ka.transposed(), into: p, epilogue: .exp(scale: scale)) else { return false }
            let ga = ChunkedAttention.augmented(gout, width: widthV, count: 3, ChunkedAttention.split(deltas.map { -$0 }, low))
            let va = ChunkedAttention.augmented(v, width: widthV, count: 3, [1, 1, 1])
            let ds = Tensor(uninitializedShape: p.shape, dtype: low)
            guard MatmulKernel.multiply(ga, va.transposed(), into: ds, epilogue: .scaledProduct(scale: scale, by: p)) else { return false }
            MatmulKernel.multiply(p.transposed(), gout, into: dv)
            MatmulKernel.multiply(ds, k, into: dq)
            MatmulKernel.multiply(ds.transposed(), q, into: dk)
            return true
        }

        /// The backward through fp32 scores: S again, P = exp(S s - lse), dV = P^T dO,
        /// dP = dO V^T, dS = P (dP - delta) s, dQ = dS K, dK = dS^T Q.
        func backwardMaterialised(lse: Tensor, gout: Tensor, deltas: [Float], dq: Tensor, dk: Tensor, dv: Tensor) {
            let (lk, scale) = (self.lk, self.scale)
            let s = MatmulKernel.product(q, k.transposed())
            let p = Tensor(uninitializedShape: s.shape, dtype: low)
            let sp = SendablePointer(s.pointer(as: Float.self))
            let lp = SendablePointer(lse.pointer(as: Float.self))
            Parallel.forEach(rows, cost: 24 * lk) { row in
                let x = sp.p + row * lk
                FusedAttention.exponentiateRow(x, lk, scale: scale, shift: lp.p[row])
                ChunkedAttention.store(x, into: p, row: row, count: lk)
            }
            MatmulKernel.multiply(p.transposed(), gout, into: dv)
            let dp = MatmulKernel.product(gout, v.transposed())
            let dpp = SendablePointer(dp.pointer(as: Float.self))
            deltas.withUnsafeBufferPointer { db in
                let deltas = RawPointer(db.baseAddress!)
                Parallel.forEach(rows, cost: 8 * lk) { row in
                    let x = dpp.p + row * lk
                    FusedAttention.scoreGradientRow(sp.p + row * lk, x, lk, delta: deltas.p.assumingMemoryBound(to: Float.self)[row],
                                                    scale: scale)
                    ChunkedAttention.store(x, into: p, row: row, count: lk)
                }
            }
            MatmulKernel.multiply(p, k, into: dq)
            MatmulKernel.multiply(p.transposed(), q, into: dk)
        }
    }

    // MARK: Helpers

    /// The output's query rows ([n, H, Lq, Dv], any strides, bf16 or fp32), each written from
    /// float32 values times its 1 / rowsum (rounded once where bf16).
    private struct OutputRows: @unchecked Sendable {
        let o16: FusedAttention.Operand<UInt16>, o32: FusedAttention.Operand<Float>
        let bf16: Bool, h: Int, lq: Int, dv: Int

        init(_ out: Tensor, h: Int, lq: Int) {
            (o16, o32, bf16) = (FusedAttention.Operand<UInt16>(out), FusedAttention.Operand<Float>(out), out.dtype == .bfloat16)
            (self.h, self.lq, dv) = (h, lq, out.shape[3])
        }

        /// Row `row` from x (dv values, scaled in place).
        func write(_ row: Int, _ x: UnsafeMutablePointer<Float>, times inv: Float) {
            for e in 0..<dv { x[e] *= inv }
            let (bi, hi, i) = (row / (h * lq), row / lq % h, row % lq)
            if bf16 {
                BFloat16Runs.narrow(x, 1, o16.at(bi, hi, i), 1, dv)
            } else {
                o32.at(bi, hi, i).update(from: x, count: dv)
            }
        }
    }

    /// x [n, H, L, D] (unit stride in D) copied into a new contiguous [n, H, L, width] of x's
    /// type, each row followed by `leading` values (float32, rounded to x's type; `count` per
    /// row in row order, or one set of them for every row) and then zeros.
    private static func augmented(_ x: Tensor, width: Int, count: Int, _ leading: [Float]) -> Tensor {
        let (h, l, d) = (x.shape[1], x.shape[2], x.shape[3])
        let (rows, size) = (x.shape[0] * h * l, x.dtype.byteSize)
        precondition(d + count <= width && (leading.count == count || leading.count == rows * count))
        let step = leading.count == count ? 0 : count * size
        let out = Tensor(uninitializedShape: [x.shape[0], h, l, width], dtype: x.dtype)
        let (src, dst) = (RawPointer(x.baseAddress), SendablePointer(out.baseAddress.assumingMemoryBound(to: UInt8.self)))
        let (sb, sh, sl) = (x.strides[0] * size, x.strides[1] * size, x.strides[2] * size)
        let copy = { (values: UnsafeRawPointer) in
            let vp = RawPointer(values)
            Parallel.forRanges(rows, grain: Swift.max(1, 16384 / width)) { range in
                for row in range {
                    let o = UnsafeMutableRawPointer(dst.p + row * width * size)
                    o.copyMemory(from: src.p + (row / (h * l)) * sb + (row / l % h) * sh + (row % l) * sl, byteCount: d * size)
                    (o + d * size).copyMemory(from: vp.p + row * step, byteCount: count * size)
                    (o + (d + count) * size).initializeMemory(as: UInt8.self, repeating: 0, count: (width - d - count) * size)
                }
            }
        }
        if x.dtype == .bfloat16 {
            leading.map { BFloat16($0).bitPattern }.withUnsafeBytes { copy($0.baseAddress!) }
        } else {
            leading.withUnsafeBytes { copy($0.baseAddress!) }
        }
        return out
    }

    /// The Euclidean norm of each row of x [n, H, L, D] (as float32), in row order.
    private static func norms(_ x: Tensor) -> [Float] {
        x.dtype == .bfloat16 ? norms(x, BF16Element.self) : norms(x, F32Element.self)
    }

    private static func norms<E: ActivationElement>(_ x: Tensor, _ e: E.Type) -> [Float] {
        let (h, l, d, size) = (x.shape[1], x.shape[2], x.shape[3], x.dtype.byteSize)
        var result = [Float](repeating: 0, count: x.shape[0] * h * l)
        let src = RawPointer(x.baseAddress)
        let (sb, sh, sl) = (x.strides[0] * size, x.strides[1] * size, x.strides[2] * size)
        result.withUnsafeMutableBufferPointer { rb in
            let rp = SendablePointer(rb.baseAddress!)
            Parallel.forRanges(rb.count, grain: Swift.max(1, 16384 / d)) { range in
                for row in range {
                    let r = src.p + (row / (h * l)) * sb + (row / l % h) * sh + (row % l) * sl
                    var sum = Vec8()
                    var j = 0
                    while j + 8 <= d {
                        let v = E.load8(r, j)
                        sum = sum.addingProduct(v, v)
                        j += 8
                    }
                    if j < d {
                        let v = E.load(r, j, d - j)
                        sum = sum.addingProduct(v, v)
                    }
                    rp.p[row] = sum.sum().squareRoot()
                }
            }
        }
        return result
    }

    /// x as `type` holds it (rounded to nearest for bf16).
    private static func rounded(_ x: Float, to type: DType) -> Float { type == .bfloat16 ? BFloat16(x).float : x }

    /// Each of `values` as a sum of three values exact in `type` (to float32 precision for
    /// bf16's 8 bits apiece), in order.
    private static func split(_ values: [Float], _ type: DType) -> [Float] {
        var out = [Float](repeating: 0, count: 3 * values.count)
        for (i, x) in values.enumerated() {
            let e0 = rounded(x, to: type), e1 = rounded(x - e0, to: type)
            (out[3 * i], out[3 * i + 1], out[3 * i + 2]) = (e0, e1, rounded(x - e0 - e1, to: type))
        }
        return out
    }

    private static func padded(_ n: Int, to multiple: Int) -> Int { (n + multiple - 1) / multiple * multiple }

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
