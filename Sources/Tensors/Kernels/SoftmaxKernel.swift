/// Softmax and log-softmax over contiguous rows, forward and backward, fused per row.
enum SoftmaxKernel {
    @inline(__always)
    private static func rowMax(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        ReduceKernel.row(.max, x, n)
    }

    /// y = exp(x - max) / sum, or (log) y = x - max - log(sum exp(x - max)).
    static func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int, n: Int, log: Bool) {
        OpProfiler.measure("softmax fwd") { forwardUnprofiled(x, y, rows: rows, n: n, log: log) }
    }

    private static func forwardUnprofiled(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int, n: Int, log: Bool) {
        let xs = SendablePointer(UnsafeMutablePointer(mutating: x)), ys = SendablePointer(y)
        Parallel.forEach(rows, cost: n * 8) { r in
            let xp = UnsafePointer(xs.p + r * n), yp = ys.p + r * n
            let m = rowMax(xp, n)
            let shift = m.isFinite ? m : 0
            var acc = Vec8()
            var i = 0
            let sv = Vec8(repeating: shift)
            while i + 8 <= n {
                let e = VectorMath.exp(UnsafeRawPointer(xp + i).loadUnaligned(as: Vec8.self) - sv)
                if !log { UnsafeMutableRawPointer(yp + i).storeBytes(of: e, as: Vec8.self) }
                acc += e
                i += 8
            }
            var sum = acc.sum()
            while i < n {
                var v = Vec8(repeating: -.infinity)
                let m8 = Swift.min(8, n - i)
                for k in 0..<m8 { v[k] = xp[i + k] - shift }
                let e = VectorMath.exp(v)
                for k in 0..<m8 {
                    if !log { yp[i + k] = e[k] }
                    sum += e[k]
                }
                i += m8
            }
            if log {
                // (x - max) is exact near the max; subtracting log(sum) last keeps full precision.
                let ls = Foundation.log(sum)
                for k in 0..<n { yp[k] = (xp[k] - shift) - ls }
            } else {
                let inv = 1 / sum
                for k in 0..<n { yp[k] *= inv }
            }
        }
    }

    /// Softmax: dx = y (g - sum(g y)); log-softmax: dx = g - exp(y) sum(g).
    static func backward(_ y: UnsafePointer<Float>, _ g: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                         rows: Int, n: Int, log: Bool) {
        let ys = SendablePointer(UnsafeMutablePointer(mutating: y)), gs = SendablePointer(UnsafeMutablePointer(mutating: g))
        let ds = SendablePointer(dx)
        Parallel.forEach(rows, cost: n * 4) { r in
            let yp = ys.p + r * n, gp = gs.p + r * n, dp = ds.p + r * n
            if log {
                let s = ReduceKernel.row(.sum, gp, n)
                var i = 0
                while i < n {
                    let m = Swift.min(8, n - i)
                    let e = VectorMath.exp(Lanes.load(yp + i, 1, m))
                    Lanes.store(Lanes.load(gp + i, 1, m) - e * s, dp + i, 1, m)
                    i += m
                }
            } else {
                var dot: Float = 0
                for k in 0..<n { dot += gp[k] * yp[k] }
                for k in 0..<n { dp[k] = yp[k] * (gp[k] - dot) }
            }
        }
    }
}

import Foundation
