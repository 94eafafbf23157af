/// An element type that kernels read and write eight lanes at a time through float32
/// registers: float32 itself, or bfloat16 (widened exactly; narrowed to nearest, ties to even,
/// NaN kept a quiet NaN, bit for bit as `BFloat16.init(_:)`). Generic kernels over it are
/// specialised per type, so each pass reads and writes its operands in their own dtype with
/// no conversion pass before or after.
protocol TileElement {
    /// Elements p[0 ..< n] (n <= 8) as float32 lanes, the rest zero.
    static func load(_ p: UnsafePointer<Self>, _ n: Int) -> Vec8
    /// p[i] = v[i] for i < n (n <= 8).
    static func store(_ v: Vec8, _ p: UnsafeMutablePointer<Self>, _ n: Int)
}

extension Float: TileElement {
    @inline(__always)
    static func load(_ p: UnsafePointer<Float>, _ n: Int) -> Vec8 { Lanes.load(p, 1, n) }

    @inline(__always)
    static func store(_ v: Vec8, _ p: UnsafeMutablePointer<Float>, _ n: Int) { Lanes.store(v, p, 1, n) }
}

extension BFloat16: TileElement {
    // Lane loops, not SIMD8's `init(truncatingIfNeeded:)` (an out-of-line scalar loop): LLVM
    // makes them vpmovzxwd + vpslld and vpackusdw (checked in the assembly).
    @inline(__always)
    static func load(_ p: UnsafePointer<BFloat16>, _ n: Int) -> Vec8 {
        let bits = UnsafeRawPointer(p).assumingMemoryBound(to: UInt16.self)
        var u = SIMD8<UInt32>()
        if n == 8 {
            for i in 0..<8 { u[i] = UInt32(bits[i]) &<< 16 }
        } else {
            for i in 0..<n { u[i] = UInt32(bits[i]) &<< 16 }
        }
        return unsafeBitCast(u, to: Vec8.self)
    }

    /// v's float32 bits rounded to the nearest bf16 in their upper half (ties to even; NaN
    /// quieted), the lower half garbage: `&>> 16` gives the bf16 bits.
    @inline(__always)
    static func roundedHigh(_ v: Vec8) -> SIMD8<UInt32> {
        let bits = unsafeBitCast(v, to: SIMD8<UInt32>.self)
        let rounded = bits &+ 0x7FFF &+ ((bits &>> 16) & 1)
        // All ones in the lanes whose |v| is NaN (exponent all ones, mantissa non-zero).
        let nan = SIMD8<UInt32>(repeating: 0) &- ((0x7F80_0000 &- (bits & 0x7FFF_FFFF)) &>> 31)
        return (rounded & ~nan) | ((bits | 0x40_0000) & nan)
    }

    @inline(__always)
    static func store(_ v: Vec8, _ p: UnsafeMutablePointer<BFloat16>, _ n: Int) {
        let r = roundedHigh(v) &>> 16
        let out = UnsafeMutableRawPointer(p).assumingMemoryBound(to: UInt16.self)
        if n == 8 {
            for i in 0..<8 { out[i] = UInt16(truncatingIfNeeded: r[i]) }
        } else {
            for i in 0..<n { out[i] = UInt16(truncatingIfNeeded: r[i]) }
        }
    }
}
