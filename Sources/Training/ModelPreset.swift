import Models

/// Named UNet2DModel architectures sized for small images (28x28 / 32x32, grayscale or RGB).
/// `sample_size`, `in_channels` and `out_channels` come from the data (`configuration(...)`).
///
/// Every preset has three resolutions at most, so the image side must divide by 4
/// (28 -> 14 -> 7, 32 -> 16 -> 8): `TrainingConfiguration.validate` checks it.
public enum ModelPreset: String, CaseIterable, Codable, Sendable {
    /// For tests: [8, 16] channels, one ResNet per block, 4 norm groups, no attention
    /// (~40k parameters).
    case tiny
    /// [32, 64, 64] channels, one ResNet per block, attention only at the lowest resolution
    /// and in the mid block (~1.1M parameters, ~17 GFLOP per forward pass at batch 64 on
    /// 28x28): the preset for real runs on 2 CPU cores.
    case small
    /// [64, 128, 128] channels, two ResNets per block, attention at the two lower resolutions
    /// (~6.8M parameters): the quality model, several times slower per step.
    case base

    /// The preset's config for `channels`-channel images of side `size`, with class
    /// embeddings when `classEmbeddings` is given (an embedding table of that many rows).
    public func configuration(size: Int, channels: Int, classEmbeddings: Int? = nil) -> UNet2DConfig {
        var c = UNet2DConfig()
        c.sampleSize = size
        c.inChannels = channels
        c.outChannels = channels
        switch self {
        case .tiny:
            c.blockOutChannels = [8, 16]
            c.downBlockTypes = ["DownBlock2D", "DownBlock2D"]
            c.upBlockTypes = ["UpBlock2D", "UpBlock2D"]
            c.layersPerBlock = 1
            c.normNumGroups = 4
            c.addAttention = false
        case .small:
            c.blockOutChannels = [32, 64, 64]
            c.downBlockTypes = ["DownBlock2D", "DownBlock2D", "AttnDownBlock2D"]
            c.upBlockTypes = ["AttnUpBlock2D", "UpBlock2D", "UpBlock2D"]
            c.layersPerBlock = 1
            c.normNumGroups = 16
            c.attentionHeadDim = 32
        case .base:
            c.blockOutChannels = [64, 128, 128]
            c.downBlockTypes = ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"]
            c.upBlockTypes = ["AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"]
            c.layersPerBlock = 2
            c.normNumGroups = 32
            c.attentionHeadDim = 32
        }
        c.numClassEmbeds = classEmbeddings
        return c
    }
}
