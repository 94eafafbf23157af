import CDNNL
import Foundation

/// Convolution as one matrix product over the unfolded input (im2col; groups 1, any stride,
/// padding and dilation): the forward pass multiplies the rows of taps of each output point,
/// [N·OH·OW, KH·KW·C], by the weights as [KH·KW·C, O]; backward-data multiplies dL/dy by
/// the weights into the same rows and folds them back onto the input points; backward-weights
/// multiplies dL/dy transposed by the same rows. The products run in oneDNN's matmul (bf16
/// on AMX or AVX-512 BF16, fp32 accumulation), the weights packed into its layout once per
/// version.
///
/// Where it pays: small images, whose direct kernels block over a width they do not have
/// (in one run oneDNN 2.6's AMX kernel computed ddpm-cifar10-32's 256-channel 4x4 layers at
/// batch 8 in 0.81 ms, 1.5x the time of the same layer at 8x8 for a quarter of the work). Offered only
/// where the unfolded rows stay small (`maxUnfolded`), and for 1x1 stride-1 layers, whose
/// rows are the input itself; timing chooses as for every algorithm.
enum Im2colConvolution {
    /// The most elements of unfolded rows (8 MB in bf16) for which this is a candidate.
    static let maxUnfolded = 1 << 22

    /// Off with `DIFFUSE_IM2COL=0` (for comparisons).
    static let enabled = ProcessInfo.processInfo.environment["DIFFUSE_IM2COL"] != "0"

    static func supports(_ g: ConvGeometry) -> Bool {
        enabled && g.groups == 1 && (isPointwise(g) || g.batch * g.outH * g.outW * taps(g) * g.inChannels <= maxUnfolded)
    }

    /// 1x1, stride 1, no padding: the unfolded rows are the channels-last input.
    static func isPointwise(_ g: ConvGeometry) -> Bool {
        g.kernelH == 1 && g.kernelW == 1 && g.strideH == 1 && g.strideW == 1 && g.padH == 0 && g.padW == 0
    }

    private static func taps(_ g: ConvGeometry) -> Int { g.kernelH * g.kernelW }

    /// y = conv(x, w) + bias (+ residual), then SiLU if asked: x channels-last in `type`, y
    /// channels-last of `outType`. Without residual or SiLU the product adds the bias and
    /// writes `outType` itself.
    static func forward(_ x: Tensor, _ w: Tensor, _ bias: Tensor?, _ g: ConvGeometry, _ type: DType,
                        residual: Tensor? = nil, silu: Bool = false, outType: DType = .float32) -> Tensor {
        precondition(x.isChannelsLast && x.dtype == type, "Im2colConvolution: x must be channels-last \(type)")
        let k = taps(g) * g.inChannels
        let plain = residual == nil && !silu
        // The weights as [K, O]: the transposed view of their rows [O, K].
        let y = product(unfolded(x, g), w, g, .forward, type, bias: plain ? bias : nil, outType: plain ? outType : .float32) {
            let m = rows(w, g, type)
            return Tensor(storage: m.storage, shape: [k, g.outChannels], strides: [1, k], offset: m.offset, dtype: type)
        }
        let out = Tensor(storage: y.storage, shape: g.outputShape, strides: Shape.channelsLastStrides(g.outputShape), dtype: y.dtype)
        return plain ? out : ConvolutionKernel.epilogue(out, bias, residual, silu: silu, outType: outType)
    }

    /// dL/dx for dL/dy `gy` (channels-last, `type`): channels-last, of `outType`.
    static func backwardData(_ gy: Tensor, _ w: Tensor, _ g: ConvGeometry, _ type: DType, outType: DType = .float32) -> Tensor {
        precondition(gy.isChannelsLast && gy.dtype == type, "Im2colConvolution: dL/dy must be channels-last \(type)")
        let points = g.batch * g.outH * g.outW
        let dy = Tensor(storage: gy.storage, shape: [points, g.outChannels], strides: [g.outChannels, 1], offset: gy.offset, dtype: type)
        let pointwise = isPointwise(g)
        let d = product(dy, w, g, .backwardData, type, bias: nil, outType: pointwise ? outType : .float32) { rows(w, g, type) }
        if pointwise {
            return Tensor(storage: d.storage, shape: g.inputShape, strides: Shape.channelsLastStrides(g.inputShape), dtype: d.dtype)
        }
        return folded(d, g, outType: outType)
    }

    /// dL/dw (float32, OIHW) and dL/dbias for channels-last x and dL/dy of one type: dL/dyᵀ
    /// [O, N·OH·OW] (dL/dy's own rows, read transposed in place) times the unfolded rows gives
    /// dL/dw as [O, KH·KW·C] (OHWI), which oneDNN's reorder writes out as OIHW.
    static func backwardWeights(_ x: Tensor, _ gy: Tensor, _ g: ConvGeometry, bias: Bool) -> (Tensor, Tensor?) {
        precondition(x.isChannelsLast && gy.isChannelsLast && x.dtype == gy.dtype,
                     "Im2colConvolution: x and dL/dy must be channels-last, of one type")
        let (o, points) = (g.outChannels, g.batch * g.outH * g.outW)
        let dyT = Tensor(storage: gy.storage, shape: [o, points], strides: [1, o], offset: gy.offset, dtype: gy.dtype)
        let ohwi = MatmulKernel.product(dyT, unfolded(x, g))
        let gw: Tensor
        if taps(g) == 1 {
            gw = ohwi.reshaped(g.weightShape)
        } else {
            gw = Tensor(uninitializedShape: g.weightShape, dtype: .float32)
            do {
                try OneDNN.reorder(ohwi.baseAddress, from: OneDNN.desc(g.weightShape, ohwiStrides(g), .float32),
                                   to: OneDNN.desc(g.weightShape, gw.strides, .float32), into: gw.baseAddress,
                                   key: "ohwi-to-oihw|\(g.weightShape)")
            } catch { fatalError("Tensors.conv2d: cannot reorder the weight gradient \(g.weightShape) from OHWI: \(error)") }
            withExtendedLifetime(ohwi) {}
        }
        return (gw, bias ? WinogradConvolution.biasGradient(gy, g) : nil)
    }

    /// a [M, K] (in `type`, plain strides) times the weights as [K, N], which `source` makes
    /// (plain strides) once per version of w and oneDNN reorders into its matmul's own layout
    /// (packed for its tiles; weights in a plain layout are packed again inside every call):
    /// [M, N] of `outType`, bias [N] (float32) added by the kernel.
    private static func product(_ a: Tensor, _ w: Tensor, _ g: ConvGeometry, _ pass: ConvolutionPass, _ type: DType,
                                bias: Tensor?, outType: DType, source: @escaping () -> Tensor) -> Tensor {
        // fp32 products with a bf16 output: oneDNN 2.6 has that matmul only as its reference
        // kernel where the CPU has no bf16 (AVX2), so the product writes fp32 and converts.
        if outType != type && !MatmulKernel.bf16Supported {
            return product(a, w, g, pass, type, bias: bias, outType: type, source: source).converted(to: outType)
        }
        let (m, k) = (a.shape[0], a.shape[1])
        let n = pass == .forward ? g.outChannels : taps(g) * g.inChannels
        let key = "im2col|\(pass.rawValue)|\(type)|\(m)x\(k)x\(n)|\(a.strides)|\(bias != nil)|\(outType)"
        guard let p = OneDNN.primitive(key, make: {
            var amd = try OneDNN.desc([m, k], a.strides, type)
            var bmd = try OneDNN.anyDesc([k, n], type)
            var omd = try OneDNN.desc([m, n], [n, 1], outType)
            var desc = dnnl_matmul_desc_t()
            if bias != nil {
                var cmd = try OneDNN.desc([1, n], [n, 1], .float32)
                try OneDNN.check(dnnl_matmul_desc_init(&desc, &amd, &bmd, &cmd, &omd), "matmul descriptor")
            } else {
                try OneDNN.check(dnnl_matmul_desc_init(&desc, &amd, &bmd, nil, &omd), "matmul descriptor")
            }
            var pd: dnnl_primitive_desc_t?
            try OneDNN.check(dnnl_primitive_desc_create(&pd, &desc, nil, OneDNN.engine, nil), "matmul primitive")
            return pd!
        }) else { fatalError("Tensors.conv2d: oneDNN has no \(type) matmul for the \(pass.rawValue) pass of \(g) (\(m)x\(k)x\(n))") }
        let target = p.md(dnnl_query_weights_md)
        let packed = ConvolutionKernel.reorderedWeights(w, g, target: target, purpose: "im2col|\(pass.rawValue)", source: source)
        let out = Tensor(uninitializedShape: [m, n], dtype: outType)
        do {
            var args = [
                (DNNL_ARG_SRC, try OneDNN.desc([m, k], a.strides, type), a.baseAddress),
                (DNNL_ARG_WEIGHTS, target, packed.base),
                (DNNL_ARG_DST, try OneDNN.desc([m, n], [n, 1], outType), out.baseAddress),
            ]
            if let bias { args.append((DNNL_ARG_BIAS, try OneDNN.desc([1, n], [n, 1], .float32), bias.baseAddress)) }
            try p.execute(args)
        } catch { fatalError("Tensors.conv2d: \(error)") }
        withExtendedLifetime((a, packed, bias)) {}
        return out
    }

    /// w as rows [O, KH·KW·C] (OHWI) in `type` (from the cached bf16 form of float32
    /// masters), for `product` to pack; not kept. oneDNN's reorder moves the elements (at
    /// memory speed; a strided copy took as long as the 4x4 layers' product).
    private static func rows(_ w: Tensor, _ g: ConvGeometry, _ type: DType) -> Tensor {
        let source = (w.dtype == type ? w.detached() : w.toCached(type)).contiguous()
        let (o, k) = (g.outChannels, taps(g) * g.inChannels)
        do {
            let storage = try withExtendedLifetime(source) {
                try OneDNN.reorder(source.baseAddress, from: OneDNN.desc(source.shape, source.strides, type),
                                   to: OneDNN.desc(source.shape, ohwiStrides(g), type), key: "ohwi|\(type)|\(source.shape)")
            }
            return Tensor(storage: storage, shape: [o, k], strides: [k, 1], dtype: type)
        } catch { fatalError("Tensors.conv2d: cannot reorder weights \(w.shape) to OHWI: \(error)") }
    }

    /// Strides that lay out a weight tensor [O, C, KH, KW] as OHWI: each output channel a row
    /// of taps, each tap C values (the order of `unfolded`'s rows).
    private static func ohwiStrides(_ g: ConvGeometry) -> [Int] {
        [taps(g) * g.inChannels, 1, g.kernelW * g.inChannels, g.inChannels]
    }

    /// The rows of taps [N·OH·OW, KH·KW·C] of channels-last x (zeros where a tap falls in the
    /// padding), in x's type; the input itself for a pointwise g.
    static func unfolded(_ x: Tensor, _ g: ConvGeometry) -> Tensor {
        let (c, points) = (g.inChannels, g.batch * g.outH * g.outW)
        if isPointwise(g) {
            return Tensor(storage: x.storage, shape: [points, c], strides: [c, 1], offset: x.offset, dtype: x.dtype)
        }
        let k = taps(g) * c
        let rows = Tensor(uninitializedShape: [points, k], dtype: x.dtype)
        let size = x.dtype.byteSize
        let (src, dst) = (RawPointer(x.baseAddress), SendablePointer(rows.baseAddress.assumingMemoryBound(to: UInt8.self)))
        Parallel.forRanges(points, grain: Swift.max(1, 16384 / k)) { range in
            for p in range {
                let ow = p % g.outW, oh = p / g.outW % g.outH, n = p / (g.outW * g.outH)
                var to = dst.p + p * k * size
                for u in 0..<g.kernelH {
                    let ih = oh * g.strideH - g.padH + u * g.dilationH
                    for v in 0..<g.kernelW {
                        let iw = ow * g.strideW - g.padW + v * g.dilationW
                        if ih >= 0 && ih < g.height && iw >= 0 && iw < g.width {
                            memcpy(to, src.p + ((n * g.height + ih) * g.width + iw) * c * size, c * size)
                        } else {
                            memset(to, 0, c * size)
                        }
                        to += c * size
                    }
                }
            }
        }
        withExtendedLifetime(x) {}
        return rows
    }

    /// The input points' sums of the float32 rows [N·OH·OW, KH·KW·C] that each tap sent them
    /// (the adjoint of `unfolded`), channels-last, of `outType`; each point's taps added in
    /// tap order.
    static func folded(_ rows: Tensor, _ g: ConvGeometry, outType: DType) -> Tensor {
        let c = g.inChannels, k = taps(g) * c
        let out = Tensor(uninitializedShape: g.inputShape, strides: Shape.channelsLastStrides(g.inputShape), dtype: outType)
        let src = SendablePointer(rows.pointer(as: Float.self))
        let dst32 = SendablePointer(out.baseAddress.assumingMemoryBound(to: Float.self))
        let dst16 = SendablePointer(out.baseAddress.assumingMemoryBound(to: UInt16.self))
        let bf16 = outType == .bfloat16
        Parallel.forRanges(g.batch * g.height * g.width, grain: Swift.max(1, 16384 / k)) { range in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: bf16 ? c : 0) { tile in
                for q in range {
                    let iw = q % g.width, ih = q / g.width % g.height, n = q / (g.width * g.height)
                    let acc = bf16 ? tile.baseAddress! : dst32.p + q * c
                    acc.initialize(repeating: 0, count: c)
                    for u in 0..<g.kernelH {
                        let y = ih + g.padH - u * g.dilationH
                        guard y >= 0 && y % g.strideH == 0 && y / g.strideH < g.outH else { continue }
                        for v in 0..<g.kernelW {
                            let x = iw + g.padW - v * g.dilationW
                            guard x >= 0 && x % g.strideW == 0 && x / g.strideW < g.outW else { continue }
                            let p = (n * g.outH + y / g.strideH) * g.outW + x / g.strideW
                            add(src.p + p * k + (u * g.kernelW + v) * c, into: acc, c)
                        }
                    }
                    if bf16 { BFloat16Runs.narrow(acc, 1, dst16.p + q * c, 1, c) }
                }
            }
        }
        withExtendedLifetime(rows) {}
        return out
    }

    @inline(__always)
    private static func add(_ a: UnsafePointer<Float>, into acc: UnsafeMutablePointer<Float>, _ n: Int) {
        var i = 0
        while i < n {
            let m = Swift.min(8, n - i)
            Lanes.store(Lanes.load(acc + i, 1, m) + Lanes.load(a + i, 1, m), acc + i, 1, m)
            i += m
        }
    }
}
