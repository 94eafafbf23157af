import Foundation

/// Float32 transcendental functions on 8 lanes (one AVX2 register), accurate to a few ulp.
/// Scalar `Foundation` math would be 4-8x slower in the elementwise kernels.
public typealias Vec8 = SIMD8<Float>

enum VectorMath {
    @_transparent static func splat(_ v: Float) -> Vec8 { Vec8(repeating: v) }

    /// fma(a, b, c) lane-wise.
    @_transparent static func fma(_ a: Vec8, _ b: Vec8, _ c: Vec8) -> Vec8 {
        c.addingProduct(a, b)
    }

    @_transparent static func min(_ a: Vec8, _ b: Vec8) -> Vec8 { a.replacing(with: b, where: b .< a) }
    @_transparent static func max(_ a: Vec8, _ b: Vec8) -> Vec8 { a.replacing(with: b, where: b .> a) }
    @_transparent static func max4(_ a: SIMD4<Float>, _ b: SIMD4<Float>) -> SIMD4<Float> { a.replacing(with: b, where: b .> a) }

    @_transparent static func abs(_ x: Vec8) -> Vec8 {
        unsafeBitCast(unsafeBitCast(x, to: SIMD8<UInt32>.self) & 0x7FFF_FFFF, to: Vec8.self)
    }

    /// Round to nearest integer (valid for |x| < 2^22), as float and as int.
    @_transparent static func roundToInt(_ x: Vec8) -> (Vec8, SIMD8<Int32>) {
        let magic = splat(12582912.0)  // 1.5 * 2^23
        let shifted = x + magic
        let n = shifted - magic
        let i = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000
        return (n, i)
    }

    /// Int32 lanes as Float, exact for |i| < 2^22 (the generic SIMD conversion is scalar).
    @_transparent static func float(_ i: SIMD8<Int32>) -> Vec8 {
        unsafeBitCast(i &+ 0x4B40_0000, to: Vec8.self) - 12582912.0
    }

    /// Truncation toward zero to Int32, for |x| < 2^22.
    @_transparent static func truncate(_ x: Vec8) -> SIMD8<Int32> {
        unsafeBitCast(x.rounded(.towardZero) + 12582912.0, to: SIMD8<Int32>.self) &- 0x4B40_0000
    }

    /// 2^n for integer n in [-126, 127].
    @_transparent static func pow2(_ n: SIMD8<Int32>) -> Vec8 {
        unsafeBitCast((n &+ 127) &<< 23, to: Vec8.self)
    }

    /// e^x: x = n ln2 + r, |r| <= ln2/2, e^r by a degree-6 polynomial (Cephes expf).
    @_transparent static func exp(_ x: Vec8) -> Vec8 {
        let xc = min(max(x, splat(-104)), splat(89))
        let (n, ni) = roundToInt(xc * 1.44269504088896341)
        var r = fma(n, splat(-0.693359375), xc)
        r = fma(n, splat(2.12194440e-4), r)
        var p = splat(1.9875691500E-4)
        p = fma(p, r, splat(1.3981999507E-3))
        p = fma(p, r, splat(8.3334519073E-3))
        p = fma(p, r, splat(4.1665795894E-2))
        p = fma(p, r, splat(1.6666665459E-1))
        p = fma(p, r, splat(5.0000001201E-1))
        p = fma(p, r * r, r) + 1
        // 2^n as two factors so that n in [-150, 128] neither overflows nor flushes early.
        let half = ni &>> 1
        let result = p * pow2(half) * pow2(ni &- half)
        return result.replacing(with: x, where: x .!= x)
    }

    /// e^x for x <= 0 (a softmax's scores less their maximum), with a shorter dependency chain
    /// than `exp`, whose latency bounds the attention's exponentials: the same reduction and
    /// Cephes coefficients, the polynomial by Estrin's scheme (depth 3 instead of 6), n
    /// rounded within the multiply-add and 2^n as one factor (n >= -126 here), no NaN blend
    /// (NaN passes through every operation). Within 2 ulp of `exp`; x below -87.3 (e^x under
    /// the smallest normal float) gives 0.
    @_transparent static func expNonPositive(_ x: Vec8) -> Vec8 {
        let low = x .< splat(-87.3)
        let xc = x.replacing(with: splat(-87.3), where: low)
        let shifted = fma(xc, splat(1.44269504088896341), splat(12582912.0))  // n + 1.5 * 2^23
        let n = shifted - 12582912.0
        var r = fma(n, splat(-0.693359375), xc)
        r = fma(n, splat(2.12194440e-4), r)
        let r2 = r * r, r4 = r2 * r2
        let low3 = fma(r2, fma(splat(8.3334519073E-3), r, splat(4.1665795894E-2)), fma(splat(1.6666665459E-1), r, splat(5.0000001201E-1)))
        let p = fma(r4, fma(splat(1.9875691500E-4), r, splat(1.3981999507E-3)), low3)
        let e = fma(p, r2, r) + 1
        return (e * pow2(unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000)).replacing(with: 0, where: low)
    }

    /// ln x: x = m 2^e with m in [sqrt(1/2), sqrt 2), ln m by a degree-9 polynomial
    /// (Cephes logf). x < 0 gives NaN, 0 gives -inf, inf gives inf.
    @_transparent static func log(_ x: Vec8) -> Vec8 {
        let tiny = x .< splat(1.17549435e-38)
        var xs = x.replacing(with: x * 8388608.0, where: tiny)  // scale denormals by 2^23
        var bits = unsafeBitCast(xs, to: SIMD8<Int32>.self)
        var e = float((bits &>> 23) &- 126)
        e = e.replacing(with: e - 23, where: tiny)
        bits = (bits & Int32(bitPattern: 0x807F_FFFF)) | 0x3F00_0000  // mantissa in [0.5, 1)
        xs = unsafeBitCast(bits, to: Vec8.self)
        let small = xs .< splat(0.707106781186547524)
        e = e.replacing(with: e - 1, where: small)
        let m = xs.replacing(with: xs + xs, where: small) - 1
        let z = m * m
        var y = splat(7.0376836292E-2)
        y = fma(y, m, splat(-1.1514610310E-1))
        y = fma(y, m, splat(1.1676998740E-1))
        y = fma(y, m, splat(-1.2420140846E-1))
        y = fma(y, m, splat(1.4249322787E-1))
        y = fma(y, m, splat(-1.6668057665E-1))
        y = fma(y, m, splat(2.0000714765E-1))
        y = fma(y, m, splat(-2.4999993993E-1))
        y = fma(y, m, splat(3.3333331174E-1))
        y = y * m * z
        y = fma(e, splat(-2.12194440e-4), y)
        y = fma(z, splat(-0.5), y)
        var result = fma(e, splat(0.693359375), m + y)
        result = result.replacing(with: -.infinity, where: x .== 0)
        result = result.replacing(with: .nan, where: x .< 0)
        result = result.replacing(with: x, where: (x .== .infinity) .| (x .!= x))
        return result
    }

    /// 1 / (1 + e^-x).
    @_transparent static func sigmoid(_ x: Vec8) -> Vec8 {
        1 / (1 + exp(-x))
    }

    /// tanh x: odd polynomial for |x| < 0.625 (Cephes tanhf), else 1 - 2 / (e^2|x| + 1).
    @_transparent static func tanh(_ x: Vec8) -> Vec8 {
        let ax = abs(x)
        let z = x * x
        var p = splat(-5.70498872745E-3)
        p = fma(p, z, splat(2.06390887954E-2))
        p = fma(p, z, splat(-5.37397155531E-2))
        p = fma(p, z, splat(1.33314422036E-1))
        p = fma(p, z, splat(-3.33332819422E-1))
        let small = fma(p * z, x, x)
        var big = 1 - 2 / (exp(ax + ax) + 1)
        big = big.replacing(with: -big, where: x .< 0)
        return big.replacing(with: small, where: ax .< 0.625)
    }

    /// sin and cos together: reduction by pi/4 in three parts (Cody-Waite), then the
    /// Cephes minimax polynomials. Accurate for |x| < 8192; callers fall back beyond.
    @_transparent static func sincos(_ x: Vec8) -> (sin: Vec8, cos: Vec8) {
        let ax = abs(x)
        var j = truncate(ax * 1.27323954473516)
        j = (j &+ 1) & ~1
        let y = float(j)
        var r = fma(y, splat(-0.78515625), ax)
        r = fma(y, splat(-2.4187564849853515625e-4), r)
        r = fma(y, splat(-3.77489497744594108e-8), r)
        let z = r * r
        var c = splat(2.443315711809948E-005)
        c = fma(c, z, splat(-1.388731625493765E-003))
        c = fma(c, z, splat(4.166664568298827E-002))
        c = fma(c * z, z, fma(z, splat(-0.5), splat(1)))
        var s = splat(-1.9515295891E-4)
        s = fma(s, z, splat(8.3321608736E-3))
        s = fma(s, z, splat(-1.6666654611E-1))
        s = fma(s * z, r, r)
        let swap = (j & 2) .!= 0
        var sinv = s.replacing(with: c, where: swap)
        var cosv = c.replacing(with: s, where: swap)
        let sinNeg = ((j & 4) .!= 0) .^ (x .< 0)
        let cosNeg = ((j &- 2) & 4) .== 0
        sinv = sinv.replacing(with: -sinv, where: sinNeg)
        cosv = cosv.replacing(with: -cosv, where: cosNeg)
        return (sinv, cosv)
    }

    /// erfc |x| by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7 absolute), the formula of
    /// PyTorch's vectorised erf.
    @_transparent static func erfcAbs(_ x: Vec8) -> Vec8 {
        let ax = abs(x)
        let t = 1 / fma(splat(0.3275911), ax, splat(1))
        var p = splat(1.061405429)
        p = fma(p, t, splat(-1.453152027))
        p = fma(p, t, splat(1.421413741))
        p = fma(p, t, splat(-0.284496736))
        p = fma(p, t, splat(0.254829592))
        return p * t * exp(-ax * ax)
    }

    /// erf x.
    @_transparent static func erf(_ x: Vec8) -> Vec8 {
        let y = 1 - erfcAbs(x)
        return y.replacing(with: -y, where: x .< 0)
    }

    /// The standard normal CDF Phi(x) = erfc(-x / sqrt 2) / 2, taken from erfc directly for
    /// x < 0 so that the tail does not cancel to 0.
    @_transparent static func normalCDF(_ x: Vec8) -> Vec8 {
        let half = 0.5 * erfcAbs(x * 0.7071067811865476)
        return (1 - half).replacing(with: half, where: x .< 0)
    }
}
