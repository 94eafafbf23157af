import ImageIO
import Tensors

/// Which part of a data set to load.
public enum DatasetSplit: String, Sendable, CaseIterable {
    /// The training images (MNIST: its 50,000 training and 10,000 validation images).
    case train
    /// The held-out test images.
    case test
}

/// 8-bit images of one size as the readers decode them, before they become a tensor.
struct ByteImages {
    let count: Int
    let width: Int
    let height: Int
    /// 1 (gray) or 3 (RGB); alpha is composited away before this point.
    let channels: Int
    /// `count` images of `height * width * channels` interleaved (HWC) bytes each.
    let pixels: [UInt8]

    init(count: Int, width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition((channels == 1 || channels == 3) && pixels.count == count * width * height * channels)
        self.count = count
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// Image `i`.
    func image(_ i: Int) -> Image {
        let n = width * height * channels
        return Image(width: width, height: height, channels: channels, pixels: Array(pixels[i * n..<(i + 1) * n]))
    }

    /// The images as `[N, C, H, W]` float32 in [-1, 1] (byte p -> p / 255 * 2 - 1), resized
    /// to `size` x `size` and converted to `channels` where asked.
    ///
    /// Resizing: square images are resized with Pillow's BILINEAR filter (antialiased when
    /// shrinking), so 28x28 digits become 32x32 by interpolation rather than by padding; images
    /// of another aspect ratio are scaled to cover the square and centre-cropped
    /// (`Image.resizedToFill`). Channels: gray becomes RGB by replication, RGB becomes gray by
    /// Pillow's luma (ITU-R 601-2).
    func tensor(size: Int?, channels wanted: Int?, name: String) throws -> Tensor {
        if let size, size < 1 { throw DatasetError("\(name): the image size must be at least 1, got \(size)") }
        if let wanted, wanted != 1 && wanted != 3 {
            throw DatasetError("\(name): channels must be 1 (gray) or 3 (RGB), got \(wanted)")
        }
        let c = wanted ?? channels
        let outW = size ?? width, outH = size ?? height
        let lut = (0..<256).map { Float($0) / 255 * 2 - 1 }
        let plane = outW * outH
        var values = [Float](repeating: 0, count: count * c * plane)
        values.withUnsafeMutableBufferPointer { dst in
            for i in 0..<count {
                var im = image(i)
                if im.channels != c { im = im.converted(channels: c) }
                if im.width != outW || im.height != outH {
                    im = im.width == im.height && outW == outH
                        ? im.resized(width: outW, height: outH, filter: .bilinear)
                        : im.resizedToFill(width: outW, height: outH, filter: .bilinear)
                }
                let base = i * c * plane
                im.pixels.withUnsafeBufferPointer { src in
                    for p in 0..<plane {
                        for ch in 0..<c { dst[base + ch * plane + p] = lut[Int(src[p * c + ch])] }
                    }
                }
            }
        }
        return Tensor(values, shape: [count, c, outH, outW])
    }
}
