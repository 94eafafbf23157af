/// Winograd F(4x4, 3x3) for convolutions whose transformed weights are too large to keep
/// (Stable Diffusion's 640- to 2560-channel layers: 59-236 MB each, 4x the weights): the
/// filters are transformed on every call, a block of output channels at a time, into a
/// per-thread buffer that stays in L2 while the GEMMs of every tile read it. Nothing is
/// held between calls, the weights are read once a call (not 36 transformed values per
/// filter pair from memory), and the transform adds about 160 multiply-adds per filter pair
/// to the GEMMs' 36 per pair and tile.
///
/// Per chunk of tiles: every tile's input transform V[ξ][tile][c] (shared); then each thread
/// takes blocks of `channelBlock` output channels, and for each block runs, per slice of
/// `channelSlice` input channels, the filter transform U[ξ][c][k] and the 36 GEMMs
/// M_ξ[tile][k] += V_ξ U_ξ (LIBXSMM, accumulating over the slices), then the block's output
/// transform with bias, residual and SiLU. Same arithmetic as `forward`, so the same
/// rounding.
extension WinogradConvolution {
    /// Input channels per filter-transform slice: U of a slice (36 x 64 x 32 floats,
    /// 288 KiB) stays in L2 beside the products (64 timed as fast as 128 and 256 at SD's
    /// shapes, and faster at 320 channels).
    static let channelSlice = 64

    /// Tiles per chunk: the chunk's products for one channel block (36 x tiles x 32 floats)
    /// stay in L2 too, and its V (36 x tiles x C floats) is capped at 12 MB.
    static func tileChunk(_ g: ConvGeometry) -> Int {
        let byV = (12 << 20) / (36 * g.inChannels * 4)
        return Swift.max(16, Swift.min(224, byV, tileCount(g)))
    }

    /// y = conv(x, w) + bias (+ residual), then SiLU, for weights `w` (OIHW, any type).
    static func forwardStreamed(_ x: Tensor, weights w: Tensor, _ bias: Tensor?, _ g: ConvGeometry,
                                residual: Tensor? = nil, silu: Bool = false) -> Tensor {
        let w32 = w.to(.float32).contiguous()
        return withExtendedLifetime(w32) {
            forwardStreamed(x, filters: .forward(w32.pointer(as: Float.self), inChannels: g.inChannels), bias, g,
                            residual: residual, silu: silu)
        }
    }

    /// dL/dx of g for dL/dy `gy` (channels-last float32): the forward pass of g's dual.
    static func backwardDataStreamed(_ gy: Tensor, weights w: Tensor, _ g: ConvGeometry) -> Tensor {
        let w32 = w.to(.float32).contiguous()
        return withExtendedLifetime(w32) {
            forwardStreamed(gy, filters: .dual(w32.pointer(as: Float.self), inChannels: g.inChannels), nil, g.dual!)
        }
    }

    /// y = conv(x, w) + bias (+ residual), then SiLU, with the filters read from `filters`
    /// (float32; `Filters.forward` of the weights, or `Filters.dual` of the original's for
    /// a backward-data pass as the dual's forward).
    static func forwardStreamed(_ x: Tensor, filters: Filters, _ bias: Tensor?, _ g: ConvGeometry,
                                residual: Tensor? = nil, silu: Bool = false) -> Tensor {
        let (c, k, tiles) = (g.inChannels, g.outChannels, tileCount(g))
        let chunk = tileChunk(g), slice = Swift.min(channelSlice, c)
        let y = Tensor(uninitializedShape: g.outputShape, strides: Shape.channelsLastStrides(g.outputShape), dtype: .float32)
        let xp = SendablePointer(x.pointer(as: Float.self)), yp = SendablePointer(y.pointer(as: Float.self))
        let bp = bias.map { SendablePointer($0.pointer(as: Float.self)) }
        let rp = residual.map { SendablePointer($0.pointer(as: Float.self)) }
        // Rows per point ξ, `skewed`: V's of the chunk, M's of a channel block, U's of a slice.
        let vStride = skewed(chunk * c, Float.self), mStride = skewed(chunk * channelBlock, Float.self)
        let uStride = skewed(slice * channelBlock, Float.self)
        let vStorage = Storage(byteCount: 36 * vStride * 4)
        let v = SendablePointer(vStorage.base.assumingMemoryBound(to: Float.self))
        let kBlocks = (k + channelBlock - 1) / channelBlock
        // Per thread: U of one slice, M of one channel block, scratch for the transforms.
        let threadFloats = 36 * uStride + 36 * mStride + scratchVectors * 8
        let threadCount = Parallel.threadCount
        let scratch = Storage(byteCount: threadCount * threadFloats * 4)
        let sp = SendablePointer(scratch.base.assumingMemoryBound(to: Float.self))
        // A thread's jobs: channel blocks, each split into parts of the chunk's tiles when
        // there are fewer blocks than threads to keep busy.
        let parts = Swift.max(1, (2 * threadCount + kBlocks - 1) / kBlocks)
        var first = 0
        while first < tiles {
            let count = Swift.min(chunk, tiles - first)
            Parallel.team { thread, threads in
                let s = UnsafeMutableRawPointer(sp.p + thread * threadFloats + 36 * (uStride + mStride)).assumingMemoryBound(to: Vec8.self)
                for i in (count * thread / threads)..<(count * (thread + 1) / threads) {
                    inputTile(xp.p, g, tile: first + i, into: v.p + i * c, xiStride: vStride, scratch: s)
                }
            }
            let jobs = kBlocks * parts
            Parallel.team { thread, threads in
                let u = sp.p + thread * threadFloats
                let m = u + 36 * uStride
                let s = UnsafeMutableRawPointer(m + 36 * mStride).assumingMemoryBound(to: Vec8.self)
                for job in (jobs * thread / threads)..<(jobs * (thread + 1) / threads) {
                    let kb = job / parts * channelBlock, width = Swift.min(channelBlock, k - kb)
                    let part = job % parts
                    let lo = count * part / parts, hi = count * (part + 1) / parts
                    guard hi > lo else { continue }
                    var c0 = 0
                    while c0 < c {
                        let cc = Swift.min(slice, c - c0)
                        // U[ξ][ci][kk] for this slice and block.
                        for k0 in stride(from: kb, to: kb + width, by: 8) {
                            let lanes = Swift.min(8, kb + width - k0)
                            for ci in 0..<cc {
                                filters.transform(k0: k0, lanes: lanes, c: c0 + ci, into: u + ci * width + k0 - kb,
                                                  xiStride: uStride)
                            }
                        }
                        // M_ξ (width x tiles) (+)= U_ξ (width x cc) V_ξ (cc x tiles), column-major.
                        let call = BRGEMMConvolution.kernel(m: width, n: hi - lo, k: cc, lda: width, ldb: c, ldc: width,
                                                            beta: c0 == 0 ? 0 : 1)!
                        for xi in 0..<36 {
                            BRGEMMConvolution.gemm(call, u + xi * uStride, v.p + xi * vStride + lo * c + c0, m + xi * mStride + lo * width)
                        }
                        c0 += cc
                    }
                    for i in lo..<hi {
                        outputTile(m + i * width, xiStride: mStride, channels: kb..<kb + width, g, tile: first + i,
                                   into: yp.p, bias: bp?.p, residual: rp?.p, silu: silu, scratch: s)
                    }
                }
            }
            first += count
        }
        withExtendedLifetime((x, vStorage, scratch)) {}
        return y
    }
}
