import Foundation

/// The lane-wise functions behind the elementwise ops and their gradients.
enum Pointwise {
    typealias M = VectorMath

    struct Neg: UnaryKernel { @_transparent func callAsFunction(_ x: Vec8) -> Vec8 { -x } }
    struct Exp: UnaryKernel { @_transparent func callAsFunction(_ x: Vec8) -> Vec8 { M.exp(x) } }
    struct Log: UnaryKernel { @_transparent func callAsFunction(_ x: Vec8) -> Vec8 { M.log(x) } }
    struct Sqrt: UnaryKernel { @_transparent func callAsFunction(_ x: Vec8) -> Vec8 { x.squareRoot() } }
    struct Rsqrt: UnaryKernel { @_transparent func callAsFunction(_ x: Vec8) -> Vec8 { 1 / x.squareRoot() } }
    struct Tanh: UnaryKernel { @_transparent func callAsFunction(_ x: Vec8) -> Vec8 { M.tanh(x) } }
    struct Sigmoid: UnaryKernel { @_transparent func callAsFunction(_ x: Vec8) -> Vec8 { M.sigmoid(x) } }
    struct SiLU: UnaryKernel { @_transparent func callAsFunction(_ x: Vec8) -> Vec8 { x * M.sigmoid(x) } }
    struct Abs: UnaryKernel { @_transparent func callAsFunction(_ x: Vec8) -> Vec8 { M.abs(x) } }
    struct Square: UnaryKernel { @_transparent func callAsFunction(_ x: Vec8) -> Vec8 { x * x } }
    struct ReLU: UnaryKernel { @_transparent func callAsFunction(_ x: Vec8) -> Vec8 { x.replacing(with: 0, where: x .< 0) } }
    struct Sign: UnaryKernel {
        @_transparent func callAsFunction(_ x: Vec8) -> Vec8 {
            Vec8(repeating: 0).replacing(with: 1, where: x .> 0).replacing(with: -1, where: x .< 0)
        }
    }

    /// sin and cos: the vector reduction is exact below |x| = 8192; larger lanes use libm.
    struct Sin: UnaryKernel {
        @_transparent func callAsFunction(_ x: Vec8) -> Vec8 {
            if any(M.abs(x) .> 8192) || any(x .!= x) { return Vec8((0..<8).map { Foundation.sin(x[$0]) }) }
            return M.sincos(x).sin
        }
    }
    struct Cos: UnaryKernel {
        @_transparent func callAsFunction(_ x: Vec8) -> Vec8 {
            if any(M.abs(x) .> 8192) || any(x .!= x) { return Vec8((0..<8).map { Foundation.cos(x[$0]) }) }
            return M.sincos(x).cos
        }
    }

    /// GELU: x Phi(x) exactly (erf) or with PyTorch's tanh approximation.
    struct GELU: UnaryKernel {
        let tanhApproximation: Bool
        @_transparent func callAsFunction(_ x: Vec8) -> Vec8 {
            if tanhApproximation {
                let inner = 0.7978845608028654 * (x + 0.044715 * x * x * x)
                return 0.5 * x * (1 + M.tanh(inner))
            }
            return x * M.normalCDF(x)
        }
    }

    /// a GELU(b), for (a, b): GEGLU's gated output in one pass.
    struct GatedGELU: BinaryKernel {
        let tanhApproximation: Bool
        @_transparent func callAsFunction(_ a: Vec8, _ b: Vec8) -> Vec8 { a * GELU(tanhApproximation: tanhApproximation)(b) }
    }

    /// d GELU / dx * g, for (g, x).
    struct GELUBackward: BinaryKernel {
        let tanhApproximation: Bool
        @_transparent func callAsFunction(_ g: Vec8, _ x: Vec8) -> Vec8 {
            if tanhApproximation {
                let k: Float = 0.7978845608028654
                let x2 = x * x
                let t = M.tanh(k * (x + 0.044715 * x2 * x))
                let dinner = k * (1 + 3 * 0.044715 * x2)
                return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * dinner)
            }
            let cdf = M.normalCDF(x)
            let pdf = 0.3989422804014327 * M.exp(-0.5 * x * x)
            return g * (cdf + x * pdf)
        }
    }

    /// g * d silu / dx = g * s (1 + x (1 - s)), for (g, x).
    struct SiLUBackward: BinaryKernel {
        @_transparent func callAsFunction(_ g: Vec8, _ x: Vec8) -> Vec8 {
            let s = M.sigmoid(x)
            return g * s * (1 + x * (1 - s))
        }
    }

    struct Clamp: UnaryKernel {
        let lo: Float, hi: Float
        @_transparent func callAsFunction(_ x: Vec8) -> Vec8 {
            var y = x.replacing(with: Vec8(repeating: lo), where: x .< lo)
            y = y.replacing(with: Vec8(repeating: hi), where: y .> hi)
            return y
        }
    }

    /// g where lo <= x <= hi, else 0, for (g, x).
    struct ClampBackward: BinaryKernel {
        let lo: Float, hi: Float
        @_transparent func callAsFunction(_ g: Vec8, _ x: Vec8) -> Vec8 {
            g.replacing(with: 0, where: (x .< lo) .| (x .> hi))
        }
    }

    /// x^p for a constant p; integer p keeps the sign of negative x.
    struct PowScalar: UnaryKernel {
        let p: Float
        @_transparent func callAsFunction(_ x: Vec8) -> Vec8 { Pointwise.pow(x, Vec8(repeating: p)) }
    }

    struct Add: BinaryKernel { @_transparent func callAsFunction(_ a: Vec8, _ b: Vec8) -> Vec8 { a + b } }
    struct Sub: BinaryKernel { @_transparent func callAsFunction(_ a: Vec8, _ b: Vec8) -> Vec8 { a - b } }
    struct Mul: BinaryKernel { @_transparent func callAsFunction(_ a: Vec8, _ b: Vec8) -> Vec8 { a * b } }
    struct Div: BinaryKernel { @_transparent func callAsFunction(_ a: Vec8, _ b: Vec8) -> Vec8 { a / b } }
    struct Pow: BinaryKernel { @_transparent func callAsFunction(_ a: Vec8, _ b: Vec8) -> Vec8 { Pointwise.pow(a, b) } }
    struct Maximum: BinaryKernel {
        @_transparent func callAsFunction(_ a: Vec8, _ b: Vec8) -> Vec8 { a.replacing(with: b, where: (b .> a) .| (b .!= b)) }
    }
    struct Minimum: BinaryKernel {
        @_transparent func callAsFunction(_ a: Vec8, _ b: Vec8) -> Vec8 { a.replacing(with: b, where: (b .< a) .| (b .!= b)) }
    }

    enum Comparison: Sendable { case eq, ne, lt, le, gt, ge }
    /// 1 where the comparison holds, else 0.
    struct Compare: BinaryKernel {
        let kind: Comparison
        @_transparent func callAsFunction(_ a: Vec8, _ b: Vec8) -> Vec8 {
            let m: SIMDMask<SIMD8<Int32>>
            switch kind {
            case .eq: m = a .== b
            case .ne: m = a .!= b
            case .lt: m = a .< b
            case .le: m = a .<= b
            case .gt: m = a .> b
            case .ge: m = a .>= b
            }
            return Vec8(repeating: 0).replacing(with: 1, where: m)
        }
    }

    /// cond != 0 ? a : b.
    struct Select: TernaryKernel {
        @_transparent func callAsFunction(_ c: Vec8, _ a: Vec8, _ b: Vec8) -> Vec8 { b.replacing(with: a, where: c .!= 0) }
    }

    /// a^b as C's powf (exact for integer exponents of negative bases, NaN otherwise).
    /// libm per lane: exp(b log a) in float32 loses |b log a| ulp, and pow is not a hot op.
    @inline(__always)
    static func pow(_ a: Vec8, _ b: Vec8) -> Vec8 {
        if b == Vec8(repeating: 2) { return a * a }
        var r = Vec8()
        for i in 0..<8 { r[i] = Foundation.pow(a[i], b[i]) }
        return r
    }
}
