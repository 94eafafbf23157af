import CXSMM

/// Winograd F(4x4, 3x3) with bfloat16 GEMMs (`ConvolutionAlgorithm.winogradBF16`, opt-in), for
/// bf16 passes where LIBXSMM makes bf16 kernels (vdpbf16ps: AVX-512 BF16): the transformed
/// weights U and inputs V are rounded to bf16 and the 36 products accumulate in float32, at
/// twice the float32 GEMMs' rate and half their memory traffic; the transforms stay float32.
/// x, the residual and y are read and written in their own dtype.
///
/// Rounding: U and V carry bf16's relative error (2^-9), and the output transform adds up
/// values of both signs up to 8x larger than the result, so y's error is about 2% of its RMS
/// (2.5e-2 against float64 for Gaussian data; a bf16 direct convolution with its inputs and
/// output rounded: 2.9e-3), at most 1.8-2.0e-2 of sum|products| at 16+ channels (3.8e-2 at 4).
/// Other interpolation points do not help much (1.6e-2 at best, with 0, ±1, 1/2, -2). Measured
/// on AMD EPYC (avx512_bf16), batch 64: 128 channels at 16x16 forward 5.8 ms against oneDNN
/// bf16's 10.5 and float32 Winograd's on the same bf16 operands 8.0; in a whole U-Net step
/// it gained a few percent at most, hence opt-in (see `ConvolutionAlgorithm.winogradBF16`).
extension WinogradConvolution {
    /// Tiles per block in the bf16 forward: V (36 x tiles x C bf16) is half the float32 size,
    /// so twice the tiles share each read of U.
    static let bf16TileBlock = 32

    /// Whether the bf16 kernels compute g: LIBXSMM makes bf16 kernels, and an even number of
    /// input channels (the GEMMs' reduction, in VNNI pairs), at least 16: with fewer, the
    /// rounding is a larger part of each output (3.8e-2 of sum|products| at 4 channels,
    /// against 2e-2 at 32 and more) for little work saved.
    static func supportsBF16(_ g: ConvGeometry) -> Bool {
        FusedAttention.bf16Available && supports(g) && g.inChannels % 2 == 0 && g.inChannels >= 16
    }

    /// U of `w` (of g's dual when `dual`) in bf16, laid out per point ξ and block of output
    /// channels in LIBXSMM's VNNI-2 form: U[ξ][kb][c / 2][k - kb][c % 2]. Cached on w's storage
    /// per version, like the float32 form.
    static func transformedWeightsBF16(_ w: Tensor, _ g: ConvGeometry, dual: Bool) -> Storage {
        w.storage.derivedBuffer("winograd-bf16\(dual ? "-dual" : "")|\(w.offset)|\(w.strides)|\(w.dtype)", limit: keptWeightLimit) {
            let src = w.to(.float32).contiguous()
            let (c, k) = dual ? (g.outChannels, g.inChannels) : (g.inChannels, g.outChannels)
            return withExtendedLifetime(src) {
                let p = src.pointer(as: Float.self)
                return transformPairs(dual ? .dual(p, inChannels: g.inChannels) : .forward(p, inChannels: g.inChannels),
                                      outChannels: k, inChannels: c)
            }
        }
    }

    /// `transform` into bf16 pairs: per (ξ, kb) block, the element (i = k - kb, p = c) at
    /// [(p / 2) 2 width + 2 i + p % 2] (c even). Input channels go two at a time, so that
    /// each pair of lanes is one 32-bit word.
    private static func transformPairs(_ filters: Filters, outChannels k: Int, inChannels c: Int) -> Storage {
        let xiWords = weightStride(c, k, UInt16.self) / 2
        let out = Storage(byteCount: 36 * xiWords * 4)
        let words = SendablePointer(out.base.assumingMemoryBound(to: UInt32.self))
        let groups = (k + 7) / 8, pairs = c / 2
        Parallel.forEach(groups * pairs, cost: 800) { job in
            let k0 = job / pairs * 8, pair = job % pairs, lanes = Swift.min(8, k - k0)
            let kb = k0 / channelBlock * channelBlock, width = Swift.min(channelBlock, k - kb)
            var even = (Vec8(), Vec8(), Vec8(), Vec8(), Vec8(), Vec8(), Vec8(), Vec8(), Vec8(), Vec8(), Vec8(), Vec8(),
                        Vec8(), Vec8(), Vec8(), Vec8(), Vec8(), Vec8(), Vec8(), Vec8(), Vec8(), Vec8(), Vec8(), Vec8(),
                        Vec8(), Vec8(), Vec8(), Vec8(), Vec8(), Vec8(), Vec8(), Vec8(), Vec8(), Vec8(), Vec8(), Vec8())
            var odd = even
            withUnsafeMutableBytes(of: &even) { e in
                withUnsafeMutableBytes(of: &odd) { o in
                    let ep = e.baseAddress!.assumingMemoryBound(to: Float.self), op = o.baseAddress!.assumingMemoryBound(to: Float.self)
                    filters.transform(k0: k0, lanes: lanes, c: 2 * pair, into: ep, xiStride: 8)
                    filters.transform(k0: k0, lanes: lanes, c: 2 * pair + 1, into: op, xiStride: 8)
                    for xi in 0..<36 {
                        let low = BFloat16.roundedHigh(Lanes.load(ep + xi * 8, 1)) &>> 16
                        let high = BFloat16.roundedHigh(Lanes.load(op + xi * 8, 1)) & 0xFFFF_0000
                        let at = words.p + xi * xiWords + kb * c / 2 + pair * width + k0 - kb
                        let word = low | high
                        if lanes == 8 {
                            UnsafeMutableRawPointer(at).storeBytes(of: word, as: SIMD8<UInt32>.self)
                        } else {
                            for lane in 0..<lanes { at[lane] = word[lane] }
                        }
                    }
                }
            }
        }
        return out
    }

    /// y = conv(x, w) + bias (+ residual), then SiLU, with bf16 GEMMs; `transformed` from
    /// `transformedWeightsBF16` (of the dual for a backward-data pass as the dual's forward).
    static func forwardBF16(_ x: Tensor, transformed: Storage, _ bias: Tensor?, _ g: ConvGeometry,
                            residual: Tensor? = nil, silu: Bool = false, outType: DType = .float32) -> Tensor {
        let (c, k) = (g.inChannels, g.outChannels)
        // Fewer tiles than a full block a thread (small batches of small images): smaller
        // blocks, so that every thread has one.
        let threads = Parallel.threadCount
        let block = Swift.max(8, Swift.min(bf16TileBlock, (tileCount(g) + threads - 1) / threads))
        let up = UnsafeSendablePointer(UnsafePointer(transformed.base.assumingMemoryBound(to: UInt16.self)))
        let uStride = weightStride(c, k, UInt16.self)
        let kBlocks = stride(from: 0, to: k, by: channelBlock).map { ($0, Swift.min(channelBlock, k - $0)) }
        func kernels(_ n: Int) -> [libxsmm_bsmmfunction_reducebatch_addr] {
            kBlocks.map { FusedAttention.bf16Kernel(m: $0.1, n: n, k: c, lda: $0.1, ldb: c, ldc: k) }
        }
        let tail = tileCount(g) % block
        let full = kernels(block), last = tail == 0 ? full : kernels(tail)
        let y = forward(x, block: block, bias, g, residual: residual, silu: silu, outType: outType) {
            (count: Int, v: UnsafePointer<BFloat16>, vStride: Int, m: UnsafeMutablePointer<Float>, mStride: Int) in
            let calls = count == block ? full : last
            let vBits = UnsafeRawPointer(v).assumingMemoryBound(to: UInt16.self)
            for xi in 0..<36 {
                for (index, (kb, _)) in kBlocks.enumerated() {
                    FusedAttention.gemm(calls[index], up.p + xi * uStride + kb * c, vBits + xi * vStride, m + xi * mStride + kb)
                }
            }
        }
        withExtendedLifetime(transformed) {}
        return y
    }
}

