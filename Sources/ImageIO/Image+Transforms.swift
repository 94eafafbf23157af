/// Channel conversions, alpha compositing, crops and mirroring.
extension Image {
    /// PIL's luma of an sRGB triple: `(R*19595 + G*38470 + B*7471 + 2^15) >> 16`, the
    /// fixed-point form of ITU-R 601-2 `L = R*299/1000 + G*587/1000 + B*114/1000`.
    @inline(__always)
    public static func luma(_ r: UInt8, _ g: UInt8, _ b: UInt8) -> UInt8 {
        let sum: Int = Int(r) * 19595 + Int(g) * 38470 + Int(b) * 7471
        return UInt8((sum + 0x8000) >> 16)
    }

    /// The image with `channels` channels (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA), as PIL's
    /// `convert` makes it: gray is replicated into RGB, RGB becomes gray by `luma`, a missing
    /// alpha channel is opaque (255), and an alpha channel that is not wanted is dropped
    /// (use `composited(on:)` to flatten transparency onto a colour instead).
    public func converted(channels target: Int) -> Image {
        precondition((1...4).contains(target), "ImageIO.Image.converted: \(target) channels (1...4)")
        if target == channels { return self }
        let n = width * height
        var out = [UInt8](repeating: 0, count: n * target)
        let wantColor = target >= 3, wantAlpha = target == 2 || target == 4
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for i in 0..<n {
                    let s = i * channels, d = i * target
                    if wantColor {
                        if isColor {
                            dst[d] = src[s]; dst[d + 1] = src[s + 1]; dst[d + 2] = src[s + 2]
                        } else {
                            dst[d] = src[s]; dst[d + 1] = src[s]; dst[d + 2] = src[s]
                        }
                    } else {
                        dst[d] = isColor ? Image.luma(src[s], src[s + 1], src[s + 2]) : src[s]
                    }
                    if wantAlpha { dst[d + target - 1] = hasAlpha ? src[s + channels - 1] : 255 }
                }
            }
        }
        return Image(width: width, height: height, channels: target, pixels: out)
    }

    /// The image flattened onto an opaque `background`: each colour sample becomes
    /// `round((c * a + bg * (255 - a)) / 255)` with `a` the pixel's alpha. Gray + alpha stays
    /// gray (on the background's luma), RGBA becomes RGB. Images without alpha are returned
    /// unchanged.
    public func composited(on background: Color) -> Image {
        guard hasAlpha else { return self }
        let colors = channels - 1
        let bg: [Int] = colors == 1 ? [Int(background.luma)] : [Int(background.red), Int(background.green), Int(background.blue)]
        let n = width * height
        var out = [UInt8](repeating: 0, count: n * colors)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for i in 0..<n {
                    let a = Int(src[i * channels + colors])
                    for c in 0..<colors {
                        let v = Int(src[i * channels + c]) * a + bg[c] * (255 - a)
                        dst[i * colors + c] = UInt8((v + 127) / 255)
                    }
                }
            }
        }
        return Image(width: width, height: height, channels: colors, pixels: out)
    }

    /// The image mirrored left to right.
    public func flippedHorizontally() -> Image {
        var out = pixels
        let c = channels
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<height {
                    let row = y * width * c
                    for x in 0..<width {
                        let s = row + x * c, d = row + (width - 1 - x) * c
                        for k in 0..<c { dst[d + k] = src[s + k] }
                    }
                }
            }
        }
        return Image(width: width, height: height, channels: channels, pixels: out)
    }

    /// The image mirrored top to bottom.
    public func flippedVertically() -> Image {
        let row = width * channels
        var out = [UInt8](repeating: 0, count: pixels.count)
        for y in 0..<height {
            out[(height - 1 - y) * row..<(height - y) * row] = pixels[y * row..<(y + 1) * row]
        }
        return Image(width: width, height: height, channels: channels, pixels: out)
    }

    /// The `width` x `height` region at (`x`, `y`); parts outside the image are `fill`
    /// (zero: black, and transparent where there is alpha).
    public func cropped(x: Int, y: Int, width w: Int, height h: Int, fill: UInt8 = 0) -> Image {
        precondition(w >= 0 && h >= 0, "ImageIO.Image.cropped: negative size \(w)x\(h)")
        var out = [UInt8](repeating: fill, count: w * h * channels)
        let x0 = Swift.max(x, 0), x1 = Swift.min(x + w, width)
        guard x1 > x0 else { return Image(width: w, height: h, channels: channels, pixels: out) }
        for row in Swift.max(y, 0)..<Swift.max(Swift.min(y + h, height), Swift.max(y, 0)) {
            let src = (row * width + x0) * channels
            let dst = ((row - y) * w + (x0 - x)) * channels
            let n = (x1 - x0) * channels
            out[dst..<dst + n] = pixels[src..<src + n]
        }
        return Image(width: w, height: h, channels: channels, pixels: out)
    }

    /// The centre `width` x `height` region, placed as torchvision's `center_crop` places
    /// it: top = round((H - h) / 2), left = round((W - w) / 2), halves rounded to even.
    /// A crop larger than the image pads it with zeros.
    public func centerCropped(width w: Int, height h: Int) -> Image {
        let top = (Double(height - h) / 2).rounded(.toNearestOrEven)
        let left = (Double(width - w) / 2).rounded(.toNearestOrEven)
        return cropped(x: Int(left), y: Int(top), width: w, height: h)
    }

    /// The image scaled so that it covers `width` x `height` (its aspect ratio kept), then
    /// centre-cropped to exactly that size. For a square target this is torchvision's
    /// `Resize(size)` (shorter side to `size`, longer side `int(size * long / short)`)
    /// followed by `CenterCrop(size)`.
    public func resizedToFill(width w: Int, height h: Int, filter: ResizeFilter = .bicubic) -> Image {
        precondition(w > 0 && h > 0, "ImageIO.Image.resizedToFill: size \(w)x\(h)")
        if width == w && height == h { return self }
        var newW: Int, newH: Int
        if width * h >= height * w {   // wider than the target: match heights
            newH = h
            newW = Swift.max(w, Int(Double(h) * Double(width) / Double(height)))
        } else {
            newW = w
            newH = Swift.max(h, Int(Double(w) * Double(height) / Double(width)))
        }
        return resized(width: newW, height: newH, filter: filter).centerCropped(width: w, height: h)
    }

    // MARK: Premultiplied alpha (as PIL converts RGBA <-> RGBa to resample)

    /// Colour samples multiplied by alpha: `(c * a + 128 + ((c * a + 128) >> 8)) >> 8`.
    func premultiplied() -> Image {
        guard hasAlpha else { return self }
        var out = self
        let colors = channels - 1
        for i in 0..<(width * height) {
            let a = Int(pixels[i * channels + colors])
            for c in 0..<colors {
                let t = Int(pixels[i * channels + c]) * a + 128
                out.pixels[i * channels + c] = UInt8(((t >> 8) + t) >> 8)
            }
        }
        return out
    }

    /// Colour samples divided by alpha again: `min(255, c * 255 / a)` where 0 < a < 255.
    func unpremultiplied() -> Image {
        guard hasAlpha else { return self }
        var out = self
        let colors = channels - 1
        for i in 0..<(width * height) {
            let a = Int(pixels[i * channels + colors])
            guard a != 0 && a != 255 else { continue }
            for c in 0..<colors {
                out.pixels[i * channels + c] = UInt8(Swift.min(255, Int(pixels[i * channels + c]) * 255 / a))
            }
        }
        return out
    }
}
