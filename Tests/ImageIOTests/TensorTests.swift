import Testing
import Tensors
@testable import ImageIO

@Suite struct TensorTests {
    /// Bytes map to lo + p/255 (hi - lo) and back exactly, for each channel count; planes are CHW.
    @Test(arguments: [1, 2, 3, 4])
    func tensorRoundTrip(channels: Int) {
        var data = TestBytes(seed: 5)
        let image = data.image(width: 6, height: 4, channels: channels)
        let t = image.tensor()
        #expect(t.shape == [channels, 4, 6])
        #expect(t.dtype == .float32)
        // Element (c, y, x) is the HWC sample mapped into [-1, 1].
        for c in 0..<channels {
            #expect(t[element: [c, 3, 5]] == -1 + Float(image[x: 5, y: 3, c: c]) / 255 * 2)
            #expect(t[element: [c, 1, 2]] == -1 + Float(image[x: 2, y: 1, c: c]) / 255 * 2)
        }
        #expect(Image(tensor: t) == image)
        #expect(Image(tensor: t.reshaped([1, channels, 4, 6])) == image)   // a batch of one
        #expect(Image(tensor: image.tensor(range: 0...1), range: 0...1) == image)
    }

    /// Values are clamped, rounded half up, NaN becomes 0.
    @Test func quantisation() {
        let t = Tensor([-3, -1, -0.999, 0, 1, 7, .nan, 1.0 / 255 - 1 + 0.00001], shape: [1, 1, 8])
        // -1 + 2/255 * k: 0 -> 0; 0 -> 127.5 -> 128; 1.0/255 - 1 -> 0.5 -> 1 (just above half).
        #expect(Image(tensor: t).pixels == [0, 0, 0, 128, 255, 255, 0, 1])
        let u = Tensor([0, 0.5 / 255, 1.49 / 255, 1], shape: [1, 2, 2])
        #expect(Image(tensor: u, range: 0...1).pixels == [0, 1, 1, 255])
    }

    /// A grid places image k at row k / columns, column k % columns, with `padding` pixels
    /// around each, as torchvision's make_grid.
    @Test func gridLayout() {
        // Five 1-channel 2x3 images, image k filled with value k/10 in [0, 1].
        let n = 5, h = 2, w = 3
        var values = [Float]()
        for k in 0..<n { values += [Float](repeating: Float(k) / 10, count: h * w) }
        let batch = Tensor(values, shape: [n, 1, h, w])
        let g = Image.grid(batch, columns: 2, padding: 1, range: 0...1, padValue: 200)
        // 3 rows x 2 columns of (3+1)x(2+1) cells plus one padding line.
        #expect(g.width == 2 * (w + 1) + 1 && g.height == 3 * (h + 1) + 1 && g.channels == 1)
        for k in 0..<n {
            let x0 = (k % 2) * (w + 1) + 1, y0 = (k / 2) * (h + 1) + 1
            let want = UInt8((Float(k) / 10 * 255).rounded())
            for y in 0..<h { for x in 0..<w { #expect(g[x: x0 + x, y: y0 + y, c: 0] == want) } }
            #expect(g[x: x0 - 1, y: y0, c: 0] == 200 && g[x: x0, y: y0 - 1, c: 0] == 200)
        }
        // The empty sixth cell is padding.
        #expect(g[x: (w + 1) + 2, y: 2 * (h + 1) + 1, c: 0] == 200)

        // Default: ceil(sqrt(N)) columns, padding 2, black; RGB kept.
        let rgb = Image.grid(Tensor.zeros([7, 3, 4, 4]))
        #expect(rgb.width == 3 * 6 + 2 && rgb.height == 3 * 6 + 2 && rgb.channels == 3)
        #expect(rgb[x: 0, y: 0, c: 0] == 0 && rgb[x: 2, y: 2, c: 1] == 128)
        // More columns than images: one row.
        let one = Image.grid(Tensor.zeros([2, 1, 4, 4]), columns: 8, padding: 0)
        #expect(one.width == 8 && one.height == 4)
    }
}
