import Foundation

/// A diffusers `DiTTransformer2DModel` `config.json`: its field names and defaults (DiT-XL/2
/// on 32x32 latents).
public struct DiTTransformer2DConfig: Codable, Equatable, Sendable {
    /// Attention heads and the width of each; the token width is their product.
    public var numAttentionHeads = 16
    public var attentionHeadDim = 72
    /// Channels of the input samples.
    public var inChannels = 4
    /// Channels of the output (null: as the input); 2 x in_channels with learned sigma.
    public var outChannels: Int? = nil
    /// Transformer blocks (at least 1: the output layer reuses block 0's conditioning).
    public var numLayers = 28
    /// Dropout in attention and feed-forward while training.
    public var dropout: Double = 0
    /// Unused by DiT (diffusers keeps it in the config).
    public var normNumGroups = 32
    /// Biases in the attention projections to_q, to_k, to_v.
    public var attentionBias = true
    /// Height = width of the samples; fixes the positional embedding grid (other sizes get
    /// a recomputed grid, as diffusers).
    public var sampleSize = 32
    /// Side of the square patches (tokens = (H / p) (W / p)).
    public var patchSize = 2
    /// The feed-forward activation ("gelu-approximate", "gelu", "geglu", "geglu-approximate").
    public var activationFn = "gelu-approximate"
    /// The number of classes; the class table has one more row, the null class used for
    /// classifier-free guidance (diffusers' label dropout 0.1).
    public var numEmbedsAdaNorm: Int? = 1000
    /// Attention in float32 under half precision; softmax is float32 here always.
    public var upcastAttention = false
    /// "ada_norm_zero" (adaLN-Zero, the only kind diffusers' DiT implements).
    public var normType = "ada_norm_zero"
    /// Learned affine of the feed-forward's layer norm (norm3).
    public var normElementwiseAffine = false
    /// Epsilon of norm3 (the adaLN norms use 1e-6, as diffusers).
    public var normEps: Double = 1e-5

    /// diffusers' defaults.
    public init() {}

    static var fields: [ConfigField<DiTTransformer2DConfig>] { [
        .init("num_attention_heads", \.numAttentionHeads), .init("attention_head_dim", \.attentionHeadDim),
        .init("in_channels", \.inChannels), .init("out_channels", \.outChannels), .init("num_layers", \.numLayers),
        .init("dropout", \.dropout), .init("norm_num_groups", \.normNumGroups), .init("attention_bias", \.attentionBias),
        .init("sample_size", \.sampleSize), .init("patch_size", \.patchSize), .init("activation_fn", \.activationFn),
        .init("num_embeds_ada_norm", \.numEmbedsAdaNorm), .init("upcast_attention", \.upcastAttention),
        .init("norm_type", \.normType), .init("norm_elementwise_affine", \.normElementwiseAffine), .init("norm_eps", \.normEps),
    ] }

    public init(from decoder: Decoder) throws {
        self.init()
        try ConfigCoding.decode(Self.fields, into: &self, from: decoder)
    }

    public func encode(to encoder: Encoder) throws {
        try ConfigCoding.encode(Self.fields, self, to: encoder)
    }

    /// Reads a `config.json`, refusing what the model cannot build (by field name).
    public static func load(_ path: String) throws -> DiTTransformer2DConfig {
        try ConfigCoding.load(path, className: "DiTTransformer2DModel") { (c: DiTTransformer2DConfig) in try c.validate() }
    }

    /// Whether a `config.json` says it describes a DiTTransformer2DModel (its `_class_name`);
    /// false for other classes and for files that cannot be read as JSON.
    public static func describesDiT(configFile path: String) -> Bool {
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: path)),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return false }
        return object["_class_name"] as? String == "DiTTransformer2DModel"
    }

    /// Writes `config.json` with `_class_name` DiTTransformer2DModel.
    public func save(_ path: String) throws {
        try ConfigCoding.save(self, path: path, className: "DiTTransformer2DModel")
    }

    /// The token width.
    public var innerDim: Int { numAttentionHeads * attentionHeadDim }
    /// The output channels.
    public var resolvedOutChannels: Int { outChannels ?? inChannels }
    /// Whether the output carries the learned variance after the prediction (DiT's learned
    /// sigma: diffusers' pipeline takes the first in_channels when out_channels / 2 == in_channels).
    public var learnsSigma: Bool { resolvedOutChannels / 2 == inChannels }

    public func validate() throws {
        guard normType == "ada_norm_zero" else { throw ModelError("norm_type: \(normType) is not supported (ada_norm_zero)") }
        guard let classes = numEmbedsAdaNorm else { throw ModelError("num_embeds_ada_norm must be set for ada_norm_zero") }
        guard classes >= 1 else { throw ModelError("num_embeds_ada_norm must be positive, got \(classes)") }
        guard FeedForwardActivation(rawValue: activationFn) != nil else {
            throw ModelError("activation_fn: \(activationFn) is not supported (\(FeedForwardActivation.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        guard numAttentionHeads >= 1, attentionHeadDim >= 1 else {
            throw ModelError("num_attention_heads and attention_head_dim must be positive, got \(numAttentionHeads) and \(attentionHeadDim)")
        }
        guard innerDim % 4 == 0 else {
            throw ModelError("num_attention_heads x attention_head_dim = \(innerDim) must be divisible by 4 (2-d sin-cos positions)")
        }
        guard numLayers >= 1 else { throw ModelError("num_layers must be at least 1, got \(numLayers)") }
        guard patchSize >= 1, sampleSize >= patchSize else {
            throw ModelError("patch_size \(patchSize) must be positive and at most sample_size \(sampleSize)")
        }
        guard inChannels >= 1, resolvedOutChannels >= 1 else { throw ModelError("in_channels and out_channels must be positive") }
        guard dropout >= 0 && dropout < 1 else { throw ModelError("dropout must be in [0, 1), got \(dropout)") }
    }
}
