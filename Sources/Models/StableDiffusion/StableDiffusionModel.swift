import Foundation
import NeuralNetworks
import Tensors

/// The networks of a Stable Diffusion pipeline (Rombach et al. 2022, latent diffusion): the
/// CLIP tokenizer and text encoder, a UNet2DConditionModel that denoises latents under
/// cross-attention to the prompt embeddings, and the AutoencoderKL between pixels and
/// latents (512x512x3 <-> 64x64x4 for SD 1.x/2.x). Loaded from a diffusers pipeline folder by
/// `StableDiffusionModel.load(folder:)` (ModelIO); run by Pipelines' latent pipeline.
public final class StableDiffusionModel: @unchecked Sendable {
    public let unet: UNet2DConditionModel
    public let vae: AutoencoderKL
    public let textEncoder: CLIPTextModel
    public let tokenizer: CLIPTokenizer
    /// The class model_index.json names (StableDiffusionPipeline, StableDiffusionInpaintPipeline, ...).
    public let pipelineClass: String

    public init(unet: UNet2DConditionModel, vae: AutoencoderKL, textEncoder: CLIPTextModel, tokenizer: CLIPTokenizer,
                pipelineClass: String) throws {
        let latent = vae.config.latentChannels
        guard unet.config.outChannels == latent else {
            throw ModelError("unet/config.json: out_channels \(unet.config.outChannels) must be the VAE's latent_channels \(latent)")
        }
        guard unet.config.inChannels == latent || unet.config.inChannels == 2 * latent + 1 else {
            throw ModelError("unet/config.json: in_channels \(unet.config.inChannels) must be the VAE's latent_channels \(latent) "
                             + "(text-to-image) or \(2 * latent + 1) (an inpainting U-Net: latents, mask, masked image latents)")
        }
        if case let dim = unet.config.crossAttentionDim[0], dim != textEncoder.config.hiddenSize {
            throw ModelError("unet/config.json: cross_attention_dim \(dim) must be the text encoder's hidden_size \(textEncoder.config.hiddenSize)")
        }
        (self.unet, self.vae, self.textEncoder, self.tokenizer, self.pipelineClass) = (unet, vae, textEncoder, tokenizer, pipelineClass)
    }

    /// Pixels per latent along each side: 2^(VAE levels - 1) (8 for SD).
    public var vaeScaleFactor: Int { 1 << (vae.config.blockOutChannels.count - 1) }
    /// Channels of a latent (4 for SD 1.x/2.x).
    public var latentChannels: Int { vae.config.latentChannels }
    /// Whether the U-Net inpaints by itself: the mask and the masked image's latents beside
    /// the latents (SD's inpainting U-Net, 9 input channels).
    public var inpaintsByItself: Bool { unet.config.inChannels == 2 * latentChannels + 1 }
    /// The default image size [H, W] in pixels: the U-Net's sample_size times the scale factor.
    public var defaultImageSize: [Int]? {
        unet.config.sampleSize.map { [$0[0] * vaeScaleFactor, $0[($0.count ?? 1) > 1 ? 1 : 0] * vaeScaleFactor] }
    }

    /// The prompts' embeddings [N, L, D] as diffusers' `encode_prompt` makes them: ids padded
    /// (and cut) to the tokenizer's max length, the text encoder's last hidden state, or with
    /// `clipSkip` k the hidden state k layers before the last through the final layer norm.
    public func promptEmbeddings(_ prompts: [String], clipSkip: Int? = nil) -> Tensor {
        textEncoder.promptEmbeddings(tokenizer(prompts), clipSkip: clipSkip)
    }

    /// The prompts whose tokens do not fit the tokenizer's length, and the part that is cut
    /// (diffusers cuts it with a warning): for the user's notes.
    public func truncatedParts(_ prompts: [String]) -> [(prompt: Int, removed: String)] {
        let limit = tokenizer.modelMaxLength - 2
        return prompts.enumerated().compactMap { i, prompt in
            let ids = tokenizer.encode(prompt)
            guard ids.count > limit else { return nil }
            return (i, tokenizer.decode(Array(ids[limit...])))
        }
    }

    /// Parameters of the three networks.
    public var parameterCounts: (unet: Int, vae: Int, textEncoder: Int) {
        (unet.parameterCount(), vae.parameterCount(), textEncoder.parameterCount())
    }
}
