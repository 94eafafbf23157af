import Testing
@testable import Tensors

/// `ChunkedAttention` (the bf16 attention where oneDNN has AMX) against `FusedAttention` on
/// any CPU: in float32 to rounding, and on bf16 operands within the roundings of P and dS.
/// Small chunks split the batch unevenly, and its heads, and (the forward) their queries; head
/// views are strided as the attention layers pass them; odd key counts give the AVX-512 row
/// kernel a tail.
@Suite struct ChunkedAttentionTests {
    typealias B = BFloat16KernelTests

    /// q [2x, heads, lq, d] and k, v [.., lk, d] as strided head views of [b, l, heads * d].
    static func operands(batch: Int, lq: Int, lk: Int, d: Int, heads: Int, dtype: DType) -> (Tensor, Tensor, Tensor) {
        let qkv = random([batch, lq, heads * d], seed: 30).to(dtype)
        let kv = random([batch, lk, 2 * heads * d], seed: 31).to(dtype)
        let q = qkv.reshaped([batch, lq, heads, d]).permuted(0, 2, 1, 3)
        let k = kv.sliced(axis: 2, start: 0, end: heads * d).reshaped([batch, lk, heads, d]).permuted(0, 2, 1, 3)
        let v = kv.sliced(axis: 2, start: heads * d, end: 2 * heads * d).reshaped([batch, lk, heads, d]).permuted(0, 2, 1, 3)
        return (q, k, v)
    }

    static let shapes = [(3, 40, 33, 16, 2), (5, 64, 77, 40, 1), (2, 17, 256, 32, 3)]

    /// Parts of 2 batch entries (the last one short where the batch is odd), of one head, and
    /// (the forward) of 7 queries of one head.
    static func chunks(_ lq: Int, _ lk: Int, _ heads: Int) -> [Int] { [2 * heads * lq * lk, lq * lk, 7 * lk] }

    @Test(arguments: [true, false]) func float32MatchesFusedAttention(inKernel: Bool) throws {
        try #require(FusedAttention.supports(random([1, 1, 2, 2], seed: 1), random([1, 1, 2, 2], seed: 1), random([1, 1, 2, 2], seed: 1)))
        for (batch, lq, lk, d, heads) in Self.shapes {
            let (q, k, v) = Self.operands(batch: batch, lq: lq, lk: lk, d: d, heads: heads, dtype: .float32)
            let scale = 1 / Float(d).squareRoot()
            let (want, wantLSE) = FusedAttention.forward(q, k, v, scale: scale)
            let g = random([batch, heads, lq, d], seed: 32)
            let ref = FusedAttention.backward(q, k, v, out: want, lse: wantLSE, gout: g, scale: scale)
            for chunk in Self.chunks(lq, lk, heads) {
                let (out, lse) = ChunkedAttention.forward(q, k, v, scale: scale, chunkElements: chunk, inKernel: inKernel)
                #expect(out.shape == want.shape && lse.shape == wantLSE.shape)
                #expect(B.maxDifference(out, want) <= 1e-5 * B.maxMagnitude(v), "\(lq)x\(lk)x\(d) out")
                #expect(B.maxDifference(lse, wantLSE) <= 1e-4, "\(lq)x\(lk)x\(d) lse")
                let got = ChunkedAttention.backward(q, k, v, out: out, lse: lse, gout: g, scale: scale, chunkElements: chunk,
                                                    inKernel: inKernel)
                for (name, a, b) in [("dq", got.0, ref.0), ("dk", got.1, ref.1), ("dv", got.2, ref.2)] {
                    #expect(a.shape == b.shape && a.dtype == .float32)
                    #expect(B.maxDifference(a, b) <= 1e-4 * B.maxMagnitude(b), "\(lq)x\(lk)x\(d) \(name): \(B.maxDifference(a, b))")
                }
            }
        }
    }

    /// bf16 operands against float32 attention on the same values: P is rounded to bf16 before
    /// P V and the output once more (2^-9 of the largest |v| each), dO, P and dS before the
    /// backward's products (which read the bf16 output for rowsum(dO O)). The log-sum-exp is
    /// that of the rounded P where the exponent runs in the product (within 2^-8).
    @Test(arguments: [true, false]) func bfloat16MatchesFloat32(inKernel: Bool) {
        for (batch, lq, lk, d, heads) in Self.shapes {
            let (q, k, v) = Self.operands(batch: batch, lq: lq, lk: lk, d: d, heads: heads, dtype: .bfloat16)
            let (q32, k32, v32) = (q.to(.float32), k.to(.float32), v.to(.float32))
            let scale = 1 / Float(d).squareRoot()
            let (want, wantLSE) = FusedAttention.forward(q32, k32, v32, scale: scale)
            let g = random([batch, heads, lq, d], seed: 33).to(.bfloat16)
            let ref = FusedAttention.backward(q32, k32, v32, out: want, lse: wantLSE, gout: g.to(.float32), scale: scale)
            for chunk in Self.chunks(lq, lk, heads) {
                let (out, lse) = ChunkedAttention.forward(q, k, v, scale: scale, chunkElements: chunk, inKernel: inKernel)
                #expect(out.dtype == .bfloat16)
                let bound = 2 / Float(1 << 9) * B.maxMagnitude(v) + 1e-5
                #expect(B.maxDifference(out, want) <= bound, "\(lq)x\(lk)x\(d): \(B.maxDifference(out, want)) > \(bound)")
                #expect(B.maxDifference(lse, wantLSE) <= 1 / 256, "\(lq)x\(lk)x\(d) lse")
                let got = ChunkedAttention.backward(q, k, v, out: out, lse: lse, gout: g, scale: scale, chunkElements: chunk,
                                                    inKernel: inKernel)
                for (name, a, b) in [("dq", got.0, ref.0), ("dk", got.1, ref.1), ("dv", got.2, ref.2)] {
                    #expect(a.dtype == .bfloat16)
                    #expect(B.maxDifference(a, b) <= 1e-2 * B.maxMagnitude(b), "\(lq)x\(lk)x\(d) \(name): \(B.maxDifference(a, b)) of \(B.maxMagnitude(b))")
                }
            }
        }
    }

    /// The forward's exponent runs in the product while the rows' bounds allow it, also with
    /// scores far below the bound (the largest terms of P near e^-60), and the materialised way
    /// takes over beyond: both give float32 attention's result. Where oneDNN runs bf16 on AMX,
    /// the in-kernel way is taken for the ordinary operands.
    @Test func boundsChooseTheWay() {
        let (lq, lk, d, heads) = (24, 40, 32, 2)
        let (q0, k0, v) = Self.operands(batch: 2, lq: lq, lk: lk, d: d, heads: heads, dtype: .float32)
        let scale = 1 / Float(d).squareRoot()
        // |q| max |k| (about 6 * 9 here) times 1, times about 5.5 (2 s bound near 60), times 30.
        let kMax = k0.square().sum(axes: [3]).sqrt().max().item
        let qMax = q0.square().sum(axes: [3]).sqrt().max().item
        let near = 29 / (scale * qMax * kMax)
        for (factor, inKernel) in [(Float(1), true), (near, true), (30, false)] {
            let q = (q0 * factor).to(.bfloat16), k = k0.to(.bfloat16), vb = v.to(.bfloat16)
            let chunk = ChunkedAttention.Chunk(q: q, k: k, v: vb, scale: scale)
            let out = Tensor(uninitializedShape: [2, lq, heads, d], dtype: .bfloat16).permuted(0, 2, 1, 3)
            let lse = Tensor(uninitializedShape: [2, heads, lq], dtype: .float32)
            let ran = chunk.forwardInKernel(out: out, lse: lse)
            if !inKernel { #expect(!ran, "factor \(factor): bound past the limit") }
            if inKernel && ChunkedAttention.preferred { #expect(ran, "factor \(factor)") }
            let (got, gotLSE) = ChunkedAttention.forward(q, k, vb, scale: scale)
            let (want, wantLSE) = FusedAttention.forward(q.to(.float32), k.to(.float32), vb.to(.float32), scale: scale)
            let bound = 2 / Float(1 << 9) * B.maxMagnitude(v) + 1e-5
            #expect(B.maxDifference(got, want) <= bound, "factor \(factor): \(B.maxDifference(got, want))")
            #expect(B.maxDifference(gotLSE, wantLSE) <= 1 / 256 * Swift.max(1, B.maxMagnitude(wantLSE) / 64), "factor \(factor) lse")
        }
    }

    /// A NaN in a query gives NaN in that query's output row only.
    @Test func nanStaysInItsRow() {
        Self.expectNaNStaysInItsRow(lq: 4, lk: 8, d: 16, row: 2) { ChunkedAttention.forward($0, $1, $2, scale: 0.25).out }
    }

    /// `forward` (bf16 q, k, v of one head: [1, 1, lq, d], [1, 1, lk, d] twice) with a NaN in
    /// query `row` gives NaN in that output row and in no other.
    static func expectNaNStaysInItsRow(lq: Int, lk: Int, d: Int, row: Int, _ forward: (Tensor, Tensor, Tensor) -> Tensor) {
        let (q0, k, v) = operands(batch: 1, lq: lq, lk: lk, d: d, heads: 1, dtype: .float32)
        var values = q0.contiguous().scalars
        values[d * row] = .nan
        let q = Tensor(values, shape: q0.shape).to(.bfloat16)
        let rows = forward(q, k.to(.bfloat16), v.to(.bfloat16)).to(.float32).contiguous().scalars
        for i in 0..<lq { #expect(rows[(d * i)..<(d * (i + 1))].allSatisfy(\.isNaN) == (i == row), "row \(i)") }
    }

    /// dO as a sum's gradient brings it (expanded: every stride 0) gives what a dense dO does.
    @Test func expandedOutputGradient() {
        let (q, k, v) = Self.operands(batch: 3, lq: 10, lk: 12, d: 16, heads: 2, dtype: .bfloat16)
        let (out, lse) = ChunkedAttention.forward(q, k, v, scale: 0.25)
        let ones = Tensor.ones([1, 1, 1, 1], dtype: .bfloat16).expanded(out.shape)
        let got = ChunkedAttention.backward(q, k, v, out: out, lse: lse, gout: ones, scale: 0.25)
        let want = ChunkedAttention.backward(q, k, v, out: out, lse: lse, gout: ones.contiguous(), scale: 0.25)
        for (a, b) in [(got.0, want.0), (got.1, want.1), (got.2, want.2)] { #expect(B.maxDifference(a, b) == 0) }
    }

    /// No queries: an empty output, and zero gradients for the keys and values. No keys: zero
    /// gradients.
    @Test func emptySequences() {
        let (q, k, v) = Self.operands(batch: 2, lq: 0, lk: 5, d: 8, heads: 2, dtype: .bfloat16)
        let (out, lse) = ChunkedAttention.forward(q, k, v, scale: 0.3)
        #expect(out.shape == [2, 2, 0, 8] && lse.shape == [2, 2, 0])
        let (_, dk, dv) = ChunkedAttention.backward(q, k, v, out: out, lse: lse, gout: out, scale: 0.3)
        #expect(B.maxMagnitude(dk) == 0 && B.maxMagnitude(dv) == 0 && dk.shape == k.shape)
        let (q2, k2, v2) = Self.operands(batch: 2, lq: 3, lk: 0, d: 8, heads: 2, dtype: .bfloat16)
        let g = random([2, 2, 3, 8], seed: 9).to(.bfloat16)
        let (dq, _, _) = ChunkedAttention.backward(q2, k2, v2, out: g, lse: Tensor.zeros([2, 2, 3]), gout: g, scale: 0.3)
        #expect(dq.shape == q2.shape && B.maxMagnitude(dq) == 0)
    }

    /// The products write into strided destinations: a primitive made for a contiguous
    /// output of the same shape must not be reused for a strided one (the cache key holds
    /// the destination's strides).
    @Test func productsIntoStridedDestinations() {
        let (_, _, v) = Self.operands(batch: 3, lq: 8, lk: 33, d: 16, heads: 2, dtype: .float32)
        let p = random([3, 2, 40, 33], seed: 5)
        let want = matmul(p, v.contiguous())
        let contiguous = Tensor(uninitializedShape: [3, 2, 40, 16], dtype: .float32)
        MatmulKernel.multiply(p, v, into: contiguous)
        let strided = Tensor(uninitializedShape: [3, 40, 2, 16], dtype: .float32).permuted(0, 2, 1, 3)
        MatmulKernel.multiply(p, v, into: strided)
        #expect(B.maxDifference(contiguous, want) <= 1e-5 && B.maxDifference(strided, want) <= 1e-5)
        #expect(B.maxDifference(MatmulKernel.product(p, v), want) <= 1e-5)
    }
}
