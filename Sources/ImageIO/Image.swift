/// An 8-bit image in memory: `height` rows of `width` pixels of `channels` interleaved
/// samples (HWC order, row-major, no padding).
///
/// Channels: 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA. Alpha is straight (not premultiplied).
/// Values are sRGB-encoded bytes as they are stored in PNG files.
public struct Image: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var channels: Int
    /// `height * width * channels` samples, interleaved HWC.
    public var pixels: [UInt8]

    /// The largest image (in pixels) `read` accepts: 2^28 (16384 x 16384), so a damaged or
    /// hostile header cannot make the reader allocate without bound.
    public static let maxPixels = 1 << 28

    /// An image from interleaved HWC samples; `pixels.count` must be
    /// `width * height * channels` and `channels` 1...4.
    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(width >= 0 && height >= 0, "ImageIO.Image: negative size \(width)x\(height)")
        precondition((1...4).contains(channels), "ImageIO.Image: \(channels) channels (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA)")
        precondition(pixels.count == width * height * channels,
                     "ImageIO.Image: \(pixels.count) samples do not fill \(width)x\(height)x\(channels)")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// An image filled with one value per channel (`fill.count == channels`).
    public init(width: Int, height: Int, fill: [UInt8]) {
        var p = [UInt8](repeating: 0, count: width * height * fill.count)
        for i in 0..<(width * height) {
            for c in 0..<fill.count { p[i * fill.count + c] = fill[c] }
        }
        self.init(width: width, height: height, channels: fill.count, pixels: p)
    }

    /// True for gray + alpha and RGBA images.
    public var hasAlpha: Bool { channels == 2 || channels == 4 }

    /// True for RGB and RGBA images.
    public var isColor: Bool { channels >= 3 }

    /// The sample at row `y`, column `x`, channel `c`.
    public subscript(x x: Int, y y: Int, c c: Int) -> UInt8 {
        get { pixels[(y * width + x) * channels + c] }
        set { pixels[(y * width + x) * channels + c] = newValue }
    }
}

/// An opaque sRGB colour, for backgrounds (alpha compositing) and padding.
public struct Color: Sendable, Hashable {
    public var red: UInt8
    public var green: UInt8
    public var blue: UInt8

    public init(red: UInt8, green: UInt8, blue: UInt8) {
        self.red = red
        self.green = green
        self.blue = blue
    }

    /// A gray level.
    public init(gray: UInt8) { self.init(red: gray, green: gray, blue: gray) }

    public static let white = Color(gray: 255)
    public static let black = Color(gray: 0)

    /// The luma PIL gives this colour (ITU-R 601-2, `L = R*299/1000 + G*587/1000 + B*114/1000`).
    public var luma: UInt8 { Image.luma(red, green, blue) }
}
