import Foundation

/// A source of random tensors. Generators are explicit objects passed to whatever draws,
/// so a seed fixes every draw of a run; each draw advances the generator.
public protocol RandomGenerator: AnyObject {
    /// Standard normal samples (then scaled), float32.
    func normal(_ shape: [Int], mean: Float, std: Float) -> Tensor
    /// Uniform samples in [low, high), float32.
    func uniform(_ shape: [Int], low: Float, high: Float) -> Tensor
    /// Integers in [low, high), int64.
    func integers(_ shape: [Int], low: Int, high: Int) -> Tensor
}

/// Philox 4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011):
/// a counter-based generator. Element i of a draw is a pure function of (seed, position
/// of the draw, i), so results are identical whatever the number of threads.
public final class PhiloxGenerator: RandomGenerator, @unchecked Sendable {
    public let seed: UInt64
    /// Blocks of 4 x 32 bits used so far.
    public private(set) var offset: UInt64

    public init(seed: UInt64, offset: UInt64 = 0) {
        self.seed = seed
        self.offset = offset
    }

    /// The generator's full state, for checkpoints.
    public var state: (seed: UInt64, offset: UInt64) { (seed, offset) }

    /// The 10-round Philox 4x32 bijection of `counter` under `key`.
    @inline(__always)
    public static func block(counter: (UInt32, UInt32, UInt32, UInt32), key: (UInt32, UInt32)) -> SIMD4<UInt32> {
        var (c0, c1, c2, c3) = counter
        var (k0, k1) = key
        for _ in 0..<10 {
            let p0 = UInt64(0xD251_1F53) &* UInt64(c0)
            let p1 = UInt64(0xCD9E_8D57) &* UInt64(c2)
            let (hi0, lo0) = (UInt32(truncatingIfNeeded: p0 >> 32), UInt32(truncatingIfNeeded: p0))
            let (hi1, lo1) = (UInt32(truncatingIfNeeded: p1 >> 32), UInt32(truncatingIfNeeded: p1))
            (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)
            k0 &+= 0x9E37_79B9
            k1 &+= 0xBB67_AE85
        }
        return SIMD4(c0, c1, c2, c3)
    }

    /// Fills `count` 32-bit words starting at block `first` into `out`.
    private func words(first: UInt64, count: Int, into out: UnsafeMutablePointer<UInt32>) {
        let key = (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32))
        let o = SendablePointer(out)
        let blocks = (count + 3) / 4
        Parallel.forRanges(blocks, grain: 4096) { r in
            for b in r {
                let n = first &+ UInt64(b)
                let v = PhiloxGenerator.block(counter: (UInt32(truncatingIfNeeded: n), UInt32(truncatingIfNeeded: n >> 32), 0, 0), key: key)
                for lane in 0..<4 where b * 4 + lane < count { o.p[b * 4 + lane] = v[lane] }
            }
        }
    }

    /// Draws `count` words and advances past the blocks they used.
    private func draw(_ count: Int, _ body: (UnsafeMutablePointer<UInt32>) -> Void) {
        let buffer = UnsafeMutablePointer<UInt32>.allocate(capacity: Swift.max(count, 1))
        defer { buffer.deallocate() }
        words(first: offset, count: count, into: buffer)
        offset &+= UInt64((count + 3) / 4)
        body(buffer)
    }

    /// Uniform in [0, 1) with 24 random bits.
    @inline(__always) static func unit(_ w: UInt32) -> Float { Float(w >> 8) * 0x1p-24 }

    public func uniform(_ shape: [Int], low: Float = 0, high: Float = 1) -> Tensor {
        let out = Tensor(uninitializedShape: shape, dtype: .float32)
        let n = out.count
        let p = out.pointer(as: Float.self)
        draw(n) { w in
            for i in 0..<n { p[i] = low + (high - low) * PhiloxGenerator.unit(w[i]) }
        }
        return out
    }

    /// Box-Muller on consecutive word pairs: (w0, w1) give elements 2k and 2k+1.
    public func normal(_ shape: [Int], mean: Float = 0, std: Float = 1) -> Tensor {
        let out = Tensor(uninitializedShape: shape, dtype: .float32)
        let n = out.count
        let pairs = (n + 1) / 2
        let p = SendablePointer(out.pointer(as: Float.self))
        draw(2 * pairs) { w in
            let ws = SendablePointer(w)
            // 8 pairs at a time through the vector log and sincos.
            let chunks = (pairs + 7) / 8
            Parallel.forRanges(chunks, grain: 512) { r in
                for c in r {
                    var u1 = Vec8(repeating: 1), u2 = Vec8()
                    let count = Swift.min(8, pairs - c * 8)
                    for l in 0..<count {
                        let k = c * 8 + l
                        u1[l] = Float((ws.p[2 * k] >> 8) + 1) * 0x1p-24  // (0, 1]
                        u2[l] = PhiloxGenerator.unit(ws.p[2 * k + 1])
                    }
                    let radius = (-2 * VectorMath.log(u1)).squareRoot()
                    let (s, cs) = VectorMath.sincos(u2 * (2 * Float.pi))
                    let z0 = radius * cs * std + mean, z1 = radius * s * std + mean
                    for l in 0..<count {
                        let k = c * 8 + l
                        p.p[2 * k] = z0[l]
                        if 2 * k + 1 < n { p.p[2 * k + 1] = z1[l] }
                    }
                }
            }
        }
        return out
    }

    public func integers(_ shape: [Int], low: Int, high: Int) -> Tensor {
        check(high > low, "randint", "empty range [\(low), \(high))")
        let out = Tensor(uninitializedShape: shape, dtype: .int64)
        let n = out.count
        let range = UInt64(high - low)
        let p = out.pointer(as: Int64.self)
        if range <= UInt64(UInt32.max) {
            draw(n) { w in
                for i in 0..<n { p[i] = Int64(low) + Int64((UInt64(w[i]) &* range) >> 32) }
            }
        } else {
            draw(2 * n) { w in
                for i in 0..<n {
                    let v = (UInt64(w[2 * i]) << 32) | UInt64(w[2 * i + 1])
                    p[i] = Int64(low) + Int64(v.multipliedFullWidth(by: range).high)
                }
            }
        }
        return out
    }
}
