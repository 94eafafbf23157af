#if arch(x86_64)
import _Builtin_intrinsics.intel
#endif

/// Kernels compiled for AVX-512 (this module's target CPU is skylake-avx512: AVX-512 F, BW,
/// DQ, VL), which Tensors calls only where the CPU has those (`CPUFeatures.avx512`, checked at
/// run time; `DIFFUSE_AVX512=0` turns them off). Everything else in Tensors is built for
/// AVX2 + FMA so that it runs on every machine of this kind.
///
/// These are the e^x-heavy loops, where 16 lanes pay: on AMD EPYC (avx512_bf16, 2 cores) SiLU
/// runs at 0.38 ns an element in L1 against 0.99 for the AVX2 build's 8 lanes (0.61 with two
/// 8-lane registers interleaved), e^x at 0.29 against 0.61 (0.48) (`scripts/bench/simd_width`).
/// Inside the kernels the gain is smaller (memory, the other passes): GroupNorm's forward in a
/// unet-small evaluation 41 -> 35 ms, SD 1.5's attention in bf16 1.25 -> 1.12 s. Winograd's
/// tile transforms are here too (WinogradTiles.swift: half the instructions of 8 lanes, with
/// bf16 widened and narrowed in registers; 128 channels at 16x16, batch 64, bf16 Winograd
/// forward 7.1 -> 6.6 ms before its other fixes). e^x scales by 2^n with AVX-512's `vscalefps`
/// (one op for the twin's seven, the same bits; GroupNorm+SiLU 6-20% faster, bf16). Each
/// function computes lane for lane what its 8-lane twin in Tensors computes (the same Cephes
/// polynomial, the same operation order), so the two paths give the same bits except where a
/// sum's lanes are added in another order (noted), and in the attention's exponentials
/// (`exponentiate`), whose 8-lane twins take `VectorMath.expNonPositive` (within 2 ulp;
/// there the latency of the 8-lane e^x bounded the loop, while here one `vscalefps`
/// already shortens it).
///
/// GroupNorm's fused SiLU runs here both ways: the forward rows, and the backward's two
/// passes (sums, then dx), which compute the SiLU gradient twice rather than keep it, as 16
/// lanes make that cheaper than the memory (64x64x32x32 fp32 backward 4.0 -> 3.1 ms). bf16
/// rows are widened and rounded in registers (bf16 backward 3.98 -> 2.76 ms, forward 2.32 ->
/// 1.66, against torch's 2.42 / 1.89).
///
/// Codegen notes: Swift's SIMD16 conversions between 16- and 32-bit lanes (`init(truncating
/// IfNeeded:)`) compile to scalar inserts and extracts here, so bf16 pairs are split with a
/// shift and a mask instead; and e^x, SiLU and its gradient are `@_transparent`, as
/// `@inline(__always)` left them out of line (through memory) in the bf16 loops.
///
/// Raw pointers in, nothing allocated: no code here runs unless called, and every public
/// function is `@inline(never)` so that it is never compiled into an AVX2 caller.
public enum AVX512Kernels {
    public typealias V = SIMD16<Float>

    @inline(__always) static func splat(_ v: Float) -> V { V(repeating: v) }

    /// e^x as `VectorMath.exp` (x = n ln2 + r, Cephes expf's degree-6 polynomial, NaN kept),
    /// bit for bit: the 8-lane twin scales by 2^n as two factors 2^h 2^(n-h) built in the
    /// exponent bits (so that n down to -150 still scales into the subnormals); here one
    /// `vscalefps` does it, which rounds the same once (the first factor is exact) in 1 op
    /// instead of 7. Checked over all 2^32 float32 inputs when it was written; a stride of
    /// them in `AVX512KernelTests`. SiLU in L1, one thread, Xeon model 207: 0.52-0.71 ns an
    /// element against 0.87-0.94 with the two factors.
    @_transparent static func exp(_ x: V) -> V {
        var xc = x.replacing(with: splat(-104), where: splat(-104) .> x)
        xc = xc.replacing(with: splat(89), where: splat(89) .< xc)
        let shifted = xc * 1.44269504088896341 + 12582912.0
        let n = shifted - 12582912.0
        var r = xc.addingProduct(n, splat(-0.693359375))
        r = r.addingProduct(n, splat(2.12194440e-4))
        var p = splat(1.9875691500E-4)
        p = splat(1.3981999507E-3).addingProduct(p, r)
        p = splat(8.3334519073E-3).addingProduct(p, r)
        p = splat(4.1665795894E-2).addingProduct(p, r)
        p = splat(1.6666665459E-1).addingProduct(p, r)
        p = splat(5.0000001201E-1).addingProduct(p, r)
        p = r.addingProduct(p, r * r) + 1
        #if arch(x86_64)
        return _mm512_scalef_ps(p, n).replacing(with: x, where: x .!= x)
        #else
        // Elsewhere nothing here is called (no AVX-512); the twin's two factors compile anywhere.
        let ni = unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- 0x4B40_0000, half = ni &>> 1
        let scaled = p * unsafeBitCast((half &+ 127) &<< 23, to: V.self) * unsafeBitCast((ni &- half &+ 127) &<< 23, to: V.self)
        return scaled.replacing(with: x, where: x .!= x)
        #endif
    }

    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    @inline(__always) static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self) }

    /// The first n < 16 lanes from p, the others 0.
    @inline(__always) static func load(_ p: UnsafePointer<Float>, _ n: Int) -> V {
        var v = V()
        for i in 0..<n { v[i] = p[i] }
        return v
    }

    @inline(__always) static func store(_ v: V, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { p[i] = v[i] }
    }

    /// z sigmoid(z), as Tensors' SiLUActivation: z / ... written as z * (1 / (1 + e^-z)).
    @_transparent static func silu(_ z: V) -> V { z * (1 / (1 + exp(-z))) }

    /// y[i] = silu(x[i] a[i] + b[i]) for i < n (x may be y): a channels-last row of a
    /// normalisation with its fused SiLU.
    @inline(never)
    public static func siluAffine(_ x: UnsafePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                                  _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        var i = 0
        while i + 16 <= n {
            store(silu(load(b + i).addingProduct(load(x + i), load(a + i))), y + i)
            i += 16
        }
        if i < n {
            let m = n - i
            store(silu(load(b + i, m).addingProduct(load(x + i, m), load(a + i, m))), y + i, m)
        }
    }

    /// y[i] = silu(x[i] a + b) for i < n (x may be y): a channels-first row.
    @inline(never)
    public static func siluAffine(_ x: UnsafePointer<Float>, a: Float, b: Float, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        let (av, bv) = (splat(a), splat(b))
        var i = 0
        while i + 16 <= n {
            store(silu(bv.addingProduct(load(x + i), av)), y + i)
            i += 16
        }
        if i < n {
            let m = n - i
            store(silu(bv.addingProduct(load(x + i, m), av)), y + i, m)
        }
    }

    /// x = e^(x s - shift) in place over n values (a softmax row recomputed from its
    /// log-sum-exp).
    @inline(never)
    public static func exponentiate(_ x: UnsafeMutablePointer<Float>, _ n: Int, scale: Float, shift: Float) {
        let (sv, shv) = (splat(scale), splat(shift))
        var j = 0
        while j + 16 <= n {
            store(exp(load(x + j) * sv - shv), x + j)
            j += 16
        }
        if j < n { store(exp(load(x + j, n - j) * sv - shv), x + j, n - j) }
    }

    /// x = e^(x s - max(x s)) in place over n values (a softmax row before its division);
    /// returns the maximum of x s and the sum of the new x (summed over 16 lanes, not 8).
    @inline(never)
    public static func exponentiate(_ x: UnsafeMutablePointer<Float>, _ n: Int, scale: Float) -> (max: Float, total: Float) {
        let sv = splat(scale)
        let m = scaledMax(x, n, scale: scale)
        let mm = splat(m)
        var sum = V()
        var j = 0
        while j + 16 <= n {
            let e = exp(load(x + j) * sv - mm)
            store(e, x + j)
            sum += e
            j += 16
        }
        if j < n {
            let k = n - j
            var lanes = load(x + j, k) * sv - mm
            lanes = exp(lanes)
            store(lanes, x + j, k)
            for i in 0..<k { sum[i] += lanes[i] }
        }
        return (m, sum.sum())
    }

    /// max(x s) over n values.
    @inline(__always) static func scaledMax(_ x: UnsafePointer<Float>, _ n: Int, scale: Float) -> Float {
        let sv = splat(scale)
        var mv = splat(-.infinity)
        var j = 0
        while j + 16 <= n {
            let v = load(x + j) * sv
            mv = mv.replacing(with: v, where: v .> mv)
            j += 16
        }
        // The lanes' maximum by halves (SIMD's max() is a scalar loop of compares and
        // branches, a sixth of this function's time on 256-key rows); mv holds no NaN.
        let m8 = mv.lowHalf.replacing(with: mv.highHalf, where: mv.highHalf .> mv.lowHalf)
        let m4 = m8.lowHalf.replacing(with: m8.highHalf, where: m8.highHalf .> m8.lowHalf)
        var m = Swift.max(Swift.max(m4[0], m4[1]), Swift.max(m4[2], m4[3]))
        while j < n { m = Swift.max(m, x[j] * scale); j += 1 }
        return m
    }

    /// p = bf16(e^(x s - max(x s))) over n values (an unnormalised softmax row, rounded as
    /// `storePairs`), x unchanged; returns the maximum of x s and the float32 sum of the
    /// exponentials. 32 values at a time, split into their even and odd lanes and stored
    /// back in order as pairs.
    @inline(never)
    public static func exponentiate(_ x: UnsafePointer<Float>, _ n: Int, scale: Float, bf16 p: UnsafeMutablePointer<UInt16>)
        -> (max: Float, total: Float) {
        let sv = splat(scale)
        let m = scaledMax(x, n, scale: scale)
        let mm = splat(m)
        var sum = V()
        var j = 0
        while j + 32 <= n {
            let w = UnsafeRawPointer(x + j).loadUnaligned(as: SIMD32<Float>.self)
            let (e0, e1) = (exp(w.evenHalf * sv - mm), exp(w.oddHalf * sv - mm))
            sum += e0 + e1
            storePairs(e0, e1, p + j)
            j += 32
        }
        if j < n {
            // The tail through a padded block: e^-inf adds nothing to the sum.
            var w = SIMD32<Float>(repeating: -.infinity)
            for i in 0..<(n - j) { w[i] = x[j + i] }
            var e0 = exp(w.evenHalf * sv - mm), e1 = exp(w.oddHalf * sv - mm)
            e0.replace(with: 0, where: w.evenHalf .== -.infinity)
            e1.replace(with: 0, where: w.oddHalf .== -.infinity)
            sum += e0 + e1
            var block = SIMD32<UInt16>()
            withUnsafeMutableBytes(of: &block) { storePairs(e0, e1, $0.baseAddress!.assumingMemoryBound(to: UInt16.self)) }
            for i in 0..<(n - j) { p[j + i] = block[i] }
        }
        return (m, sum.sum())
    }
}


/// The backward pass of a channels-last group normalisation with its fused SiLU, on 16 lanes:
/// rows of c channels, float32, per-channel coefficients.
extension AVX512Kernels {
    /// dL/dz for dL/dy at z, as Tensors' SiLUActivation.grad: dy s (1 + z (1 - s)), s = sigmoid z.
    @_transparent static func siluGrad(_ dy: V, _ z: V) -> V {
        let s = 1 / (1 + exp(-z))
        return dy * s * (1 + z * (1 - s))
    }

    /// For `rows` consecutive rows of c channels: acc1[ch] += sum dz x, acc2[ch] += sum dz,
    /// dz = siluGrad(dy, x a + b) (float32 sums over the rows, per lane in row order).
    @inline(never)
    public static func siluGradSums(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, a: UnsafePointer<Float>,
                                    b: UnsafePointer<Float>, rows: Int, c: Int,
                                    acc1: UnsafeMutablePointer<Float>, acc2: UnsafeMutablePointer<Float>) {
        var ch = 0
        while ch + 16 <= c {
            let (av, bv) = (load(a + ch), load(b + ch))
            var v1 = V(), v2 = V()
            for r in 0..<rows {
                let xv = load(x + r * c + ch)
                let dz = siluGrad(load(dy + r * c + ch), bv.addingProduct(xv, av))
                v1 = v1.addingProduct(dz, xv)
                v2 += dz
            }
            store(load(acc1 + ch) + v1, acc1 + ch)
            store(load(acc2 + ch) + v2, acc2 + ch)
            ch += 16
        }
        if ch < c {
            let m = c - ch
            let (av, bv) = (load(a + ch, m), load(b + ch, m))
            var v1 = V(), v2 = V()
            for r in 0..<rows {
                let xv = load(x + r * c + ch, m)
                let dz = siluGrad(load(dy + r * c + ch, m), bv.addingProduct(xv, av))
                v1 = v1.addingProduct(dz, xv)
                v2 += dz
            }
            store(load(acc1 + ch, m) + v1, acc1 + ch, m)
            store(load(acc2 + ch, m) + v2, acc2 + ch, m)
        }
    }

    /// For `rows` consecutive rows of c channels: out = k1 dz + k2 x + k3, dz = siluGrad(dy,
    /// x a + b) (`k`: a, b, k1, k2, k3, each c per-channel values, one after the other).
    @inline(never)
    public static func siluGradApply(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, k: UnsafePointer<Float>,
                                     rows: Int, c: Int, _ out: UnsafeMutablePointer<Float>) {
        for r in 0..<rows {
            let (xr, gr, or) = (x + r * c, dy + r * c, out + r * c)
            var ch = 0
            while ch + 16 <= c {
                let xv = load(xr + ch)
                let dz = siluGrad(load(gr + ch), load(k + c + ch).addingProduct(xv, load(k + ch)))
                store(load(k + 4 * c + ch).addingProduct(load(k + 3 * c + ch), xv).addingProduct(dz, load(k + 2 * c + ch)), or + ch)
                ch += 16
            }
            if ch < c {
                let m = c - ch
                let xv = load(xr + ch, m)
                let dz = siluGrad(load(gr + ch, m), load(k + c + ch, m).addingProduct(xv, load(k + ch, m)))
                store(load(k + 4 * c + ch, m).addingProduct(load(k + 3 * c + ch, m), xv).addingProduct(dz, load(k + 2 * c + ch, m)), or + ch, m)
            }
        }
    }
}

/// The same GroupNorm rows on bfloat16 data, widened and rounded in registers (no float32
/// tiles). 32 channels are loaded as 16 32-bit words and split into the even and the odd
/// channels (a shift and a mask: the conversions between 16- and 32-bit lanes compile to
/// scalar code), so the per-channel coefficients come in that order too (`pairOrder`), and c
/// is a multiple of 32. Each gives the bits its float32 twin gives on the widened values, the
/// output rounded as `narrow` (to nearest even, NaN kept).
extension AVX512Kernels {
    /// 32 bf16 values as float32: (the even ones, the odd ones).
    @inline(__always) static func loadPairs(_ p: UnsafePointer<UInt16>) -> (V, V) {
        let w = UnsafeRawPointer(p).loadUnaligned(as: SIMD16<UInt32>.self)
        return (unsafeBitCast(w &<< 16, to: V.self), unsafeBitCast(w & 0xFFFF_0000, to: V.self))
    }

    /// The float32 bits of v rounded to bf16 (nearest even, NaN quieted), in the high halves.
    @inline(__always) static func roundedHigh(_ v: V) -> SIMD16<UInt32> {
        let bits = unsafeBitCast(v, to: SIMD16<UInt32>.self)
        let rounded = bits &+ 0x7FFF &+ ((bits &>> 16) & 1)
        let nan = 0 &- ((0x7F80_0000 &- (bits & 0x7FFF_FFFF)) &>> 31)
        return (rounded & ~nan) | ((bits | 0x40_0000) & nan)
    }

    /// Stores 32 bf16 values from (even, odd) float32 lanes.
    @inline(__always) static func storePairs(_ even: V, _ odd: V, _ p: UnsafeMutablePointer<UInt16>) {
        let w = (roundedHigh(even) &>> 16) | (roundedHigh(odd) & 0xFFFF_0000)
        UnsafeMutableRawPointer(p).storeBytes(of: w, as: SIMD16<UInt32>.self)
    }

    /// values (c of them, c a multiple of 32) reordered as the kernels below read
    /// coefficients: each block of 32 as its 16 even entries, then its 16 odd ones.
    @inline(never)
    public static func pairOrder(_ values: UnsafePointer<Float>, _ c: Int, into out: UnsafeMutablePointer<Float>) {
        for block in stride(from: 0, to: c, by: 32) {
            for j in 0..<16 {
                out[block + j] = values[block + 2 * j]
                out[block + 16 + j] = values[block + 2 * j + 1]
            }
        }
    }

    /// The inverse of `pairOrder`.
    @inline(never)
    public static func naturalOrder(_ values: UnsafePointer<Float>, _ c: Int, into out: UnsafeMutablePointer<Float>) {
        for block in stride(from: 0, to: c, by: 32) {
            for j in 0..<16 {
                out[block + 2 * j] = values[block + j]
                out[block + 2 * j + 1] = values[block + 16 + j]
            }
        }
    }

    /// y = silu(x a + b) over `rows` rows of c channels, bf16 in and out (a, b in `pairOrder`).
    @inline(never)
    public static func siluAffine(bf16 x: UnsafePointer<UInt16>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                                  _ y: UnsafeMutablePointer<UInt16>, rows: Int, c: Int) {
        for r in 0..<rows {
            var ch = 0
            while ch < c {
                let (xe, xo) = loadPairs(x + r * c + ch)
                storePairs(silu(load(b + ch).addingProduct(xe, load(a + ch))),
                           silu(load(b + ch + 16).addingProduct(xo, load(a + ch + 16))), y + r * c + ch)
                ch += 32
            }
        }
    }

    /// `siluGradSums` on bf16 x and dy (a, b, acc1, acc2 in `pairOrder`).
    @inline(never)
    public static func siluGradSums(bf16 x: UnsafePointer<UInt16>, _ dy: UnsafePointer<UInt16>, a: UnsafePointer<Float>,
                                    b: UnsafePointer<Float>, rows: Int, c: Int,
                                    acc1: UnsafeMutablePointer<Float>, acc2: UnsafeMutablePointer<Float>) {
        var ch = 0
        while ch < c {
            let (ae, ao, be, bo) = (load(a + ch), load(a + ch + 16), load(b + ch), load(b + ch + 16))
            var e1 = V(), e2 = V(), o1 = V(), o2 = V()
            for r in 0..<rows {
                let (xe, xo) = loadPairs(x + r * c + ch)
                let (ge, go) = loadPairs(dy + r * c + ch)
                let dze = siluGrad(ge, be.addingProduct(xe, ae)), dzo = siluGrad(go, bo.addingProduct(xo, ao))
                e1 = e1.addingProduct(dze, xe)
                e2 += dze
                o1 = o1.addingProduct(dzo, xo)
                o2 += dzo
            }
            store(load(acc1 + ch) + e1, acc1 + ch)
            store(load(acc2 + ch) + e2, acc2 + ch)
            store(load(acc1 + ch + 16) + o1, acc1 + ch + 16)
            store(load(acc2 + ch + 16) + o2, acc2 + ch + 16)
            ch += 32
        }
    }

    /// `siluGradApply` on bf16 x and dy, out bf16 (k's five rows each in `pairOrder`).
    @inline(never)
    public static func siluGradApply(bf16 x: UnsafePointer<UInt16>, _ dy: UnsafePointer<UInt16>, k: UnsafePointer<Float>,
                                     rows: Int, c: Int, _ out: UnsafeMutablePointer<UInt16>) {
        @inline(__always) func dx(_ xv: V, _ g: V, _ ch: Int) -> V {
            let dz = siluGrad(g, load(k + c + ch).addingProduct(xv, load(k + ch)))
            return load(k + 4 * c + ch).addingProduct(load(k + 3 * c + ch), xv).addingProduct(dz, load(k + 2 * c + ch))
        }
        for r in 0..<rows {
            var ch = 0
            while ch < c {
                let (xe, xo) = loadPairs(x + r * c + ch)
                let (ge, go) = loadPairs(dy + r * c + ch)
                storePairs(dx(xe, ge, ch), dx(xo, go, ch + 16), out + r * c + ch)
                ch += 32
            }
        }
    }
}

extension AVX512Kernels {
    /// GroupNorm's statistics on bf16 rows: over `rows` rows of c channels, acc1[ch] +=
    /// sum (x - shift), acc2[ch] += sum (x - shift)^2, `shift` one row of c values (all in
    /// `pairOrder`, c a multiple of 32); float32 sums over the rows, lane by lane in row order.
    @inline(never)
    public static func shiftedSums(bf16 x: UnsafePointer<UInt16>, shift: UnsafePointer<UInt16>, rows: Int, c: Int,
                                   acc1: UnsafeMutablePointer<Float>, acc2: UnsafeMutablePointer<Float>) {
        var ch = 0
        while ch < c {
            let (se, so) = loadPairs(shift + ch)
            var e1 = V(), e2 = V(), o1 = V(), o2 = V()
            for r in 0..<rows {
                let (xe, xo) = loadPairs(x + r * c + ch)
                let (de, dd) = (xe - se, xo - so)
                e1 += de
                e2 = e2.addingProduct(de, de)
                o1 += dd
                o2 = o2.addingProduct(dd, dd)
            }
            store(load(acc1 + ch) + e1, acc1 + ch)
            store(load(acc2 + ch) + e2, acc2 + ch)
            store(load(acc1 + ch + 16) + o1, acc1 + ch + 16)
            store(load(acc2 + ch + 16) + o2, acc2 + ch + 16)
            ch += 32
        }
    }
}

extension AVX512Kernels {
    /// Ten independent 16-lane FMA chains, `iterations` each (320 FLOP an iteration): the
    /// machine-peak measurement's AVX-512 loop (Intel cores with two 512-bit FMA ports run
    /// twice the 8-lane rate; AMD EPYC splits 512-bit FMAs and runs the same). Returns a sum
    /// of the chains so the work is kept.
    @inline(never)
    public static func fmaChains(iterations: Int) -> Float {
        let b = splat(0.999_999), c = splat(1e-7)
        var a0 = splat(0), a1 = splat(1e-3), a2 = splat(2e-3), a3 = splat(3e-3), a4 = splat(4e-3)
        var a5 = splat(5e-3), a6 = splat(6e-3), a7 = splat(7e-3), a8 = splat(8e-3), a9 = splat(9e-3)
        for _ in 0..<iterations {
            a0 = c.addingProduct(a0, b); a1 = c.addingProduct(a1, b); a2 = c.addingProduct(a2, b)
            a3 = c.addingProduct(a3, b); a4 = c.addingProduct(a4, b); a5 = c.addingProduct(a5, b)
            a6 = c.addingProduct(a6, b); a7 = c.addingProduct(a7, b); a8 = c.addingProduct(a8, b)
            a9 = c.addingProduct(a9, b)
        }
        return (a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9).sum()
    }
}
