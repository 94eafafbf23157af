/// The element pass of Adam and AdamW (torch.optim's single-tensor CPU path), eight lanes at
/// a time and in torch's order of operations, so that each element's result is bit for bit
/// the scalar loop's:
///   AdamW: p *= decay;  Adam: g += wd p
///   m += (1 - b1) (g - m);  v = b2 v + (1 - b2) g g   (amsgrad: vmax = max(vmax, v))
///   p += -stepSize (m / (sqrt(v) / correction2 + eps))
/// With a bf16 destination it also writes the updated weights rounded to bf16 (as
/// `to(.bfloat16)` rounds them) while they are in registers: a mixed-precision step's weight
/// casts without a second read of the float32 masters.
public enum AdamUpdate {
    /// A step's scalars, in Float as torch casts them.
    public struct Coefficients: Sendable {
        public var stepSize, correction2, decay, oneMinusBeta1, beta2, oneMinusBeta2, eps, weightDecay: Float
        public var decoupled, amsgrad: Bool

        public init(stepSize: Float, correction2: Float, decay: Float, oneMinusBeta1: Float, beta2: Float, oneMinusBeta2: Float,
                    eps: Float, weightDecay: Float, decoupled: Bool, amsgrad: Bool) {
            (self.stepSize, self.correction2, self.decay, self.oneMinusBeta1, self.beta2, self.oneMinusBeta2) =
                (stepSize, correction2, decay, oneMinusBeta1, beta2, oneMinusBeta2)
            (self.eps, self.weightDecay, self.decoupled, self.amsgrad) = (eps, weightDecay, decoupled, amsgrad)
        }
    }

    /// Updates `count` weights, first and second moments (and `maxSecond` with amsgrad) in
    /// place from `gradient`; writes the new weights' bf16 bits to `bf16` when given. Threads
    /// take contiguous ranges.
    public static func apply(_ c: Coefficients, count: Int, weights: UnsafeMutablePointer<Float>, gradient: UnsafePointer<Float>,
                             first: UnsafeMutablePointer<Float>, second: UnsafeMutablePointer<Float>,
                             maxSecond: UnsafeMutablePointer<Float>?, bf16: UnsafeMutablePointer<UInt16>?) {
        precondition(!c.amsgrad || maxSecond != nil, "AdamUpdate: amsgrad needs the running maximum")
        let w = SendablePointer(weights), g = SendablePointer(UnsafeMutablePointer(mutating: gradient))
        let m = SendablePointer(first), v = SendablePointer(second)
        let x = maxSecond.map { SendablePointer($0) }, b = bf16.map { SendablePointer($0) }
        OpProfiler.measure("optimizer adam") {
            Parallel.forRanges(count, grain: 1 << 15) { r in
                // Blocks small enough that the weights are still in L1 when they are rounded.
                var start = r.lowerBound
                while start < r.upperBound {
                    let n = Swift.min(1024, r.upperBound - start)
                    block(c, n, w.p + start, g.p + start, m.p + start, v.p + start, x.map { $0.p + start })
                    if let b { BFloat16Runs.narrow(w.p + start, 1, b.p + start, 1, n) }
                    start += n
                }
            }
        }
    }

    @inline(__always)
    private static func block(_ c: Coefficients, _ n: Int, _ w: UnsafeMutablePointer<Float>, _ g: UnsafeMutablePointer<Float>,
                              _ m: UnsafeMutablePointer<Float>, _ v: UnsafeMutablePointer<Float>, _ x: UnsafeMutablePointer<Float>?) {
        let decay = Vec8(repeating: c.decay), wd = Vec8(repeating: c.weightDecay)
        let oneMinusB1 = Vec8(repeating: c.oneMinusBeta1), b2 = Vec8(repeating: c.beta2), oneMinusB2 = Vec8(repeating: c.oneMinusBeta2)
        let correction2 = Vec8(repeating: c.correction2), eps = Vec8(repeating: c.eps), negStep = Vec8(repeating: -c.stepSize)
        let decays = c.decoupled && c.weightDecay != 0, coupled = !c.decoupled
        var i = 0
        while i < n {
            let k = Swift.min(8, n - i)
            var wi = Lanes.load(w + i, 1, k)
            if decays { wi = wi * decay }
            var gi = Lanes.load(g + i, 1, k)
            if coupled { gi = gi + wd * wi }
            var mi = Lanes.load(m + i, 1, k)
            mi = mi + oneMinusB1 * (gi - mi)
            let vi = Lanes.load(v + i, 1, k) * b2 + oneMinusB2 * gi * gi
            var s = vi
            if let x {
                let xi = Lanes.load(x + i, 1, k)
                // Swift.max(xi, vi): vi where vi >= xi, else xi (NaN kept as the scalar loop keeps it).
                s = xi.replacing(with: vi, where: vi .>= xi)
                Lanes.store(s, x + i, 1, k)
            }
            let denom = s.squareRoot() / correction2 + eps
            wi = wi + negStep * (mi / denom)
            Lanes.store(wi, w + i, 1, k)
            Lanes.store(mi, m + i, 1, k)
            Lanes.store(vi, v + i, 1, k)
            i += k
        }
    }
}
