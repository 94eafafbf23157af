import CXSMM
import Synchronization

/// Convolutions built from LIBXSMM's JIT batch-reduce GEMM: for a strip of output pixels
/// and a block of output channels, y = sum over kernel taps of W_tap x_strip(tap), one
/// kernel call with the taps as the batch (the scheme of oneDNN 3's brgemm convolutions,
/// which Debian's oneDNN 2.6 lacks). Channels-last float32 activations, groups = 1.
///
/// Column-major in LIBXSMM's terms: an NHWC strip of n pixels is a [C x n] matrix with
/// leading dimension stride * C, and the output strip a [K x n] one with leading dimension K.
enum BRGEMMConvolution {
    private struct Key: Hashable {
        let m, n, k, lda, ldb, ldc: Int
        let beta: Float
        let transposeB: Bool
    }

    private final class Kernel: @unchecked Sendable {
        let call: libxsmm_smmfunction_reducebatch_addr
        init(_ f: libxsmm_smmfunction_reducebatch_addr) { call = f }
    }

    private static let kernels = Mutex<[Key: Kernel]>([:])
    private static let initialized: Bool = {
        libxsmm_init()
        return true
    }()

    static func kernel(m: Int, n: Int, k: Int, lda: Int, ldb: Int, ldc: Int, beta: Float,
                               transposeB: Bool = false) -> libxsmm_smmfunction_reducebatch_addr? {
        _ = initialized
        let key = Key(m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc, beta: beta, transposeB: transposeB)
        if let hit = kernels.withLock({ $0[key] }) { return hit.call }
        guard let f = cxsmm_dispatch(Int32(m), Int32(n), Int32(k), Int32(lda), Int32(ldb), Int32(ldc), beta,
                                     transposeB ? 1 : 0) else { return nil }
        kernels.withLock { $0[key] = Kernel(f) }
        return f
    }

    /// C (+)= A B with one kernel call of a single product (a batch-reduce of one).
    @inline(__always)
    static func gemm(_ f: libxsmm_smmfunction_reducebatch_addr, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                     _ c: UnsafeMutablePointer<Float>) {
        var ap: UnsafePointer<Float>? = a, bp: UnsafePointer<Float>? = b
        cxsmm_call(f, &ap, &bp, c, 1)
    }

    /// Whether the JIT works on this CPU.
    static let available: Bool = kernel(m: 8, n: 8, k: 8, lda: 8, ldb: 8, ldc: 8, beta: 0) != nil

    static func supports(_ g: ConvGeometry) -> Bool { available && g.groups == 1 }

    /// Output channels per block: the weights of one block stay in L2 while every pixel
    /// passes (32 measured best on AVX2 for 64-256 channels).
    static let channelBlock = 32
    /// Output pixels per kernel call.
    static let pixelBlock = 32

    /// Output columns [lo, hi) whose input column for kernel column `v` lies inside the
    /// image; ow*s + v*d - p in [0, W).
    static func validColumns(_ g: ConvGeometry, _ v: Int) -> Range<Int> {
        let off = v * g.dilationW - g.padW
        let lo = off >= 0 ? 0 : (-off + g.strideW - 1) / g.strideW
        let hiRaw = g.width - 1 - off
        let hi = hiRaw < 0 ? 0 : Swift.min(g.outW, hiRaw / g.strideW + 1)
        return lo..<Swift.max(lo, hi)
    }

    /// The input the forward pass reads, and the geometry to read it with. Border columns
    /// go one pixel per kernel call at about a quarter of the speed, so where they would be
    /// more than 1/16 of a row (images up to 32 wide) the input is first copied into a
    /// zero-padded buffer (one pass over it, about 5% of a 3x3 convolution) and read without
    /// padding.
    private static func source(_ x: Tensor, _ g: ConvGeometry) -> (Tensor, ConvGeometry) {
        let valid = (0..<g.kernelW).map { validColumns(g, $0) }
        let interior = Swift.max(0, valid.map(\.upperBound).min()! - valid.map(\.lowerBound).max()!)
        guard (g.outW - interior) * 16 > g.outW else { return (x, g) }
        let c = g.inChannels
        let hp = (g.outH - 1) * g.strideH + (g.kernelH - 1) * g.dilationH + 1
        let wp = (g.outW - 1) * g.strideW + (g.kernelW - 1) * g.dilationW + 1
        var padded = g
        (padded.height, padded.width, padded.padH, padded.padW) = (hp, wp, 0, 0)
        let out = Tensor(uninitializedShape: padded.inputShape, strides: Shape.channelsLastStrides(padded.inputShape), dtype: .float32)
        let xs = SendablePointer(x.pointer(as: Float.self)), os = SendablePointer(out.pointer(as: Float.self))
        let copyWidth = Swift.max(0, Swift.min(g.width, wp - g.padW))
        Parallel.forEach(g.batch * hp, cost: wp * c) { job in
            let n = job / hp, ih = job % hp - g.padH
            let row = os.p + job * wp * c
            row.update(repeating: 0, count: wp * c)
            if ih >= 0 && ih < g.height && copyWidth > 0 {
                (row + g.padW * c).update(from: xs.p + ((n * g.height + ih) * g.width) * c, count: copyWidth * c)
            }
        }
        return (out, padded)
    }

    /// Input row of output row `row` for kernel row `u`, or nil when it is padding.
    @inline(__always)
    static func inputRow(_ g: ConvGeometry, _ row: Int, _ u: Int) -> Int? {
        let ih = row * g.strideH + u * g.dilationH - g.padH
        return ih >= 0 && ih < g.height ? ih : nil
    }

    /// Weights in the kernels' layout, per block of output channels: [taps][C][block],
    /// cached on the weight's storage per version.
    static func blocked(_ w: Tensor, _ g: ConvGeometry) -> Storage {
        let (c, taps) = (g.inChannels, g.kernelH * g.kernelW)
        return w.storage.derivedBuffer("brgemm|\(channelBlock)|\(w.offset)|\(w.strides)|\(w.dtype)") {
            let src = w.to(.float32).contiguous()
            return block(src, outChannels: g.outChannels, inChannels: c, taps: taps) { o, i, t in (o * c + i) * taps + t }
        }
    }

    /// The blocked weights of g's dual convolution (see `ConvGeometry.dual`) made directly
    /// from g's weights: w'[i, o, tap] = w[o, i, taps - 1 - tap].
    static func blockedForDual(_ w: Tensor, _ g: ConvGeometry) -> Storage {
        let (c, taps) = (g.inChannels, g.kernelH * g.kernelW)
        return w.storage.derivedBuffer("brgemm-dual|\(channelBlock)|\(w.offset)|\(w.strides)|\(w.dtype)") {
            let src = w.to(.float32).contiguous()
            return block(src, outChannels: c, inChannels: g.outChannels, taps: taps) { o, i, t in (i * c + o) * taps + (taps - 1 - t) }
        }
    }

    /// Gathers `src` into blocks: for output channel o = kb + j, input channel i and tap t,
    /// block[(t * inChannels + i) * width + j] = src[index(o, i, t)]. Parallel over
    /// (block, input channel).
    @inline(__always)
    private static func block(_ src: Tensor, outChannels k: Int, inChannels c: Int, taps: Int,
                              _ index: (Int, Int, Int) -> Int) -> Storage {
        let out = Storage(byteCount: k * c * taps * 4)
        let sp = SendablePointer(src.pointer(as: Float.self)), dp = SendablePointer(out.base.assumingMemoryBound(to: Float.self))
        let blocks = (k + channelBlock - 1) / channelBlock
        Parallel.forEach(blocks * c, cost: taps * channelBlock * 4) { job in
            let b = job / c, i = job % c
            let kb = b * channelBlock, width = Swift.min(channelBlock, k - kb)
            let block = dp.p + kb * c * taps
            for t in 0..<taps {
                let row = block + (t * c + i) * width
                for j in 0..<width { row[j] = sp.p[index(kb + j, i, t)] }
            }
        }
        return out
    }

    /// y = conv(x, w) + bias (+ residual) (then SiLU): x NHWC float32, y NHWC float32;
    /// residual NHWC float32. The input is read in place: padding is handled by leaving the
    /// taps that fall outside the image out of each batch. Output columns whose taps are all
    /// inside form the strips; the few border columns go one by one.
    static func forward(_ input: Tensor, _ w: Tensor, _ bias: Tensor?, _ g: ConvGeometry,
                        residual: Tensor? = nil, silu: Bool = false) -> Tensor {
        forward(input, blocked: blocked(w, g), bias, g, residual: residual, silu: silu)
    }

    /// The forward pass with weights already in the kernels' layout.
    static func forward(_ input: Tensor, blocked weights: Storage, _ bias: Tensor?, _ geometry: ConvGeometry,
                        residual: Tensor? = nil, silu: Bool = false) -> Tensor {
        let (x, g) = source(input, geometry)
        let (k, c, oh, ow) = (g.outChannels, g.inChannels, g.outH, g.outW)
        let taps = g.kernelH * g.kernelW
        let y = Tensor(uninitializedShape: g.outputShape, strides: Shape.channelsLastStrides(g.outputShape), dtype: .float32)
        // Columns where every kernel column is inside the image.
        let valid = (0..<g.kernelW).map { validColumns(g, $0) }
        let lo = valid.map(\.lowerBound).max()!, hi = valid.map(\.upperBound).min()!
        let interior = lo..<Swift.max(lo, hi)
        let border = Array(0..<interior.lowerBound) + Array(interior.upperBound..<ow)
        let mb = Swift.max(1, Swift.min(pixelBlock, interior.count))
        let xp = SendablePointer(x.pointer(as: Float.self)), yp = SendablePointer(y.pointer(as: Float.self))
        let wp = SendablePointer(weights.base.assumingMemoryBound(to: Float.self))
        let bp = bias.map { SendablePointer($0.pointer(as: Float.self)) }
        let rp = residual.map { SendablePointer($0.pointer(as: Float.self)) }
        let tasks = g.batch * oh
        let blocks = stride(from: 0, to: k, by: channelBlock).map { ($0, Swift.min(channelBlock, k - $0)) }
        let tailWidth = interior.count % mb
        let kernelsByBlock = blocks.map { _, width in
            (kernel(m: width, n: mb, k: c, lda: width, ldb: c * g.strideW, ldc: k, beta: 0)!,
             tailWidth == 0 ? nil : kernel(m: width, n: tailWidth, k: c, lda: width, ldb: c * g.strideW, ldc: k, beta: 0)!,
             kernel(m: width, n: 1, k: c, lda: width, ldb: c, ldc: k, beta: 0)!)
        }
        let (imageStride, rowStride) = (g.height * g.width * c, g.width * c)
        Parallel.team { t, threads in
            let a = UnsafeMutablePointer<UnsafePointer<Float>?>.allocate(capacity: taps)
            let b = UnsafeMutablePointer<UnsafePointer<Float>?>.allocate(capacity: taps)
            defer { a.deallocate(); b.deallocate() }
            for (index, (kb, width)) in blocks.enumerated() {
                let (full, tail, single) = kernelsByBlock[index]
                let block = wp.p + kb * c * taps
                for task in (tasks * t / threads)..<(tasks * (t + 1) / threads) {
                    let n = task / oh, row = task % oh
                    let image = xp.p + n * imageStride
                    let outRow = yp.p + (n * oh + row) * ow * k + kb
                    /// Fills the batch for output column `col`; `all` takes every kernel column.
                    func batch(_ col: Int, all: Bool) -> Int {
                        var count = 0
                        for u in 0..<g.kernelH {
                            guard let ih = inputRow(g, row, u) else { continue }
                            for v in 0..<g.kernelW {
                                let iw = col * g.strideW + v * g.dilationW - g.padW
                                guard all || (iw >= 0 && iw < g.width) else { continue }
                                a[count] = UnsafePointer(block + (u * g.kernelW + v) * c * width)
                                b[count] = UnsafePointer(image + ih * rowStride + iw * c)
                                count += 1
                            }
                        }
                        return count
                    }
                    func finish(_ col: Int, _ pixels: Int, count: Int) {
                        let out = outRow + col * k
                        if count == 0 {
                            for p in 0..<pixels { (out + p * k).update(repeating: 0, count: width) }
                        }
                        if bp != nil || rp != nil || silu {
                            epilogue(out, rp.map { $0.p + ((n * oh + row) * ow + col) * k + kb },
                                     bp.map { $0.p + kb }, pixels: pixels, width: width, stride: k, silu: silu)
                        }
                    }
                    var col = interior.lowerBound
                    while col < interior.upperBound {
                        let pixels = Swift.min(mb, interior.upperBound - col)
                        let count = batch(col, all: true)
                        if count > 0 { cxsmm_call(pixels == mb ? full : tail!, a, b, outRow + col * k, UInt64(count)) }
                        finish(col, pixels, count: count)
                        col += pixels
                    }
                    for col in border {
                        let count = batch(col, all: false)
                        if count > 0 { cxsmm_call(single, a, b, outRow + col * k, UInt64(count)) }
                        finish(col, 1, count: count)
                    }
                }
            }
        }
        withExtendedLifetime((weights, x)) {}
        return y
    }

    /// Adds bias and residual to a just-computed block of pixels (in cache) and applies SiLU.
    @inline(__always)
    private static func epilogue(_ out: UnsafeMutablePointer<Float>, _ residual: UnsafeMutablePointer<Float>?,
                                 _ bias: UnsafeMutablePointer<Float>?, pixels: Int, width: Int, stride: Int, silu: Bool) {
        for p in 0..<pixels {
            let o = out + p * stride
            var j = 0
            while j < width {
                let m = Swift.min(8, width - j)
                var v = Lanes.load(o + j, 1, m)
                if let bias { v += Lanes.load(bias + j, 1, m) }
                if let residual { v += Lanes.load(residual + p * stride + j, 1, m) }
                if silu { v = v * VectorMath.sigmoid(v) }
                Lanes.store(v, o + j, 1, m)
                j += m
            }
        }
    }

    /// dL/dw as OIHW float32 (and dL/dbias) for NHWC x and dL/dy: per kernel tap,
    /// dW_tap [C x K] = sum over output rows of x_row(tap) dy_row^T, the rows of a chunk as
    /// one batch (rows whose tap falls in the padding left out; the columns of a row limited
    /// to those whose tap is inside the image).
    static func backwardWeights(_ x: Tensor, _ gy: Tensor, _ g: ConvGeometry, bias: Bool) -> (Tensor, Tensor?) {
        let (k, c, oh, ow) = (g.outChannels, g.inChannels, g.outH, g.outW)
        let taps = g.kernelH * g.kernelW
        let rows = g.batch * oh
        let threads = Parallel.threadCount
        let partialCount = taps * k * c
        let partial = Tensor.zeros([threads * partialCount])
        let xp = SendablePointer(x.pointer(as: Float.self)), gp = SendablePointer(gy.pointer(as: Float.self))
        let pp = SendablePointer(partial.pointer(as: Float.self))
        let cBlocks = stride(from: 0, to: c, by: channelBlock).map { ($0, Swift.min(channelBlock, c - $0)) }
        let kBlocks = stride(from: 0, to: k, by: channelBlock).map { ($0, Swift.min(channelBlock, k - $0)) }
        let columns = (0..<g.kernelW).map { validColumns(g, $0) }
        // kernels[v][ci][ki] for kernel column v (its own count of valid columns).
        let kernels: [[[libxsmm_smmfunction_reducebatch_addr?]]] = columns.map { range in
            cBlocks.map { _, cw in
                kBlocks.map { _, kw in
                    range.isEmpty ? nil : kernel(m: cw, n: kw, k: range.count, lda: c * g.strideW, ldb: k, ldc: c, beta: 1, transposeB: true)!
                }
            }
        }
        let chunk = 16
        let (imageStride, rowStride) = (g.height * g.width * c, g.width * c)
        Parallel.team(threads: threads) { t, n in
            let acc = pp.p + t * partialCount
            let a = UnsafeMutablePointer<UnsafePointer<Float>?>.allocate(capacity: chunk)
            let b = UnsafeMutablePointer<UnsafePointer<Float>?>.allocate(capacity: chunk)
            let ab = UnsafeMutablePointer<UnsafePointer<Float>?>.allocate(capacity: chunk)
            let bb = UnsafeMutablePointer<UnsafePointer<Float>?>.allocate(capacity: chunk)
            defer { a.deallocate(); b.deallocate(); ab.deallocate(); bb.deallocate() }
            var r0 = rows * t / n
            let rEnd = rows * (t + 1) / n
            while r0 < rEnd {
                let r1 = Swift.min(rEnd, r0 + chunk)
                for u in 0..<g.kernelH {
                    for v in 0..<g.kernelW where !columns[v].isEmpty {
                        let tap = u * g.kernelW + v
                        let first = columns[v].lowerBound
                        var count = 0
                        for r in r0..<r1 {
                            let img = r / oh, row = r % oh
                            guard let ih = inputRow(g, row, u) else { continue }
                            let iw = first * g.strideW + v * g.dilationW - g.padW
                            a[count] = UnsafePointer(xp.p + img * imageStride + ih * rowStride + iw * c)
                            b[count] = UnsafePointer(gp.p + (r * ow + first) * k)
                            count += 1
                        }
                        guard count > 0 else { continue }
                        for (ci, (cb, _)) in cBlocks.enumerated() {
                            for i in 0..<count { ab[i] = a[i]! + cb }
                            for (ki, (kb, _)) in kBlocks.enumerated() {
                                for i in 0..<count { bb[i] = b[i]! + kb }
                                cxsmm_call(kernels[v][ci][ki]!, ab, bb, acc + (tap * k + kb) * c + cb, UInt64(count))
                            }
                        }
                    }
                }
                r0 = r1
            }
        }
        // Sum the threads' partials and lay out as OIHW.
        let gw = Tensor(uninitializedShape: g.weightShape, dtype: .float32)
        let wp = gw.pointer(as: Float.self), p = partial.pointer(as: Float.self)
        for co in 0..<k {
            for ci in 0..<c {
                for tap in 0..<taps {
                    var s: Float = 0
                    for th in 0..<threads { s += p[th * partialCount + (tap * k + co) * c + ci] }
                    wp[(co * c + ci) * taps + tap] = s
                }
            }
        }
        var gb: Tensor? = nil
        if bias {
            let out = Tensor(uninitializedShape: [k], dtype: .float32)
            ReduceKernel.reduce(.sum, gy.pointer(as: Float.self), outer: 1, reduce: g.batch * oh * ow, inner: k,
                                into: out.pointer(as: Float.self))
            gb = out
        }
        return (gw, gb)
    }
}
