/// Weight gradients of stride-1 convolutions as one oneDNN matrix product per kernel tap
/// ("tap GEMMs"), for shapes where oneDNN's own backward-weights kernel is slow: in bf16 on
/// AMX it runs 60-600 GFLOP/s at ddpm-cifar10-32's 1x1, 4x4 and 8x8 layers (Xeon model 207),
/// where its forward kernels and its matmul run 1.5-2.7 TFLOP/s.
///
/// On a grid of the zero-padded input's size (hp x wp points per image, images one after
/// another), dL/dy sits at the output positions (zero elsewhere) and the padded input at
/// every point, so that tap (u, v) pairs grid point q with input point q + u wp + v:
///   dW[:, :, u, v] = dYᵀ [O x Q] · Xp[u wp + v ..< u wp + v + Q, :] [Q x C]
/// a product of two plain matrices, the second a window of rows of one padded copy of x
/// (channels-last, so rows are pixels). The grid's zeros add hp wp / (oh ow) - 1 of the
/// multiply-adds (0.27x more at 16x16, 1.25x at 4x4); timing decides where it pays.
enum TapGEMMConvolution {
    /// Stride 1, no dilation, one group, and a grid at most 3x the output.
    static func supports(_ g: ConvGeometry) -> Bool {
        guard g.groups == 1, g.strideH == 1, g.strideW == 1, g.dilationH == 1, g.dilationW == 1 else { return false }
        return gridFLOPs(g) <= 3 * g.flops
    }

    /// The multiply-adds the products perform (2 per), the grid's zeros included.
    static func gridFLOPs(_ g: ConvGeometry) -> Double {
        let grid = Double(g.batch * (g.height + 2 * g.padH) * (g.width + 2 * g.padW))
        return g.flops * grid / Double(Swift.max(1, g.batch * g.outH * g.outW))
    }

    /// dL/dw (float32, OIHW) and dL/dbias for channels-last x and dL/dy of one type.
    static func backwardWeights(_ x: Tensor, _ gy: Tensor, _ g: ConvGeometry, bias: Bool) -> (Tensor, Tensor?) {
        let (n, c, h, w, o) = (g.batch, g.inChannels, g.height, g.width, g.outChannels)
        let (hp, wp, kh, kw) = (h + 2 * g.padH, w + 2 * g.padW, g.kernelH, g.kernelW)
        let q = n * hp * wp
        let tail = (kh - 1) * wp + (kw - 1)
        // x on the grid, a row of channels per point, zero around each image and past the end;
        // x itself where there is no padding and one tap.
        let padded: Tensor
        if g.padH == 0 && g.padW == 0 && tail == 0 && x.isChannelsLast {
            padded = x.permuted(0, 2, 3, 1).reshaped([q, c])
        } else {
            padded = Tensor.zeros([q + tail, c], dtype: x.dtype)
            padded.sliced(axis: 0, 0..<q).reshaped([n, hp, wp, c])
                .sliced(axis: 1, g.padH..<g.padH + h).sliced(axis: 2, g.padW..<g.padW + w)
                .assign(x.permuted(0, 2, 3, 1))
        }
        // dL/dy transposed onto the grid: a row of grid points per output channel.
        let grid = Tensor.zeros([o, n, hp, wp], dtype: gy.dtype)
        grid.sliced(axis: 2, 0..<g.outH).sliced(axis: 3, 0..<g.outW).assign(gy.permuted(1, 0, 2, 3))
        let a = grid.reshaped([o, q])
        let products = Tensor(uninitializedShape: [kh * kw, o, c], dtype: .float32)
        for u in 0..<kh {
            for v in 0..<kw {
                let t = u * kw + v, start = u * wp + v
                MatmulKernel.multiply(a, padded.sliced(axis: 0, start..<start + q),
                                      into: products.sliced(axis: 0, t..<t + 1).reshaped([o, c]))
            }
        }
        let gw = products.permuted(1, 2, 0).contiguous().reshaped(g.weightShape)
        return (gw, bias ? WinogradConvolution.biasGradient(gy, g) : nil)
    }
}
