/// Reductions over the middle axis of a contiguous [outer, reduce, inner] Float32 array.
enum ReduceKernel {
    enum Kind { case sum, max, min }

    /// out[o, i] = reduce over r of x[o, r, i].
    static func reduce(_ kind: Kind, _ x: UnsafePointer<Float>, outer: Int, reduce: Int, inner: Int,
                       into out: UnsafeMutablePointer<Float>) {
        OpProfiler.measure("reduce \(kind)") { reduceUnprofiled(kind, x, outer: outer, reduce: reduce, inner: inner, into: out) }
    }

    private static func reduceUnprofiled(_ kind: Kind, _ x: UnsafePointer<Float>, outer: Int, reduce: Int, inner: Int,
                                         into out: UnsafeMutablePointer<Float>) {
        let xp = SendablePointer(UnsafeMutablePointer(mutating: x)), op = SendablePointer(out)
        let threads = Parallel.threadCount
        if inner == 1 && outer < threads && reduce >= 65536 {
            // Few long rows (a full reduction): split each row among the threads.
            for o in 0..<outer {
                let identity: Float = kind == .sum ? 0 : (kind == .max ? -.infinity : .infinity)
                var partial = [Float](repeating: identity, count: threads)
                partial.withUnsafeMutableBufferPointer { pb in
                    let pp = SendablePointer(pb.baseAddress!)
                    Parallel.team(threads: threads) { t, n in
                        let s = reduce * t / n, e = reduce * (t + 1) / n
                        pp.p[t] = row(kind, xp.p + o * reduce + s, e - s)
                    }
                    op.p[o] = combine(kind, Array(pb))
                }
            }
            return
        }
        if inner == 1 {
            Parallel.forEach(outer, cost: reduce) { o in op.p[o] = row(kind, xp.p + o * reduce, reduce) }
            return
        }
        // Rows of `inner` combined elementwise; jobs are (outer, inner block).
        let block = 1024
        let blocks = (inner + block - 1) / block
        Parallel.forEach(outer * blocks, cost: reduce * Swift.min(block, inner)) { job in
            let o = job / blocks, b = job % blocks
            let i0 = b * block, i1 = Swift.min(inner, i0 + block)
            columns(kind, xp.p + o * reduce * inner, reduce: reduce, inner: inner, range: i0..<i1,
                    into: op.p + o * inner)
        }
    }

    private static func combine(_ kind: Kind, _ parts: [Float]) -> Float {
        switch kind {
        case .sum: return parts.reduce(0, +)
        case .max: return parts.contains(where: \.isNaN) ? .nan : parts.reduce(-.infinity) { Swift.max($0, $1) }
        case .min: return parts.contains(where: \.isNaN) ? .nan : parts.reduce(.infinity) { Swift.min($0, $1) }
        }
    }

    /// Reduces n contiguous floats. Sums use 4 x 8 float lanes per block of 256 (8 values a
    /// lane) and carry the blocks in Double, so the error does not grow with n.
    static func row(_ kind: Kind, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        switch kind {
        case .sum:
            var total: Double = 0
            var start = 0
            while start < n {
                let end = Swift.min(n, start + 256)
                var a0 = Vec8(), a1 = Vec8(), a2 = Vec8(), a3 = Vec8()
                var i = start
                while i + 32 <= end {
                    let p = UnsafeRawPointer(x + i)
                    a0 += p.loadUnaligned(as: Vec8.self)
                    a1 += p.loadUnaligned(fromByteOffset: 32, as: Vec8.self)
                    a2 += p.loadUnaligned(fromByteOffset: 64, as: Vec8.self)
                    a3 += p.loadUnaligned(fromByteOffset: 96, as: Vec8.self)
                    i += 32
                }
                var s = Double(((a0 + a1) + (a2 + a3)).sum())
                while i < end { s += Double(x[i]); i += 1 }
                total += s
                start = end
            }
            return Float(total)
        case .max, .min:
            let isMax = kind == .max
            var acc = Vec8(repeating: isMax ? -.infinity : .infinity)
            var nan = false
            var i = 0
            while i + 8 <= n {
                let v = UnsafeRawPointer(x + i).loadUnaligned(as: Vec8.self)
                if any(v .!= v) { nan = true }
                acc = isMax ? VectorMath.max(acc, v) : VectorMath.min(acc, v)
                i += 8
            }
            var r = isMax ? acc.max() : acc.min()
            while i < n {
                if x[i].isNaN { nan = true }
                r = isMax ? Swift.max(r, x[i]) : Swift.min(r, x[i])
                i += 1
            }
            return nan ? .nan : r
        }
    }

    /// out[i] = reduce over r of x[r * inner + i], for i in range.
    private static func columns(_ kind: Kind, _ x: UnsafePointer<Float>, reduce: Int, inner: Int,
                                range: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        let width = range.count
        withUnsafeTemporaryAllocation(of: Double.self, capacity: width) { accBuf in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: width) { blockBuf in
                let acc = accBuf.baseAddress!, blk = blockBuf.baseAddress!
                let initial: Float = kind == .sum ? 0 : (kind == .max ? -.infinity : .infinity)
                acc.initialize(repeating: Double(initial), count: width)
                var r0 = 0
                while r0 < reduce {
                    let r1 = Swift.min(reduce, r0 + 64)
                    blk.initialize(repeating: initial, count: width)
                    for r in r0..<r1 {
                        let row = x + r * inner + range.lowerBound
                        var i = 0
                        while i + 8 <= width {
                            let v = UnsafeRawPointer(row + i).loadUnaligned(as: Vec8.self)
                            let a = UnsafeRawPointer(blk + i).loadUnaligned(as: Vec8.self)
                            let c: Vec8
                            switch kind {
                            case .sum: c = a + v
                            case .max: c = a.replacing(with: v, where: (v .> a) .| (v .!= v))
                            case .min: c = a.replacing(with: v, where: (v .< a) .| (v .!= v))
                            }
                            UnsafeMutableRawPointer(blk + i).storeBytes(of: c, as: Vec8.self)
                            i += 8
                        }
                        while i < width {
                            let v = row[i]
                            switch kind {
                            case .sum: blk[i] += v
                            case .max: if v > blk[i] || v.isNaN { blk[i] = v }
                            case .min: if v < blk[i] || v.isNaN { blk[i] = v }
                            }
                            i += 1
                        }
                    }
                    for i in 0..<width {
                        switch kind {
                        case .sum: acc[i] += Double(blk[i])
                        case .max: if Double(blk[i]) > acc[i] || blk[i].isNaN { acc[i] = Double(blk[i]) }
                        case .min: if Double(blk[i]) < acc[i] || blk[i].isNaN { acc[i] = Double(blk[i]) }
                        }
                    }
                    r0 = r1
                }
                for i in 0..<width { out[range.lowerBound + i] = Float(acc[i]) }
            }
        }
    }
}
