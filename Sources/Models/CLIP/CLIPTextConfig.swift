import Foundation

/// The activations transformers' CLIP configs name in `hidden_act`.
public enum CLIPActivation: String, Codable, Sendable, CaseIterable {
    /// x sigmoid(1.702 x): OpenAI's CLIP, Stable Diffusion 1.x's text encoder.
    case quickGelu = "quick_gelu"
    /// x Phi(x), exact (erf): OpenCLIP ViT-H, Stable Diffusion 2.x's text encoder.
    case gelu
    /// The tanh approximation of GELU (transformers' `NewGELUActivation`).
    case geluNew = "gelu_new"
    /// The same tanh approximation, under torch's name.
    case geluPytorchTanh = "gelu_pytorch_tanh"
}

/// A transformers `CLIPTextConfig` (`config.json` of a `CLIPTextModel` folder, a Stable
/// Diffusion pipeline's `text_encoder/`): its field names and defaults (openai/clip-vit-base).
/// Unknown keys (`torch_dtype`, `transformers_version`, `initializer_range` ...) are ignored.
public struct CLIPTextConfig: Codable, Equatable, Sendable {
    /// Rows of the token embedding (49,408 for CLIP's BPE vocabulary).
    public var vocabSize = 49408
    /// Width of the token vectors (768 in SD 1.x, 1024 in SD 2.x).
    public var hiddenSize = 512
    /// Width of the feed-forward layer (usually 4 x hidden_size).
    public var intermediateSize = 2048
    /// Width of the projection that CLIPTextModelWithProjection adds (unused here).
    public var projectionDim = 512
    /// Encoder layers (12 in SD 1.x, 23 in SD 2.x).
    public var numHiddenLayers = 12
    /// Attention heads per layer (hidden_size divisible by them).
    public var numAttentionHeads = 8
    /// Rows of the position embedding: the longest sequence (77).
    public var maxPositionEmbeddings = 77
    /// The feed-forward activation.
    public var hiddenAct: CLIPActivation = .quickGelu
    /// Epsilon of every layer norm.
    public var layerNormEps: Double = 1e-5
    /// Dropout of the attention probabilities while training (evaluation ignores it).
    public var attentionDropout: Double = 0
    /// The padding id (informational; the tokenizer decides the padding).
    public var padTokenId: Int? = 1
    /// The beginning-of-text id (informational).
    public var bosTokenId: Int? = 49406
    /// The end-of-text id the pooled output is taken at (its first position). Configs from
    /// before transformers PR #24773 say 2: then the pooled output is at the largest id of
    /// each row, as OpenAI's CLIP takes it (its end-of-text id is the largest).
    public var eosTokenId: Int? = 49407
    /// transformers' model type: "clip_text_model" (a whole "clip" model is refused).
    public var modelType: String? = "clip_text_model"
    /// transformers' class names; CLIPTextModel here.
    public var architectures: [String]? = ["CLIPTextModel"]

    /// transformers' defaults.
    public init() {}

    static var fields: [ConfigField<CLIPTextConfig>] { [
        .init("vocab_size", \.vocabSize), .init("hidden_size", \.hiddenSize), .init("intermediate_size", \.intermediateSize),
        .init("projection_dim", \.projectionDim), .init("num_hidden_layers", \.numHiddenLayers),
        .init("num_attention_heads", \.numAttentionHeads), .init("max_position_embeddings", \.maxPositionEmbeddings),
        .init("hidden_act", \.hiddenAct), .init("layer_norm_eps", \.layerNormEps), .init("attention_dropout", \.attentionDropout),
        .init("pad_token_id", \.padTokenId), .init("bos_token_id", \.bosTokenId), .init("eos_token_id", \.eosTokenId),
        .init("model_type", \.modelType), .init("architectures", \.architectures),
    ] }

    public init(from decoder: Decoder) throws {
        self.init()
        try ConfigCoding.decode(Self.fields, into: &self, from: decoder)
    }

    public func encode(to encoder: Encoder) throws {
        try ConfigCoding.encode(Self.fields, self, to: encoder)
    }

    /// Width of each attention head.
    public var headDim: Int { hiddenSize / numAttentionHeads }

    /// Whether the pooled output is at the largest id of each row (the legacy eos_token_id 2)
    /// rather than at the first `eos_token_id`.
    public var poolsAtLargestID: Bool { eosTokenId == nil || eosTokenId == 2 }

    /// Refuses what no CLIP text model can be, naming the field, before anything is allocated.
    public func validate() throws {
        if let modelType, modelType != "clip_text_model" {
            throw ModelError("model_type: \(modelType) is not a CLIP text model (clip_text_model); "
                             + (modelType == "clip" ? "a whole CLIPModel folder holds the text model's config under text_config" : ""))
        }
        if let architectures, !architectures.isEmpty, !architectures.contains("CLIPTextModel") {
            throw ModelError("architectures: \(architectures) is not supported (CLIPTextModel)")
        }
        try ConfigChecks.atLeast(1, "vocab_size", vocabSize)
        try ConfigChecks.atLeast(1, "hidden_size", hiddenSize)
        try ConfigChecks.atLeast(1, "intermediate_size", intermediateSize)
        try ConfigChecks.atLeast(1, "num_hidden_layers", numHiddenLayers)
        try ConfigChecks.atLeast(1, "num_attention_heads", numAttentionHeads)
        try ConfigChecks.atLeast(1, "max_position_embeddings", maxPositionEmbeddings)
        guard hiddenSize % numAttentionHeads == 0 else {
            throw ModelError("hidden_size \(hiddenSize) must be a multiple of num_attention_heads \(numAttentionHeads)")
        }
        try ConfigChecks.positive("layer_norm_eps", layerNormEps)
        try ConfigChecks.probability("attention_dropout", attentionDropout)
        if let eos = eosTokenId, !poolsAtLargestID, !(0..<vocabSize).contains(eos) {
            throw ModelError("eos_token_id \(eos) is outside the vocabulary (vocab_size \(vocabSize))")
        }
        let (d, f, l) = (Double(hiddenSize), Double(intermediateSize), Double(numHiddenLayers))
        try ConfigChecks.weightsFit(Double(vocabSize + maxPositionEmbeddings) * d + l * (4 * d * d + 2 * d * f + 9 * d + f) + 2 * d)
    }

    /// Reads a `config.json`, refusing what the model cannot build (by field name).
    public static func load(_ path: String) throws -> CLIPTextConfig {
        try ConfigCoding.load(path, className: "CLIPTextModel") { (c: CLIPTextConfig) in try c.validate() }
    }

    /// Writes `config.json` as transformers' `save_pretrained` does (sorted keys, atomically).
    public func save(_ path: String) throws {
        let data = try JSONEncoder().encode(self)
        let object = try JSONSerialization.jsonObject(with: data)
        try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
