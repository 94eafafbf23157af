import CDNNL

/// Convolution passes through the dual convolution (stride 1: weights transposed and flipped,
/// padding k-1-p), whose oneDNN kernels can be faster than the pass's own: the forward pass as
/// the dual's backward-data (on AVX2), backward-data as the dual's forward (brgconv on AMX).
extension ConvolutionKernel {
    /// The forward pass of `g` as oneDNN's backward-data pass of the dual convolution. Only
    /// the dual's weights in oneDNN's layout are cached, on `w`'s own storage: the flipped
    /// copy they are reordered from is made once and dropped (kept, it would hold one more
    /// copy of every such layer's weights for nothing).
    static func forwardByDual(_ x: Tensor, _ w: Tensor, _ g: ConvGeometry, _ type: DType) -> Tensor {
        backwardDataOneDNN(x, nil, g.dual!, type, dualOf: (w, g))
    }

    /// dL/dx for dL/dy `gy` as oneDNN's forward pass of the dual convolution (stride 1), the
    /// flipped and transposed weights reordered once per weight version: on AMX, 2.6's forward
    /// kernels (brgconv) run 1.2-3.5x faster than its backward-data ones (an older JIT) at
    /// ddpm-cifar10-32's shapes.
    static func backwardDataByDual(_ gy: Tensor, _ w: Tensor, _ g: ConvGeometry, _ type: DType, outType: DType = .float32) -> Tensor {
        let dual = g.dual!
        let dstType: DType = type == .bfloat16 ? outType : .float32
        guard let p = forwardPrimitive(dual, type, bias: false, post: ConvPostOps(), dst: dstType) else {
            fatalError("Tensors.conv2d: oneDNN has no forward kernel for the dual of \(g) (\(type))")
        }
        let gx = Tensor(uninitializedShape: g.inputShape, strides: Shape.channelsLastStrides(g.inputShape), dtype: dstType)
        let wt = reorderedDualWeights(w, g, target: p.md(dnnl_query_weights_md), purpose: "dual-fwd", type)
        do {
            try p.execute([
                (DNNL_ARG_SRC, p.md(dnnl_query_src_md), gy.baseAddress),
                (DNNL_ARG_WEIGHTS, p.md(dnnl_query_weights_md), wt.base),
                (DNNL_ARG_DST, p.md(dnnl_query_dst_md), gx.baseAddress),
            ])
        } catch { fatalError("Tensors.conv2d: \(error)") }
        withExtendedLifetime((gy, wt)) {}
        return gx.converted(to: outType)
    }

    /// The weights of g's dual convolution (`flippedTransposed`) in `type`, reordered to
    /// `target` once per version of w.
    static func reorderedDualWeights(_ w: Tensor, _ g: ConvGeometry, target: dnnl_memory_desc_t, purpose: String,
                                     _ type: DType) -> Storage {
        reorderedWeights(w, g.dual!, target: target, purpose: "\(purpose)|\(type)") {
            flippedTransposed(w.dtype == type ? w : w.toCached(type), g, cached: false)
        }
    }

    /// w'[g*I + i, o, u, v] = w[g*O + o, i, k-1-u, l-1-v] (I, O per group): the weights of the
    /// dual convolution. Cached on the weight's storage per version unless `cached` is false.
    static func flippedTransposed(_ w: Tensor, _ g: ConvGeometry, cached: Bool = true) -> Tensor {
        let (og, ig, kh, kw) = (g.outChannels / g.groups, g.inChannels / g.groups, g.kernelH, g.kernelW)
        let shape = [g.inChannels, og, kh, kw]
        let make = { () -> Storage in
            let src = w.contiguous()
            let dst = Tensor(uninitializedShape: shape, dtype: w.dtype)
            // Element bits moved as they are (a bf16 form stays bf16, no round trip through float32).
            func flip<T>(_: T.Type) {
                let sp = SendablePointer(src.pointer(as: T.self)), dp = SendablePointer(dst.pointer(as: T.self))
                let taps = kh * kw
                // Destination rows (group, i, o) are contiguous runs of taps, the source's reversed.
                Parallel.forEach(g.groups * ig, cost: og * taps * 2) { job in
                    let grp = job / ig, i = job % ig
                    for o in 0..<og {
                        let from = sp.p + ((grp * og + o) * ig + i) * taps
                        let to = dp.p + ((grp * ig + i) * og + o) * taps
                        for t in 0..<taps { to[t] = from[taps - 1 - t] }
                    }
                }
            }
            switch w.dtype.byteSize {
            case 1: flip(UInt8.self)
            case 2: flip(UInt16.self)
            case 4: flip(UInt32.self)
            default: flip(UInt64.self)
            }
            return dst.storage
        }
        let storage = cached ? w.storage.derivedBuffer("flip|\(w.offset)|\(w.strides)|\(w.dtype)|\(g.groups)", make: make) : make()
        return Tensor(storage: storage, shape: shape, strides: Shape.contiguousStrides(shape), dtype: w.dtype)
    }
}
