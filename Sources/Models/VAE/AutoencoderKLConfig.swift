import Foundation

/// A diffusers `AutoencoderKL` `config.json` (Stable Diffusion's `vae/` folder): every field
/// diffusers 0.42 writes, with its name and default.
public struct AutoencoderKLConfig: Codable, Equatable, Sendable {
    /// Channels of the images (3 for RGB).
    public var inChannels = 3
    public var outChannels = 3
    /// Encoder blocks per resolution, finest first (DownEncoderBlock2D only).
    public var downBlockTypes: [VAEDownBlockType] = [.downEncoderBlock2D]
    /// Decoder blocks per resolution, coarsest first (UpDecoderBlock2D only).
    public var upBlockTypes: [VAEUpBlockType] = [.upDecoderBlock2D]
    /// Channels per resolution, finest first (Stable Diffusion: 128, 256, 512, 512).
    public var blockOutChannels = [64]
    /// Resnets per encoder block; decoder blocks have one more.
    public var layersPerBlock = 1
    /// Activation of the resnets and before conv_out: silu (swish).
    public var actFn: VAEActivation = .silu
    /// Channels of the latents (Stable Diffusion: 4); the encoder outputs twice as many
    /// (mean and log-variance).
    public var latentChannels = 4
    /// Group-norm groups everywhere (each width must be a multiple).
    public var normNumGroups = 32
    /// Height = width of the images the VAE was trained on; also the tile size of tiled
    /// encoding and decoding (an [h, w] pair is read too; the first is used).
    public var sampleSize: OneOrMany<Int> = .one(32)
    /// Latents given to the diffusion model are (z - shift_factor) x scaling_factor
    /// (Rombach et al. 2022, sections 4.3.2 and D.1: unit variance for the denoiser).
    public var scalingFactor: Double = 0.18215
    /// Subtracted before scaling (SD3, Flux); null: none.
    public var shiftFactor: Double? = nil
    /// Per-channel latent statistics some pipelines (SDXL refiners, others) normalise with;
    /// read and written back, not used by the Stable Diffusion pipelines.
    public var latentsMean: [Double]? = nil
    public var latentsStd: [Double]? = nil
    /// Pipelines run this VAE in float32 even when the rest runs in half precision.
    public var forceUpcast = true
    /// A 1x1 convolution after the encoder (`quant_conv`) and before the decoder
    /// (`post_quant_conv`), as in the LDM checkpoints.
    public var useQuantConv = true
    public var usePostQuantConv = true
    /// A single-head self-attention between the mid blocks' two resnets.
    public var midBlockAddAttention = true

    /// diffusers' defaults.
    public init() {}

    /// Stable Diffusion 1.x's VAE (`vae/config.json` of its pipelines; 2.x's 768-pixel models
    /// differ only in sample_size 768).
    public static var stableDiffusion: AutoencoderKLConfig {
        var c = AutoencoderKLConfig()
        c.downBlockTypes = Array(repeating: .downEncoderBlock2D, count: 4)
        c.upBlockTypes = Array(repeating: .upDecoderBlock2D, count: 4)
        c.blockOutChannels = [128, 256, 512, 512]
        c.layersPerBlock = 2
        c.sampleSize = .one(512)
        return c
    }

    static var fields: [ConfigField<AutoencoderKLConfig>] { [
        .init("in_channels", \.inChannels), .init("out_channels", \.outChannels),
        .init("down_block_types", \.downBlockTypes), .init("up_block_types", \.upBlockTypes),
        .init("block_out_channels", \.blockOutChannels), .init("layers_per_block", \.layersPerBlock),
        .init("act_fn", \.actFn), .init("latent_channels", \.latentChannels), .init("norm_num_groups", \.normNumGroups),
        .init("sample_size", \.sampleSize), .init("scaling_factor", \.scalingFactor), .init("shift_factor", \.shiftFactor),
        .init("latents_mean", \.latentsMean), .init("latents_std", \.latentsStd), .init("force_upcast", \.forceUpcast),
        .init("use_quant_conv", \.useQuantConv), .init("use_post_quant_conv", \.usePostQuantConv),
        .init("mid_block_add_attention", \.midBlockAddAttention),
    ] }

    public init(from decoder: Decoder) throws {
        self.init()
        try ConfigCoding.decode(Self.fields, into: &self, from: decoder)
    }

    public func encode(to encoder: Encoder) throws {
        try ConfigCoding.encode(Self.fields, self, to: encoder)
    }

    /// Reads a `config.json`, refusing what the model cannot build (by field name).
    public static func load(_ path: String) throws -> AutoencoderKLConfig {
        try ConfigCoding.load(path, className: "AutoencoderKL") { (c: AutoencoderKLConfig) in try c.validate() }
    }

    /// Writes `config.json` with `_class_name` AutoencoderKL, as diffusers reads it.
    public func save(_ path: String) throws {
        try ConfigCoding.save(self, path: path, className: "AutoencoderKL")
    }

    // MARK: Resolved values

    /// The number of resolutions.
    public var levels: Int { blockOutChannels.count }
    /// Image pixels per latent pixel along each side: 2^(levels - 1) (8 for Stable Diffusion).
    public var downsamplingFactor: Int { 1 << (levels - 1) }
    /// The tile size of tiled encoding (diffusers' `tile_sample_min_size`).
    public var tileSampleSize: Int { sampleSize[0] }
    /// The tile size of tiled decoding (`tile_latent_min_size`): sample_size / 2^(levels - 1).
    public var tileLatentSize: Int { Int(Double(tileSampleSize) / Double(downsamplingFactor)) }

    /// Refuses what the model cannot build, by field name, before anything is allocated.
    public func validate() throws {
        guard !blockOutChannels.isEmpty else { throw ModelError("block_out_channels is empty") }
        try ConfigChecks.atLeast(1, "in_channels", inChannels)
        try ConfigChecks.atLeast(1, "out_channels", outChannels)
        try ConfigChecks.atLeast(1, "latent_channels", latentChannels)
        try ConfigChecks.atLeast(1, "layers_per_block", layersPerBlock)
        try ConfigChecks.atLeast(1, "norm_num_groups", normNumGroups)
        try ConfigChecks.eachAtLeast(1, "block_out_channels", blockOutChannels)
        guard sampleSize.count != 0 else { throw ModelError("sample_size is an empty list") }
        try ConfigChecks.eachAtLeast(1, "sample_size", sampleSize.values(sampleSize.count ?? 1))
        guard blockOutChannels.count <= 16 else {
            throw ModelError("block_out_channels has \(blockOutChannels.count) entries; at most 16 resolutions are supported")
        }
        guard downBlockTypes.count == levels, upBlockTypes.count == levels else {
            throw ModelError("down_block_types (\(downBlockTypes.count)), up_block_types (\(upBlockTypes.count)) and block_out_channels (\(levels)) must have the same length")
        }
        for c in blockOutChannels where c % normNumGroups != 0 {
            throw ModelError("norm_num_groups \(normNumGroups) does not divide block_out_channels entry \(c)")
        }
        try ConfigChecks.positive("scaling_factor", scalingFactor)
        if let shift = shiftFactor, !shift.isFinite { throw ModelError("shift_factor must be a finite number, got \(shift)") }
        for (field, values) in [("latents_mean", latentsMean), ("latents_std", latentsStd)] {
            guard let values else { continue }
            guard values.count == latentChannels else {
                throw ModelError("\(field) has \(values.count) entries for \(latentChannels) latent channels")
            }
            if let bad = values.first(where: { !$0.isFinite }) { throw ModelError("\(field) holds \(bad)") }
        }
        try ConfigChecks.weightsFit(estimatedParameters)
    }

    /// Roughly the parameter count (3x3 convolutions and the mid blocks' attention), for the
    /// memory check before the weights are allocated.
    var estimatedParameters: Double {
        let layers = Double(layersPerBlock)
        var total = 0.0
        for c in blockOutChannels.map(Double.init) {
            // Encoder: layers resnets + a downsampler; decoder: layers + 1 resnets + an upsampler.
            total += c * c * 9 * (2 * layers + 1 + 2 * (layers + 1) + 1)
        }
        let last = Double(blockOutChannels.last!)
        total += last * last * (2 * 2 * 2 * 9 + (midBlockAddAttention ? 2 * 4 : 0))
        return total
    }
}

/// diffusers' encoder block kinds for AutoencoderKL.
public enum VAEDownBlockType: String, ConfigChoice {
    /// Resnets, then a stride-2 convolution (no attention, no time embedding).
    case downEncoderBlock2D = "DownEncoderBlock2D"
}

/// diffusers' decoder block kinds for AutoencoderKL.
public enum VAEUpBlockType: String, ConfigChoice {
    /// Resnets, then nearest 2x upsampling and a convolution.
    case upDecoderBlock2D = "UpDecoderBlock2D"
}

/// The activation of an AutoencoderKL (`act_fn`): diffusers' two names for x sigmoid(x).
public enum VAEActivation: String, ConfigChoice {
    case silu, swish
}
