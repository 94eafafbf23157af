import NeuralNetworks
import Tensors

/// What the CLIP text model computes for a batch of ids [B, L].
public struct CLIPTextOutput {
    /// The final layer norm of the last layer's output [B, L, hidden]: Stable Diffusion's
    /// `encoder_hidden_states` (without clip skip).
    public var lastHiddenState: Tensor
    /// The embeddings and each layer's output, before the final layer norm
    /// (numHiddenLayers + 1 tensors [B, L, hidden], as transformers' `hidden_states`).
    public var hiddenStates: [Tensor]
    /// The last hidden state at each row's end-of-text token [B, hidden] (`pooler_output`).
    public var pooled: Tensor
}

/// transformers' `CLIPTextModel` (Radford et al. 2021, the text tower of CLIP; Stable
/// Diffusion's `text_encoder`), a pre-norm transformer with causal self-attention:
///
///     h_0 = token_embedding(ids) + position_embedding(0..<L)
///     h_i = h_{i-1} + out_proj(causal_attention(layer_norm1(h_{i-1})))
///     h_i = h_i + fc2(act(fc1(layer_norm2(h_i))))            i = 1 ... num_hidden_layers
///     last_hidden_state = final_layer_norm(h_N)
///     pooled = last_hidden_state[b, first position of eos_token_id]   (or of the largest id)
///
/// Parameters are named as in transformers 4.x files (`text_model.encoder.layers.0.self_attn.q_proj.weight`);
/// `load(folder:)` (ModelIO) also reads transformers 5's files, which drop `text_model.`.
public final class CLIPTextModel: Module {
    public let config: CLIPTextConfig
    public let textModel: CLIPTextTransformer

    public init(_ config: CLIPTextConfig, generator: RandomGenerator? = nil) throws {
        try config.validate()
        self.config = config
        textModel = CLIPTextTransformer(config, generator: generator)
        super.init()
    }

    /// The outputs for int ids [B, L], L at most max_position_embeddings (the tokenizer's
    /// padded ids; no attention mask, as Stable Diffusion runs it).
    public func encode(_ ids: Tensor) -> CLIPTextOutput {
        let hidden = textModel.hiddenStates(ids, layers: config.numHiddenLayers)
        let last = textModel.finalLayerNorm(hidden[hidden.count - 1])
        return CLIPTextOutput(lastHiddenState: last, hiddenStates: hidden, pooled: pooled(last, ids: ids))
    }

    /// The prompt embeddings [B, L, hidden] diffusers' `encode_prompt` makes: the last hidden
    /// state, or with `clipSkip` k the final layer norm of hidden_states[-(k + 1)], the output
    /// of layer N - k (so k = 1 skips the last layer). Layers past it are not run. float32
    /// whatever the compute type (what a pipeline keeps for its steps).
    public func promptEmbeddings(_ ids: Tensor, clipSkip: Int? = nil) -> Tensor {
        let skip = clipSkip ?? 0
        precondition((0...config.numHiddenLayers).contains(skip),
                     "CLIPTextModel: clip skip \(skip) must be between 0 and the number of layers \(config.numHiddenLayers)")
        let hidden = textModel.hiddenStates(ids, layers: config.numHiddenLayers - skip)
        return textModel.finalLayerNorm(hidden[hidden.count - 1]).to(.float32)
    }

    /// Rows of `last` [B, L, D] at each row's end-of-text position [B, D].
    public func pooled(_ last: Tensor, ids: Tensor) -> Tensor {
        let (b, l) = (ids.shape[0], ids.shape[1])
        let rows = ids.integers
        let positions = (0..<b).map { i -> Int in
            let row = rows[(i * l)..<((i + 1) * l)]
            if config.poolsAtLargestID { return row.firstIndex(of: row.max()!)! - i * l }
            return (row.firstIndex(of: config.eosTokenId!) ?? i * l) - i * l
        }
        let flat = last.reshaped(b * l, last.shape[2])
        return flat.indexSelect(axis: 0, indices: Tensor(integers: positions.enumerated().map { $0.offset * l + $0.element }))
    }
}

/// The body of `CLIPTextModel` (transformers' `CLIPTextTransformer`, `text_model.`).
public final class CLIPTextTransformer: Module {
    public let embeddings: CLIPTextEmbeddings
    public let encoder: CLIPEncoder
    public let finalLayerNorm: LayerNorm

    init(_ config: CLIPTextConfig, generator: RandomGenerator?) {
        embeddings = CLIPTextEmbeddings(config, generator: generator)
        encoder = CLIPEncoder(config, generator: generator)
        finalLayerNorm = LayerNorm(config.hiddenSize, eps: Float(config.layerNormEps))
        super.init()
    }

    /// The embeddings and the outputs of the first `layers` encoder layers.
    func hiddenStates(_ ids: Tensor, layers: Int) -> [Tensor] {
        var states = [embeddings(ids)]
        for layer in encoder.layers.prefix(layers) { states.append(layer(states[states.count - 1])) }
        return states
    }
}

/// Token plus position embeddings: token_embedding(ids) + position_embedding(0..<L).
public final class CLIPTextEmbeddings: Module {
    public let tokenEmbedding: Embedding
    public let positionEmbedding: Embedding

    init(_ config: CLIPTextConfig, generator: RandomGenerator?) {
        tokenEmbedding = Embedding(config.vocabSize, config.hiddenSize, generator: generator)
        positionEmbedding = Embedding(config.maxPositionEmbeddings, config.hiddenSize, generator: generator)
        super.init()
    }

    public func callAsFunction(_ ids: Tensor) -> Tensor {
        let (vocabulary, positions) = (tokenEmbedding.weight.shape[0], positionEmbedding.weight.shape[0])
        precondition(ids.rank == 2 && ids.dtype.isInteger && (1...positions).contains(ids.shape[1]),
                     "CLIPTextModel: ids must be integers [batch, length ≤ \(positions)], got \(ids.dtype) \(ids.shape)")
        let values = ids.integers
        if let bad = values.first(where: { $0 < 0 || $0 >= vocabulary }) {
            preconditionFailure("CLIPTextModel: id \(bad) is outside the vocabulary of \(vocabulary) tokens")
        }
        return tokenEmbedding(ids) + positionEmbedding(Tensor.arange(ids.shape[1])).unsqueezed(axis: 0)
    }
}

/// The stack of encoder layers (`encoder.layers.N`).
public final class CLIPEncoder: Module {
    public let layers: [CLIPEncoderLayer]

    init(_ config: CLIPTextConfig, generator: RandomGenerator?) {
        layers = (0..<config.numHiddenLayers).map { _ in CLIPEncoderLayer(config, generator: generator) }
        super.init()
    }
}

/// One pre-norm layer: h + self_attn(layer_norm1(h)), then h + mlp(layer_norm2(h)).
public final class CLIPEncoderLayer: Module, UnaryLayer {
    public let selfAttn: CLIPAttention
    public let layerNorm1: LayerNorm
    public let mlp: CLIPMLP
    public let layerNorm2: LayerNorm

    init(_ config: CLIPTextConfig, generator: RandomGenerator?) {
        let eps = Float(config.layerNormEps)
        selfAttn = CLIPAttention(dim: config.hiddenSize, heads: config.numAttentionHeads, generator: generator)
        layerNorm1 = LayerNorm(config.hiddenSize, eps: eps)
        mlp = CLIPMLP(config, generator: generator)
        layerNorm2 = LayerNorm(config.hiddenSize, eps: eps)
        super.init()
    }

    public func callAsFunction(_ h: Tensor) -> Tensor {
        let x = h + selfAttn(layerNorm1(h))
        return x + mlp(layerNorm2(x))
    }
}

/// Causal multi-head self-attention with CLIP's names (`q_proj`, `k_proj`, `v_proj`,
/// `out_proj`, all with biases): position i attends to positions 0...i,
/// out_proj(concat_h softmax(q_h k_h^T / sqrt(d_head) + causal mask) v_h).
public final class CLIPAttention: Module, UnaryLayer {
    public let qProj: Linear, kProj: Linear, vProj: Linear, outProj: Linear
    public let heads: Int

    init(dim: Int, heads: Int, generator: RandomGenerator?) {
        qProj = Linear(dim, dim, generator: generator)
        kProj = Linear(dim, dim, generator: generator)
        vProj = Linear(dim, dim, generator: generator)
        outProj = Linear(dim, dim, generator: generator)
        self.heads = heads
        super.init()
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let (b, l, d) = (x.shape[0], x.shape[1], x.shape[2])
        func split(_ t: Tensor) -> Tensor { t.reshaped(b, l, heads, d / heads).permuted(0, 2, 1, 3) }
        let attended = scaledDotProductAttention(query: split(qProj(x)), key: split(kProj(x)), value: split(vProj(x)), causal: true)
        return outProj(attended.permuted(0, 2, 1, 3).reshaped(b, l, d))
    }
}

/// The feed-forward block: fc2(act(fc1(x))), fc1 to intermediate_size and back.
public final class CLIPMLP: Module, UnaryLayer {
    public let fc1: Linear, fc2: Linear
    public let activation: CLIPActivation

    init(_ config: CLIPTextConfig, generator: RandomGenerator?) {
        fc1 = Linear(config.hiddenSize, config.intermediateSize, generator: generator)
        fc2 = Linear(config.intermediateSize, config.hiddenSize, generator: generator)
        activation = config.hiddenAct
        super.init()
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let y = fc1(x)
        switch activation {
        case .quickGelu: return fc2(y * (y * 1.702).sigmoid())
        case .gelu: return fc2(y.gelu())
        case .geluNew, .geluPytorchTanh: return fc2(y.gelu(approximate: true))
        }
    }
}
