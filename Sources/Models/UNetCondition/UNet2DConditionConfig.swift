import Foundation

/// A diffusers `UNet2DConditionModel` `config.json`: every field diffusers 0.42 writes, with
/// its name and default. Fields the model does not implement are still read, so that
/// `validate()` can refuse a non-default value by name instead of silently ignoring it.
public struct UNet2DConditionConfig: Codable, Equatable, Sendable {
    /// Height = width of the samples the model was trained on (an [h, w] pair is also read).
    public var sampleSize: OneOrMany<Int>? = nil
    /// Channels of the input and output samples (4 for Stable Diffusion latents).
    public var inChannels = 4
    public var outChannels = 4
    /// Map inputs from [0, 1] to [-1, 1] first (2x - 1).
    public var centerInputSample = false
    /// Sinusoidal timestep features: cos first, and the frequency shift (see `timestepEmbedding`).
    public var flipSinToCos = true
    public var freqShift = 0
    /// Block kinds per resolution, coarsest last: CrossAttnDownBlock2D / DownBlock2D.
    public var downBlockTypes = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]
    /// UNetMidBlock2DCrossAttn, UNetMidBlock2D (one resnet) or null (no mid block).
    public var midBlockType: String? = "UNetMidBlock2DCrossAttn"
    /// Block kinds per resolution, coarsest first: UpBlock2D / CrossAttnUpBlock2D.
    public var upBlockTypes = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
    /// Transformer blocks attend to the context in attn1 as well (no self-attention); per
    /// down block (up blocks reversed). The cross-attention mid block ignores it, as diffusers.
    public var onlyCrossAttention: OneOrMany<Bool> = .one(false)
    /// Channels per resolution.
    public var blockOutChannels = [320, 640, 1280, 1280]
    /// Resnets per down block (up blocks have one more); one value or one per block.
    public var layersPerBlock: OneOrMany<Int> = .one(2)
    /// Padding of the strided downsampling convolution (0: pad right/bottom by one first).
    public var downsamplePadding = 1
    /// The mid block's resnet output scale (their residual sums are divided by it).
    public var midBlockScaleFactor: Double = 1
    /// Dropout in resnets and transformer blocks while training.
    public var dropout: Double = 0
    /// Activation of resnets and the time embedding: silu (swish).
    public var actFn = "silu"
    /// Group norm groups everywhere (null, diffusers' "no output norm", is not supported).
    public var normNumGroups: Int? = 32
    public var normEps: Double = 1e-5
    /// Width of `encoder_hidden_states` (after `encoder_hid_proj`); one value or one per block.
    public var crossAttentionDim: OneOrMany<Int> = .one(1280)
    /// Transformer blocks per Transformer2DModel: one count, one per block, or one list per
    /// block with a count per layer (then `reverse_transformer_layers_per_block` is required).
    public var transformerLayersPerBlock: OneOrMany<OneOrMany<Int>> = .one(.one(1))
    /// Per up block and layer, for the nested form of `transformer_layers_per_block`.
    public var reverseTransformerLayersPerBlock: [[Int]]? = nil
    /// Width of the given context when it is first projected to `cross_attention_dim`
    /// (`encoder_hid_proj`, a linear layer: diffusers' "text_proj").
    public var encoderHidDim: Int? = nil
    /// null or "text_proj" (the image projections are not supported).
    public var encoderHidDimType: String? = nil
    /// Despite the name, the NUMBER OF HEADS of each block's transformers (diffusers issue
    /// #2011): heads = attention_head_dim[i], head width = channels / heads.
    public var attentionHeadDim: OneOrMany<Int> = .one(8)
    /// Must be null: diffusers 0.42 refuses it (heads come from `attention_head_dim`).
    public var numAttentionHeads: OneOrMany<Int>? = nil
    /// Two transformers mixing two contexts: not supported.
    public var dualCrossAttention = false
    /// proj_in/proj_out as linear layers on tokens instead of 1x1 convolutions.
    public var useLinearProjection = false
    /// Class conditioning added to the time embedding: null (an embedding table when
    /// `num_class_embeds` is set), "timestep" (sinusoidal features of the labels through an
    /// MLP), "identity" (labels are embeddings), "projection" (an MLP on given vectors) or
    /// "simple_projection" (a linear layer on given vectors).
    public var classEmbedType: String? = nil
    /// Extra embeddings (SDXL's "text_time" and others): not supported.
    public var additionEmbedType: String? = nil
    public var additionTimeEmbedDim: Int? = nil
    /// Rows of the class embedding table.
    public var numClassEmbeds: Int? = nil
    /// Attention scores in float32 under half precision; Diffuse computes softmax in float32 always.
    public var upcastAttention = false
    /// "default" (add the time embedding) or "scale_shift" (scale and shift after norm2).
    public var resnetTimeScaleShift = "default"
    /// Options of the Simple* and ResnetDownsample blocks; these block kinds ignore them.
    public var resnetSkipTimeAct = false
    public var resnetOutScaleFactor: Double = 1
    /// "positional" (sinusoidal); "fourier" is not supported here.
    public var timeEmbeddingType = "positional"
    /// Width of the time embedding (default 4 x the first block's channels).
    public var timeEmbeddingDim: Int? = nil
    /// An activation applied once to the summed embedding: null, silu/swish or gelu.
    public var timeEmbeddingActFn: String? = nil
    /// A second activation inside the time embedding MLP: not supported.
    public var timestepPostAct: String? = nil
    /// A projected condition added to the timestep features (LCM): not supported.
    public var timeCondProjDim: Int? = nil
    /// Kernel sizes (odd) of conv_in and conv_out; padding keeps the size.
    public var convInKernel = 3
    public var convOutKernel = 3
    /// Input width of the "projection" / "simple_projection" class embeddings.
    public var projectionClassEmbeddingsInputDim: Int? = nil
    /// "default" only (GLIGEN's gated attention is not supported).
    public var attentionType = "default"
    /// Concatenate the class embedding to the time embedding (blocks then see twice the width).
    public var classEmbeddingsConcat = false
    /// Options of the SimpleCrossAttn mid block and Simple* blocks; ignored by these kinds.
    public var midBlockOnlyCrossAttention: Bool? = nil
    public var crossAttentionNorm: String? = nil
    /// Heads of the "text" addition embedding (not supported; kept for round trips).
    public var additionEmbedTypeNumHeads = 64

    /// diffusers' defaults (Stable Diffusion 1.x's shape).
    public init() {}

    static var fields: [ConfigField<UNet2DConditionConfig>] { [
        .init("sample_size", \.sampleSize), .init("in_channels", \.inChannels), .init("out_channels", \.outChannels),
        .init("center_input_sample", \.centerInputSample), .init("flip_sin_to_cos", \.flipSinToCos),
        .init("freq_shift", \.freqShift), .init("down_block_types", \.downBlockTypes),
        .init("mid_block_type", \.midBlockType), .init("up_block_types", \.upBlockTypes),
        .init("only_cross_attention", \.onlyCrossAttention), .init("block_out_channels", \.blockOutChannels),
        .init("layers_per_block", \.layersPerBlock), .init("downsample_padding", \.downsamplePadding),
        .init("mid_block_scale_factor", \.midBlockScaleFactor), .init("dropout", \.dropout), .init("act_fn", \.actFn),
        .init("norm_num_groups", \.normNumGroups), .init("norm_eps", \.normEps),
        .init("cross_attention_dim", \.crossAttentionDim), .init("transformer_layers_per_block", \.transformerLayersPerBlock),
        .init("reverse_transformer_layers_per_block", \.reverseTransformerLayersPerBlock),
        .init("encoder_hid_dim", \.encoderHidDim), .init("encoder_hid_dim_type", \.encoderHidDimType),
        .init("attention_head_dim", \.attentionHeadDim), .init("num_attention_heads", \.numAttentionHeads),
        .init("dual_cross_attention", \.dualCrossAttention), .init("use_linear_projection", \.useLinearProjection),
        .init("class_embed_type", \.classEmbedType), .init("addition_embed_type", \.additionEmbedType),
        .init("addition_time_embed_dim", \.additionTimeEmbedDim), .init("num_class_embeds", \.numClassEmbeds),
        .init("upcast_attention", \.upcastAttention), .init("resnet_time_scale_shift", \.resnetTimeScaleShift),
        .init("resnet_skip_time_act", \.resnetSkipTimeAct), .init("resnet_out_scale_factor", \.resnetOutScaleFactor),
        .init("time_embedding_type", \.timeEmbeddingType), .init("time_embedding_dim", \.timeEmbeddingDim),
        .init("time_embedding_act_fn", \.timeEmbeddingActFn), .init("timestep_post_act", \.timestepPostAct),
        .init("time_cond_proj_dim", \.timeCondProjDim), .init("conv_in_kernel", \.convInKernel),
        .init("conv_out_kernel", \.convOutKernel),
        .init("projection_class_embeddings_input_dim", \.projectionClassEmbeddingsInputDim),
        .init("attention_type", \.attentionType), .init("class_embeddings_concat", \.classEmbeddingsConcat),
        .init("mid_block_only_cross_attention", \.midBlockOnlyCrossAttention),
        .init("cross_attention_norm", \.crossAttentionNorm),
        .init("addition_embed_type_num_heads", \.additionEmbedTypeNumHeads),
    ] }

    public init(from decoder: Decoder) throws {
        self.init()
        try ConfigCoding.decode(Self.fields, into: &self, from: decoder)
    }

    public func encode(to encoder: Encoder) throws {
        try ConfigCoding.encode(Self.fields, self, to: encoder)
    }

    /// Reads a `config.json`, refusing what the model cannot build (by field name).
    public static func load(_ path: String) throws -> UNet2DConditionConfig {
        try ConfigCoding.load(path, className: "UNet2DConditionModel") { (c: UNet2DConditionConfig) in try c.validate() }
    }

    /// Writes `config.json` with `_class_name` UNet2DConditionModel, as diffusers reads it.
    public func save(_ path: String) throws {
        try ConfigCoding.save(self, path: path, className: "UNet2DConditionModel")
    }

    // MARK: Resolved values (diffusers' constructor logic)

    /// The number of resolutions.
    public var blockCount: Int { blockOutChannels.count }
    /// The sinusoidal features' width (the first block's channels).
    public var timestepInputDim: Int { blockOutChannels[0] }
    /// The time embedding width.
    public var timeEmbedDim: Int { timeEmbeddingDim ?? blockOutChannels[0] * 4 }
    /// The embedding width the resnets see (doubled when the class embedding is concatenated).
    public var blocksTimeEmbedDim: Int { classEmbeddingsConcat ? 2 * timeEmbedDim : timeEmbedDim }
    /// Attention heads per down block (`attention_head_dim`, see there).
    public func heads(block i: Int) -> Int { attentionHeadDim[i] }
    /// Resnets per down block i (up block i of the reversed order has one more).
    public func layers(block i: Int) -> Int { layersPerBlock[i] }

    /// Transformer depth of each layer of down block i.
    public func downTransformerLayers(block i: Int) -> [Int] {
        transformerLayersPerBlock[i].values(layers(block: i))
    }

    /// Transformer depth of each layer of up block i (counted from the coarsest).
    public func upTransformerLayers(block i: Int) -> [Int] {
        let n = layers(block: blockCount - 1 - i) + 1
        if let reverse = reverseTransformerLayersPerBlock { return OneOrMany.many(reverse[i]).values(n) }
        return transformerLayersPerBlock[blockCount - 1 - i].values(n)
    }

    /// Transformer depth of the cross-attention mid block (the last block's first entry).
    public var midTransformerLayers: Int { transformerLayersPerBlock[blockCount - 1][0] }
}
