import Testing
import Tensors

@Suite struct AutogradTests {
    @Test func keyedGradients() {
        let params = ["weight": Tensor([2, 3]), "bias": Tensor([1]), "unused": Tensor([5, 5, 5])]
        let x = Tensor([4, 5])
        let (loss, grads) = valueAndGradient(at: params) { p in (p["weight"]! * x).sum() + p["bias"]!.sum() * 2 }
        #expect(loss.item == 2 * 4 + 3 * 5 + 2)
        #expect(grads["weight"]!.scalars == [4, 5])
        #expect(grads["bias"]!.scalars == [2])
        #expect(grads["unused"]!.scalars == [0, 0, 0])
    }

    @Test func noStateBetweenCalls() {
        let w = Tensor([3])
        let g1 = gradient(at: [w]) { ($0[0] * $0[0]).sum() }
        let g2 = gradient(at: [w]) { ($0[0] * $0[0]).sum() }
        #expect(g1[0].scalars == [6] && g2[0].scalars == [6])
        // Outside valueAndGradient nothing is recorded: results are plain values.
        let y = w * 2
        #expect(gradient(at: [w]) { _ in (y * 1).sum() }[0].scalars == [0])
    }

    @Test func detachStopsGradients() {
        let w = Tensor([2])
        let g = gradient(at: [w]) { xs in (xs[0] * xs[0].detached()).sum() }
        #expect(g[0].scalars == [2])
    }

    @Test func pullbackOfNonScalar() {
        let x = Tensor([1, 2, 3])
        let (y, g) = pullback(at: [x], seed: Tensor([1, 10, 100])) { $0[0].square() }
        #expect(y.scalars == [1, 4, 9])
        #expect(g[0].scalars == [2, 40, 600])
    }

    /// A long chain of ops through a small network: the tape gives the same gradient as
    /// finite differences.
    @Test func composite() {
        let x = random([4, 3], seed: 1), w1 = random([3, 5], seed: 2), w2 = random([5, 2], seed: 3), b = random([5], seed: 4)
        checkGradients([w1, w2, b], "mlp") { p in
            let h = (matmul(x, p[0]) + p[2]).gelu()
            return matmul(h.layerNorm(), p[1]).logSoftmax(axis: 1)
        }
    }

    /// Gradients of a value used several times are summed in place only into buffers nobody
    /// else holds: the caller's seed and the tensors a rule hands to two inputs stay as they
    /// were, and the sums are right (float32 and bf16).
    @Test func summedGradientsLeaveSharedTensorsAlone() {
        for dtype in [DType.float32, .bfloat16] {
            let x = Tensor([1, 2, 3, 4], shape: [2, 2]).to(dtype)
            let seed = Tensor([1, 2, 4, 8], shape: [2, 2]).to(dtype)
            let before = seed.to(.float32).scalars
            let (_, grads) = pullback(at: [x], seed: seed) { t in (t[0] + t[0]) + t[0] * 3 + t[0] }
            #expect(grads[0].to(.float32).scalars == before.map { $0 * 6 }, "\(dtype)")
            #expect(seed.to(.float32).scalars == before, "\(dtype): the seed was written")
        }
    }
}
