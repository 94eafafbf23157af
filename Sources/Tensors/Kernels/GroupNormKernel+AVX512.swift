import TensorsAVX512

extension GroupNormKernel {
    /// `apply` with the fused SiLU on 16 lanes (`AVX512Kernels.siluAffine`, where the CPU has
    /// AVX-512): the same values, bit for bit. A bf16 x is widened a row at a time into a
    /// float32 tile first, and a bf16 out narrowed from it.
    func applySiLU16<E: ActivationElement>(_ e: E.Type, _ x: UnsafeRawPointer, _ out: UnsafeMutableRawPointer,
                                           _ outBF16: Bool, _ a: [Float], _ b: [Float]) {
        let xs = RawPointer(x), os = SendablePointer(out.assumingMemoryBound(to: Float.self))
        let o16 = SendablePointer(out.assumingMemoryBound(to: UInt16.self))
        let widen = E.self == BF16Element.self
        let (c, s, channelsLast) = (self.c, self.s, self.channelsLast)
        let (rowCount, length) = channelsLast ? (n * s, c) : (n * c, s)
        if widen && outBF16 && channelsLast && c % 32 == 0 {
            return applySiLU16BF16(x, out, a, b)
        }
        a.withUnsafeBufferPointer { ab in
            b.withUnsafeBufferPointer { bb in
                let ap = RawPointer(ab.baseAddress!), bp = RawPointer(bb.baseAddress!)
                Parallel.forRanges(rowCount, grain: Swift.max(1, 16384 / length)) { rows in
                    withUnsafeTemporaryAllocation(of: Float.self, capacity: widen || outBF16 ? length : 0) { tile in
                        for row in rows {
                            let start = row * length
                            let src: UnsafePointer<Float>
                            if widen {
                                BFloat16Runs.widen(xs.p.assumingMemoryBound(to: UInt16.self) + start, 1, tile.baseAddress!, 1, length)
                                src = UnsafePointer(tile.baseAddress!)
                            } else {
                                src = xs.p.assumingMemoryBound(to: Float.self) + start
                            }
                            let dst = outBF16 ? tile.baseAddress! : os.p + start
                            let (af, bf) = (ap.p.assumingMemoryBound(to: Float.self), bp.p.assumingMemoryBound(to: Float.self))
                            if channelsLast {
                                let sample = row / s
                                AVX512Kernels.siluAffine(src, af + sample * c, bf + sample * c, dst, c)
                            } else {
                                AVX512Kernels.siluAffine(src, a: af[row], b: bf[row], dst, s)
                            }
                            if outBF16 { BFloat16Runs.narrow(dst, 1, o16.p + start, 1, length) }
                        }
                    }
                }
            }
        }
    }
}

extension GroupNormKernel {
    /// Rows of c coefficients (per sample) each in `AVX512Kernels.pairOrder`.
    func pairOrdered(_ values: [Float]) -> [Float] {
        var out = values
        values.withUnsafeBufferPointer { v in
            out.withUnsafeMutableBufferPointer { o in
                for row in 0..<(values.count / c) { AVX512Kernels.pairOrder(v.baseAddress! + row * c, c, into: o.baseAddress! + row * c) }
            }
        }
        return out
    }

    /// Channels-last bf16 in and out (c a multiple of 32): `AVX512Kernels.siluAffine(bf16:)`
    /// over runs of rows within a sample, widened and rounded in registers.
    private func applySiLU16BF16(_ x: UnsafeRawPointer, _ out: UnsafeMutableRawPointer, _ a: [Float], _ b: [Float]) {
        let xs = RawPointer(x), o16 = SendablePointer(out.assumingMemoryBound(to: UInt16.self))
        let (c, s) = (self.c, self.s)
        let (a, b) = (pairOrdered(a), pairOrdered(b))
        a.withUnsafeBufferPointer { ab in
            b.withUnsafeBufferPointer { bb in
                let ap = RawPointer(ab.baseAddress!), bp = RawPointer(bb.baseAddress!)
                Parallel.forRanges(n * s, grain: Swift.max(1, 16384 / c)) { rows in
                    let (af, bf) = (ap.p.assumingMemoryBound(to: Float.self), bp.p.assumingMemoryBound(to: Float.self))
                    var r0 = rows.lowerBound
                    while r0 < rows.upperBound {
                        let sample = r0 / s
                        let r1 = Swift.min(rows.upperBound, (sample + 1) * s)
                        AVX512Kernels.siluAffine(bf16: xs.p.assumingMemoryBound(to: UInt16.self) + r0 * c, af + sample * c, bf + sample * c,
                                                 o16.p + r0 * c, rows: r1 - r0, c: c)
                        r0 = r1
                    }
                }
            }
        }
    }

    /// The channels-last statistics of bf16 x (c a multiple of 32) on 16 lanes in registers
    /// (`AVX512Kernels.shiftedSums`), tile by tile as the 8-lane pass: the same bits.
    func statistics16(_ x: UnsafeRawPointer, _ base: Int, _ range: Range<Int>, _ acc1: UnsafeMutablePointer<Double>,
                      _ acc2: UnsafeMutablePointer<Double>) {
        let xh = x.assumingMemoryBound(to: UInt16.self)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 3 * c) { buffer in
            let (t1, t2, scratch) = (buffer.baseAddress!, buffer.baseAddress! + c, buffer.baseAddress! + 2 * c)
            var q0 = range.lowerBound
            while q0 < range.upperBound {
                let q1 = Swift.min(range.upperBound, q0 + GroupNormKernel.tile)
                t1.initialize(repeating: 0, count: 2 * c)
                AVX512Kernels.shiftedSums(bf16: xh + base + q0 * c, shift: xh + base, rows: q1 - q0, c: c, acc1: t1, acc2: t2)
                for t in [t1, t2] {
                    AVX512Kernels.naturalOrder(t, c, into: scratch)
                    t.update(from: scratch, count: c)
                }
                for ch in 0..<c {
                    acc1[ch] += Double(t1[ch])
                    acc2[ch] += Double(t2[ch])
                }
                q0 = q1
            }
        }
    }

    /// Rows of a 16-lane backward tile: at most `tile`, and about 16 KB of float32 an operand.
    private var rows16: Int { Swift.max(1, Swift.min(GroupNormKernel.tile, 4096 / c)) }

    /// `count` elements of E at `p` + `start` as float32: in place, or widened into `tile`.
    private func floats<E: ActivationElement>(_ e: E.Type, _ p: UnsafeRawPointer, _ start: Int, _ count: Int,
                                              _ tile: UnsafeMutablePointer<Float>) -> UnsafePointer<Float> {
        if E.self == BF16Element.self {
            BFloat16Runs.widen(p.assumingMemoryBound(to: UInt16.self) + start, 1, tile, 1, count)
            return UnsafePointer(tile)
        }
        return p.assumingMemoryBound(to: Float.self) + start
    }

    /// The channels-last backward's sums with the SiLU gradient on 16 lanes
    /// (`AVX512Kernels.siluGradSums`), bf16 rows widened a tile at a time.
    func sums16<E: ActivationElement, D: ActivationElement>(_ e: E.Type, _ d: D.Type, _ x: UnsafeRawPointer, _ dy: UnsafeRawPointer,
                                                            _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ base: Int,
                                                            _ range: Range<Int>, _ acc1: UnsafeMutablePointer<Double>,
                                                            _ acc2: UnsafeMutablePointer<Double>) {
        let rows = rows16
        let inRegisters = E.self == BF16Element.self && D.self == BF16Element.self && c % 32 == 0
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 5 * c + (inRegisters ? 0 : 2 * rows * c)) { buffer in
            let (t1, t2) = (buffer.baseAddress!, buffer.baseAddress! + c)
            let (pa, pb, scratch) = (t2 + c, t2 + 2 * c, t2 + 3 * c)  // a and b in pair order
            let (xt, gt) = (t2 + 4 * c, t2 + 4 * c + rows * c)
            if inRegisters {
                AVX512Kernels.pairOrder(a, c, into: pa)
                AVX512Kernels.pairOrder(b, c, into: pb)
            }
            var q0 = range.lowerBound
            while q0 < range.upperBound {
                let q1 = Swift.min(range.upperBound, q0 + rows)
                t1.initialize(repeating: 0, count: 2 * c)
                let (first, count) = (base + q0 * c, (q1 - q0) * c)
                if inRegisters {
                    AVX512Kernels.siluGradSums(bf16: x.assumingMemoryBound(to: UInt16.self) + first, dy.assumingMemoryBound(to: UInt16.self) + first,
                                               a: pa, b: pb, rows: q1 - q0, c: c, acc1: t1, acc2: t2)
                    // Back to channel order.
                    AVX512Kernels.naturalOrder(t1, c, into: scratch)
                    t1.update(from: scratch, count: c)
                    AVX512Kernels.naturalOrder(t2, c, into: scratch)
                    t2.update(from: scratch, count: c)
                } else {
                    AVX512Kernels.siluGradSums(floats(E.self, x, first, count, xt), floats(D.self, dy, first, count, gt),
                                               a: a, b: b, rows: q1 - q0, c: c, acc1: t1, acc2: t2)
                }
                for ch in 0..<c {
                    acc1[ch] += Double(t1[ch])
                    acc2[ch] += Double(t2[ch])
                }
                q0 = q1
            }
        }
    }

    /// The channels-last dx pass with the SiLU gradient on 16 lanes
    /// (`AVX512Kernels.siluGradApply`); `coefficients` are a, b, k1, k2, k3, each [n * c].
    func apply16<E: ActivationElement, D: ActivationElement>(_ e: E.Type, _ d: D.Type, _ x: UnsafeRawPointer, _ dy: UnsafeRawPointer,
                                                             _ out: Output, _ coefficients: [[Float]]) {
        let (c, s, tileRows) = (self.c, self.s, rows16)
        let inRegisters = E.self == BF16Element.self && D.self == BF16Element.self && out.bf16 != nil && c % 32 == 0
        // Per sample, its five coefficient rows one after the other (in pair order for the
        // bf16 kernel).
        var packed = [Float](repeating: 0, count: 5 * n * c)
        for sample in 0..<n {
            for (k, values) in coefficients.enumerated() {
                for ch in 0..<c { packed[(5 * sample + k) * c + ch] = values[sample * c + ch] }
            }
        }
        if inRegisters { packed = pairOrdered(packed) }
        let xs = RawPointer(x), gs = RawPointer(dy)
        packed.withUnsafeBufferPointer { pb in
            let cp = RawPointer(pb.baseAddress!)
            Parallel.forRanges(n * s, grain: Swift.max(1, 16384 / c)) { rows in
                withUnsafeTemporaryAllocation(of: Float.self, capacity: 3 * tileRows * c) { buffer in
                    let (xt, gt, ot) = (buffer.baseAddress!, buffer.baseAddress! + tileRows * c, buffer.baseAddress! + 2 * tileRows * c)
                    let k = cp.p.assumingMemoryBound(to: Float.self)
                    var r0 = rows.lowerBound
                    while r0 < rows.upperBound {
                        // Tiles within one sample (the coefficients are per sample).
                        let sample = r0 / s
                        if inRegisters {
                            let r1 = Swift.min(rows.upperBound, (sample + 1) * s)
                            AVX512Kernels.siluGradApply(bf16: xs.p.assumingMemoryBound(to: UInt16.self) + r0 * c,
                                                        gs.p.assumingMemoryBound(to: UInt16.self) + r0 * c, k: k + 5 * sample * c,
                                                        rows: r1 - r0, c: c, out.bf16!.p + r0 * c)
                            r0 = r1
                            continue
                        }
                        let r1 = Swift.min(rows.upperBound, (sample + 1) * s, r0 + tileRows)
                        let (first, count) = (r0 * c, (r1 - r0) * c)
                        let target = out.bf16 != nil ? ot : out.f32!.p + first
                        AVX512Kernels.siluGradApply(floats(E.self, xs.p, first, count, xt), floats(D.self, gs.p, first, count, gt),
                                                    k: k + 5 * sample * c, rows: r1 - r0, c: c, target)
                        if let o16 = out.bf16 { BFloat16Runs.narrow(ot, 1, o16.p + first, 1, count) }
                        r0 = r1
                    }
                }
            }
        }
    }
}
