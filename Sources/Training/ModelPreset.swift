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

/// Named DiTTransformer2DModel architectures (Peebles & Xie 2023) sized for small images
/// (28x28 / 32x32) on a 2-core CPU. Both cut images into 4x4 patches, so a 28x28 image is 7x7 =
/// 49 tokens (the paper's DiT-S/4 sees 8x8 = 64 tokens of a 32x32 latent); 2x2 patches would
/// quadruple the tokens and the cost. The paper's DiT-S (width 384, 12 blocks) trains at about
/// a quarter of the `small` U-Net's images/s here, so `dit-s` is narrower and shallower, at
/// about the U-Net's speed, and `dit-b` is the paper's DiT-S/4 shape (the paper's DiT-B, width
/// 768, would cost about 4x more again: give it as a config.json). Measured in the README.
/// `sample_size`, `in_channels` and the class table come from the data (`configuration(...)`);
/// the image side must divide by the patch size. No learned sigma: out_channels = in_channels
/// (the trainer learns the prediction alone; see `TrainingConfiguration.dit`).
public enum DiTPreset: String, CaseIterable, Codable, Sendable {
    /// Width 256 (4 heads of 64), 8 blocks (~10.7M parameters with 10 classes).
    case ditS = "dit-s"
    /// Width 384 (6 heads of 64), 12 blocks: the paper's DiT-S/4 (~35M parameters with 10
    /// classes), ~3x the compute of dit-s.
    case ditB = "dit-b"

    /// The patch side of every preset.
    public static let patchSize = 4

    /// The preset's config for `channels`-channel images of side `size` with a class table of
    /// `classes` classes (+ the null class; 1 for an unconditional run).
    public func configuration(size: Int, channels: Int, classes: Int) -> DiTTransformer2DConfig {
        var c = DiTTransformer2DConfig()
        c.sampleSize = size
        c.inChannels = channels
        c.outChannels = channels
        c.patchSize = Self.patchSize
        c.numEmbedsAdaNorm = classes
        c.attentionHeadDim = 64
        switch self {
        case .ditS:
            c.numAttentionHeads = 4
            c.numLayers = 8
        case .ditB:
            c.numAttentionHeads = 6
            c.numLayers = 12
        }
        return c
    }
}
