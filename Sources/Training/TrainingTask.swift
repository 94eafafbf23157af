import Diffusion
import Tensors

/// What a run teaches the model beyond denoising: plain generation, or generation
/// conditioned on image channels appended to the noisy sample (`Conditioning.image`, built
/// by `ConditioningImages` as inference builds them).
///
/// - `superResolution`: SR3 (Saharia et al. 2021): the clean image average-pooled by the
///   factor and upsampled back (nearest), C channels; the model learns p(x | low-res x).
/// - `inpainting`: a random mask m (1 = generate) and the masked image x (1 - m), C + 1
///   channels, as Stable Diffusion's inpainting U-Net takes them; masks are rectangles of
///   random size and place, and one in four covers the whole image (unconditional generation
///   stays in the model).
public enum TrainingTask: String, Codable, CaseIterable, Sendable {
    case generation
    case superResolution = "super-resolution"
    case inpainting

    /// Input channels beyond the sample's that the model takes for `channels`-channel images.
    public func conditioningChannels(imageChannels channels: Int) -> Int {
        switch self {
        case .generation: return 0
        case .superResolution: return channels
        case .inpainting: return channels + 1
        }
    }

    /// The conditioning image for a batch of clean images x0 [B, C, H, W]; nil for plain
    /// generation. Inpainting masks draw from `generator` (4 uniforms per image).
    public func conditioningImage(for x0: Tensor, factor: Int, generator: RandomGenerator) -> Tensor? {
        conditioningImage(for: x0, factor: factor, maskUniforms: self == .inpainting ? generator.uniform([x0.shape[0], 4], low: 0, high: 1).scalars : [])
    }

    /// The conditioning image, inpainting masks made from `maskUniforms` (4 per image, as
    /// `randomMasks(uniforms:)` takes them).
    public func conditioningImage(for x0: Tensor, factor: Int, maskUniforms: [Float]) -> Tensor? {
        switch self {
        case .generation: return nil
        case .superResolution: return ConditioningImages.lowResolution(of: x0, factor: factor)
        case .inpainting:
            let mask = Self.randomMasks(uniforms: maskUniforms, height: x0.shape[2], width: x0.shape[3])
            return ConditioningImages.maskChannels(image: x0, mask: mask)
        }
    }

    /// Random masks [B, 1, H, W]: per image four uniforms u; u0 < 0.25 masks everything,
    /// otherwise a rectangle with sides in [H/4, 3H/4] placed at random.
    public static func randomMasks(batch: Int, height: Int, width: Int, generator: RandomGenerator) -> Tensor {
        randomMasks(uniforms: generator.uniform([batch, 4], low: 0, high: 1).scalars, height: height, width: width)
    }

    /// Masks [B, 1, H, W] from four uniforms in [0, 1) per image (B = uniforms.count / 4).
    public static func randomMasks(uniforms u: [Float], height: Int, width: Int) -> Tensor {
        let batch = u.count / 4
        var values = [Float](repeating: 0, count: batch * height * width)
        for b in 0..<batch {
            let (u0, u1, u2, u3) = (u[4 * b], u[4 * b + 1], u[4 * b + 2], u[4 * b + 3])
            let full = u0 < 0.25
            let h = full ? height : Swift.max(1, Int((0.25 + 0.5 * u1) * Float(height)))
            let w = full ? width : Swift.max(1, Int((0.25 + 0.5 * (u0 - 0.25) / 0.75) * Float(width)))
            let top = full ? 0 : Swift.min(height - h, Int(u2 * Float(height - h + 1)))
            let left = full ? 0 : Swift.min(width - w, Int(u3 * Float(width - w + 1)))
            for y in top..<(top + h) {
                for x in left..<(left + w) { values[(b * height + y) * width + x] = 1 }
            }
        }
        return Tensor(values, shape: [batch, 1, height, width])
    }
}
