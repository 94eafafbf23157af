import Foundation
import ImageIO
import ModelIO
import Pipelines
import Testing
import Tensors

/// `diffuse inpaint` and `diffuse sample --init-image` through the binary, on PNG files.
@Suite struct ImageCommandsTests {
    let cli = CommandLineTests()
    let rgb = fixturesFolder() + "/unet-rgb"

    /// Writes a 16x16 RGB test image (every byte value appears) and a mask (white square in
    /// the middle) into `dir`.
    func inputs(_ dir: String, maskSize: Int = 16) throws -> (image: Image, imagePath: String, maskPath: String) {
        let image = Image(width: 16, height: 16, channels: 3, pixels: (0..<768).map { UInt8(($0 * 7) % 256) })
        let mask = Image(width: maskSize, height: maskSize, channels: 1,
                         pixels: (0..<(maskSize * maskSize)).map { p in (4..<12).contains(p % maskSize) && (4..<12).contains(p / maskSize) ? 255 : 0 })
        try image.write(to: dir + "/in.png")
        try mask.write(to: dir + "/mask.png")
        return (image, dir + "/in.png", dir + "/mask.png")
    }

    /// The output PNG keeps every pixel outside the mask, byte for byte, and changes the inside.
    @Test func inpaintKeepsTheUnmaskedPixels() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (image, imagePath, maskPath) = try inputs(dir)
        let run = try cli.diffuse(["inpaint", "--model", rgb, "--image", imagePath, "--mask", maskPath, "--steps", "10",
                                   "--jump-length", "3", "--resample", "2", "--out-dir", dir + "/out"])
        #expect(run.status == 0, "\(run.error)")
        let out = try Image(contentsOf: dir + "/out/sample-0000.png")
        var changedInside = 0
        for y in 0..<16 {
            for x in 0..<16 {
                let inside = (4..<12).contains(x) && (4..<12).contains(y)
                for c in 0..<3 {
                    if inside { changedInside += out[x: x, y: y, c: c] != image[x: x, y: y, c: c] ? 1 : 0 }
                    else { #expect(out[x: x, y: y, c: c] == image[x: x, y: y, c: c], "pixel \(x),\(y)") }
                }
            }
        }
        #expect(changedInside > 100)
    }

    /// Strength 1 from an image equals sampling from noise with the same seed (within 1e-4:
    /// each process autotunes its convolutions, which may round differently).
    @Test func strengthOneEqualsSampling() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (_, imagePath, _) = try inputs(dir)
        let common = ["sample", "--model", rgb, "--sampler", "ddpm", "--steps", "5", "--batch", "2", "--seed", "3"]
        let a = try cli.diffuse(common + ["--init-image", imagePath, "--strength", "1", "--out-npy", dir + "/a.npy"])
        let b = try cli.diffuse(common + ["--out-npy", dir + "/b.npy"])
        #expect(a.status == 0 && b.status == 0, "\(a.error) \(b.error)")
        expectClose(try NPY.load(dir + "/a.npy"), try NPY.load(dir + "/b.npy"), rtol: 1e-4, "strength 1 vs sampling")
        let c = try cli.diffuse(common + ["--init-image", imagePath, "--strength", "0.6", "--out-npy", dir + "/c.npy"])
        #expect(c.status == 0, "\(c.error)")
        #expect(c.output.contains("step 3/3"), "\(c.output)")
    }

    /// An SR3 model trained for a few steps by `diffuse train --task super-resolution` upscales
    /// a 14x14 PNG to the model's 28x28 and is scored against bicubic on test images; a wrong
    /// size is refused with both sizes.
    @Test func upscaleRunsAnSR3Model() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let train = try cli.diffuse(["train", "--data", "fashion-mnist", "--limit", "64", "--model", "tiny", "--task", "super-resolution", "--sr-factor", "2",
                                     "--steps", "3", "--batch-size", "8", "--sample-every", "0", "--out", dir + "/run"])
        #expect(train.status == 0, "\(train.error)")
        let small = Image(width: 14, height: 14, channels: 1, pixels: (0..<196).map { UInt8($0) })
        try small.write(to: dir + "/small.png")
        let run = try cli.diffuse(["upscale", "--model", dir + "/run/checkpoint", "--image", dir + "/small.png", "--scale", "2",
                                   "--steps", "4", "--batch", "2", "--out-npy", dir + "/up.npy"])
        #expect(run.status == 0, "\(run.error)")
        #expect(try NPY.load(dir + "/up.npy").shape == [2, 1, 28, 28])
        let scored = try cli.diffuse(["eval-upscale", "--model", dir + "/run/checkpoint", "--data", "fashion-mnist", "--images", "6",
                                      "--scale", "2", "--steps", "3", "--batch-size", "4", "--json"])
        #expect(scored.status == 0, "\(scored.error)")
        let report = try JSONDecoder().decode(UpscaleEvaluation.Report.self, from: Data(scored.output.utf8))
        #expect(report.images == 6 && report.scale == 2)
        #expect(report.bicubic.psnr > 10 && report.bicubic.ssim > 0 && report.model.psnr.isFinite && report.consistency >= 0)
        let wrong = try cli.diffuse(["upscale", "--model", dir + "/run/checkpoint", "--image", dir + "/small.png", "--scale", "4",
                                     "--out", dir + "/x.png"])
        #expect(wrong.status != 0 && wrong.error.contains("x4 makes 56x56, but the model generates 28x28"), "\(wrong.error)")
    }

    /// Bad input: the reason on stderr, a non-zero exit, no output.
    @Test func refusesBadInput() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (_, imagePath, maskPath) = try inputs(dir)
        try FileManager.default.createDirectory(atPath: dir + "/small", withIntermediateDirectories: true)
        let small = try inputs(dir + "/small", maskSize: 8)
        let out = ["--out", dir + "/out.png"]
        let cases: [([String], String)] = [
            (["inpaint", "--model", rgb, "--image", imagePath, "--mask", small.maskPath], "the mask is 8x8, but the image"),
            (["inpaint", "--model", rgb, "--image", dir + "/none.png", "--mask", small.maskPath], "none.png: cannot read the initial image"),
            (["inpaint", "--model", rgb, "--image", imagePath, "--mask", maskPath, "--sampler", "euler"], "DDIM (with eta) or DDPM"),
            (["sample", "--model", rgb, "--init-image", imagePath, "--strength", "0"], "strength must be in (0, 1]"),
            (["sample", "--model", rgb, "--init-image", imagePath, "--strength", "1.2"], "strength must be in (0, 1]"),
            (["sample", "--model", fixturesFolder() + "/unet-class", "--class", "1", "--init-image", imagePath], "the image is 16x16, but the model generates 8x8"),
        ]
        for (arguments, reason) in cases {
            let run = try cli.diffuse(arguments + out)
            #expect(run.status != 0, "\(arguments) should fail")
            #expect(run.error.contains(reason), "\(arguments): \(run.error)")
            #expect(!FileManager.default.fileExists(atPath: dir + "/out.png"))
        }
    }
}
