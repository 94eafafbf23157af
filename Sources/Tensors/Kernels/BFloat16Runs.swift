/// Widening and narrowing of bfloat16 runs, written as plain unit-stride loops over integer
/// arithmetic so that the compiler vectorizes them (a strided loop, or a select on a SIMD
/// mask, stays scalar: 8-40x slower, measured). Narrowing rounds to nearest, ties to even,
/// and keeps NaN a (quiet) NaN, bit for bit as `BFloat16.init(_:)`.
enum BFloat16Runs {
    /// The bf16 bit pattern nearest to `bits` (a float32's), NaN quieted; branch-free.
    @inline(__always)
    static func narrow(_ bits: UInt32) -> UInt16 {
        let rounded = bits &+ 0x7FFF &+ ((bits &>> 16) & 1)
        // All ones when |x| is NaN (exponent all ones, mantissa non-zero), else zero.
        let nan = 0 &- ((0x7F80_0000 &- (bits & 0x7FFF_FFFF)) &>> 31)
        return UInt16(truncatingIfNeeded: ((rounded & ~nan) | ((bits | 0x40_0000) & nan)) &>> 16)
    }

    /// dst[i * ds] = bf16(src[i * ss]) for i < n.
    @inline(__always)
    static func narrow(_ src: UnsafePointer<Float>, _ ss: Int, _ dst: UnsafeMutablePointer<UInt16>, _ ds: Int, _ n: Int) {
        let s = UnsafeRawPointer(src).assumingMemoryBound(to: UInt32.self)
        if ss == 1 && ds == 1 {
            for i in 0..<n { dst[i] = narrow(s[i]) }
        } else {
            for i in 0..<n { dst[i * ds] = narrow(s[i * ss]) }
        }
    }

    /// dst[i * ds] = float(src[i * ss]) for i < n (exact).
    @inline(__always)
    static func widen(_ src: UnsafePointer<UInt16>, _ ss: Int, _ dst: UnsafeMutablePointer<Float>, _ ds: Int, _ n: Int) {
        let d = UnsafeMutableRawPointer(dst).assumingMemoryBound(to: UInt32.self)
        if ss == 1 && ds == 1 {
            for i in 0..<n { d[i] = UInt32(src[i]) &<< 16 }
        } else {
            for i in 0..<n { d[i * ds] = UInt32(src[i * ss]) &<< 16 }
        }
    }
}
