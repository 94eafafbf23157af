import Diffusion
import NeuralNetworks
import Tensors

/// A text-to-image denoiser in one module: a `WordTokenizer`, a `TextEncoder` and a
/// `UNet2DConditionModel` that cross-attends to the encoder's token vectors (Stable
/// Diffusion's arrangement, in pixel space and small):
///
///     context = text_encoder(tokens)                         [B, L, hidden]
///     out     = unet([x_t, image], t, encoder_hidden_states: context)
///
/// As one `Module` the pair trains jointly (one optimizer, one EMA, one state dict whose keys
/// start `text_encoder.` and `unet.`); as a `Denoiser` it reads the captions' token ids from
/// `Conditioning.tokens`, so classifier-free guidance runs with the empty caption's ids as
/// the unconditional input.
public final class TextToImageModel: Module, Denoiser {
    public let tokenizer: WordTokenizer
    public let textEncoder: TextEncoder
    public let unet: UNet2DConditionModel

    /// A model with fresh weights; the encoder's context and the U-Net's cross-attention width
    /// must agree with the tokenizer and the encoder.
    public init(tokenizer: WordTokenizer, textEncoder: TextEncoderConfig, unet: UNet2DConditionConfig,
                generator: RandomGenerator? = nil) throws {
        guard textEncoder.vocabSize == tokenizer.vocabulary.count, textEncoder.contextLength == tokenizer.contextLength else {
            throw ModelError("the text encoder takes \(textEncoder.vocabSize) tokens in a context of \(textEncoder.contextLength); "
                             + "the tokenizer has \(tokenizer.vocabulary.count) in \(tokenizer.contextLength)")
        }
        guard case .one(let width) = unet.crossAttentionDim, width == textEncoder.hiddenSize, unet.encoderHidDim == nil else {
            throw ModelError("the U-Net cross-attends to vectors of width \(unet.crossAttentionDim); the text encoder's are "
                             + "\(textEncoder.hiddenSize) wide")
        }
        self.tokenizer = tokenizer
        self.textEncoder = try TextEncoder(textEncoder, generator: generator)
        self.unet = try UNet2DConditionModel(unet, generator: generator)
        super.init()
    }

    /// The token ids [B, contextLength] of the prompts; throws when one is longer than the
    /// context (naming it and both lengths).
    public func tokens(_ prompts: [String]) throws -> Tensor {
        let ids = try prompts.flatMap { try tokenizer.encode($0) }
        return Tensor(integers: ids, shape: [prompts.count, tokenizer.contextLength])
    }

    /// `Denoiser`: the captions' token ids from `conditioning.tokens` encoded, image channels
    /// appended to the sample. Without tokens the model sees the empty caption.
    public func callAsFunction(_ sample: Tensor, timesteps: Tensor, conditioning: Conditioning?) -> Tensor {
        let n = sample.shape[0]
        let ids = conditioning?.tokens ?? emptyCaption(batch: n)
        return unet(conditioning?.modelInput(sample) ?? sample, timesteps: timesteps, encoderHiddenStates: textEncoder(ids),
                    classLabels: conditioning?.classLabels)
    }

    /// The empty caption's ids ([start, end, pad, ...]) for a batch: the unconditional input.
    public func emptyCaption(batch n: Int) -> Tensor {
        Tensor(integers: Array([[Int]](repeating: tokenizer.emptyCaption, count: n).joined()), shape: [n, tokenizer.contextLength])
    }
}
