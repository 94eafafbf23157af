import Tensors

/// Images to and from [C,H,W] float tensors, and grids of a batch.
extension Image {
    /// The image of a [C,H,W] (or [1,C,H,W]) tensor (C = 1, 2, 3 or 4) whose values span
    /// `range`: each value maps to `round((v - lo) / (hi - lo) * 255)`, clamped to 0...255
    /// (NaN to 0), as torchvision's `save_image` does for [0, 1]. Use `grid` for batches.
    public init(tensor: Tensor, range: ClosedRange<Float> = -1...1) {
        if tensor.rank == 4 && tensor.shape[0] == 1 {
            self.init(tensor: tensor.reshaped(Array(tensor.shape.dropFirst())), range: range)
            return
        }
        precondition(tensor.rank == 3 && (1...4).contains(tensor.shape[0]),
                     "ImageIO.Image(tensor:): needs a [C,H,W] or [1,C,H,W] tensor with C in 1...4, got shape \(tensor.shape)")
        let (c, h, w) = (tensor.shape[0], tensor.shape[1], tensor.shape[2])
        let values = tensor.scalars
        var pixels = [UInt8](repeating: 0, count: c * h * w)
        let plane = h * w
        let scale = 255 / (range.upperBound - range.lowerBound)
        let lo = range.lowerBound
        for ch in 0..<c {
            for i in 0..<plane {
                pixels[i * c + ch] = Image.quantize(values[ch * plane + i], lo: lo, scale: scale)
            }
        }
        self.init(width: w, height: h, channels: c, pixels: pixels)
    }

    /// The image as a [C,H,W] float32 tensor, byte p mapping to `lo + p / 255 * (hi - lo)`.
    public func tensor(range: ClosedRange<Float> = -1...1) -> Tensor {
        Tensor(planes(range: range), shape: [channels, height, width])
    }

    /// The samples as C planes of H*W floats (CHW order), mapped into `range`.
    public func planes(range: ClosedRange<Float> = -1...1) -> [Float] {
        let lut = Image.lookupTable(range: range)
        let plane = width * height
        var out = [Float](repeating: 0, count: plane * channels)
        for ch in 0..<channels {
            for i in 0..<plane { out[ch * plane + i] = lut[Int(pixels[i * channels + ch])] }
        }
        return out
    }

    /// The 256 floats bytes map to in `range`.
    static func lookupTable(range: ClosedRange<Float>) -> [Float] {
        let span = range.upperBound - range.lowerBound
        return (0..<256).map { range.lowerBound + Float($0) / 255 * span }
    }

    @inline(__always)
    static func quantize(_ v: Float, lo: Float, scale: Float) -> UInt8 {
        let x = ((v - lo) * scale).rounded()
        guard x > 0 else { return 0 }   // also NaN
        return x >= 255 ? 255 : UInt8(x)
    }

    /// A grid of the N images of a [N,C,H,W] batch, laid out as torchvision's `make_grid`:
    /// `columns` images per row (default `ceil(sqrt(N))`, a square-ish grid), rows of
    /// images filled left to right, `padding` pixels of `padValue` around and between the
    /// images. The result is (rows*(H+p)+p) x (columns*(W+p)+p) with the batch's channels.
    public static func grid(_ batch: Tensor, columns: Int? = nil, padding: Int = 2,
                            range: ClosedRange<Float> = -1...1, padValue: UInt8 = 0) -> Image {
        precondition(batch.rank == 4 && (1...4).contains(batch.shape[1]) && batch.shape[0] > 0,
                     "ImageIO.Image.grid: needs a [N,C,H,W] batch with N >= 1 and C in 1...4, got shape \(batch.shape)")
        precondition(padding >= 0, "ImageIO.Image.grid: padding \(padding) is negative")
        let (n, c, h, w) = (batch.shape[0], batch.shape[1], batch.shape[2], batch.shape[3])
        let cols = Swift.min(Swift.max(columns ?? Int(Double(n).squareRoot().rounded(.up)), 1), n)
        let rows = (n + cols - 1) / cols
        let cellW = w + padding, cellH = h + padding
        let gridW = cols * cellW + padding, gridH = rows * cellH + padding
        var out = Image(width: gridW, height: gridH, fill: [UInt8](repeating: padValue, count: c))
        let values = batch.scalars
        let scale = 255 / (range.upperBound - range.lowerBound)
        let plane = h * w
        for k in 0..<n {
            let x0 = (k % cols) * cellW + padding, y0 = (k / cols) * cellH + padding
            let base = k * c * plane
            for y in 0..<h {
                for x in 0..<w {
                    let o = ((y0 + y) * gridW + x0 + x) * c
                    for ch in 0..<c {
                        out.pixels[o + ch] = quantize(values[base + ch * plane + y * w + x], lo: range.lowerBound, scale: scale)
                    }
                }
            }
        }
        return out
    }
}
