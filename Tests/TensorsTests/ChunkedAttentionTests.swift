import Testing
@testable import Tensors

/// `ChunkedAttention` (the bf16 attention where oneDNN has AMX) against `FusedAttention` on
/// any CPU: in float32 to rounding, and on bf16 operands within the roundings of P and dS.
/// Small chunks split the batch unevenly; head views are strided as the attention layers
/// pass them; odd key counts give the AVX-512 row kernel a tail.
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

    @Test func float32MatchesFusedAttention() throws {
        try #require(FusedAttention.supports(random([1, 1, 2, 2], seed: 1), random([1, 1, 2, 2], seed: 1), random([1, 1, 2, 2], seed: 1)))
        for (batch, lq, lk, d, heads) in Self.shapes {
            let (q, k, v) = Self.operands(batch: batch, lq: lq, lk: lk, d: d, heads: heads, dtype: .float32)
            let scale = 1 / Float(d).squareRoot()
            // Chunks of 2 batch entries: the last one short where the batch is odd.
            let chunk = 2 * heads * lq * lk
            let (out, lse) = ChunkedAttention.forward(q, k, v, scale: scale, chunkElements: chunk)
            let (want, wantLSE) = FusedAttention.forward(q, k, v, scale: scale)
            #expect(out.shape == want.shape && lse.shape == wantLSE.shape)
            #expect(B.maxDifference(out, want) <= 1e-5 * B.maxMagnitude(v), "\(lq)x\(lk)x\(d) out")
            #expect(B.maxDifference(lse, wantLSE) <= 1e-4, "\(lq)x\(lk)x\(d) lse")
            let g = random([batch, heads, lq, d], seed: 32)
            let got = ChunkedAttention.backward(q, k, v, out: out, lse: lse, gout: g, scale: scale, chunkElements: chunk)
            let ref = FusedAttention.backward(q, k, v, out: want, lse: wantLSE, gout: g, scale: scale)
            for (name, a, b) in [("dq", got.0, ref.0), ("dk", got.1, ref.1), ("dv", got.2, ref.2)] {
                #expect(a.shape == b.shape && a.dtype == .float32)
                #expect(B.maxDifference(a, b) <= 1e-4 * B.maxMagnitude(b), "\(lq)x\(lk)x\(d) \(name): \(B.maxDifference(a, b))")
            }
        }
    }

    /// bf16 operands against float32 attention on the same values: P is rounded to bf16 before
    /// P V and the output once more (2^-9 of the largest |v| each), dO, P and dS before the
    /// backward's products (which read the bf16 output for rowsum(dO O)).
    @Test func bfloat16MatchesFloat32() {
        for (batch, lq, lk, d, heads) in Self.shapes {
            let (q, k, v) = Self.operands(batch: batch, lq: lq, lk: lk, d: d, heads: heads, dtype: .bfloat16)
            let (q32, k32, v32) = (q.to(.float32), k.to(.float32), v.to(.float32))
            let scale = 1 / Float(d).squareRoot()
            let chunk = 2 * heads * lq * lk
            let (out, lse) = ChunkedAttention.forward(q, k, v, scale: scale, chunkElements: chunk)
            #expect(out.dtype == .bfloat16)
            let (want, wantLSE) = FusedAttention.forward(q32, k32, v32, scale: scale)
            let bound = 2 / Float(1 << 9) * B.maxMagnitude(v) + 1e-5
            #expect(B.maxDifference(out, want) <= bound, "\(lq)x\(lk)x\(d): \(B.maxDifference(out, want)) > \(bound)")
            #expect(B.maxDifference(lse, wantLSE) <= 1e-4, "\(lq)x\(lk)x\(d) lse")
            let g = random([batch, heads, lq, d], seed: 33).to(.bfloat16)
            let got = ChunkedAttention.backward(q, k, v, out: out, lse: lse, gout: g, scale: scale, chunkElements: chunk)
            let ref = FusedAttention.backward(q32, k32, v32, out: want, lse: wantLSE, gout: g.to(.float32), scale: scale)
            for (name, a, b) in [("dq", got.0, ref.0), ("dk", got.1, ref.1), ("dv", got.2, ref.2)] {
                #expect(B.maxDifference(a, b) <= 1e-2 * B.maxMagnitude(b), "\(lq)x\(lk)x\(d) \(name): \(B.maxDifference(a, b)) of \(B.maxMagnitude(b))")
            }
        }
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
