/// Max and average pooling with padding over NCHW tensors (inference only: no gradient rule;
/// calling them while a tape records tracked inputs is an error). Channels-last in memory, out
/// channels-last, as the convolutions around them want; floor mode (ceil_mode=False).
extension Tensor {
    /// Maximum over `kernel` x `kernel` windows moved by `stride`, the input padded by
    /// `padding` with -infinity (F.max_pool2d): y[n, c, i, j] = max over u, v of
    /// x[n, c, i*s + u - p, j*s + v - p], positions outside the input skipped.
    public func maxPooled2d(kernel: Int, stride: Int? = nil, padding: Int = 0) -> Tensor {
        pooled2d(kernel: kernel, stride: stride ?? kernel, padding: padding, op: "maxPool2d", mode: .max)
    }

    /// Mean over `kernel` x `kernel` windows moved by `stride`, the input padded by `padding`
    /// zeros (F.avg_pool2d). `countIncludePad` true divides by kernel²; false divides by the
    /// number of window positions inside the input (count_include_pad=False, as TF's "SAME"
    /// average pooling, which the FID Inception network uses).
    public func avgPooled2d(kernel: Int, stride: Int? = nil, padding: Int = 0, countIncludePad: Bool = true) -> Tensor {
        pooled2d(kernel: kernel, stride: stride ?? kernel, padding: padding, op: "avgPool2d",
                 mode: countIncludePad ? .averageIncludingPadding : .averageExcludingPadding)
    }

    private enum PoolMode { case max, averageIncludingPadding, averageExcludingPadding }

    private func pooled2d(kernel k: Int, stride s: Int, padding p: Int, op: String, mode: PoolMode) -> Tensor {
        check(rank == 4, op, "needs an NCHW tensor, got shape \(shape)")
        check(k >= 1 && s >= 1 && p >= 0, op, "kernel \(k) and stride \(s) must be positive, padding \(p) non-negative")
        check(2 * p <= k, op, "padding \(p) must be at most half the kernel \(k) (as torch requires)")
        check(dtype.isFloatingPoint, op, "needs a floating-point tensor, got \(dtype)")
        check(Tape.active([self]) == nil, op, "has no gradient rule (inference only): call it outside a recording tape")
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        check(h + 2 * p >= k && w + 2 * p >= k, op, "input \(shape) with padding \(p) is smaller than the \(k)x\(k) window")
        let oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1
        let outShape = [n, c, oh, ow]
        let x = asFloat32().detached().channelsLast()
        let y = Tensor(uninitializedShape: outShape, strides: Shape.channelsLastStrides(outShape), dtype: .float32)
        if y.count > 0 {
            let xp = SendablePointer(x.pointer(as: Float.self)), yp = SendablePointer(y.pointer(as: Float.self))
            Parallel.forEach(n * oh, cost: ow * k * k * c) { row in
                let (b, i) = (row / oh, row % oh)
                let u0 = Swift.max(0, i * s - p), u1 = Swift.min(h, i * s - p + k)
                for j in 0..<ow {
                    let v0 = Swift.max(0, j * s - p), v1 = Swift.min(w, j * s - p + k)
                    let out = yp.p + ((b * oh + i) * ow + j) * c
                    let divisor: Float = mode == .averageIncludingPadding ? Float(k * k) : Float((u1 - u0) * (v1 - v0))
                    var ch = 0
                    while ch < c {
                        let m = Swift.min(8, c - ch)
                        var acc = mode == .max ? SIMD8<Float>(repeating: -.infinity) : SIMD8<Float>(repeating: 0)
                        for u in u0..<u1 {
                            for v in v0..<v1 {
                                let value = Lanes.load(xp.p + ((b * h + u) * w + v) * c + ch, 1, m)
                                acc = mode == .max ? pointwiseMax(acc, value) : acc + value
                            }
                        }
                        if mode != .max { acc /= SIMD8<Float>(repeating: divisor) }
                        Lanes.store(acc, out + ch, 1, m)
                        ch += m
                    }
                }
            }
        }
        return dtype == .bfloat16 ? y.to(.bfloat16) : y
    }
}
