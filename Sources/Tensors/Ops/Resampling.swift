/// Spatial resampling of NCHW tensors: nearest-neighbour upsampling and average pooling,
/// composed from views and adds (their gradients follow from those ops).
extension Tensor {
    /// Each pixel repeated `scale` x `scale` times (F.interpolate(mode="nearest")).
    /// Channels-last input stays channels-last.
    public func upsampledNearest(scale: Int = 2) -> Tensor {
        check(rank == 4, "upsampleNearest", "needs an NCHW tensor, got shape \(shape)")
        check(scale >= 1, "upsampleNearest", "scale must be positive, got \(scale)")
        if scale == 1 { return self }
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        if isChannelsLast {
            let nhwc = permuted(0, 2, 3, 1)  // contiguous view
            let big = nhwc.reshaped(n, h, 1, w, 1, c).expanded([n, h, scale, w, scale, c]).reshaped(n, h * scale, w * scale, c)
            return big.permuted(0, 3, 1, 2)
        }
        return reshaped(n, c, h, 1, w, 1).expanded([n, c, h, scale, w, scale]).reshaped(n, c, h * scale, w * scale)
    }

    /// Mean over `kernel` x `kernel` windows moved by `stride` (no padding; floor mode),
    /// as F.avg_pool2d.
    public func avgPooled(kernel: Int, stride: Int? = nil) -> Tensor {
        check(rank == 4, "avgPool2d", "needs an NCHW tensor, got shape \(shape)")
        let s = stride ?? kernel
        check(kernel >= 1 && s >= 1, "avgPool2d", "kernel \(kernel) and stride \(s) must be positive")
        let (h, w) = (shape[2], shape[3])
        check(h >= kernel && w >= kernel, "avgPool2d", "input \(shape) is smaller than the \(kernel)x\(kernel) window")
        let oh = (h - kernel) / s + 1, ow = (w - kernel) / s + 1
        var total: Tensor? = nil
        for u in 0..<kernel {
            for v in 0..<kernel {
                let window = sliced(axis: 2, start: u, end: u + (oh - 1) * s + 1, step: s)
                    .sliced(axis: 3, start: v, end: v + (ow - 1) * s + 1, step: s)
                total = total.map { $0 + window } ?? window
            }
        }
        return total! * (1 / Float(kernel * kernel))
    }
}
