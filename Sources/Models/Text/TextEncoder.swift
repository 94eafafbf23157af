import Foundation
import NeuralNetworks
import Tensors

/// The shape of a `TextEncoder` (saved as its `config.json`, snake_case).
public struct TextEncoderConfig: Codable, Equatable, Sendable {
    /// Tokens in the vocabulary (the tokenizer's).
    public var vocabSize: Int
    /// Ids per caption (the tokenizer's context length).
    public var contextLength: Int
    /// Width of the token vectors the U-Net cross-attends to.
    public var hiddenSize: Int = 64
    /// Transformer blocks.
    public var numLayers: Int = 2
    /// Attention heads per block (hiddenSize divisible by them).
    public var numHeads: Int = 4

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", contextLength = "context_length", hiddenSize = "hidden_size"
        case numLayers = "num_layers", numHeads = "num_heads"
    }

    public init(vocabSize: Int, contextLength: Int, hiddenSize: Int = 64, numLayers: Int = 2, numHeads: Int = 4) {
        (self.vocabSize, self.contextLength, self.hiddenSize, self.numLayers, self.numHeads) = (vocabSize, contextLength, hiddenSize, numLayers, numHeads)
    }

    /// Refuses shapes no encoder can have, naming the field.
    public func validate() throws {
        guard vocabSize >= 5 else { throw ModelError("vocab_size must be at least 5 (4 special tokens and a word), got \(vocabSize)") }
        guard contextLength >= 3 else { throw ModelError("context_length must be at least 3, got \(contextLength)") }
        guard numLayers >= 1 else { throw ModelError("num_layers must be at least 1, got \(numLayers)") }
        guard numHeads >= 1, hiddenSize >= 1, hiddenSize % numHeads == 0 else {
            throw ModelError("hidden_size \(hiddenSize) must be a positive multiple of num_heads \(numHeads)")
        }
    }
}

/// A small transformer text encoder (the role CLIP's text model plays in Stable Diffusion):
///
///     h = token_embedding(ids) + position_embedding(0..<L)
///     h = block_i(h)            pre-norm self-attention + GELU feed-forward, i = 1...numLayers
///     out = final_layer_norm(h)                                   [B, L, hiddenSize]
///
/// Every position attends to every other (padding included, as Stable Diffusion's U-Net
/// attends to all 77 CLIP positions): the U-Net cross-attends to the whole sequence.
public final class TextEncoder: Module {
    public let config: TextEncoderConfig
    public let tokenEmbedding: Embedding
    public let positionEmbedding: Embedding
    public let layers: [BasicTransformerBlock]
    public let finalLayerNorm: LayerNorm

    public init(_ config: TextEncoderConfig, generator: RandomGenerator? = nil) throws {
        try config.validate()
        self.config = config
        tokenEmbedding = Embedding(config.vocabSize, config.hiddenSize, generator: generator)
        positionEmbedding = Embedding(config.contextLength, config.hiddenSize, generator: generator)
        layers = (0..<config.numLayers).map { _ in
            BasicTransformerBlock(dim: config.hiddenSize, heads: config.numHeads, headDim: config.hiddenSize / config.numHeads,
                                  crossAttentionDim: nil, activation: .gelu, generator: generator)
        }
        finalLayerNorm = LayerNorm(config.hiddenSize)
        super.init()
    }

    /// The token vectors of `ids` [B, contextLength] (integers from the tokenizer).
    public func callAsFunction(_ ids: Tensor) -> Tensor {
        precondition(ids.rank == 2 && ids.shape[1] == config.contextLength,
                     "TextEncoder: ids must be [batch, \(config.contextLength)], got \(ids.shape)")
        var h = tokenEmbedding(ids) + positionEmbedding(Tensor.arange(config.contextLength)).unsqueezed(axis: 0)
        for block in layers { h = block(h, context: nil) }
        return finalLayerNorm(h)
    }
}
