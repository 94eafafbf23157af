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

    private static func kernel(m: Int, n: Int, k: Int, lda: Int, ldb: Int, ldc: Int, beta: Float,
                               transposeB: Bool = false) -> libxsmm_smmfunction_reducebatch_addr? {
        _ = initialized
        let key = Key(m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc, beta: beta, transposeB: transposeB)
        if let hit = kernels.withLock({ $0[key] }) { return hit.call }
        guard let f = cxsmm_dispatch(Int32(m), Int32(n), Int32(k), Int32(lda), Int32(ldb), Int32(ldc), beta,
                                     transposeB ? 1 : 0) else { return nil }
        kernels.withLock { $0[key] = Kernel(f) }
        return f
    }

    /// Whether the JIT works on this CPU.
    static let available: Bool = kernel(m: 8, n: 8, k: 8, lda: 8, ldb: 8, ldc: 8, beta: 0) != nil

    static func supports(_ g: ConvGeometry) -> Bool { available && g.groups == 1 }

    /// Output channels per block: the weights of one block stay in L2 while every pixel
    /// passes (32 measured best on AVX2 for 64-256 channels).
    static let channelBlock = 32
    /// Output pixels per kernel call.
    static let pixelBlock = 32

    /// The input as the convolution reads it: zero-padded NHWC, or x itself when no
    /// padding is needed.
    private struct Source {
        let tensor: Tensor
        let imageStride: Int, rowStride: Int
        var pointer: UnsafeMutablePointer<Float> { tensor.pointer(as: Float.self) }
    }

    private static func source(_ x: Tensor, _ g: ConvGeometry) -> Source {
        let c = g.inChannels
        let hp = (g.outH - 1) * g.strideH + (g.kernelH - 1) * g.dilationH + 1
        let wp = (g.outW - 1) * g.strideW + (g.kernelW - 1) * g.dilationW + 1
        if g.padH == 0 && g.padW == 0 && wp <= g.width && hp <= g.height {
            return Source(tensor: x, imageStride: g.height * g.width * c, rowStride: g.width * c)
        }
        let out = Tensor(uninitializedShape: [g.batch * hp * wp * c], dtype: .float32)
        let xs = SendablePointer(x.pointer(as: Float.self)), os = SendablePointer(out.pointer(as: Float.self))
        let left = g.padW
        let copyWidth = Swift.max(0, Swift.min(g.width, wp - left))
        Parallel.forEach(g.batch * hp, cost: wp * c) { job in
            let n = job / hp, r = job % hp
            let row = os.p + job * wp * c
            let ih = r - g.padH
            guard ih >= 0 && ih < g.height && copyWidth > 0 else {
                row.update(repeating: 0, count: wp * c)
                return
            }
            row.update(repeating: 0, count: left * c)
            (row + left * c).update(from: xs.p + ((n * g.height + ih) * g.width) * c, count: copyWidth * c)
            let rest = wp - left - copyWidth
            if rest > 0 { (row + (left + copyWidth) * c).update(repeating: 0, count: rest * c) }
        }
        return Source(tensor: out, imageStride: hp * wp * c, rowStride: wp * c)
    }

    /// Weights OIHW -> per block of output channels [taps][C][block], cached per version.
    private static func blockedWeights(_ w: Tensor, _ g: ConvGeometry) -> Storage {
        let (k, c, taps) = (g.outChannels, g.inChannels, g.kernelH * g.kernelW)
        return w.storage.derivedBuffer("brgemm|\(channelBlock)|\(w.offset)|\(w.strides)|\(w.dtype)") {
            let src = w.to(.float32).contiguous()
            let out = Storage(byteCount: k * c * taps * 4)
            let sp = src.pointer(as: Float.self), dp = out.base.assumingMemoryBound(to: Float.self)
            var kb = 0
            while kb < k {
                let width = Swift.min(channelBlock, k - kb)
                let block = dp + kb * c * taps
                for j in 0..<width {
                    for ci in 0..<c {
                        for t in 0..<taps {
                            block[(t * c + ci) * width + j] = sp[((kb + j) * c + ci) * taps + t]
                        }
                    }
                }
                kb += width
            }
            return out
        }
    }

    /// y = conv(x, w) + bias (+ residual) (then SiLU): x NHWC float32, y NHWC float32;
    /// residual NHWC float32.
    static func forward(_ x: Tensor, _ w: Tensor, _ bias: Tensor?, _ g: ConvGeometry,
                        residual: Tensor? = nil, silu: Bool = false) -> Tensor {
        let (k, c, oh, ow) = (g.outChannels, g.inChannels, g.outH, g.outW)
        let taps = g.kernelH * g.kernelW
        let src = source(x, g)
        let weights = blockedWeights(w, g)
        let y = Tensor(uninitializedShape: g.outputShape, strides: Shape.channelsLastStrides(g.outputShape), dtype: .float32)
        let mb = Swift.min(pixelBlock, ow)
        let sp = SendablePointer(src.pointer), yp = SendablePointer(y.pointer(as: Float.self))
        let wp = SendablePointer(weights.base.assumingMemoryBound(to: Float.self))
        let bp = bias.map { SendablePointer($0.pointer(as: Float.self)) }
        let rp = residual.map { SendablePointer($0.pointer(as: Float.self)) }
        let tasks = g.batch * oh
        let blocks = stride(from: 0, to: k, by: channelBlock).map { ($0, Swift.min(channelBlock, k - $0)) }
        let kernelsByBlock = blocks.map { _, width in
            (kernel(m: width, n: mb, k: c, lda: width, ldb: c * g.strideW, ldc: k, beta: 0)!,
             ow % mb == 0 ? nil : kernel(m: width, n: ow % mb, k: c, lda: width, ldb: c * g.strideW, ldc: k, beta: 0)!)
        }
        let imageStride = src.imageStride, rowStride = src.rowStride
        Parallel.team { t, threads in
            let a = UnsafeMutablePointer<UnsafePointer<Float>?>.allocate(capacity: taps)
            let b = UnsafeMutablePointer<UnsafePointer<Float>?>.allocate(capacity: taps)
            defer { a.deallocate(); b.deallocate() }
            for (index, (kb, width)) in blocks.enumerated() {
                let (full, tail) = kernelsByBlock[index]
                let block = wp.p + kb * c * taps
                for tap in 0..<taps { a[tap] = UnsafePointer(block + tap * c * width) }
                for task in (tasks * t / threads)..<(tasks * (t + 1) / threads) {
                    let n = task / oh, row = task % oh
                    var ow0 = 0
                    while ow0 < ow {
                        let count = Swift.min(mb, ow - ow0)
                        var tap = 0
                        for u in 0..<g.kernelH {
                            let inputRow = sp.p + n * imageStride + (row * g.strideH + u * g.dilationH) * rowStride
                            for v in 0..<g.kernelW {
                                b[tap] = UnsafePointer(inputRow + (ow0 * g.strideW + v * g.dilationW) * c)
                                tap += 1
                            }
                        }
                        let out = yp.p + ((n * oh + row) * ow + ow0) * k + kb
                        cxsmm_call(count == mb ? full : tail!, a, b, out, UInt64(taps))
                        if bp != nil || rp != nil || silu {
                            epilogue(out, rp.map { $0.p + ((n * oh + row) * ow + ow0) * k + kb },
                                     bp.map { $0.p + kb }, pixels: count, width: width, stride: k, silu: silu)
                        }
                        ow0 += count
                    }
                }
            }
        }
        withExtendedLifetime((src, weights)) {}
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
    /// dW_tap [C x K] = sum over output rows of x_row(tap) dy_row^T, rows batched.
    static func backwardWeights(_ x: Tensor, _ gy: Tensor, _ g: ConvGeometry, bias: Bool) -> (Tensor, Tensor?) {
        let (k, c, oh, ow) = (g.outChannels, g.inChannels, g.outH, g.outW)
        let taps = g.kernelH * g.kernelW
        let src = source(x, g)
        let rows = g.batch * oh
        let threads = Parallel.threadCount
        let partialCount = taps * k * c
        let partial = Tensor.zeros([threads * partialCount])
        let sp = SendablePointer(src.pointer), gp = SendablePointer(gy.pointer(as: Float.self))
        let pp = SendablePointer(partial.pointer(as: Float.self))
        let cBlocks = stride(from: 0, to: c, by: channelBlock).map { ($0, Swift.min(channelBlock, c - $0)) }
        let kBlocks = stride(from: 0, to: k, by: channelBlock).map { ($0, Swift.min(channelBlock, k - $0)) }
        var calls: [[libxsmm_smmfunction_reducebatch_addr]] = []
        for (_, cw) in cBlocks {
            calls.append(kBlocks.map { _, kw in
                kernel(m: cw, n: kw, k: ow, lda: c * g.strideW, ldb: k, ldc: c, beta: 1, transposeB: true)!
            })
        }
        let chunk = 8
        let imageStride = src.imageStride, rowStride = src.rowStride
        Parallel.team(threads: threads) { t, n in
            let acc = pp.p + t * partialCount
            let a = UnsafeMutablePointer<UnsafePointer<Float>?>.allocate(capacity: chunk)
            let b = UnsafeMutablePointer<UnsafePointer<Float>?>.allocate(capacity: chunk)
            defer { a.deallocate(); b.deallocate() }
            var r0 = rows * t / n
            let rEnd = rows * (t + 1) / n
            while r0 < rEnd {
                let count = Swift.min(chunk, rEnd - r0)
                for i in 0..<count {
                    let r = r0 + i
                    b[i] = UnsafePointer(gp.p + r * ow * k)
                }
                for u in 0..<g.kernelH {
                    for v in 0..<g.kernelW {
                        let tap = u * g.kernelW + v
                        for i in 0..<count {
                            let r = r0 + i
                            let img = r / oh, row = r % oh
                            a[i] = UnsafePointer(sp.p + img * imageStride + (row * g.strideH + u * g.dilationH) * rowStride
                                                 + v * g.dilationW * c)
                        }
                        for (ci, (cb, _)) in cBlocks.enumerated() {
                            let aBlock = UnsafeMutablePointer<UnsafePointer<Float>?>.allocate(capacity: count)
                            for i in 0..<count { aBlock[i] = a[i]! + cb }
                            for (ki, (kb, _)) in kBlocks.enumerated() {
                                let bBlock = UnsafeMutablePointer<UnsafePointer<Float>?>.allocate(capacity: count)
                                for i in 0..<count { bBlock[i] = b[i]! + kb }
                                cxsmm_call(calls[ci][ki], aBlock, bBlock, acc + (tap * k + kb) * c + cb, UInt64(count))
                                bBlock.deallocate()
                            }
                            aBlock.deallocate()
                        }
                    }
                }
                r0 += count
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
        withExtendedLifetime(src) {}
        return (gw, gb)
    }
}
