/// Reductions over the middle axis of a contiguous [outer, reduce, inner] float32 or
/// bfloat16 array (bf16 widened in the loads, exactly), into float32.
enum ReduceKernel {
    enum Kind { case sum, max, min }

    /// out[o, i] = reduce over r of x[o, r, i].
    static func reduce(_ kind: Kind, _ x: UnsafePointer<Float>, outer: Int, reduce: Int, inner: Int,
                       into out: UnsafeMutablePointer<Float>) {
        self.reduce(kind, UnsafeRawPointer(x), bf16: false, outer: outer, reduce: reduce, inner: inner, into: out)
    }

    /// As above, on float32 or (`bf16`) bfloat16 elements at `x`.
    static func reduce(_ kind: Kind, _ x: UnsafeRawPointer, bf16: Bool, outer: Int, reduce: Int, inner: Int,
                       into out: UnsafeMutablePointer<Float>) {
        OpProfiler.measure("reduce \(kind)") {
            if bf16 {
                reduceUnprofiled(kind, BF16Element.self, x, outer: outer, reduce: reduce, inner: inner, into: out)
            } else {
                reduceUnprofiled(kind, F32Element.self, x, outer: outer, reduce: reduce, inner: inner, into: out)
            }
        }
    }

    private static func reduceUnprofiled<E: ActivationElement>(_ kind: Kind, _ e: E.Type, _ x: UnsafeRawPointer, outer: Int,
                                                               reduce: Int, inner: Int, into out: UnsafeMutablePointer<Float>) {
        let xp = RawPointer(x), op = SendablePointer(out)
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
                        pp.p[t] = row(kind, E.self, xp.p, o * reduce + s, e - s)
                    }
                    op.p[o] = combine(kind, Array(pb))
                }
            }
            return
        }
        if inner == 1 {
            Parallel.forEach(outer, cost: reduce) { o in op.p[o] = row(kind, E.self, xp.p, o * reduce, reduce) }
            return
        }
        // Rows of `inner` combined elementwise; jobs are (outer, inner block).
        let block = 1024
        let blocks = (inner + block - 1) / block
        Parallel.forEach(outer * blocks, cost: reduce * Swift.min(block, inner)) { job in
            let o = job / blocks, b = job % blocks
            let i0 = b * block, i1 = Swift.min(inner, i0 + block)
            columns(kind, E.self, xp.p, start: o * reduce * inner, reduce: reduce, inner: inner, range: i0..<i1,
                    into: op.p + o * inner)
        }
    }

    /// out (contiguous, `shape`) = reduce over k of the view of x with `shape` and `strides`
    /// starting `offsets[k]` elements in: a reduction over a few axes, read in place.
    static func reduceViews(_ kind: Kind, _ x: UnsafeRawPointer, bf16: Bool, shape: [Int], strides: [Int], offsets: [Int],
                            into out: UnsafeMutablePointer<Float>) {
        OpProfiler.measure("reduce \(kind)") {
            if bf16 {
                views(kind, BF16Element.self, x, shape: shape, strides: strides, offsets: offsets, into: out)
            } else {
                views(kind, F32Element.self, x, shape: shape, strides: strides, offsets: offsets, into: out)
            }
        }
    }

    private static func views<E: ActivationElement>(_ kind: Kind, _ e: E.Type, _ x: UnsafeRawPointer, shape: [Int], strides: [Int],
                                                    offsets: [Int], into out: UnsafeMutablePointer<Float>) {
        let loop = StridedLoop(shape: shape, strides: [Shape.contiguousStrides(shape), strides])
        let os = loop.innerStride(0), xs = loop.innerStride(1)
        let xp = RawPointer(x), op = SendablePointer(out)
        loop.forEachRun(grain: 32768 / offsets.count) { off, n in
            let o = op.p + off[0]
            for (k, d) in offsets.enumerated() {
                let start = off[1] + d
                var i = 0
                if os == 1 && xs == 1 {
                    while i + 8 <= n {
                        let v = E.load8(xp.p, start + i)
                        (k == 0 ? v : combine(kind, Vec8.load(o + i), v)).store(o + i)
                        i += 8
                    }
                }
                while i < n {
                    let m = Swift.min(8, n - i)
                    var v = Vec8()
                    for j in 0..<m { v[j] = E.scalar(xp.p, start + (i + j) * xs) }
                    Lanes.store(k == 0 ? v : combine(kind, Lanes.load(o + i * os, os, m), v), o + i * os, os, m)
                    i += m
                }
            }
        }
    }

    /// The running value a combined with v (NaN wins for max and min, as torch).
    @inline(__always)
    private static func combine(_ kind: Kind, _ a: Vec8, _ v: Vec8) -> Vec8 {
        switch kind {
        case .sum: return a + v
        case .max: return a.replacing(with: v, where: (v .> a) .| (v .!= v))
        case .min: return a.replacing(with: v, where: (v .< a) .| (v .!= v))
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
        row(kind, F32Element.self, UnsafeRawPointer(x), 0, n)
    }

    /// Reduces elements [start, start + n) of x.
    static func row<E: ActivationElement>(_ kind: Kind, _ e: E.Type, _ base: UnsafeRawPointer, _ start: Int, _ n: Int) -> Float {
        switch kind {
        case .sum:
            var total: Double = 0
            var first = 0
            while first < n {
                let end = Swift.min(n, first + 256)
                var a0 = Vec8(), a1 = Vec8(), a2 = Vec8(), a3 = Vec8()
                var i = first
                while i + 32 <= end {
                    a0 += E.load8(base, start + i)
                    a1 += E.load8(base, start + i + 8)
                    a2 += E.load8(base, start + i + 16)
                    a3 += E.load8(base, start + i + 24)
                    i += 32
                }
                var s = Double(((a0 + a1) + (a2 + a3)).sum())
                while i < end { s += Double(E.scalar(base, start + i)); i += 1 }
                total += s
                first = end
            }
            return Float(total)
        case .max, .min:
            let isMax = kind == .max
            var acc = Vec8(repeating: isMax ? -.infinity : .infinity)
            var nan = false
            var i = 0
            while i + 8 <= n {
                let v = E.load8(base, start + i)
                if any(v .!= v) { nan = true }
                acc = isMax ? VectorMath.max(acc, v) : VectorMath.min(acc, v)
                i += 8
            }
            var r = isMax ? acc.max() : acc.min()
            while i < n {
                let v = E.scalar(base, start + i)
                if v.isNaN { nan = true }
                r = isMax ? Swift.max(r, v) : Swift.min(r, v)
                i += 1
            }
            return nan ? .nan : r
        }
    }

    /// out[i] = reduce over r of x[start + r * inner + i], for i in range.
    private static func columns<E: ActivationElement>(_ kind: Kind, _ e: E.Type, _ x: UnsafeRawPointer, start: Int, reduce: Int,
                                                      inner: Int, range: Range<Int>, into out: UnsafeMutablePointer<Float>) {
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
                        let row = start + r * inner + range.lowerBound
                        var i = 0
                        while i + 8 <= width {
                            let v = E.load8(x, row + i)
                            let a = UnsafeRawPointer(blk + i).loadUnaligned(as: Vec8.self)
                            UnsafeMutableRawPointer(blk + i).storeBytes(of: combine(kind, a, v), as: Vec8.self)
                            i += 8
                        }
                        while i < width {
                            let v = E.scalar(x, row + i)
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
