/// Group normalisation over [N, C, S] data stored either channels-first (each (n, c) a row
/// of S) or channels-last (each (n, pixel) a row of C), forward and backward, with SiLU
/// optionally fused after the affine transform.
///
/// Statistics: each channel's sums are taken about its first value (shifted sums, no
/// cancellation when the mean is large) and combined into groups in Double (Chan et al.).
struct GroupNormKernel {
    let n: Int, c: Int, s: Int, groups: Int
    let channelsLast: Bool
    let eps: Float
    let silu: Bool

    var perGroup: Int { c / groups }

    /// Per-(n, c) sums over S of f(x) (and g(x)), with `rowOp` fed each run of data.
    /// Splits the work into (sample, chunk) jobs; returns [n][c] sums.
    private func channelSums(_ body: (_ sample: Int, _ range: Range<Int>, _ acc1: UnsafeMutablePointer<Double>,
                                      _ acc2: UnsafeMutablePointer<Double>) -> Void) -> ([Double], [Double]) {
        let threads = Parallel.threadCount
        let chunks = n >= 2 * threads ? 1 : Swift.max(1, Swift.min(s / 64, (2 * threads + n - 1) / n))
        var s1 = [Double](repeating: 0, count: n * chunks * c)
        var s2 = [Double](repeating: 0, count: n * chunks * c)
        s1.withUnsafeMutableBufferPointer { b1 in
            s2.withUnsafeMutableBufferPointer { b2 in
                let p1 = SendablePointer(b1.baseAddress!), p2 = SendablePointer(b2.baseAddress!)
                Parallel.forEach(n * chunks, cost: s * c / chunks) { job in
                    let sample = job / chunks, k = job % chunks
                    let range = (s * k / chunks)..<(s * (k + 1) / chunks)
                    body(sample, range, p1.p + job * c, p2.p + job * c)
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

    /// Runs `body(run, count, strideInRun)` over the elements of channel block (sample, range):
    /// channels-last rows are pixels (C floats each); channels-first rows are channels.
    /// Returns mean and rstd per (n, group), and writes y.
    func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                 gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?) -> (mean: [Float], rstd: [Float]) {
        let xs = SendablePointer(UnsafeMutablePointer(mutating: x))
        let (c, s) = (self.c, self.s)
        // Pass 1: shifted per-channel sums (shift = the channel's first value in the sample).
        let (s1, s2) = channelSums { sample, range, a1, a2 in
            let base = xs.p + sample * c * s
            if channelsLast {
                withUnsafeTemporaryAllocation(of: Float.self, capacity: 3 * c) { tmp in
                    let shift = tmp.baseAddress!, f1 = shift + c, f2 = f1 + c
                    for ch in 0..<c { shift[ch] = base[ch] }
                    var p = range.lowerBound
                    while p < range.upperBound {
                        let end = Swift.min(range.upperBound, p + 256)
                        f1.initialize(repeating: 0, count: 2 * c)
                        for q in p..<end {
                            let row = base + q * c
                            var ch = 0
                            while ch + 8 <= c {
                                let d = UnsafeRawPointer(row + ch).loadUnaligned(as: Vec8.self)
                                    - UnsafeRawPointer(shift + ch).loadUnaligned(as: Vec8.self)
                                let o1 = UnsafeMutableRawPointer(f1 + ch), o2 = UnsafeMutableRawPointer(f2 + ch)
                                o1.storeBytes(of: o1.load(as: Vec8.self) + d, as: Vec8.self)
                                o2.storeBytes(of: o2.load(as: Vec8.self) + d * d, as: Vec8.self)
                                ch += 8
                            }
                            while ch < c {
                                let d = row[ch] - shift[ch]
                                f1[ch] += d
                                f2[ch] += d * d
                                ch += 1
                            }
                        }
                        for ch in 0..<c {
                            a1[ch] += Double(f1[ch])
                            a2[ch] += Double(f2[ch])
                        }
                        p = end
                    }
                }
            } else {
                for ch in 0..<c {
                    let row = base + ch * s
                    let shift = Vec8(repeating: row[0])
                    var q = range.lowerBound
                    while q < range.upperBound {
                        let end = Swift.min(range.upperBound, q + 2048)
                        var v1 = Vec8(), v2 = Vec8()
                        while q + 8 <= end {
                            let d = UnsafeRawPointer(row + q).loadUnaligned(as: Vec8.self) - shift
                            v1 += d
                            v2 += d * d
                            q += 8
                        }
                        var t1 = Double(v1.sum()), t2 = Double(v2.sum())
                        while q < end {
                            let d = Double(row[q] - row[0])
                            t1 += d
                            t2 += d * d
                            q += 1
                        }
                        a1[ch] += t1
                        a2[ch] += t2
                    }
                }
            }
        }
        // Combine channels into groups.
        var mean = [Float](repeating: 0, count: n * groups), rstd = mean
        let cg = perGroup
        let count = Double(cg * s)
        for sample in 0..<n {
            for g in 0..<groups {
                var means = [Double](repeating: 0, count: cg), m2s = means
                for k in 0..<cg {
                    let ch = g * cg + k
                    let first = Double(channelsLast ? x[sample * c * s + ch] : x[(sample * c + ch) * s])
                    let t1 = s1[sample * c + ch], t2 = s2[sample * c + ch]
                    means[k] = first + t1 / Double(s)
                    m2s[k] = Swift.max(0, t2 - t1 * t1 / Double(s))
                }
                let mu = means.reduce(0, +) / Double(cg)
                var m2 = m2s.reduce(0, +)
                for k in 0..<cg { m2 += Double(s) * (means[k] - mu) * (means[k] - mu) }
                mean[sample * groups + g] = Float(mu)
                rstd[sample * groups + g] = Float(1 / (m2 / count + Double(eps)).squareRoot())
            }
        }
        // Pass 2: y = x * a + b (then SiLU), a = gamma rstd, b = beta - mean a.
        let (a, b) = affine(mean, rstd, gamma, beta)
        apply(x, y, a, b, activation: silu)
        return (mean, rstd)
    }

    /// Per-(n, c) scale and shift of the normalisation.
    func affine(_ mean: [Float], _ rstd: [Float], _ gamma: UnsafePointer<Float>?, _ beta: UnsafePointer<Float>?) -> ([Float], [Float]) {
        var a = [Float](repeating: 0, count: n * c), b = a
        for sample in 0..<n {
            for ch in 0..<c {
                let g = ch / perGroup
                let r = rstd[sample * groups + g], m = mean[sample * groups + g]
                let scale = (gamma?[ch] ?? 1) * r
                a[sample * c + ch] = scale
                b[sample * c + ch] = (beta?[ch] ?? 0) - m * scale
            }
        }
        return (a, b)
    }

    /// out = x * a[n, c] + b[n, c], optionally followed by SiLU.
    private func apply(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ a: [Float], _ b: [Float], activation: Bool) {
        let xs = SendablePointer(UnsafeMutablePointer(mutating: x)), os = SendablePointer(out)
        let (c, s) = (self.c, self.s)
        a.withUnsafeBufferPointer { ab in
            b.withUnsafeBufferPointer { bb in
                let ap = SendablePointer(UnsafeMutablePointer(mutating: ab.baseAddress!))
                let bp = SendablePointer(UnsafeMutablePointer(mutating: bb.baseAddress!))
                if channelsLast {
                    Parallel.forEach(n * s, cost: c * 4) { row in
                        let sample = row / s
                        let xr = xs.p + row * c, yr = os.p + row * c
                        let ar = ap.p + sample * c, br = bp.p + sample * c
                        var ch = 0
                        while ch < c {
                            let m = Swift.min(8, c - ch)
                            var v = VectorMath.fma(Lanes.load(xr + ch, 1, m), Lanes.load(ar + ch, 1, m), Lanes.load(br + ch, 1, m))
                            if activation { v = v * VectorMath.sigmoid(v) }
                            Lanes.store(v, yr + ch, 1, m)
                            ch += m
                        }
                    }
                } else {
                    Parallel.forEach(n * c, cost: s * 4) { row in
                        let xr = xs.p + row * s, yr = os.p + row * s
                        let av = Vec8(repeating: ap.p[row]), bv = Vec8(repeating: bp.p[row])
                        var q = 0
                        while q < s {
                            let m = Swift.min(8, s - q)
                            var v = VectorMath.fma(Lanes.load(xr + q, 1, m), av, bv)
                            if activation { v = v * VectorMath.sigmoid(v) }
                            Lanes.store(v, yr + q, 1, m)
                            q += m
                        }
                    }
                }
            }
        }
    }

    /// dz: the gradient before SiLU (dy itself without it), for a run of elements.
    @inline(__always)
    private func preActivationGrad(_ dy: Vec8, _ x: Vec8, _ a: Vec8, _ b: Vec8) -> Vec8 {
        guard silu else { return dy }
        let z = VectorMath.fma(x, a, b)
        let sg = VectorMath.sigmoid(z)
        return dy * sg * (1 + z * (1 - sg))
    }

    /// Gradients for x, gamma and beta.
    func backward(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                  mean: [Float], rstd: [Float], gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?)
        -> (dgamma: [Float], dbeta: [Float]) {
        let (a, b) = affine(mean, rstd, gamma, beta)
        let xs = SendablePointer(UnsafeMutablePointer(mutating: x)), gs = SendablePointer(UnsafeMutablePointer(mutating: dy))
        let (c, s) = (self.c, self.s)
        // Pass 1: per-(n, c) sums of dz * x and dz.
        let (sdx, sd) = a.withUnsafeBufferPointer { ab in
            b.withUnsafeBufferPointer { bb in
                let ap = SendablePointer(UnsafeMutablePointer(mutating: ab.baseAddress!))
                let bp = SendablePointer(UnsafeMutablePointer(mutating: bb.baseAddress!))
                return channelSums { sample, range, a1, a2 in
                    let xb = xs.p + sample * c * s, gb = gs.p + sample * c * s
                    if channelsLast {
                        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * c) { tmp in
                            let f1 = tmp.baseAddress!, f2 = f1 + c
                            var p = range.lowerBound
                            while p < range.upperBound {
                                let end = Swift.min(range.upperBound, p + 256)
                                f1.initialize(repeating: 0, count: 2 * c)
                                for q in p..<end {
                                    var ch = 0
                                    while ch < c {
                                        let m = Swift.min(8, c - ch)
                                        let xv = Lanes.load(xb + q * c + ch, 1, m)
                                        let dz = preActivationGrad(Lanes.load(gb + q * c + ch, 1, m), xv,
                                                                   Lanes.load(ap.p + sample * c + ch, 1, m),
                                                                   Lanes.load(bp.p + sample * c + ch, 1, m))
                                        Lanes.store(Lanes.load(f1 + ch, 1, m) + dz * xv, f1 + ch, 1, m)
                                        Lanes.store(Lanes.load(f2 + ch, 1, m) + dz, f2 + ch, 1, m)
                                        ch += m
                                    }
                                }
                                for ch in 0..<c {
                                    a1[ch] += Double(f1[ch])
                                    a2[ch] += Double(f2[ch])
                                }
                                p = end
                            }
                        }
                    } else {
                        for ch in 0..<c {
                            let xr = xb + ch * s, gr = gb + ch * s
                            let av = Vec8(repeating: ap.p[sample * c + ch]), bv = Vec8(repeating: bp.p[sample * c + ch])
                            var v1 = Vec8(), v2 = Vec8()
                            var q = range.lowerBound
                            while q < range.upperBound {
                                let m = Swift.min(8, range.upperBound - q)
                                let xv = Lanes.load(xr + q, 1, m)
                                let dz = preActivationGrad(Lanes.load(gr + q, 1, m), xv, av, bv)
                                // Lanes past m load as 0 in both, so they add nothing.
                                v1 += dz * xv
                                v2 += dz
                                q += m
                            }
                            a1[ch] += Double(v1.sum())
                            a2[ch] += Double(v2.sum())
                        }
                    }
                }
            }
        }
        // Per-channel parameter gradients and per-group coefficients.
        var dgamma = [Float](repeating: 0, count: c), dbeta = dgamma
        var c2 = [Float](repeating: 0, count: n * groups), c3 = c2
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
                let k2 = (sumB * mu - sumD) * r * r * r / d
                c2[sample * groups + g] = Float(k2)
                c3[sample * groups + g] = Float(-k2 * mu - sumB * r / d)
            }
        }
        // Pass 2: dx = gamma rstd dz + c2 x + c3.
        let ds = SendablePointer(dx)
        let gscale = (0..<(n * c)).map { i -> Float in
            let ch = i % c, sample = i / c
            return (gamma?[ch] ?? 1) * rstd[sample * groups + ch / cg]
        }
        // The group coefficients per (n, c), so both layouts load them as vectors.
        let c2c = (0..<(n * c)).map { i in c2[(i / c) * groups + (i % c) / cg] }
        let c3c = (0..<(n * c)).map { i in c3[(i / c) * groups + (i % c) / cg] }
        [a, b, gscale, c2c, c3c].withContiguousArrays { pa, pb, pg, p2, p3 in
            if channelsLast {
                Parallel.forEach(n * s, cost: c * 6) { row in
                    let sample = row / s
                    let xr = xs.p + row * c, gr = gs.p + row * c, dr = ds.p + row * c
                    var ch = 0
                    while ch < c {
                        let m = Swift.min(8, c - ch)
                        let xv = Lanes.load(xr + ch, 1, m)
                        let dz = preActivationGrad(Lanes.load(gr + ch, 1, m), xv,
                                                   Lanes.load(pa + sample * c + ch, 1, m), Lanes.load(pb + sample * c + ch, 1, m))
                        let k2 = Lanes.load(p2 + sample * c + ch, 1, m), k3 = Lanes.load(p3 + sample * c + ch, 1, m)
                        let v = VectorMath.fma(dz, Lanes.load(pg + sample * c + ch, 1, m), VectorMath.fma(k2, xv, k3))
                        Lanes.store(v, dr + ch, 1, m)
                        ch += m
                    }
                }
            } else {
                Parallel.forEach(n * c, cost: s * 6) { row in
                    let xr = xs.p + row * s, gr = gs.p + row * s, dr = ds.p + row * s
                    let av = Vec8(repeating: pa[row]), bv = Vec8(repeating: pb[row]), gv = Vec8(repeating: pg[row])
                    let k2 = Vec8(repeating: p2[row]), k3 = Vec8(repeating: p3[row])
                    var q = 0
                    while q < s {
                        let m = Swift.min(8, s - q)
                        let xv = Lanes.load(xr + q, 1, m)
                        let dz = preActivationGrad(Lanes.load(gr + q, 1, m), xv, av, bv)
                        Lanes.store(VectorMath.fma(dz, gv, VectorMath.fma(k2, xv, k3)), dr + q, 1, m)
                        q += m
                    }
                }
            }
        }
        return (dgamma, dbeta)
    }
}

extension Array where Element == [Float] {
    /// Calls `body` with stable pointers to five arrays' storage.
    func withContiguousArrays(_ body: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>,
                                       UnsafePointer<Float>, UnsafePointer<Float>) -> Void) {
        self[0].withUnsafeBufferPointer { a in
            self[1].withUnsafeBufferPointer { b in
                self[2].withUnsafeBufferPointer { c in
                    self[3].withUnsafeBufferPointer { d in
                        self[4].withUnsafeBufferPointer { e in
                            body(a.baseAddress!, b.baseAddress!, c.baseAddress!, d.baseAddress!, e.baseAddress!)
                        }
                    }
                }
            }
        }
    }
}
