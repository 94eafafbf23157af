import Foundation
import Testing
@testable import Tensors

/// The vectorised Adam pass against the scalar loop it replaced (torch's order of
/// operations), bit for bit, and the bf16 forms it writes for a mixed-precision step.
@Suite struct AdamUpdateTests {
    /// torch.optim's single-tensor Adam/AdamW element update, one element at a time.
    static func scalar(_ c: AdamUpdate.Coefficients, _ w: inout [Float], _ g: [Float], _ m: inout [Float], _ v: inout [Float],
                       _ x: inout [Float]) {
        for i in w.indices {
            if c.decoupled && c.weightDecay != 0 { w[i] *= c.decay }
            let gi = c.decoupled ? g[i] : g[i] + c.weightDecay * w[i]
            m[i] += c.oneMinusBeta1 * (gi - m[i])
            v[i] = v[i] * c.beta2 + c.oneMinusBeta2 * gi * gi
            var second = v[i]
            if c.amsgrad {
                x[i] = Swift.max(x[i], second)
                second = x[i]
            }
            let denom = second.squareRoot() / c.correction2 + c.eps
            w[i] += -c.stepSize * (m[i] / denom)
        }
    }

    static func coefficients(decoupled: Bool, amsgrad: Bool, step: Double = 3) -> AdamUpdate.Coefficients {
        let (lr, b1, b2, wd) = (1e-2, 0.9, 0.999, 0.05)
        return AdamUpdate.Coefficients(
            stepSize: Float(lr / (1 - pow(b1, step))), correction2: Float((1 - pow(b2, step)).squareRoot()),
            decay: Float(1 - lr * wd), oneMinusBeta1: Float(1 - b1), beta2: Float(b2), oneMinusBeta2: Float(1 - b2),
            eps: 1e-8, weightDecay: Float(wd), decoupled: decoupled, amsgrad: amsgrad)
    }

    /// 70,003 elements: two threads' ranges, 1024-element blocks and an 8-lane tail of 3.
    @Test(arguments: [(false, false), (true, false), (true, true)])
    func vectorPassIsTheScalarLoop(decoupled: Bool, amsgrad: Bool) {
        let n = 70_003
        let rng = PhiloxGenerator(seed: 11)
        var w = rng.normal([n]).scalars, m = (rng.normal([n]) * 0.1).scalars
        var v = (rng.normal([n]) * 0.01).square().scalars, x = (rng.normal([n]) * 0.01).square().scalars
        let g = rng.normal([n]).scalars
        let c = Self.coefficients(decoupled: decoupled, amsgrad: amsgrad)
        var (w2, m2, v2, x2) = (w, m, v, x)
        var bf16 = [UInt16](repeating: 0, count: n)
        g.withUnsafeBufferPointer { gp in
            x2.withUnsafeMutableBufferPointer { xp in
                AdamUpdate.apply(c, count: n, weights: &w2, gradient: gp.baseAddress!, first: &m2, second: &v2,
                                 maxSecond: amsgrad ? xp.baseAddress! : nil, bf16: &bf16)
            }
        }
        Self.scalar(c, &w, g, &m, &v, &x)
        #expect(w2.map(\.bitPattern) == w.map(\.bitPattern))
        #expect(m2.map(\.bitPattern) == m.map(\.bitPattern))
        #expect(v2.map(\.bitPattern) == v.map(\.bitPattern))
        if amsgrad { #expect(x2.map(\.bitPattern) == x.map(\.bitPattern)) }
        #expect(bf16 == w.map { BFloat16($0).bitPattern })
    }

    /// A tensor whose bf16 form was cached gets a buffer for its new values' form, and that
    /// form is current afterwards (a use takes it, no conversion); one without gets none.
    @Test func updateKeepsTheBFloat16Form() {
        var t = Tensor((0..<40).map { Float($0) * 0.37 }, shape: [5, 8])
        t.withUnsafeMutableFloats(keepingBFloat16Form: { _, form in #expect(form == nil) })
        _ = t.toCached(.bfloat16)
        t.withUnsafeMutableFloats(keepingBFloat16Form: { f, form in
            #expect(form != nil)
            for i in f.indices {
                f[i] = f[i] * 1.001 + 0.25
                form?[i] = BFloat16(f[i]).bitPattern
            }
        })
        let key = "cast|bfloat16|\(t.offset)|\(t.strides)|\(t.shape)"
        #expect(t.storage.derived.withLock { $0[key]?.version } == t.storage.version)
        let bits = { (u: Tensor) in u.withUnsafeBytes { Array($0.bindMemory(to: UInt16.self)) } }
        #expect(bits(t.toCached(.bfloat16)) == bits(t.to(.bfloat16)))
        // Shared storage is copied first (copy on write): the copy has no form to keep.
        let other = t
        t.withUnsafeMutableFloats(keepingBFloat16Form: { _, form in #expect(form == nil) })
        withExtendedLifetime(other) {}
    }
}
