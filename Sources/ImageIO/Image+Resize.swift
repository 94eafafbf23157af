/// How `Image.resized` computes each output pixel.
public enum ResizeFilter: String, Sendable, CaseIterable {
    /// The source pixel under the output pixel's centre.
    case nearest
    /// The mean of the source pixels the output pixel covers (PIL's BOX).
    case box
    /// A triangle (tent) filter: linear interpolation when enlarging, antialiased when
    /// shrinking (PIL's BILINEAR).
    case bilinear
    /// Keys' cubic convolution with a = -0.5, antialiased when shrinking (PIL's BICUBIC).
    case bicubic
    /// For whole-number shrink factors, the exact mean of each block of pixels, rounded once;
    /// other sizes fall back to `box`.
    case area

    /// The filter kernel's half-width in source pixels at scale 1.
    var support: Double {
        switch self {
        case .nearest, .box, .area: 0.5
        case .bilinear: 1
        case .bicubic: 2
        }
    }

    /// The kernel's weight at distance `x` (PIL's `box_filter`, `bilinear_filter`, `bicubic_filter`).
    func weight(_ x: Double) -> Double {
        switch self {
        case .nearest, .box, .area:
            return x > -0.5 && x <= 0.5 ? 1 : 0
        case .bilinear:
            let x = abs(x)
            return x < 1 ? 1 - x : 0
        case .bicubic:
            let a = -0.5, x = abs(x)
            if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
            if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
            return 0
        }
    }
}

/// Resizing with the filters and fixed-point arithmetic of Pillow's `Image.resize`, so the
/// results match Pillow's byte for byte.
extension Image {
    /// The image resized to `width` x `height`.
    ///
    /// Separable convolution as Pillow does it: each output pixel at centre
    /// `c = (i + 0.5) * in / out` weights the source pixels within `support * max(in/out, 1)`
    /// of `c` by `filter((j + 0.5 - c) / max(in/out, 1))`, normalised to sum 1, so shrinking
    /// is antialiased (the kernel widens to cover the pixels each output pixel spans). Weights
    /// are 22-bit fixed point, the horizontal pass runs first and is rounded to 8 bits before
    /// the vertical one, and images with alpha are resampled premultiplied, all as in Pillow.
    public func resized(width newWidth: Int, height newHeight: Int, filter: ResizeFilter = .bicubic) -> Image {
        precondition(newWidth > 0 && newHeight > 0, "ImageIO.Image.resized: size \(newWidth)x\(newHeight)")
        precondition(width > 0 && height > 0, "ImageIO.Image.resized: cannot resize an empty \(width)x\(height) image")
        if newWidth == width && newHeight == height { return self }
        switch filter {
        case .nearest:
            return nearest(width: newWidth, height: newHeight)
        case .area where width % newWidth == 0 && height % newHeight == 0:
            return premultiplied().blockMeans(fx: width / newWidth, fy: height / newHeight).unpremultiplied()
        default:
            var im = premultiplied()
            // Pillow 13 runs the vertical pass first when the height shrinks by more than
            // twice as many pixels as the width does (fewer rows for the horizontal pass);
            // the order changes the rounding of the 8-bit intermediate, so it is kept.
            let verticalFirst = height - newHeight > 0 && height - newHeight > (width - newWidth) * 2
            if verticalFirst {
                im = im.resampled(axis: 1, to: newHeight, filter: filter)
                if newWidth != width { im = im.resampled(axis: 0, to: newWidth, filter: filter) }
            } else {
                if newWidth != width { im = im.resampled(axis: 0, to: newWidth, filter: filter) }
                if newHeight != height { im = im.resampled(axis: 1, to: newHeight, filter: filter) }
            }
            return im.unpremultiplied()
        }
    }

    /// The image shrunk by a whole factor: each output pixel is the mean of a `factor` x
    /// `factor` block, rounded half up (alpha images: of premultiplied colour).
    public func downscaled(by factor: Int) -> Image {
        precondition(factor >= 1 && width % factor == 0 && height % factor == 0,
                     "ImageIO.Image.downscaled: \(width)x\(height) is not divisible by \(factor)")
        return resized(width: width / factor, height: height / factor, filter: .area)
    }

    /// Output pixel i takes source pixel floor((i + 0.5) * in / out) (Pillow's NEAREST), with
    /// the position computed as Pillow's `ImagingScaleAffine` does: start at scale / 2 and add
    /// the scale once per pixel in double precision, so ties that the accumulated rounding puts
    /// just below a whole number pick the same source pixel Pillow picks.
    func nearest(width newWidth: Int, height newHeight: Int) -> Image {
        func positions(_ inSize: Int, _ outSize: Int) -> [Int] {
            let scale = Double(inSize) / Double(outSize)
            var at = scale * 0.5
            return (0..<outSize).map { _ in
                defer { at += scale }
                return Swift.min(Swift.max(Int(at), 0), inSize - 1)
            }
        }
        let xs = positions(width, newWidth)
        let ys = positions(height, newHeight)
        var out = [UInt8](repeating: 0, count: newWidth * newHeight * channels)
        for (oy, sy) in ys.enumerated() {
            for (ox, sx) in xs.enumerated() {
                let s = (sy * width + sx) * channels, d = (oy * newWidth + ox) * channels
                for c in 0..<channels { out[d + c] = pixels[s + c] }
            }
        }
        return Image(width: newWidth, height: newHeight, channels: channels, pixels: out)
    }

    /// Exact means of fx x fy blocks.
    func blockMeans(fx: Int, fy: Int) -> Image {
        let ow = width / fx, oh = height / fy, n = fx * fy
        var out = [UInt8](repeating: 0, count: ow * oh * channels)
        for oy in 0..<oh {
            for ox in 0..<ow {
                for c in 0..<channels {
                    var sum = 0
                    for y in oy * fy..<(oy + 1) * fy {
                        for x in ox * fx..<(ox + 1) * fx { sum += Int(pixels[(y * width + x) * channels + c]) }
                    }
                    out[(oy * ow + ox) * channels + c] = UInt8((sum + n / 2) / n)
                }
            }
        }
        return Image(width: ow, height: oh, channels: channels, pixels: out)
    }

    /// Fixed-point precision of the weights (Pillow's PRECISION_BITS = 32 - 8 - 2).
    static let precisionBits = 22

    /// For each output index, the first source index and the fixed-point weights.
    static func coefficients(inSize: Int, outSize: Int, filter: ResizeFilter) -> [(start: Int, weights: [Int])] {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = Swift.max(scale, 1)
        let support = filter.support * filterScale
        let one = Double(1 << precisionBits)
        return (0..<outSize).map { i in
            let center = (Double(i) + 0.5) * scale
            let lo = Swift.max(Int(center - support + 0.5), 0)     // Int() truncates, as C's (int)
            let hi = Swift.min(Int(center + support + 0.5), inSize)
            var w = (lo..<Swift.max(hi, lo)).map { filter.weight((Double($0) - center + 0.5) / filterScale) }
            let total = w.reduce(0, +)
            if total != 0 { w = w.map { $0 / total } }
            return (lo, w.map { $0 < 0 ? Int(-0.5 + $0 * one) : Int(0.5 + $0 * one) })
        }
    }

    /// One separable pass along x (axis 0) or y (axis 1), rounded to 8 bits.
    func resampled(axis: Int, to size: Int, filter: ResizeFilter) -> Image {
        let inSize = axis == 0 ? width : height
        let coeffs = Image.coefficients(inSize: inSize, outSize: size, filter: filter)
        let ow = axis == 0 ? size : width, oh = axis == 0 ? height : size
        var out = [UInt8](repeating: 0, count: ow * oh * channels)
        let step = axis == 0 ? channels : width * channels   // between neighbouring taps
        let half = 1 << (Image.precisionBits - 1)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        let (start, weights) = coeffs[axis == 0 ? ox : oy]
                        let base = axis == 0 ? (oy * width + start) * channels : (start * width + ox) * channels
                        for c in 0..<channels {
                            var acc = half
                            var p = base + c
                            for w in weights {
                                acc += Int(src[p]) * w
                                p += step
                            }
                            // Pillow's clip8: shift out the fraction, clamp to 0...255.
                            dst[(oy * ow + ox) * channels + c] = acc <= 0 ? 0 : UInt8(Swift.min(acc >> Image.precisionBits, 255))
                        }
                    }
                }
            }
        }
        return Image(width: ow, height: oh, channels: channels, pixels: out)
    }
}
