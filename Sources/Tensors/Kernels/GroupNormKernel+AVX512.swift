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
