import Testing
@testable import Tensors

/// `AMXAttention` (bf16 attention a head at a time on AMX tiles) against float32
/// `FusedAttention` on the same bf16 values, where the CPU has AMX: within the roundings of
/// P, dS and the outputs, as `ChunkedAttention`'s. Head views are strided as the attention
/// layers pass them; the shapes cover several 32-blocks of queries, keys and head width, and
/// keys fewer and more than queries.
@Suite(.enabled(if: AMXAttention.available, "needs AMX (and DIFFUSE_ATTENTION unset)")) struct AMXAttentionTests {
    typealias B = BFloat16KernelTests
    typealias C = ChunkedAttentionTests

    static let shapes = [(3, 64, 32, 32, 2), (2, 32, 96, 64, 1), (1, 256, 256, 32, 2), (2, 64, 64, 256, 1)]

    @Test func matchesFloat32() {
        for (batch, lq, lk, d, heads) in Self.shapes {
            let (q, k, v) = C.operands(batch: batch, lq: lq, lk: lk, d: d, heads: heads, dtype: .bfloat16)
            #expect(AMXAttention.supports(q, k, v))
            let (q32, k32, v32) = (q.to(.float32), k.to(.float32), v.to(.float32))
            let scale = 1 / Float(d).squareRoot()
            let (want, wantLSE) = FusedAttention.forward(q32, k32, v32, scale: scale)
            let g = random([batch, heads, lq, d], seed: 34).to(.bfloat16)
            let ref = FusedAttention.backward(q32, k32, v32, out: want, lse: wantLSE, gout: g.to(.float32), scale: scale)
            let (out, lse) = AMXAttention.forward(q, k, v, scale: scale)
            #expect(out.dtype == .bfloat16 && out.shape == want.shape && lse.shape == wantLSE.shape)
            let bound = 2 / Float(1 << 9) * B.maxMagnitude(v) + 1e-5
            #expect(B.maxDifference(out, want) <= bound, "\(lq)x\(lk)x\(d): \(B.maxDifference(out, want)) > \(bound)")
            #expect(B.maxDifference(lse, wantLSE) <= 1 / 256, "\(lq)x\(lk)x\(d) lse: \(B.maxDifference(lse, wantLSE))")
            let got = AMXAttention.backward(q, k, v, out: out, lse: lse, gout: g, scale: scale)
            for (name, a, b) in [("dq", got.0, ref.0), ("dk", got.1, ref.1), ("dv", got.2, ref.2)] {
                #expect(a.dtype == .bfloat16 && a.shape == b.shape)
                #expect(B.maxDifference(a, b) <= 1e-2 * B.maxMagnitude(b), "\(lq)x\(lk)x\(d) \(name): \(B.maxDifference(a, b)) of \(B.maxMagnitude(b))")
            }
        }
    }

    /// Large scores (a row's terms of P spread over e^-100 and more): the exact row maximum
    /// keeps the softmax right where a bound on the scores would not.
    @Test func largeScores() {
        let (q0, k, v) = C.operands(batch: 1, lq: 32, lk: 64, d: 32, heads: 2, dtype: .float32)
        let q = (q0 * 40).to(.bfloat16), (kb, vb) = (k.to(.bfloat16), v.to(.bfloat16))
        let (out, lse) = AMXAttention.forward(q, kb, vb, scale: 1 / Float(32).squareRoot())
        let (want, wantLSE) = FusedAttention.forward(q.to(.float32), kb.to(.float32), vb.to(.float32), scale: 1 / Float(32).squareRoot())
        #expect(B.maxDifference(out, want) <= 2 / Float(1 << 9) * B.maxMagnitude(v) + 1e-5)
        #expect(B.maxDifference(lse, wantLSE) <= 1 / 256 * Swift.max(1, B.maxMagnitude(wantLSE) / 64))
    }

    /// A NaN in a query gives NaN in that query's output row only.
    @Test func nanStaysInItsRow() {
        C.expectNaNStaysInItsRow(lq: 32, lk: 32, d: 32, row: 5) { AMXAttention.forward($0, $1, $2, scale: 0.25).out }
    }

    /// Through `scaledDotProductAttention` (the path the U-Net takes), with dO as a sum's
    /// gradient brings it (expanded: every stride 0): the kernel's own results.
    @Test func throughTheOperation() throws {
        let (q, k, v) = C.operands(batch: 2, lq: 64, lk: 64, d: 32, heads: 2, dtype: .bfloat16)
        let (value, grads) = valueAndGradient(at: [q, k, v]) { t in scaledDotProductAttention(query: t[0], key: t[1], value: t[2]).sum() }
        let scale = 1 / Float(32).squareRoot()
        let (out, lse) = AMXAttention.forward(q, k, v, scale: scale)
        let ones = Tensor.ones([1, 1, 1, 1], dtype: .bfloat16).expanded(out.shape)
        let want = AMXAttention.backward(q, k, v, out: out, lse: lse, gout: ones.contiguous(), scale: scale)
        #expect(Swift.abs(value.to(.float32).item - out.to(.float32).sum().item) <= 1e-2 * Swift.max(1, Swift.abs(value.to(.float32).item)))
        for (a, b) in zip(grads, [want.0, want.1, want.2]) { #expect(B.maxDifference(a, b) == 0) }
    }

    /// Lengths or widths off the 32-blocks, and float32, are not taken (the caller goes on to
    /// `ChunkedAttention`).
    @Test func shapesItDoesNotTake() {
        for (lq, lk, d) in [(40, 32, 32), (32, 33, 32), (32, 32, 40)] {
            let (q, k, v) = C.operands(batch: 1, lq: lq, lk: lk, d: d, heads: 1, dtype: .bfloat16)
            #expect(!AMXAttention.supports(q, k, v), "\(lq)x\(lk)x\(d)")
        }
        let (q, k, v) = C.operands(batch: 1, lq: 32, lk: 32, d: 32, heads: 1, dtype: .float32)
        #expect(!AMXAttention.supports(q, k, v))
    }
}
