import Foundation
import ImageIO
import Tensors

/// Samples as PNG files, the way every front end writes them: values clamped to the model's
/// [-1, 1] and mapped to bytes (`Image(tensor:)`), one PNG per sample; the bytes are those
/// `diffuse sample --out-dir` writes for the same samples.
public enum SampleImages {
    /// One PNG per sample of `samples` [B, C, H, W] (C in 1...4).
    public static func pngs(_ samples: Tensor) throws -> [[UInt8]] {
        guard samples.rank == 4, (1...4).contains(samples.shape[1]) else {
            throw PipelineError("samples of shape \(samples.shape) cannot be written as PNG images (1 to 4 channels)")
        }
        let clamped = samples.clamped(min: -1, max: 1)
        return try (0..<samples.shape[0]).map { i in try Image(tensor: clamped.sliced(axis: 0, i..<(i + 1))).encodedPNG() }
    }

    /// A small preview of a batch [B, C, H, W] (a denoising step's predicted x0): a grid of
    /// its first `limit` samples, as a `data:image/png;base64,` URL; nil for a shape PNG
    /// cannot hold.
    public static func previewDataURL(_ batch: Tensor, limit: Int = 16) -> String? {
        guard batch.rank == 4, (1...4).contains(batch.shape[1]), batch.shape[0] >= 1 else { return nil }
        let count = Swift.min(limit, batch.shape[0])
        let shown = count < batch.shape[0] ? batch.sliced(axis: 0, 0..<count).contiguous() : batch
        guard let png = try? Image.grid(shown.clamped(min: -1, max: 1)).encodedPNG() else { return nil }
        return "data:image/png;base64," + Data(png).base64EncodedString()
    }
}
