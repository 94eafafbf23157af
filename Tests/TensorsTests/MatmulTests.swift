import Testing
import Tensors

@Suite struct MatmulTests {
    /// Naive product in Double of row-major [b, m, k] x [b, k, n].
    static func reference(_ a: [Float], _ b: [Float], batch: Int, m: Int, k: Int, n: Int,
                          aBatch: Bool = true, bBatch: Bool = true) -> [Float] {
        var out = [Float](repeating: 0, count: batch * m * n)
        for p in 0..<batch {
            for i in 0..<m {
                for j in 0..<n {
                    var s = 0.0
                    for l in 0..<k {
                        s += Double(a[(aBatch ? p * m * k : 0) + i * k + l]) * Double(b[(bBatch ? p * k * n : 0) + l * n + j])
                    }
                    out[(p * m + i) * n + j] = Float(s)
                }
            }
        }
        return out
    }

    @Test func values() {
        let a = random([3, 5, 7], seed: 1), b = random([3, 7, 4], seed: 2)
        expectClose(matmul(a, b), Self.reference(a.scalars, b.scalars, batch: 3, m: 5, k: 7, n: 4), atol: 1e-5, rtol: 1e-5)
        // A shared matrix broadcast over the batch, and a 2-d weight over a stack of rows.
        let w = random([7, 4], seed: 3)
        expectClose(matmul(a, w), Self.reference(a.scalars, w.scalars, batch: 3, m: 5, k: 7, n: 4, bBatch: false), atol: 1e-5, rtol: 1e-5)
        expectClose(matmul(random([5, 7], seed: 4), b),
                    Self.reference(random([5, 7], seed: 4).scalars, b.scalars, batch: 3, m: 5, k: 7, n: 4, aBatch: false), atol: 1e-5, rtol: 1e-5)
        // Transposed operands are read in place.
        let bt = random([3, 4, 7], seed: 5)
        expectClose(matmul(a, bt.transposed()), Self.reference(a.scalars, bt.transposed().contiguous().scalars, batch: 3, m: 5, k: 7, n: 4),
                    atol: 1e-5, rtol: 1e-5)
        // Vectors.
        let v = random([7], seed: 6)
        #expect(matmul(w.transposed(), v).shape == [4])
        #expect(matmul(v, w).shape == [4])
        expectClose(matmul(v, v), [v.scalars.reduce(0) { $0 + $1 * $1 }], atol: 1e-5, rtol: 1e-5)
        // Large enough for the threaded kernels.
        let x = random([130, 257], seed: 7), y = random([257, 65], seed: 8)
        expectClose(matmul(x, y), Self.reference(x.scalars, y.scalars, batch: 1, m: 130, k: 257, n: 65), atol: 1e-4, rtol: 1e-4)
    }

    @Test func bfloat16Operands() {
        let a = random([8, 16], seed: 9).to(.bfloat16), b = random([16, 4], seed: 10).to(.bfloat16)
        let y = matmul(a, b)
        #expect(y.dtype == .bfloat16)
        // The products of bf16 values are exact in fp32 and both sum in fp32, so the results
        // are at most one bf16 rounding (2^-8 relative) apart, wherever the CPU computes bf16.
        expectClose(y.to(.float32), matmul(a.to(.float32), b.to(.float32)).to(.bfloat16).to(.float32), atol: 1e-6, rtol: 0.0079)
    }

    @Test func gradients() {
        checkGradients([random([2, 3, 4], seed: 11), random([2, 4, 5], seed: 12)], "batched") { matmul($0[0], $0[1]) }
        checkGradients([random([2, 3, 4], seed: 13), random([4, 2], seed: 14)], "shared weight") { matmul($0[0], $0[1]) }
        checkGradients([random([1, 3, 4], seed: 15), random([2, 4, 2], seed: 16)], "broadcast batch") { matmul($0[0], $0[1]) }
        checkGradients([random([4], seed: 17), random([4, 3], seed: 18)], "vector-matrix") { matmul($0[0], $0[1]) }
        checkGradients([random([3, 4], seed: 19), random([2, 4], seed: 20)], "transposed") { matmul($0[0], $0[1].transposed()) }
        checkGradients([random([2, 3, 4], seed: 21), random([5, 4], seed: 22), random([5], seed: 23)], "linear with bias") {
            matmul($0[0], $0[1].transposed(), bias: $0[2])
        }
        checkGradients([random([2, 3, 4], seed: 24), random([2, 4, 5], seed: 25), random([5], seed: 26)], "batched with bias") {
            matmul($0[0], $0[1], bias: $0[2])
        }
    }

    /// The bias is added inside the product: the unfused sum's values in float32, and in bf16
    /// within one rounding of the output (the fused sum is rounded once, not twice).
    @Test func biasInsideTheProduct() {
        let x = random([3, 70, 33], seed: 27), w = random([24, 33], seed: 28), c = random([24], -2, 2, seed: 29)
        expectClose(matmul(x, w.transposed(), bias: c), matmul(x, w.transposed()) + c, atol: 1e-5, rtol: 1e-5)
        let (xb, wb) = (x.to(.bfloat16), w.to(.bfloat16))
        let y = matmul(xb, wb.transposed(), bias: c)
        #expect(y.dtype == .bfloat16 && y.shape == [3, 70, 24])
        let exact = matmul(xb.to(.float32), wb.to(.float32).transposed()) + c
        expectClose(y.to(.float32), exact, atol: 1e-2, rtol: 0.0079)
        let empty = matmul(Tensor.zeros([2, 0]), Tensor.zeros([0, 3]), bias: Tensor([1, 2, 3]))
        #expect(empty.scalars == [1, 2, 3, 1, 2, 3])
    }
}
