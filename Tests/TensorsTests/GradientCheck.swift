import Testing
import Tensors

/// Checks the tape's gradients of L = sum(w * f(inputs)) (w fixed random weights, so every
/// output element matters) against central differences of L.
///
/// Tolerance: the differences are taken in Float32 with step h, so their error is about
/// h^2/6 |L'''| (truncation) plus ulp(L)/h (rounding): with h = 3e-3 and L of order 1, a few
/// 1e-4. The check allows |g - g_fd| <= atol + rtol |g_fd| with atol = 2e-3, rtol = 1e-2.
func checkGradients(_ inputs: [Tensor], h: Float = 3e-3, atol: Float = 2e-3, rtol: Float = 1e-2,
                    _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation,
                    _ f: ([Tensor]) -> Tensor) {
    let y0 = f(inputs)
    var data = TestData(seed: 99)
    let w = data.tensor(y0.shape, -1, 1)
    func loss(_ xs: [Tensor]) -> Double {
        zip(f(xs).scalars, w.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    }
    let (value, grads) = valueAndGradient(at: inputs) { xs in (f(xs) * w).sum() }
    #expect(abs(Double(value.item) - loss(inputs)) <= 1e-3 * (1 + abs(loss(inputs))),
            "value \(value.item) vs \(loss(inputs))", sourceLocation: sourceLocation)
    for (i, x) in inputs.enumerated() {
        #expect(grads[i].shape == x.shape, "gradient \(i) shape \(grads[i].shape) vs \(x.shape)", sourceLocation: sourceLocation)
        let base = x.scalars
        let analytic = grads[i].scalars
        var worst: Float = 0
        var detail = ""
        for j in 0..<base.count {
            var plus = base, minus = base
            plus[j] += h
            minus[j] -= h
            var xp = inputs, xm = inputs
            xp[i] = Tensor(plus, shape: x.shape)
            xm[i] = Tensor(minus, shape: x.shape)
            let numeric = Float((loss(xp) - loss(xm)) / Double(2 * h))
            let err = abs(analytic[j] - numeric) / (atol + rtol * abs(numeric))
            if err > worst {
                worst = err
                detail = "input \(i) element \(j): tape \(analytic[j]) vs differences \(numeric)"
            }
        }
        #expect(worst <= 1, "\(comment.map { "\($0): " } ?? "")\(detail)", sourceLocation: sourceLocation)
    }
}

/// Values of `shape` uniform in [lo, hi) from a seed.
func random(_ shape: [Int], _ lo: Float = -1, _ hi: Float = 1, seed: UInt64 = 1) -> Tensor {
    var d = TestData(seed: seed)
    return d.tensor(shape, lo, hi)
}

/// Values of magnitude in [lo, hi) with random signs (away from the kinks at 0).
func awayFromZero(_ shape: [Int], _ lo: Float = 0.2, _ hi: Float = 1.5, seed: UInt64 = 1) -> Tensor {
    var d = TestData(seed: seed)
    let n = shape.reduce(1, *)
    return Tensor((0..<n).map { _ in
        let m = lo + (hi - lo) * d.next()
        return d.next() < 0.5 ? -m : m
    }, shape: shape)
}
