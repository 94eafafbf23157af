import CXSMM
import TensorsAVX512

/// 3x3 stride-1 convolutions by Winograd's minimal filtering F(4x4, 3x3) (Lavin & Gray 2016,
/// "Fast Algorithms for Convolutional Neural Networks", eq. 8): each 4x4 output tile is
///
///     Y = A^T [ Σ_c (G g_kc G^T) ⊙ (B^T d_c B) ] A
///
/// for the 6x6 input patch d_c of each channel and the 3x3 filters g_kc. The channel sum
/// splits into 36 independent GEMMs, one per point ξ of the 6x6 transform domain,
///
///     M_ξ[t, k] = Σ_c V_ξ[t, c] U_ξ[c, k],   V = B^T d B,  U = G g G^T,
///
/// with 36 multiply-adds per 16 outputs and channel pair instead of 144: 4x fewer than
/// direct convolution. Tiles go in blocks whose transformed input V and products M stay in
/// cache between the input transform, the GEMMs (LIBXSMM JIT kernels) and the output
/// transform, which also adds the bias and residual and applies SiLU. oneDNN 2.6 has
/// Winograd only for AVX-512; this is the AVX2 path. Rounding: about 4e-6 of the output's
/// scale in fp32 (direct convolution: about 2e-7), measured against float64.
///
/// Activations are channels-last float32, like the other convolution kernels. The backward-data
/// pass of a 3x3 stride-1 convolution is the forward pass of its dual (`ConvGeometry.dual`),
/// so it runs here too, with the dual's transformed weights made directly from the originals.
/// Layers whose transformed weights are too large to keep transform them at each call instead
/// (`forwardStreamed`, WinogradConvolution+Streamed.swift), and the weight gradient runs the
/// adjoint of these transforms (WinogradConvolution+Weights.swift).
enum WinogradConvolution {
    /// The scratch (in 8-lane vectors) that `inputTile` and `outputTile` take: room for 36
    /// 16-lane ones.
    static let scratchVectors = 72

    /// Tiles per block: V and M of a block (36 x tiles x channels each) stay in L2.
    static let tileBlock = 16
    /// Output channels per GEMM call (the blocking LIBXSMM's AVX2 kernels like best).
    static let channelBlock = 32

    static func supports(_ g: ConvGeometry) -> Bool {
        BRGEMMConvolution.available && g.groups == 1 && g.kernelH == 3 && g.kernelW == 3
            && g.strideH == 1 && g.strideW == 1 && g.dilationH == 1 && g.dilationW == 1
            && g.padH <= 2 && g.padW <= 2 && g.outH > 0 && g.outW > 0
    }

    /// The most bytes of transformed weights (36 values per filter pair, 4x the weights) kept
    /// per layer: 1.5x the derived-buffer cache's limit, 24 MB by default. ddpm-cifar10's
    /// 256- and 512-channel convolutions keep theirs (9.4 and 18.9 MB; at batch 8 and 16x16
    /// its evaluation took 0.45 -> 0.35 s for the first, peak RSS +164 MB); SD's 640-channel
    /// ones (59 MB) and its VAE's 512-channel ones (38 MB) stream theirs.
    static var keptWeightLimit: Int { Storage.derivedCacheLimit * 3 / 2 }

    /// Whether g's transformed weights are kept between calls (cached per weight version),
    /// within `keptWeightLimit`. Otherwise `forwardStreamed` transforms them a block at a
    /// time, at each call. The backward-data pass follows the same rule since timing charges
    /// a training step's candidates their weight transform (`freshWeights`); before, the
    /// dual at 8x8 timed faster than it ran within a training step and was held to
    /// transformed weights no larger than twice its input.
    static func keepsTransformedWeights(_ g: ConvGeometry) -> Bool {
        36 * g.outChannels * g.inChannels * 4 <= keptWeightLimit
    }

    /// G g for F(4, 3): a 3-tap filter into the six points of the transform domain.
    @inline(__always)
    private static func filterTransform(_ g0: Vec8, _ g1: Vec8, _ g2: Vec8) -> Six {
        let quarter = Vec8(repeating: 1 / 4), sixth = Vec8(repeating: 1 / 6)
        let a = g0 + g2, b = (g0 + g2) * Vec8(repeating: 1 / 24) + g2 * Vec8(repeating: 1 / 8)
        return (g0 * quarter, -(a + g1) * sixth, (g1 - a) * sixth,
                b + g1 * Vec8(repeating: 1 / 12), b - g1 * Vec8(repeating: 1 / 12), g2)
    }

    /// U = G g_kc G^T of the filters w[k, c, u, v] = p[base + k sk + c sc + u su + v sv]
    /// (negative strides flip), as float32, laid out per point ξ (`weightStride` apart) and block
    /// of `channelBlock` output channels: U[ξ][kb][c][k - kb], so that each GEMM reads its weights contiguously
    /// (a leading dimension of K floats, 1 KiB at K = 256, maps every column to the same
    /// few L1 sets). Vectorised over eight output channels.
    private static func transform(_ filters: Filters, outChannels k: Int, inChannels c: Int) -> Storage {
        let xiStride = weightStride(c, k, Float.self)
        let out = Storage(byteCount: 36 * xiStride * 4)
        let up = SendablePointer(out.base.assumingMemoryBound(to: Float.self))
        let groups = (k + 7) / 8
        Parallel.forEach(groups * c, cost: 400) { job in
            let k0 = job / c * 8, ci = job % c, lanes = Swift.min(8, k - k0)
            let kb = k0 / channelBlock * channelBlock, width = Swift.min(channelBlock, k - kb)
            filters.transform(k0: k0, lanes: lanes, c: ci, into: up.p + kb * c + ci * width + k0 - kb, xiStride: xiStride)
        }
        return out
    }

    /// Where a convolution's 3x3 filters lie: w[k, c, u, v] = p[base + k sk + c sc + u su + v sv]
    /// (negative strides flip: the dual convolution's filters read from the original's).
    struct Filters: @unchecked Sendable {
        let p: UnsafePointer<Float>
        let base, sk, sc, su, sv: Int

        /// The filters of a forward convolution with `c` input channels, contiguous OIHW.
        static func forward(_ p: UnsafePointer<Float>, inChannels c: Int) -> Filters {
            Filters(p: p, base: 0, sk: c * 9, sc: 9, su: 3, sv: 1)
        }

        /// The dual's, w'[i, o, u, v] = w[o, i, 2-u, 2-v], for the original's `c` input channels.
        static func dual(_ p: UnsafePointer<Float>, inChannels c: Int) -> Filters {
            Filters(p: p, base: 8, sk: 9, sc: c * 9, su: -3, sv: -1)
        }

        /// U = G g G^T of the filters (k0 ..< k0 + lanes, c) into target[ξ xiStride + lane].
        @inline(__always)
        func transform(k0: Int, lanes: Int, c ci: Int, into target: UnsafeMutablePointer<Float>, xiStride: Int) {
            @inline(__always) func tap(_ u: Int, _ v: Int) -> Vec8 {
                var g = Vec8()
                let at = p + base + ci * sc + u * su + v * sv + k0 * sk
                for lane in 0..<lanes { g[lane] = at[lane * sk] }
                return g
            }
            // Columns first, t = G g (six rows of three), then rows, U = t G^T.
            let c0 = filterTransform(tap(0, 0), tap(1, 0), tap(2, 0))
            let c1 = filterTransform(tap(0, 1), tap(1, 1), tap(2, 1))
            let c2 = filterTransform(tap(0, 2), tap(1, 2), tap(2, 2))
            @inline(__always) func store(_ i: Int, _ a: Vec8, _ b: Vec8, _ d: Vec8) {
                let u = filterTransform(a, b, d)
                let at = target + i * 6 * xiStride
                Lanes.store(u.0, at, 1, lanes)
                Lanes.store(u.1, at + xiStride, 1, lanes)
                Lanes.store(u.2, at + 2 * xiStride, 1, lanes)
                Lanes.store(u.3, at + 3 * xiStride, 1, lanes)
                Lanes.store(u.4, at + 4 * xiStride, 1, lanes)
                Lanes.store(u.5, at + 5 * xiStride, 1, lanes)
            }
            store(0, c0.0, c1.0, c2.0)
            store(1, c0.1, c1.1, c2.1)
            store(2, c0.2, c1.2, c2.2)
            store(3, c0.3, c1.3, c2.3)
            store(4, c0.4, c1.4, c2.4)
            store(5, c0.5, c1.5, c2.5)
        }
    }

    /// The transformed weights of `w` (OIHW), cached on its storage per version.
    static func transformedWeights(_ w: Tensor, _ g: ConvGeometry) -> Storage {
        w.storage.derivedBuffer("winograd|\(w.offset)|\(w.strides)|\(w.dtype)", limit: keptWeightLimit) {
            let src = w.to(.float32).contiguous()
            let c = g.inChannels
            return withExtendedLifetime(src) {
                transform(.forward(src.pointer(as: Float.self), inChannels: c), outChannels: g.outChannels, inChannels: c)
            }
        }
    }

    /// The transformed weights of g's dual convolution, w'[i, o, u, v] = w[o, i, 2-u, 2-v].
    static func transformedDualWeights(_ w: Tensor, _ g: ConvGeometry) -> Storage {
        w.storage.derivedBuffer("winograd-dual|\(w.offset)|\(w.strides)|\(w.dtype)", limit: keptWeightLimit) {
            let src = w.to(.float32).contiguous()
            let c = g.inChannels
            return withExtendedLifetime(src) {
                transform(.dual(src.pointer(as: Float.self), inChannels: c), outChannels: c, inChannels: g.outChannels)
            }
        }
    }

    typealias Six = (Vec8, Vec8, Vec8, Vec8, Vec8, Vec8)
    typealias Four = (Vec8, Vec8, Vec8, Vec8)

    /// B^T d: the input transform of six points.
    @inline(__always)
    private static func inputTransform(_ d: Six) -> Six {
        let four = Vec8(repeating: 4), five = Vec8(repeating: 5), two = Vec8(repeating: 2)
        let a = d.4 - d.2, b = d.3 - d.1
        return (four * d.0 - five * d.2 + d.4,
                d.3 + d.4 - four * (d.1 + d.2),
                four * (d.1 - d.2) + d.4 - d.3,
                two * b + a,
                a - two * b,
                four * d.1 - five * d.3 + d.5)
    }

    /// A^T m: the output transform of six points into four.
    @inline(__always)
    private static func outputTransform(_ m: Six) -> Four {
        let a = m.1 + m.2, b = m.1 - m.2, c = m.3 + m.4, d = m.3 - m.4
        return (m.0 + a + c, b + Vec8(repeating: 2) * d, a + Vec8(repeating: 4) * c, b + Vec8(repeating: 8) * d + m.5)
    }

    /// y = conv(x, w) + bias (+ residual), then SiLU; `transformed` from `transformedWeights`
    /// (or `transformedDualWeights` for the dual geometry). x and the residual are float32 or
    /// bfloat16, read as they are; y is `outType`.
    static func forward(_ x: Tensor, transformed: Storage, _ bias: Tensor?, _ g: ConvGeometry,
                        residual: Tensor? = nil, silu: Bool = false, outType: DType = .float32) -> Tensor {
        let (c, k) = (g.inChannels, g.outChannels)
        let block = tileBlock
        let up = UnsafeSendablePointer(UnsafePointer(transformed.base.assumingMemoryBound(to: Float.self)))
        let uStride = weightStride(c, k, Float.self)
        let kBlocks = stride(from: 0, to: k, by: channelBlock).map { ($0, Swift.min(channelBlock, k - $0)) }
        func kernels(_ n: Int) -> [libxsmm_smmfunction_reducebatch_addr] {
            kBlocks.map { BRGEMMConvolution.kernel(m: $0.1, n: n, k: c, lda: $0.1, ldb: c, ldc: k, beta: 0)! }
        }
        let tail = tileCount(g) % block
        let full = kernels(block), last = tail == 0 ? full : kernels(tail)
        let y = forward(x, block: block, bias, g, residual: residual, silu: silu, outType: outType) {
            (count: Int, v: UnsafePointer<Float>, vStride: Int, m: UnsafeMutablePointer<Float>, mStride: Int) in
            // M_ξ (k x tiles) = U_ξ (k x c) V_ξ (c x tiles), column-major.
            let calls = count == block ? full : last
            for xi in 0..<36 {
                for (index, (kb, _)) in kBlocks.enumerated() {
                    BRGEMMConvolution.gemm(calls[index], up.p + xi * uStride + kb * c, v + xi * vStride, m + xi * mStride + kb)
                }
            }
        }
        withExtendedLifetime(transformed) {}
        return y
    }

    /// The kept-weights forward over tiles in blocks of `block`, whatever the GEMMs' operand
    /// type V (float32, or bfloat16): per block, the input transform into V[ξ][tile][c],
    /// `products(count, v, vStride, m, mStride)` for M[ξ][tile][k] of the block's `count` tiles
    /// (point ξ at v + ξ vStride, m + ξ mStride), and the output transform with bias, residual
    /// and SiLU into y (`outType`).
    static func forward<V: TileElement>(_ x: Tensor, block: Int, _ bias: Tensor?, _ g: ConvGeometry, residual: Tensor?, silu: Bool,
                                        outType: DType,
                                        products: (Int, UnsafePointer<V>, Int, UnsafeMutablePointer<Float>, Int) -> Void) -> Tensor {
        let y = Tensor(uninitializedShape: g.outputShape, strides: Shape.channelsLastStrides(g.outputShape), dtype: outType)
        let bias = bias?.converted(to: .float32), residual = residual?.converted(to: outType)
        func run<X: TileElement, Y: TileElement>(_: X.Type, _: Y.Type) {
            let (c, k, tiles) = (g.inChannels, g.outChannels, tileCount(g))
            let blocks = (tiles + block - 1) / block
            let xp = UnsafeSendablePointer(UnsafePointer(x.pointer(as: X.self))), yp = SendablePointer(y.pointer(as: Y.self))
            let bp = bias.map { UnsafeSendablePointer(UnsafePointer($0.pointer(as: Float.self))) }
            let rp = residual.map { UnsafeSendablePointer(UnsafePointer($0.pointer(as: Y.self))) }
            // Per thread, from the allocator's cache (no page faults at each call): M, V, scratch.
            let vStride = skewed(block * c, V.self), mStride = skewed(block * k, Float.self)
            let vBytes = 36 * vStride * MemoryLayout<V>.size, mBytes = 36 * mStride * 4
            let threadBytes = mBytes + vBytes + scratchVectors * 32
            let buffers = Storage(byteCount: Parallel.threadCount * threadBytes)
            let bufferBase = SendablePointer(buffers.base.assumingMemoryBound(to: UInt8.self))
            Parallel.team { thread, threads in
                let mine = UnsafeMutableRawPointer(bufferBase.p + thread * threadBytes)
                let m = mine.assumingMemoryBound(to: Float.self)
                let v = (mine + mBytes).assumingMemoryBound(to: V.self)
                let s = (mine + mBytes + vBytes).assumingMemoryBound(to: Vec8.self)
                for blockIndex in (blocks * thread / threads)..<(blocks * (thread + 1) / threads) {
                    let first = blockIndex * block, count = Swift.min(block, tiles - first)
                    for i in 0..<count {
                        inputTile(xp.p, g, tile: first + i, into: v + i * c, xiStride: vStride, scratch: s)
                    }
                    products(count, v, vStride, m, mStride)
                    for i in 0..<count {
                        outputTile(m + i * k, xiStride: mStride, channels: 0..<k, g, tile: first + i, into: yp.p,
                                   bias: bp?.p, residual: rp?.p, silu: silu, scratch: s)
                    }
                }
            }
            withExtendedLifetime(buffers) {}
        }
        switch (x.dtype == .bfloat16, outType == .bfloat16) {
        case (false, false): run(Float.self, Float.self)
        case (false, true): run(Float.self, BFloat16.self)
        case (true, false): run(BFloat16.self, Float.self)
        case (true, true): run(BFloat16.self, BFloat16.self)
        }
        withExtendedLifetime((x, bias, residual)) {}
        return y
    }

    /// A stride between the 36 points' rows of a block of `count` elements of type E: at least
    /// `count`, a whole number of cache lines, and an odd number of them, so that the rows a
    /// tile transform writes (and the GEMMs read) fall in different L1 and L2 sets. A multiple
    /// of 4 KB (16 tiles of 64 channels) put all 36 in one set: 128 channels at 32x32, batch 8,
    /// weight gradient 9 -> 4.3 ms, with its time varying 2x from run to run with the pages.
    static func skewed<E>(_ count: Int, _: E.Type) -> Int {
        let size = MemoryLayout<E>.size
        let lines = (count * size + 63) / 64
        return (lines | 1) * 64 / size
    }

    /// The stride between the transformed weights' points, `skewed` (a multiple of 4 KB put the
    /// 36 rows each filter transform writes in one L1 set).
    static func weightStride<E>(_ c: Int, _ k: Int, _ e: E.Type) -> Int { skewed(c * k, e) }

    /// The 4x4 output tiles of g, every image's.
    static func tileCount(_ g: ConvGeometry) -> Int { g.batch * ((g.outH + 3) / 4) * ((g.outW + 3) / 4) }

    /// Tile `tile`'s image and its row and column among the image's 4x4 output tiles.
    @inline(__always)
    static func tilePosition(_ g: ConvGeometry, _ tile: Int) -> (n: Int, ty: Int, tx: Int) {
        let tilesW = (g.outW + 3) / 4, perImage = (g.outH + 3) / 4 * tilesW
        return (tile / perImage, tile % perImage / tilesW, tile % tilesW)
    }

    /// V[ξ][·] = B^T d B of one tile's 6x6 input patch, every channel: channel c0 of point ξ
    /// at out[ξ xiStride + c0]. x is channels-last; the patch's outside reads zero. x and V
    /// are float32 or bfloat16 (`TileElement`); the transform is float32, on 16 lanes where
    /// the CPU has AVX-512 (`wide`: `AVX512Kernels.winogradInputTile`, the same bits).
    /// `scratch`: `scratchVectors` vectors, as for `outputTile`.
    @inline(__always)
    static func inputTile<X: TileElement, V: TileElement>(_ x: UnsafePointer<X>, _ g: ConvGeometry, tile: Int,
                                                          into out: UnsafeMutablePointer<V>, xiStride: Int,
                                                          scratch s: UnsafeMutablePointer<Vec8>, wide: Bool = CPUFeatures.avx512) {
        let (c, h, w) = (g.inChannels, g.height, g.width)
        let (n, ty, tx) = tilePosition(g, tile)
        let h0 = ty * 4 - g.padH, w0 = tx * 4 - g.padW
        if wide && c >= 16 {
            AVX512Kernels.winogradInputTile(x, bf16: X.self == BFloat16.self, image: n * h * w * c, c: c, h: h, w: w, h0: h0, w0: w0,
                                            into: out, bf16: V.self == BFloat16.self, xiStride: xiStride, scratch: s)
            return
        }
        let image = x + n * h * w * c
        let inside = h0 >= 0 && h0 + 6 <= h && w0 >= 0 && w0 + 6 <= w
        var c0 = 0
        while c0 < c {
            let lanes = Swift.min(8, c - c0)
            // Rows: s[r][·] = (d B)[r] for each of the six input rows.
            for r in 0..<6 {
                let ih = h0 + r
                let row = image + (ih * w + w0) * c + c0
                var d: Six
                if inside && lanes == 8 {
                    d = (X.load(row, 8), X.load(row + c, 8), X.load(row + 2 * c, 8),
                         X.load(row + 3 * c, 8), X.load(row + 4 * c, 8), X.load(row + 5 * c, 8))
                } else {
                    func at(_ q: Int) -> Vec8 {
                        let iw = w0 + q
                        return ih >= 0 && ih < h && iw >= 0 && iw < w ? X.load(row + q * c, lanes) : Vec8()
                    }
                    d = (at(0), at(1), at(2), at(3), at(4), at(5))
                }
                let t = inputTransform(d)
                (s[r * 6], s[r * 6 + 1], s[r * 6 + 2], s[r * 6 + 3], s[r * 6 + 4], s[r * 6 + 5]) = t
            }
            // Columns: V[ξ = (i, q)] = (B^T s)[i][q].
            for q in 0..<6 {
                storeColumn(inputTransform((s[q], s[6 + q], s[12 + q], s[18 + q], s[24 + q], s[30 + q])), out + c0,
                            column: q, xiStride: xiStride, lanes: lanes)
            }
            c0 += lanes
        }
    }

    /// Column q of a 6x6 transform, its point (i, q) from t.i, into at[(6 i + q) xiStride].
    @inline(__always)
    static func storeColumn<E: TileElement>(_ t: Six, _ at: UnsafeMutablePointer<E>, column q: Int, xiStride: Int, lanes: Int) {
        E.store(t.0, at + q * xiStride, lanes)
        E.store(t.1, at + (6 + q) * xiStride, lanes)
        E.store(t.2, at + (12 + q) * xiStride, lanes)
        E.store(t.3, at + (18 + q) * xiStride, lanes)
        E.store(t.4, at + (24 + q) * xiStride, lanes)
        E.store(t.5, at + (30 + q) * xiStride, lanes)
    }

    /// Y = A^T M A of one tile for the output channels `channels` (M of channel k0 at point ξ
    /// in from[ξ xiStride + k0 - channels.lowerBound]), plus bias, residual, then SiLU, into
    /// the channels-last y (float32 or bfloat16, as the residual).
    @inline(__always)
    static func outputTile<Y: TileElement>(_ from: UnsafePointer<Float>, xiStride: Int, channels: Range<Int>, _ g: ConvGeometry,
                                           tile: Int, into y: UnsafeMutablePointer<Y>, bias: UnsafePointer<Float>?,
                                           residual: UnsafePointer<Y>?, silu: Bool, scratch s: UnsafeMutablePointer<Vec8>,
                                           wide: Bool = CPUFeatures.avx512) {
        let (k, oh, ow) = (g.outChannels, g.outH, g.outW)
        let (n, ty, tx) = tilePosition(g, tile)
        let rows = Swift.min(4, oh - ty * 4), cols = Swift.min(4, ow - tx * 4)
        if wide && channels.count >= 16 {
            AVX512Kernels.winogradOutputTile(from, xiStride: xiStride, k0: channels.lowerBound, k1: channels.upperBound, k: k, oh: oh, ow: ow,
                                             n: n, y0: ty * 4, x0: tx * 4, rows: rows, cols: cols, into: y, bf16: Y.self == BFloat16.self,
                                             bias: bias, residual: residual, silu: silu, scratch: s)
            return
        }
        var k0 = channels.lowerBound
        while k0 < channels.upperBound {
            let lanes = Swift.min(8, channels.upperBound - k0)
            let m = from + k0 - channels.lowerBound
            // Rows: s[r][0..<4] = (m A)[r].
            for r in 0..<6 {
                let row = m + r * 6 * xiStride
                let t = outputTransform((Lanes.load(row, 1, lanes), Lanes.load(row + xiStride, 1, lanes),
                                         Lanes.load(row + 2 * xiStride, 1, lanes), Lanes.load(row + 3 * xiStride, 1, lanes),
                                         Lanes.load(row + 4 * xiStride, 1, lanes), Lanes.load(row + 5 * xiStride, 1, lanes)))
                (s[r * 4], s[r * 4 + 1], s[r * 4 + 2], s[r * 4 + 3]) = t
            }
            let biasLanes = bias.map { Lanes.load($0 + k0, 1, lanes) } ?? Vec8()
            // Columns: Y[·][q] = A^T s[·][q], then the epilogue.
            for q in 0..<cols {
                let t = outputTransform((s[q], s[4 + q], s[8 + q], s[12 + q], s[16 + q], s[20 + q]))
                for r in 0..<rows {
                    let offset = ((n * oh + ty * 4 + r) * ow + tx * 4 + q) * k + k0
                    var value = (r == 0 ? t.0 : r == 1 ? t.1 : r == 2 ? t.2 : t.3) + biasLanes
                    if let residual { value += Y.load(residual + offset, lanes) }
                    if silu { value = value * VectorMath.sigmoid(value) }
                    Y.store(value, y + offset, lanes)
                }
            }
            k0 += lanes
        }
    }
}

/// A read-only raw buffer shared by the threads of a kernel.
struct UnsafeSendablePointer<T>: @unchecked Sendable {
    let p: UnsafePointer<T>
    init(_ p: UnsafePointer<T>) { self.p = p }
}
