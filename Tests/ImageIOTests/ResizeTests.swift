import Foundation
import Testing
@testable import ImageIO

struct ResizeCase: Decodable {
    let source: String
    let filter: String
    let width: Int
    let height: Int
}

@Suite struct ResizeTests {
    /// Every filter keeps a constant image constant, shrinking and enlarging.
    @Test(arguments: ResizeFilter.allCases)
    func constantStaysConstant(filter: ResizeFilter) {
        let image = Image(width: 13, height: 9, fill: [17, 200, 99])
        for (w, h) in [(5, 4), (26, 18), (3, 20), (13, 1)] {
            let r = image.resized(width: w, height: h, filter: filter)
            #expect(r.width == w && r.height == h && r.channels == 3)
            #expect(r == Image(width: w, height: h, fill: [17, 200, 99]), "\(filter) \(w)x\(h)")
        }
    }

    /// Area downscaling by 2 (and by 3) is the mean of each block, rounded half up; PIL's
    /// box filter agrees with it within the one step of rounding its two passes add.
    @Test func areaIsTheBlockMean() {
        var data = TestBytes(seed: 11)
        let image = data.image(width: 12, height: 6, channels: 3)
        for f in [2, 3] {
            let r = image.downscaled(by: f)
            #expect(r.width == 12 / f && r.height == 6 / f)
            for y in 0..<r.height {
                for x in 0..<r.width {
                    for c in 0..<3 {
                        var sum = 0
                        for dy in 0..<f { for dx in 0..<f { sum += Int(image[x: x * f + dx, y: y * f + dy, c: c]) } }
                        #expect(Int(r[x: x, y: y, c: c]) == (sum * 2 + f * f) / (2 * f * f))
                    }
                }
            }
            #expect(maxDifference(r, image.resized(width: 12 / f, height: 6 / f, filter: .box)) <= 1)
        }
    }

    /// Enlarging by a whole factor with bilinear interpolation reproduces the linear ramp
    /// between pixel centres; nearest repeats pixels.
    @Test func enlargingClosedForms() {
        // A horizontal ramp 0, 40, 80, ..., 280 clipped: use 0, 40, 80, 120.
        let ramp = Image(width: 4, height: 1, channels: 1, pixels: [0, 40, 80, 120])
        let r = ramp.resized(width: 8, height: 1, filter: .bilinear)
        // Output centres at (i + 0.5) / 2 - 0.5 in source pixels: -0.25, 0.25, 0.75, ...
        #expect(r.pixels == [0, 10, 30, 50, 70, 90, 110, 120])
        let n = ramp.resized(width: 8, height: 2, filter: .nearest)
        #expect(n.pixels == [0, 0, 40, 40, 80, 80, 120, 120, 0, 0, 40, 40, 80, 80, 120, 120])
    }

    /// Resizing matches Pillow's Image.resize byte for byte (gray, RGB, and RGBA, which Pillow
    /// resamples premultiplied), for each filter, shrinking and enlarging.
    @Test func matchesPillow() throws {
        let json = try Data(contentsOf: URL(fileURLWithPath: try fixturePath("resize_expected.json")))
        let cases = try JSONDecoder().decode([String: ResizeCase].self, from: json)
        #expect(cases.count == 60)
        var sources = [String: Image]()
        var worst = [String: Int]()
        for (name, c) in cases.sorted(by: { $0.key < $1.key }) {
            let source = try sources[c.source] ?? Image.read(contentsOf: try fixturePath(c.source))
            sources[c.source] = source
            let filter = try #require(ResizeFilter(rawValue: c.filter))
            let got = source.resized(width: c.width, height: c.height, filter: filter)
            let want = try Image.read(contentsOf: try fixturePath(name))
            #expect(got.channels == want.channels && got.width == want.width && got.height == want.height, "\(name)")
            let d = maxDifference(got, want)
            worst[c.filter + (source.hasAlpha ? " rgba" : "")] = max(worst[c.filter + (source.hasAlpha ? " rgba" : "")] ?? 0, d)
            #expect(d == 0, "\(name): up to \(d) off")
        }
    }

    /// RGB -> gray matches Pillow's convert("L"); gray -> RGB replicates; alpha is added
    /// opaque and dropped on request.
    @Test func channelConversions() throws {
        let rgb = try Image.read(contentsOf: try fixturePath("resize_src_rgb.png"))
        let gray = try Image.read(contentsOf: try fixturePath("resize_rgb_to_gray.png"))
        #expect(rgb.converted(channels: 1) == gray)
        let back = gray.converted(channels: 3)
        #expect(back.channels == 3 && back[x: 4, y: 2, c: 0] == gray[x: 4, y: 2, c: 0] && back[x: 4, y: 2, c: 2] == gray[x: 4, y: 2, c: 0])
        let rgba = rgb.converted(channels: 4)
        #expect(rgba.pixels.enumerated().allSatisfy { $0.offset % 4 != 3 || $0.element == 255 })
        #expect(rgba.converted(channels: 3) == rgb)
        #expect(gray.converted(channels: 2).converted(channels: 1) == gray)
        #expect(Color(red: 255, green: 0, blue: 0).luma == 76 && Color.white.luma == 255)
    }

    /// Compositing: out = round((c a + bg (255 - a)) / 255); alpha 255 keeps the colour,
    /// alpha 0 gives the background.
    @Test func alphaCompositing() {
        let image = Image(width: 3, height: 1, channels: 4, pixels: [10, 20, 30, 255, 10, 20, 30, 0, 200, 100, 0, 128])
        let bg = Color(red: 50, green: 150, blue: 250)
        let out = image.composited(on: bg)
        #expect(out.channels == 3)
        let mix = { (c: Int, b: Int) in UInt8((Double(c * 128 + b * 127) / 255).rounded()) }
        #expect(out.pixels == [10, 20, 30, 50, 150, 250, mix(200, 50), mix(100, 150), mix(0, 250)])
        let ga = Image(width: 2, height: 1, channels: 2, pixels: [100, 0, 100, 255])
        #expect(ga.composited(on: .white).pixels == [255, 100])
        let opaque = Image(width: 1, height: 1, channels: 3, pixels: [1, 2, 3])
        #expect(opaque.composited(on: .black) == opaque)
    }

    /// Flips mirror exactly; two flips are the identity.
    @Test func flips() {
        var data = TestBytes(seed: 4)
        let image = data.image(width: 5, height: 3, channels: 2)
        let f = image.flippedHorizontally()
        for y in 0..<3 { for x in 0..<5 { for c in 0..<2 { #expect(f[x: x, y: y, c: c] == image[x: 4 - x, y: y, c: c]) } } }
        #expect(f.flippedHorizontally() == image)
        let v = image.flippedVertically()
        #expect(v[x: 1, y: 0, c: 1] == image[x: 1, y: 2, c: 1] && v.flippedVertically() == image)
    }

    /// Centre crops as torchvision places them (halves rounded to even), padding when larger;
    /// fill-resizing covers the target then crops.
    @Test func crops() {
        let image = Image(width: 5, height: 4, channels: 1, pixels: (0..<20).map { UInt8($0) })
        // (5 - 2) / 2 = 1.5 rounds to 2; (4 - 2) / 2 = 1.
        #expect(image.centerCropped(width: 2, height: 2).pixels == [7, 8, 12, 13])
        // (5 - 3) / 2 = 1, (4 - 1) / 2 = 1.5 -> 2.
        #expect(image.centerCropped(width: 3, height: 1).pixels == [11, 12, 13])
        let padded = image.centerCropped(width: 7, height: 4)
        #expect(padded.pixels[0..<7] == [0, 0, 1, 2, 3, 4, 0])
        #expect(image.cropped(x: 3, y: 3, width: 3, height: 2).pixels == [18, 19, 0, 0, 0, 0])

        let wide = Image(width: 40, height: 20, fill: [9, 8, 7])
        let filled = wide.resizedToFill(width: 10, height: 10)
        #expect(filled == Image(width: 10, height: 10, fill: [9, 8, 7]))
        // A 40x20 image whose left and right quarters differ from its middle: the square
        // crop keeps only the middle half.
        var striped = wide
        for y in 0..<20 { for x in 0..<40 where x < 10 || x >= 30 { striped[x: x, y: y, c: 0] = 255 } }
        let s = striped.resizedToFill(width: 10, height: 10, filter: .area)
        #expect(s == Image(width: 10, height: 10, fill: [9, 8, 7]))
    }
}
