import TensorsAVX512

/// The weight gradient of a 3x3 stride-1 convolution by Winograd F(4x4, 3x3). For fixed input
/// transforms V the forward tile Y = A^T [(G g G^T) ⊙ V] A is linear in the filter g; its
/// adjoint gives the filter's gradient from each tile's dL/dY:
///
///     dL/dg_kc = G^T [ Σ_tiles (A dY_k A^T) ⊙ V_c ] G,
///
/// so the sum over tiles is, per point ξ of the 6x6 domain, one GEMM
/// M_ξ[k, c] = Σ_t W_ξ[t, k] V_ξ[t, c] with W = A dY A^T: 36 multiply-adds per tile and
/// filter pair instead of direct convolution's 144. Tiles go in chunks (their V and W about
/// L2's size); each thread accumulates blocks of `channelBlock` output channels by 64 input
/// channels of M over the chunks, and the 6x6 sums become 3x3 gradients at the end.
/// Rounding as the forward's: its transforms mix a tile's 36 values.
extension WinogradConvolution {
    /// The blocking of a weight gradient: chunks of tiles whose V and W (36 x tiles x (C + K)
    /// floats) take at most `chunkBytes`; jobs of `channelBlock` output by `cBlock` input
    /// channels; and, with fewer jobs than threads, per-thread replicas of M that each sum a
    /// share of every chunk's tiles (added at the end).
    struct WeightBlocking {
        let chunk, kBlocks, cBlocks, replicas: Int
        /// The rows of a chunk's V and W for each point ξ (`skewed`).
        let vStride, wStride: Int
        static let cBlock = 64
        /// V and W of a chunk: 2 MB, about L2 (16 MB before; 1-4 MB timed alike once the rows
        /// were `skewed`).
        static let chunkBytes = 2 << 20

        init(_ g: ConvGeometry) {
            let (c, k, tiles) = (g.inChannels, g.outChannels, tileCount(g))
            chunk = Swift.min(tiles, Swift.max(16, Swift.min(512, WeightBlocking.chunkBytes / (36 * (c + k) * 4))))
            vStride = skewed(chunk * c, Float.self)
            wStride = skewed(chunk * k, Float.self)
            kBlocks = (k + channelBlock - 1) / channelBlock
            cBlocks = (c + Self.cBlock - 1) / Self.cBlock
            let threads = Parallel.threadCount
            replicas = kBlocks * cBlocks >= threads ? 1 : Swift.min(threads, chunk)
        }

        var jobs: Int { kBlocks * cBlocks * replicas }
    }

    /// Runs `body(first, count)` for each chunk of g's tiles, after the chunk's input
    /// transforms V[ξ][t][c] and gradient transforms W[ξ][t][k] (x and gy of type X, V and W
    /// float32) at v and w, point ξ at ξ `vStride` and ξ `wStride`.
    static func forEachChunk<X: TileElement>(_ x: UnsafePointer<X>, _ gy: UnsafePointer<X>, _ g: ConvGeometry, _ blocking: WeightBlocking,
                                             v: UnsafeMutablePointer<Float>, w: UnsafeMutablePointer<Float>, _ body: (Int, Int) -> Void) {
        let (c, k, tiles) = (g.inChannels, g.outChannels, tileCount(g))
        let (chunk, vStride, wStride) = (blocking.chunk, blocking.vStride, blocking.wStride)
        let xp = UnsafeSendablePointer(x), gp = UnsafeSendablePointer(gy), vp = SendablePointer(v), wp = SendablePointer(w)
        var first = 0
        while first < tiles {
            let count = Swift.min(chunk, tiles - first)
            Parallel.team { thread, threads in
                let s = UnsafeMutablePointer<Vec8>.allocate(capacity: scratchVectors)
                defer { s.deallocate() }
                for i in (count * thread / threads)..<(count * (thread + 1) / threads) {
                    inputTile(xp.p, g, tile: first + i, into: vp.p + i * c, xiStride: vStride, scratch: s)
                    gradientTile(gp.p, g, tile: first + i, into: wp.p + i * k, xiStride: wStride, scratch: s)
                }
            }
            body(first, count)
            first += count
        }
    }

    /// dL/dw (float32, OIHW) and dL/dbias for input x and dL/dy `gy` (channels-last, both
    /// float32 or both bfloat16).
    static func backwardWeights(_ x: Tensor, _ gy: Tensor, _ g: ConvGeometry, bias: Bool) -> (Tensor, Tensor?) {
        let (c, k) = (g.inChannels, g.outChannels)
        let blocking = WeightBlocking(g)
        let (cBlocks, replicas, cBlock) = (blocking.cBlocks, blocking.replicas, WeightBlocking.cBlock)
        let mCount = 36 * k * c
        let mStorage = Storage(byteCount: replicas * mCount * 4)
        let (vStride, wStride) = (blocking.vStride, blocking.wStride)
        let vStorage = Storage(byteCount: 36 * vStride * 4), wStorage = Storage(byteCount: 36 * wStride * 4)
        let mp = SendablePointer(mStorage.base.assumingMemoryBound(to: Float.self))
        let v = SendablePointer(vStorage.base.assumingMemoryBound(to: Float.self))
        let w = SendablePointer(wStorage.base.assumingMemoryBound(to: Float.self))
        let jobs = blocking.jobs
        func chunks<X: TileElement>(_: X.Type) {
            forEachChunk(x.pointer(as: X.self), gy.pointer(as: X.self), g, blocking, v: v.p, w: w.p) { first, count in
                Parallel.team { thread, threads in
                    for job in (jobs * thread / threads)..<(jobs * (thread + 1) / threads) {
                        let replica = job % replicas, block = job / replicas
                        let kb = block / cBlocks * channelBlock, width = Swift.min(channelBlock, k - kb)
                        let c0 = block % cBlocks * cBlock, nc = Swift.min(cBlock, c - c0)
                        let lo = count * replica / replicas, hi = count * (replica + 1) / replicas
                        guard hi > lo else { continue }
                        // M_ξ (width x nc, column-major, ldc width) (+)= W_ξ (width x tiles) V_ξ^T (tiles x nc).
                        let call = BRGEMMConvolution.kernel(m: width, n: nc, k: hi - lo, lda: k, ldb: c, ldc: width,
                                                            beta: first == 0 ? 0 : 1, transposeB: true)!
                        let region = mp.p + replica * mCount + kb * 36 * c
                        for xi in 0..<36 {
                            BRGEMMConvolution.gemm(call, w.p + xi * wStride + lo * k + kb, v.p + xi * vStride + lo * c + c0,
                                                   region + (xi * c + c0) * width)
                        }
                    }
                }
            }
        }
        if x.dtype == .bfloat16 { chunks(BFloat16.self) } else { chunks(Float.self) }
        let gw = filterGradients(mp.p, replicas: replicas, g)
        withExtendedLifetime((x, gy, mStorage, vStorage, wStorage)) {}
        return (gw, bias ? biasGradient(gy, g) : nil)
    }

    /// dL/dw = G^T M G per filter pair from the sums M (`replicas` of them, each 36 K C floats
    /// in blocks [kb][ξ][c][k - kb]), added first.
    static func filterGradients(_ m: UnsafeMutablePointer<Float>, replicas: Int, _ g: ConvGeometry) -> Tensor {
        let (c, k) = (g.inChannels, g.outChannels)
        let mp = SendablePointer(m)
        let mCount = 36 * k * c
        let gw = Tensor(uninitializedShape: g.weightShape, dtype: .float32)
        let out = SendablePointer(gw.pointer(as: Float.self))
        let groups = (k + 7) / 8
        Parallel.forEach(groups * c, cost: 300 * replicas) { job in
            let k0 = job / c * 8, ci = job % c, lanes = Swift.min(8, k - k0)
            let kb = k0 / channelBlock * channelBlock, width = Swift.min(channelBlock, k - kb)
            let at = mp.p + kb * 36 * c + ci * width + k0 - kb
            @inline(__always) func sum(_ xi: Int) -> Vec8 {
                var total = Lanes.load(at + xi * c * width, 1, lanes)
                for r in 1..<replicas { total += Lanes.load(at + r * mCount + xi * c * width, 1, lanes) }
                return total
            }
            // Rows: t[i][v] = (M G)[i][v]; then columns: dg[u][v] = (G^T t)[u][v].
            withUnsafeTemporaryAllocation(of: Vec8.self, capacity: 18) { t in
                for i in 0..<6 {
                    let r = filterGradientTransform((sum(i * 6), sum(i * 6 + 1), sum(i * 6 + 2), sum(i * 6 + 3), sum(i * 6 + 4), sum(i * 6 + 5)))
                    (t[i * 3], t[i * 3 + 1], t[i * 3 + 2]) = r
                }
                let target = out.p + (k0 * c + ci) * 9
                for q in 0..<3 {
                    let d = filterGradientTransform((t[q], t[3 + q], t[6 + q], t[9 + q], t[12 + q], t[15 + q]))
                    for lane in 0..<lanes {
                        target[lane * c * 9 + q] = d.0[lane]
                        target[lane * c * 9 + 3 + q] = d.1[lane]
                        target[lane * c * 9 + 6 + q] = d.2[lane]
                    }
                }
            }
        }
        return gw
    }

    /// dL/dbias: the sum of dL/dy (channels-last, float32 or bfloat16) over every pixel.
    static func biasGradient(_ gy: Tensor, _ g: ConvGeometry) -> Tensor {
        let sums = Tensor(uninitializedShape: [g.outChannels], dtype: .float32)
        ReduceKernel.reduce(.sum, UnsafeRawPointer(gy.baseAddress), bf16: gy.dtype == .bfloat16, outer: 1,
                            reduce: g.batch * g.outH * g.outW, inner: g.outChannels, into: sums.pointer(as: Float.self))
        withExtendedLifetime(gy) {}
        return sums
    }

    /// A y (four points into six): the transform of dL/dY, the adjoint of `outputTransform`.
    @inline(__always)
    private static func gradientTransform(_ y0: Vec8, _ y1: Vec8, _ y2: Vec8, _ y3: Vec8) -> Six {
        let even = y0 + y2, odd = y1 + y3
        let even4 = y0 + Vec8(repeating: 4) * y2, odd2 = Vec8(repeating: 2) * y1 + Vec8(repeating: 8) * y3
        return (y0, even + odd, even - odd, even4 + odd2, even4 - odd2, y3)
    }

    /// G^T m (six points into three): the adjoint of `filterTransform`.
    @inline(__always)
    private static func filterGradientTransform(_ m: Six) -> (Vec8, Vec8, Vec8) {
        let sixth = Vec8(repeating: 1 / 6), twelfth = Vec8(repeating: 1 / 12)
        let s12 = m.1 + m.2, d12 = m.2 - m.1, s34 = m.3 + m.4, d34 = m.3 - m.4
        return (m.0 * Vec8(repeating: 1 / 4) - s12 * sixth + s34 * Vec8(repeating: 1 / 24),
                d12 * sixth + d34 * twelfth,
                (s34 - s12) * sixth + m.5)
    }

    /// W[ξ][·] = A dY A^T of one output tile's 4x4 dL/dY (zero outside the output), every
    /// output channel: channel k0 of point ξ at out[ξ xiStride + k0]. On 16 lanes where the CPU
    /// has AVX-512 (`AVX512Kernels.winogradGradientTile`: the same bits).
    @inline(__always)
    static func gradientTile<X: TileElement>(_ gy: UnsafePointer<X>, _ g: ConvGeometry, tile: Int, into out: UnsafeMutablePointer<Float>,
                                             xiStride: Int, scratch s: UnsafeMutablePointer<Vec8>, wide: Bool = CPUFeatures.avx512) {
        let (k, oh, ow) = (g.outChannels, g.outH, g.outW)
        let (n, ty, tx) = tilePosition(g, tile)
        let rows = Swift.min(4, oh - ty * 4), cols = Swift.min(4, ow - tx * 4)
        if wide && k >= 16 {
            AVX512Kernels.winogradGradientTile(gy, bf16: X.self == BFloat16.self, k: k, oh: oh, ow: ow, n: n, y0: ty * 4, x0: tx * 4,
                                               rows: rows, cols: cols, into: out, xiStride: xiStride, scratch: s)
            return
        }
        var k0 = 0
        while k0 < k {
            let lanes = Swift.min(8, k - k0)
            // Rows: s[r][j] = (dY A^T)[r][j] for the four rows of dY.
            for r in 0..<4 {
                var d = (Vec8(), Vec8(), Vec8(), Vec8())
                if r < rows {
                    let row = gy + ((n * oh + ty * 4 + r) * ow + tx * 4) * k + k0
                    if cols == 4 && lanes == 8 {
                        d = (X.load(row, 8), X.load(row + k, 8), X.load(row + 2 * k, 8), X.load(row + 3 * k, 8))
                    } else {
                        @inline(__always) func at(_ q: Int) -> Vec8 { q < cols ? X.load(row + q * k, lanes) : Vec8() }
                        d = (at(0), at(1), at(2), at(3))
                    }
                }
                let t = gradientTransform(d.0, d.1, d.2, d.3)
                (s[r * 6], s[r * 6 + 1], s[r * 6 + 2], s[r * 6 + 3], s[r * 6 + 4], s[r * 6 + 5]) = t
            }
            // Columns: W[ξ = (i, j)] = (A s)[i][j].
            for j in 0..<6 {
                storeColumn(gradientTransform(s[j], s[6 + j], s[12 + j], s[18 + j]), out + k0, column: j, xiStride: xiStride,
                            lanes: lanes)
            }
            k0 += lanes
        }
    }
}
