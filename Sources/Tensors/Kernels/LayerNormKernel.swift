/// Layer normalisation over contiguous rows of length d, forward and backward.
enum LayerNormKernel {
    /// y = (x - mean) rstd gamma + beta per row; returns mean and rstd per row.
    static func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int, d: Int, eps: Float,
                        gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?) -> ([Float], [Float]) {
        var mean = [Float](repeating: 0, count: rows), rstd = mean
        let xs = SendablePointer(UnsafeMutablePointer(mutating: x)), ys = SendablePointer(y)
        mean.withUnsafeMutableBufferPointer { mb in
            rstd.withUnsafeMutableBufferPointer { rb in
                let mp = SendablePointer(mb.baseAddress!), rp = SendablePointer(rb.baseAddress!)
                Parallel.forEach(rows, cost: d * 4) { r in
                    let xr = xs.p + r * d, yr = ys.p + r * d
                    let mu = Double(ReduceKernel.row(.sum, xr, d)) / Double(d)
                    var acc = Vec8()
                    var i = 0
                    let mv = Vec8(repeating: Float(mu))
                    while i < d {
                        let m = Swift.min(8, d - i)
                        var v = Lanes.load(xr + i, 1, m) - mv
                        if m < 8 { for l in m..<8 { v[l] = 0 } }
                        acc += v * v
                        i += m
                    }
                    let rs = 1 / (Double(acc.sum()) / Double(d) + Double(eps)).squareRoot()
                    mp.p[r] = Float(mu)
                    rp.p[r] = Float(rs)
                    let rv = Vec8(repeating: Float(rs))
                    i = 0
                    while i < d {
                        let m = Swift.min(8, d - i)
                        var v = (Lanes.load(xr + i, 1, m) - mv) * rv
                        if let gamma { v = v * Lanes.load(gamma + i, 1, m) }
                        if let beta { v = v + Lanes.load(beta + i, 1, m) }
                        Lanes.store(v, yr + i, 1, m)
                        i += m
                    }
                }
            }
        }
        return (mean, rstd)
    }

    /// dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)), dxhat = dy gamma;
    /// dgamma = sum over rows of dy xhat, dbeta = sum of dy.
    static func backward(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                         rows: Int, d: Int, mean: [Float], rstd: [Float], gamma: UnsafePointer<Float>?)
        -> (dgamma: [Float], dbeta: [Float]) {
        let threads = Parallel.threadCount
        var partialG = [Float](repeating: 0, count: threads * d), partialB = partialG
        let xs = SendablePointer(UnsafeMutablePointer(mutating: x)), gs = SendablePointer(UnsafeMutablePointer(mutating: dy))
        let ds = SendablePointer(dx)
        partialG.withUnsafeMutableBufferPointer { pgb in
            partialB.withUnsafeMutableBufferPointer { pbb in
                let pg = SendablePointer(pgb.baseAddress!), pb = SendablePointer(pbb.baseAddress!)
                Parallel.team(threads: threads) { t, nt in
                    let start = rows * t / nt, end = rows * (t + 1) / nt
                    let accG = pg.p + t * d, accB = pb.p + t * d
                    for r in start..<end {
                        let xr = xs.p + r * d, gr = gs.p + r * d, dr = ds.p + r * d
                        let mu = Vec8(repeating: mean[r]), rs = Vec8(repeating: rstd[r])
                        var s1 = Vec8(), s2 = Vec8()
                        var i = 0
                        while i < d {
                            let m = Swift.min(8, d - i)
                            let xhat = (Lanes.load(xr + i, 1, m) - mu) * rs
                            let g = Lanes.load(gr + i, 1, m)
                            let dxhat = gamma.map { g * Lanes.load($0 + i, 1, m) } ?? g
                            s1 += dxhat
                            s2 += dxhat * xhat
                            Lanes.store(Lanes.load(accG + i, 1, m) + g * xhat, accG + i, 1, m)
                            Lanes.store(Lanes.load(accB + i, 1, m) + g, accB + i, 1, m)
                            i += m
                        }
                        // Lanes past d hold zeros in g and so add nothing.
                        let m1 = Vec8(repeating: s1.sum() / Float(d)), m2 = Vec8(repeating: s2.sum() / Float(d))
                        i = 0
                        while i < d {
                            let m = Swift.min(8, d - i)
                            let xhat = (Lanes.load(xr + i, 1, m) - mu) * rs
                            let g = Lanes.load(gr + i, 1, m)
                            let dxhat = gamma.map { g * Lanes.load($0 + i, 1, m) } ?? g
                            Lanes.store(rs * (dxhat - m1 - xhat * m2), dr + i, 1, m)
                            i += m
                        }
                    }
                }
            }
        }
        var dgamma = [Float](repeating: 0, count: d), dbeta = dgamma
        for t in 0..<threads {
            for i in 0..<d {
                dgamma[i] += partialG[t * d + i]
                dbeta[i] += partialB[t * d + i]
            }
        }
        return (dgamma, dbeta)
    }
}
