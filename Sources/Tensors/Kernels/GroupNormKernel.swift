/// Group normalisation over [N, C, S] data, forward and backward, with an activation
/// (identity or SiLU) fused after the affine transform. x and dy are float32 or bfloat16
/// (`xBF16`, and `backward`'s `dyBF16`: widened as they are loaded, so bf16 data is never
/// copied to float32); the math is float32, y and dx float32 or bf16.
///
/// Two layouts: channels-first (each (n, c) a contiguous row of S positions; vectors run
/// along positions) and channels-last (each (n, position) a row of C channels, C a multiple
/// of 8; vectors run along channels). Statistics are shifted sums (about each channel's first
/// value, so a large mean cancels nothing), carried in Double and combined per group
/// (Chan et al.).
struct GroupNormKernel {
    let n: Int, c: Int, s: Int, groups: Int
    let channelsLast: Bool
    let eps: Float
    let silu: Bool
    /// x holds bfloat16 (else float32).
    var xBF16 = false
    /// A per-(n, c) value added to x before it is normalised ([n * c], or nil): the
    /// normalisation of z = x + shift, read from x (the shift folds into the sums' means
    /// and the affine coefficients, so it costs no pass).
    var shift: [Float]? = nil

    var perGroup: Int { c / groups }

    /// Positions per tile: a tile of x (and dy) stays in L1/L2 while every channel block
    /// of it is processed.
    static let tile = 128

    /// Work split into (sample, position range) jobs, so that even a batch of 1 uses every
    /// thread; `body` adds its job's sums into the two [c] Double arrays it gets. Returns the
    /// per-(n, c) totals.
    private func sums(_ body: (_ sample: Int, _ range: Range<Int>, _ acc1: UnsafeMutablePointer<Double>,
                               _ acc2: UnsafeMutablePointer<Double>) -> Void) -> ([Double], [Double]) {
        let threads = Parallel.threadCount
        let chunks = n >= 2 * threads ? 1 : Swift.max(1, Swift.min(s / 256, (2 * threads + n - 1) / n))
        var s1 = [Double](repeating: 0, count: n * chunks * c)
        var s2 = [Double](repeating: 0, count: n * chunks * c)
        s1.withUnsafeMutableBufferPointer { b1 in
            s2.withUnsafeMutableBufferPointer { b2 in
                let p1 = SendablePointer(b1.baseAddress!), p2 = SendablePointer(b2.baseAddress!)
                Parallel.forEach(n * chunks, cost: s * c / chunks) { job in
                    let sample = job / chunks, k = job % chunks
                    body(sample, (s * k / chunks)..<(s * (k + 1) / chunks), p1.p + job * c, p2.p + job * c)
                }
            }
        }
        if chunks == 1 { return (s1, s2) }
        var r1 = [Double](repeating: 0, count: n * c), r2 = r1
        for sample in 0..<n {
            for k in 0..<chunks {
                for ch in 0..<c {
                    r1[sample * c + ch] += s1[(sample * chunks + k) * c + ch]
                    r2[sample * c + ch] += s2[(sample * chunks + k) * c + ch]
                }
            }
        }
        return (r1, r2)
    }

    // MARK: Forward

    /// Writes y (float32, or bfloat16 bit patterns when `yBF16`, each row narrowed while
    /// in cache); returns mean and rstd per (n, group).
    func forward(_ x: UnsafeRawPointer, _ y: UnsafeMutableRawPointer, yBF16: Bool = false,
                 gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?) -> (mean: [Float], rstd: [Float]) {
        OpProfiler.measure("groupnorm fwd") {
            xBF16 ? forwardUnprofiled(BF16Element.self, x, y, yBF16: yBF16, gamma: gamma, beta: beta)
                  : forwardUnprofiled(F32Element.self, x, y, yBF16: yBF16, gamma: gamma, beta: beta)
        }
    }

    private func forwardUnprofiled<E: ActivationElement>(_ e: E.Type, _ x: UnsafeRawPointer, _ y: UnsafeMutableRawPointer, yBF16: Bool,
                                   gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?) -> (mean: [Float], rstd: [Float]) {
        let (s1, s2) = statistics(E.self, x)
        var mean = [Float](repeating: 0, count: n * groups), rstd = mean
        let cg = perGroup
        for sample in 0..<n {
            for g in 0..<groups {
                // Channel means and sums of squared deviations, then Chan's combination.
                var means = [Double](repeating: 0, count: cg), m2 = 0.0
                for k in 0..<cg {
                    let ch = g * cg + k
                    let t1 = s1[sample * c + ch], t2 = s2[sample * c + ch]
                    means[k] = Double(E.scalar(x, firstIndex(sample, ch))) + Double(shift?[sample * c + ch] ?? 0) + t1 / Double(s)
                    m2 += Swift.max(0, t2 - t1 * t1 / Double(s))
                }
                let mu = means.reduce(0, +) / Double(cg)
                for k in 0..<cg { m2 += Double(s) * (means[k] - mu) * (means[k] - mu) }
                mean[sample * groups + g] = Float(mu)
                rstd[sample * groups + g] = Float(1 / (m2 / Double(cg * s) + Double(eps)).squareRoot())
            }
        }
        let (a, b) = affine(mean, rstd, gamma, beta)
        if silu && CPUFeatures.avx512 {
            applySiLU16(E.self, x, y, yBF16, a, b)
        } else if silu {
            apply(SiLUActivation.self, E.self, x, y, yBF16, a, b)
        } else {
            apply(IdentityActivation.self, E.self, x, y, yBF16, a, b)
        }
        return (mean, rstd)
    }

    /// Index of channel `ch`'s first element in `sample` (the shift of its sums).
    private func firstIndex(_ sample: Int, _ ch: Int) -> Int {
        channelsLast ? sample * c * s + ch : (sample * c + ch) * s
    }

    /// Per-(n, c) sums of (x - shift) and (x - shift)^2.
    private func statistics<E: ActivationElement>(_ e: E.Type, _ x: UnsafeRawPointer) -> ([Double], [Double]) {
        let xs = RawPointer(x)
        let (c, s) = (self.c, self.s)
        let wide = E.self == BF16Element.self && channelsLast && c % 32 == 0 && CPUFeatures.avx512
        return sums { sample, range, acc1, acc2 in
            let base = sample * c * s
            if wide {
                statistics16(x, base, range, acc1, acc2)
            } else if channelsLast {
                var t0 = range.lowerBound
                while t0 < range.upperBound {
                    let t1 = Swift.min(range.upperBound, t0 + GroupNormKernel.tile)
                    for cb in stride(from: 0, to: c, by: 8) {
                        let shift = E.load8(xs.p, base + cb)
                        var v1 = Vec8(), v2 = Vec8()
                        for q in t0..<t1 {
                            let d = E.load8(xs.p, base + q * c + cb) - shift
                            v1 += d
                            v2 = v2.addingProduct(d, d)
                        }
                        for l in 0..<8 {
                            acc1[cb + l] += Double(v1[l])
                            acc2[cb + l] += Double(v2[l])
                        }
                    }
                    t0 = t1
                }
            } else {
                for ch in 0..<c {
                    let row = base + ch * s
                    let first = E.scalar(xs.p, row)
                    let shift = Vec8(repeating: first)
                    var v1 = Vec8(), v2 = Vec8()
                    var q = range.lowerBound
                    while q + 8 <= range.upperBound {
                        let d = E.load8(xs.p, row + q) - shift
                        v1 += d
                        v2 = v2.addingProduct(d, d)
                        q += 8
                    }
                    var t1 = Double(v1.sum()), t2 = Double(v2.sum())
                    while q < range.upperBound {
                        let d = Double(E.scalar(xs.p, row + q) - first)
                        t1 += d
                        t2 += d * d
                        q += 1
                    }
                    acc1[ch] += t1
                    acc2[ch] += t2
                }
            }
        }
    }

    /// Per-(n, c) scale and shift of the normalisation as a function of x: y = x a + b
    /// (= (x + shift) a + b', the shift folded into b).
    func affine(_ mean: [Float], _ rstd: [Float], _ gamma: UnsafePointer<Float>?, _ beta: UnsafePointer<Float>?) -> ([Float], [Float]) {
        var a = [Float](repeating: 0, count: n * c), b = a
        for sample in 0..<n {
            for ch in 0..<c {
                let g = ch / perGroup
                let r = rstd[sample * groups + g], m = mean[sample * groups + g] - (shift?[sample * c + ch] ?? 0)
                let scale = (gamma?[ch] ?? 1) * r
                a[sample * c + ch] = scale
                b[sample * c + ch] = (beta?[ch] ?? 0) - m * scale
            }
        }
        return (a, b)
    }

    /// out = act(x a[n, c] + b[n, c]); a bf16 `out` gets each row through a float32 tile.
    private func apply<A: PointwiseActivation, E: ActivationElement>(_ act: A.Type, _ e: E.Type, _ x: UnsafeRawPointer,
                                                                     _ out: UnsafeMutableRawPointer,
                                                                     _ outBF16: Bool, _ a: [Float], _ b: [Float]) {
        let xs = RawPointer(x), os = SendablePointer(out.assumingMemoryBound(to: Float.self))
        let o16 = SendablePointer(out.assumingMemoryBound(to: UInt16.self))
        let (c, s) = (self.c, self.s)
        a.withUnsafeBufferPointer { ab in
            b.withUnsafeBufferPointer { bb in
                let ap = SendablePointer(UnsafeMutablePointer(mutating: ab.baseAddress!))
                let bp = SendablePointer(UnsafeMutablePointer(mutating: bb.baseAddress!))
                if channelsLast {
                    Parallel.forRanges(n * s, grain: 16384 / c) { rows in
                        withUnsafeTemporaryAllocation(of: Float.self, capacity: outBF16 ? c : 0) { tile in
                        for row in rows {
                            let sample = row / s
                            let xr = row * c, yr = outBF16 ? tile.baseAddress! : os.p + row * c
                            let ar = ap.p + sample * c, br = bp.p + sample * c
                            for cb in stride(from: 0, to: c, by: 8) {
                                A.apply(VectorMath.fma(E.load8(xs.p, xr + cb), Vec8.load(ar + cb), Vec8.load(br + cb))).store(yr + cb)
                            }
                            if outBF16 { BFloat16Runs.narrow(yr, 1, o16.p + row * c, 1, c) }
                        }
                        }
                    }
                } else {
                    Parallel.forRanges(n * c, grain: Swift.max(1, 16384 / s)) { rows in
                        withUnsafeTemporaryAllocation(of: Float.self, capacity: outBF16 ? s : 0) { tile in
                        for row in rows {
                            let xr = row * s, yr = outBF16 ? tile.baseAddress! : os.p + row * s
                            let av = Vec8(repeating: ap.p[row]), bv = Vec8(repeating: bp.p[row])
                            var q = 0
                            while q + 8 <= s {
                                A.apply(VectorMath.fma(E.load8(xs.p, xr + q), av, bv)).store(yr + q)
                                q += 8
                            }
                            if q < s {
                                let m = s - q
                                Lanes.store(A.apply(VectorMath.fma(E.load(xs.p, xr + q, m), av, bv)), yr + q, 1, m)
                            }
                            if outBF16 { BFloat16Runs.narrow(yr, 1, o16.p + row * s, 1, s) }
                        }
                        }
                    }
                }
            }
        }
    }

    // MARK: Backward

    /// Gradients for x and gamma and beta. dx is written as float32 (`dx`) or, with `dxBF16`,
    /// as bfloat16 (each row rounded from float32 while in cache); exactly one of them. Two
    /// passes: the per-(n, c) sums, then dx.
    func backward(_ x: UnsafeRawPointer, _ dy: UnsafeRawPointer, dyBF16: Bool = false, _ dx: UnsafeMutablePointer<Float>?,
                  dxBF16: UnsafeMutablePointer<UInt16>? = nil,
                  mean: [Float], rstd: [Float], gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?)
        -> (dgamma: [Float], dbeta: [Float]) {
        precondition((dx == nil) != (dxBF16 == nil), "GroupNormKernel.backward: one dx, float32 or bf16")
        let out = Output(f32: dx.map(SendablePointer.init), bf16: dxBF16.map(SendablePointer.init))
        return OpProfiler.measure("groupnorm bwd") {
            switch (xBF16, dyBF16) {
            case (true, true): return backward(BF16Element.self, BF16Element.self, x, dy, out, mean: mean, rstd: rstd, gamma: gamma, beta: beta)
            case (true, false): return backward(BF16Element.self, F32Element.self, x, dy, out, mean: mean, rstd: rstd, gamma: gamma, beta: beta)
            case (false, true): return backward(F32Element.self, BF16Element.self, x, dy, out, mean: mean, rstd: rstd, gamma: gamma, beta: beta)
            case (false, false): return backward(F32Element.self, F32Element.self, x, dy, out, mean: mean, rstd: rstd, gamma: gamma, beta: beta)
            }
        }
    }

    /// Where dx goes: float32, or bfloat16 through a float32 row tile.
    struct Output: Sendable {
        let f32: SendablePointer<Float>?
        let bf16: SendablePointer<UInt16>?
    }

    private func backward<E: ActivationElement, D: ActivationElement>(_ e: E.Type, _ d: D.Type, _ x: UnsafeRawPointer,
                                                                       _ dy: UnsafeRawPointer, _ out: Output, mean: [Float], rstd: [Float],
                                                                       gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?) -> (dgamma: [Float], dbeta: [Float]) {
        silu ? backward(SiLUActivation.self, E.self, D.self, x, dy, out, mean: mean, rstd: rstd, gamma: gamma, beta: beta)
             : backward(IdentityActivation.self, E.self, D.self, x, dy, out, mean: mean, rstd: rstd, gamma: gamma, beta: beta)
    }

    private func backward<A: PointwiseActivation, E: ActivationElement, D: ActivationElement>(
        _ act: A.Type, _ e: E.Type, _ d: D.Type, _ x: UnsafeRawPointer, _ dy: UnsafeRawPointer, _ out: Output,
        mean: [Float], rstd: [Float], gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?)
        -> (dgamma: [Float], dbeta: [Float]) {
        let (a, b) = affine(mean, rstd, gamma, beta)
        // dz = dL/d(pre-activation); per (n, c): sum dz x and sum dz; with a shift, the
        // normalised value is z = x + shift, and sum dz z = sum dz x + shift sum dz.
        // With AVX-512, the SiLU gradient runs on 16 lanes and is computed again in the second
        // pass; else dz is kept (in dx's float32 buffer, or scratch for a bf16 dx), which is
        // faster on 8 lanes (4.0 against 5.3 ms for 64x64x32x32 in float32 on AMD EPYC).
        let wide = A.self == SiLUActivation.self && CPUFeatures.avx512 && channelsLast
        // Scratch from the caching allocator (a fresh mmap'd block faulted its pages in each
        // call: 7,700 of the 8,087 page faults of a bench U-Net bf16 training step).
        let buffer = wide || out.f32 != nil ? nil : Storage(byteCount: n * c * s * MemoryLayout<Float>.stride)
        let scratch = wide ? nil : (out.f32?.p ?? buffer!.base.assumingMemoryBound(to: Float.self))
        defer { withExtendedLifetime(buffer) {} }
        var (sdx, sd) = gradientSums(act, E.self, D.self, x, dy, a, b, dzOut: scratch)
        if let shift { for i in 0..<(n * c) { sdx[i] += Double(shift[i]) * sd[i] } }
        var dgamma = [Float](repeating: 0, count: c), dbeta = dgamma
        var k1 = [Float](repeating: 0, count: n * c), k2 = k1, k3 = k1
        let cg = perGroup
        let d = Double(cg * s)
        for sample in 0..<n {
            for g in 0..<groups {
                let mu = Double(mean[sample * groups + g]), r = Double(rstd[sample * groups + g])
                var sumD = 0.0, sumB = 0.0
                for k in 0..<cg {
                    let ch = g * cg + k
                    let ds = sdx[sample * c + ch], db = sd[sample * c + ch]
                    let gm = Double(gamma?[ch] ?? 1)
                    sumD += ds * gm
                    sumB += db * gm
                    dgamma[ch] += Float((ds - mu * db) * r)
                    dbeta[ch] += Float(db)
                }
                // dx = gamma rstd dz + c2 x + c3 (the standard group-norm gradient).
                let c2 = (sumB * mu - sumD) * r * r * r / d
                let c3 = -c2 * mu - sumB * r / d
                for k in 0..<cg {
                    let ch = g * cg + k
                    k1[sample * c + ch] = Float(Double(gamma?[ch] ?? 1) * r)
                    k2[sample * c + ch] = Float(c2)
                    // c2 z + c3 = c2 x + (c2 shift + c3)
                    k3[sample * c + ch] = Float(c3 + c2 * Double(shift?[sample * c + ch] ?? 0))
                }
            }
        }
        if let scratch {
            gradientApply(E.self, x, scratch, out.bf16, k1, k2, k3)
        } else {
            apply16(E.self, D.self, x, dy, out, [a, b, k1, k2, k3])
        }
        return (dgamma, dbeta)
    }

    /// Per-(n, c) sums of dz x and dz; dz also stored into `dzOut` where given (8 lanes).
    private func gradientSums<A: PointwiseActivation, E: ActivationElement, D: ActivationElement>(
        _ act: A.Type, _ e: E.Type, _ d: D.Type, _ x: UnsafeRawPointer, _ dy: UnsafeRawPointer,
        _ a: [Float], _ b: [Float], dzOut: UnsafeMutablePointer<Float>?) -> ([Double], [Double]) {
        let xs = RawPointer(x), gs = RawPointer(dy)
        let zs = dzOut.map(SendablePointer.init)
        let (c, s) = (self.c, self.s)
        let wide = zs == nil
        return a.withUnsafeBufferPointer { ab in
            b.withUnsafeBufferPointer { bb in
                let ap = RawPointer(ab.baseAddress!), bp = RawPointer(bb.baseAddress!)
                return sums { sample, range, acc1, acc2 in
                    let base = sample * c * s
                    let (af, bf) = (ap.p.assumingMemoryBound(to: Float.self), bp.p.assumingMemoryBound(to: Float.self))
                    if wide {
                        sums16(E.self, D.self, x, dy, af + sample * c, bf + sample * c, base, range, acc1, acc2)
                    } else if channelsLast {
                        var t0 = range.lowerBound
                        while t0 < range.upperBound {
                            let t1 = Swift.min(range.upperBound, t0 + GroupNormKernel.tile)
                            for cb in stride(from: 0, to: c, by: 8) {
                                let av = Vec8.load(af + sample * c + cb), bv = Vec8.load(bf + sample * c + cb)
                                var v1 = Vec8(), v2 = Vec8()
                                for q in t0..<t1 {
                                    let xv = E.load8(xs.p, base + q * c + cb)
                                    let dz = A.grad(D.load8(gs.p, base + q * c + cb), VectorMath.fma(xv, av, bv))
                                    dz.store(zs!.p + base + q * c + cb)
                                    v1 = v1.addingProduct(dz, xv)
                                    v2 += dz
                                }
                                for l in 0..<8 {
                                    acc1[cb + l] += Double(v1[l])
                                    acc2[cb + l] += Double(v2[l])
                                }
                            }
                            t0 = t1
                        }
                    } else {
                        for ch in 0..<c {
                            let row = base + ch * s
                            let av = Vec8(repeating: af[sample * c + ch]), bv = Vec8(repeating: bf[sample * c + ch])
                            var v1 = Vec8(), v2 = Vec8()
                            var q = range.lowerBound
                            while q + 8 <= range.upperBound {
                                let xv = E.load8(xs.p, row + q)
                                let dz = A.grad(D.load8(gs.p, row + q), VectorMath.fma(xv, av, bv))
                                dz.store(zs!.p + row + q)
                                v1 = v1.addingProduct(dz, xv)
                                v2 += dz
                                q += 8
                            }
                            if q < range.upperBound {
                                // Lanes past the end load as 0 in dy, so they add nothing.
                                let m = range.upperBound - q
                                let xv = E.load(xs.p, row + q, m)
                                let dz = A.grad(D.load(gs.p, row + q, m), VectorMath.fma(xv, av, bv))
                                Lanes.store(dz, zs!.p + row + q, 1, m)
                                v1 = v1.addingProduct(dz, xv)
                                v2 += dz
                            }
                            acc1[ch] += Double(v1.sum())
                            acc2[ch] += Double(v2.sum())
                        }
                    }
                }
            }
        }
    }

    /// dx = k1 dz + k2 x + k3, dz read from (and dx written to) `dx`; with `out16`, each
    /// finished row is also rounded into it.
    private func gradientApply<E: ActivationElement>(_ e: E.Type, _ x: UnsafeRawPointer, _ dx: UnsafeMutablePointer<Float>,
                                                     _ out16: SendablePointer<UInt16>?, _ k1: [Float], _ k2: [Float], _ k3: [Float]) {
        let xs = RawPointer(x), ds = SendablePointer(dx)
        let (c, s) = (self.c, self.s)
        k1.withUnsafeBufferPointer { b1 in k2.withUnsafeBufferPointer { b2 in k3.withUnsafeBufferPointer { b3 in
            let (p1, p2, p3) = (b1.baseAddress!, b2.baseAddress!, b3.baseAddress!)
            if channelsLast {
                Parallel.forRanges(n * s, grain: 16384 / c) { rows in
                    for row in rows {
                        let o = (row / s) * c
                        let xr = row * c, dr = ds.p + row * c
                        for cb in stride(from: 0, to: c, by: 8) {
                            let dz = Vec8.load(dr + cb)
                            VectorMath.fma(dz, Vec8.load(p1 + o + cb), VectorMath.fma(Vec8.load(p2 + o + cb), E.load8(xs.p, xr + cb), Vec8.load(p3 + o + cb)))
                                .store(dr + cb)
                        }
                        if let out16 { BFloat16Runs.narrow(dr, 1, out16.p + row * c, 1, c) }
                    }
                }
            } else {
                Parallel.forRanges(n * c, grain: Swift.max(1, 16384 / s)) { rows in
                    for row in rows {
                        let xr = row * s, dr = ds.p + row * s
                        let k1 = Vec8(repeating: p1[row]), k2 = Vec8(repeating: p2[row]), k3 = Vec8(repeating: p3[row])
                        var q = 0
                        while q < s {
                            let m = Swift.min(8, s - q)
                            Lanes.store(VectorMath.fma(Lanes.load(dr + q, 1, m), k1, VectorMath.fma(k2, E.load(xs.p, xr + q, m), k3)),
                                        dr + q, 1, m)
                            q += m
                        }
                        if let out16 { BFloat16Runs.narrow(dr, 1, out16.p + row * s, 1, s) }
                    }
                }
            }
        } } }
    }
}

/// An activation folded into a normalisation: its value and its gradient rule.
protocol PointwiseActivation {
    static func apply(_ z: Vec8) -> Vec8
    /// dL/dz from dL/dy at pre-activation z.
    static func grad(_ dy: Vec8, _ z: Vec8) -> Vec8
}

enum IdentityActivation: PointwiseActivation {
    @_transparent static func apply(_ z: Vec8) -> Vec8 { z }
    @_transparent static func grad(_ dy: Vec8, _ z: Vec8) -> Vec8 { dy }
}

enum SiLUActivation: PointwiseActivation {
    @_transparent static func apply(_ z: Vec8) -> Vec8 { z * VectorMath.sigmoid(z) }
    @_transparent static func grad(_ dy: Vec8, _ z: Vec8) -> Vec8 {
        let s = VectorMath.sigmoid(z)
        return dy * s * (1 + z * (1 - s))
    }
}

extension SIMD8 where Scalar == Float {
    /// 8 floats from memory (any alignment).
    @_transparent static func load(_ p: UnsafePointer<Float>) -> Vec8 { UnsafeRawPointer(p).loadUnaligned(as: Vec8.self) }
    @_transparent static func load(_ p: UnsafeMutablePointer<Float>) -> Vec8 { UnsafeRawPointer(p).loadUnaligned(as: Vec8.self) }
    @_transparent func store(_ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: self, as: Vec8.self) }
}

/// A read-only buffer that kernels share across threads.
struct RawPointer: @unchecked Sendable {
    let p: UnsafeRawPointer
    init(_ p: UnsafeRawPointer) { self.p = p }
}

/// The element type a kernel reads activations in, loaded as float32 lanes: float32 as it
/// is, bfloat16 widened (exact) in the load.
protocol ActivationElement {
    /// Elements [index, index + 8).
    static func load8(_ p: UnsafeRawPointer, _ index: Int) -> Vec8
    /// Elements [index, index + n), n <= 8; the other lanes 0.
    static func load(_ p: UnsafeRawPointer, _ index: Int, _ n: Int) -> Vec8
    static func scalar(_ p: UnsafeRawPointer, _ index: Int) -> Float
}

enum F32Element: ActivationElement {
    @_transparent static func load8(_ p: UnsafeRawPointer, _ index: Int) -> Vec8 {
        Float.load(p.assumingMemoryBound(to: Float.self) + index, 8)
    }
    @_transparent static func load(_ p: UnsafeRawPointer, _ index: Int, _ n: Int) -> Vec8 {
        Float.load(p.assumingMemoryBound(to: Float.self) + index, n)
    }
    @_transparent static func scalar(_ p: UnsafeRawPointer, _ index: Int) -> Float {
        p.assumingMemoryBound(to: Float.self)[index]
    }
}

/// bf16 loads through `TileElement`'s (one widening for the 8-lane kernels, in lane loops that
/// LLVM vectorises; SIMD8's `init(truncatingIfNeeded:)` stayed an out-of-line scalar loop).
enum BF16Element: ActivationElement {
    @_transparent static func load8(_ p: UnsafeRawPointer, _ index: Int) -> Vec8 {
        BFloat16.load(p.assumingMemoryBound(to: BFloat16.self) + index, 8)
    }
    @_transparent static func load(_ p: UnsafeRawPointer, _ index: Int, _ n: Int) -> Vec8 {
        BFloat16.load(p.assumingMemoryBound(to: BFloat16.self) + index, n)
    }
    @_transparent static func scalar(_ p: UnsafeRawPointer, _ index: Int) -> Float {
        Float(bitPattern: UInt32(p.assumingMemoryBound(to: UInt16.self)[index]) &<< 16)
    }
}
