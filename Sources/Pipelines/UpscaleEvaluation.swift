import Datasets
import Diffusion
import Foundation
import ImageIO
import Models
import Tensors
import Training

/// How an SR3 model upscales held-out images, against bicubic: each image is average-pooled
/// by the scale and quantised to 8 bits (a low-resolution PNG, as a user would bring), then
/// upscaled by the model (from the nearest-upsampled image, as it trained) and by Pillow's
/// bicubic filter; PSNR and SSIM against the original at full resolution, and how far the
/// model's output, pooled back down, is from its input (consistency).
public struct UpscaleEvaluation: Sendable {
    public struct Scores: Codable, Sendable, Equatable {
        /// Mean PSNR (dB) and SSIM over the images.
        public var psnr: Double, ssim: Double
    }

    public struct Report: Codable, Sendable, Equatable {
        public var images: Int
        public var scale: Int
        public var model: Scores
        public var bicubic: Scores
        /// Mean |pool(output) - input| over the low-resolution pixels, in [0, 1] units.
        public var consistency: Double
    }

    /// Evaluates `pipeline`'s model on `originals` [N, C, H, W] in [-1, 1]; `request` gives
    /// sampler, steps and seed (its batch size and conditioning are set per batch).
    public static func evaluate<Model: ValidatingDenoiser>(_ pipeline: GenerationPipeline<Model>, originals: Tensor, scale: Int,
                                                         request template: GenerationRequest, batchSize: Int,
                                                         onBatch: (Int) -> Void = { _ in }) throws -> Report {
        guard originals.rank == 4, originals.shape[2] % scale == 0, originals.shape[3] % scale == 0 else {
            throw PipelineError("images of shape \(originals.shape) cannot be downsampled by \(scale)")
        }
        let (n, c, h, w) = (originals.shape[0], originals.shape[1], originals.shape[2], originals.shape[3])
        // The low-resolution inputs, as 8-bit images.
        let pooled = originals.avgPooled(kernel: scale)
        var lows = [Image]()
        for i in 0..<n { lows.append(Image(tensor: pooled.sliced(axis: 0, start: i, end: i + 1))) }
        let low = Tensor.stack(lows.map { $0.tensor() }, axis: 0)
        let bicubic = Tensor.stack(lows.map { $0.resized(width: w, height: h, filter: .bicubic).tensor() }, axis: 0)
        var outputs = [Tensor]()
        for (k, start) in stride(from: 0, to: n, by: batchSize).enumerated() {
            let b = Swift.min(batchSize, n - start)
            var r = template
            r.batchSize = b
            r.sampleShape = [c, h, w]
            r.seed = template.seed &+ UInt64(k)
            r.conditioning = Conditioning(image: low.sliced(axis: 0, start: start, end: start + b).upsampledNearest(scale: scale))
            outputs.append(try pipeline.generate(r).clamped(min: -1, max: 1))
            onBatch(start + b)
        }
        // Scored as the 8-bit images they would be saved as.
        let generated = Tensor.concatenate(outputs, axis: 0)
        let output = Tensor.stack((0..<n).map { i in Image(tensor: generated.sliced(axis: 0, start: i, end: i + 1)).tensor() }, axis: 0)
        let truth = (0..<n).map { denormalize(originals.sliced(axis: 0, start: $0, end: $0 + 1)).scalars }
        func scores(_ x: Tensor) -> Scores {
            var (p, s) = (0.0, 0.0)
            for i in 0..<n {
                let a = denormalize(x.sliced(axis: 0, start: i, end: i + 1)).scalars, b = truth[i]
                p += Swift.min(ImageQuality.psnr(a, b), 100)
                s += ImageQuality.ssim(a, b, channels: c, height: h, width: w)
            }
            return Scores(psnr: p / Double(n), ssim: s / Double(n))
        }
        let back = denormalize(output.avgPooled(kernel: scale)).scalars, input = denormalize(low).scalars
        let consistency = zip(back, input).map { Double(Swift.abs($0 - $1)) }.reduce(0, +) / Double(input.count)
        return Report(images: n, scale: scale, model: scores(output), bicubic: scores(bicubic), consistency: consistency)
    }
}
