import Foundation
import NeuralNetworks
import Tensors

/// Fixed 2-d sine-cosine positional embeddings (MAE / DiT; diffusers'
/// `get_2d_sincos_pos_embed`) for a `height` x `width` grid of tokens, row-major: [h w, dim].
///
/// Token (i, j) gets [e(x_j), e(y_i)] with x_j = j / (width / base) / s and
/// y_i = i / (height / base) / s (float32), and for a coordinate p,
/// e(p) = [sin(p w_k), cos(p w_k)], w_k = 10000^(-k / (dim / 4)), k < dim / 4 (float64, as
/// diffusers computes it, rounded to float32 at the end).
public func sinCosPositionEmbedding2D(dim: Int, height: Int, width: Int, baseSize: Int, interpolationScale: Double = 1) -> Tensor {
    precondition(dim % 4 == 0, "sinCosPositionEmbedding2D: dim \(dim) must be divisible by 4")
    let quarter = dim / 4
    let omega = (0..<quarter).map { k in 1 / Foundation.pow(10000, Double(k) / (Double(dim / 2) / 2)) }
    func grid(_ n: Int) -> [Float] {
        let step = Float(Double(n) / Double(baseSize)), scale = Float(interpolationScale)
        return (0..<n).map { Float($0) / step / scale }
    }
    let ys = grid(height), xs = grid(width)
    var out = [Float](repeating: 0, count: height * width * dim)
    for i in 0..<height {
        for j in 0..<width {
            let base = (i * width + j) * dim
            for (half, p) in [(0, xs[j]), (1, ys[i])] {
                let start = base + half * dim / 2
                for k in 0..<quarter {
                    let angle = Double(p) * omega[k]
                    out[start + k] = Float(Foundation.sin(angle))
                    out[start + quarter + k] = Float(Foundation.cos(angle))
                }
            }
        }
    }
    return Tensor(out, shape: [height * width, dim])
}

/// diffusers' `PatchEmbed` (ViT's patchify with DiT's fixed positions): a p x p convolution
/// with stride p (`proj`) turns [N, C, H, W] into (H / p)(W / p) tokens of width `dim`, plus
/// the 2-d sin-cos embedding of their grid. The embedding is a constant, not a parameter
/// (diffusers does not save it); grids other than the configured one are computed on use.
public final class PatchEmbed: Module {
    public let proj: Conv2d
    public let patchSize: Int
    /// The configured grid (sample_size / patch_size), also the base size of the positions.
    public let gridSize: Int
    public let interpolationScale: Double
    let positions: Tensor

    public init(sampleSize: Int, patchSize: Int, inChannels: Int, dim: Int, interpolationScale: Double = 1,
                generator: RandomGenerator? = nil) {
        proj = Conv2d(inChannels, dim, kernelSize: Int2(patchSize), stride: Int2(patchSize), generator: generator)
        self.patchSize = patchSize
        gridSize = sampleSize / patchSize
        self.interpolationScale = interpolationScale
        positions = sinCosPositionEmbedding2D(dim: dim, height: gridSize, width: gridSize, baseSize: gridSize,
                                              interpolationScale: interpolationScale).reshaped(1, gridSize * gridSize, dim)
        super.init()
    }

    /// [N, C, H, W] -> tokens [N, (H / p)(W / p), dim]; channels-last input makes the token
    /// view of the convolution's output free.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let y = proj(x)
        let (n, d, h, w) = (y.shape[0], y.shape[1], y.shape[2], y.shape[3])
        let tokens = y.permuted(0, 2, 3, 1).reshaped(n, h * w, d)
        let pos = h == gridSize && w == gridSize
            ? positions
            : sinCosPositionEmbedding2D(dim: d, height: h, width: w, baseSize: gridSize,
                                        interpolationScale: interpolationScale).reshaped(1, h * w, d)
        return tokens + pos
    }
}
