import Diffusion
import Foundation
import Models

/// What a single-file Stable Diffusion checkpoint does not hold: the configs that shape its
/// networks, where the tokenizer comes from, and the scheduler. Either read from a diffusers
/// SD pipeline folder (as `from_single_file(..., config=folder)`), or diffusers' configs of the
/// full-size SD 1.5 and SD 2.1 pipelines built in.
public struct StableDiffusionArchitecture: Sendable {
    /// Where the tokenizer comes from.
    public enum TokenizerSource: Equatable, Sendable {
        /// A transformers tokenizer folder (vocab.json, merges.txt, the special tokens).
        case folder(String)
        /// OpenAI's BPE merges file alone (`CLIPTokenizer(openAIBPE:)`), padding with `padToken`
        /// (SD 1.x: `<|endoftext|>`, SD 2.x: `!`).
        case openAIBPE(padToken: String)
    }

    public var unet: UNet2DConditionConfig
    public var vae: AutoencoderKLConfig
    public var textEncoder: CLIPTextConfig
    public var tokenizer: TokenizerSource
    public var scheduler: SchedulerConfig
    /// The pipeline class it stands for (StableDiffusionPipeline, StableDiffusionInpaintPipeline).
    public var pipelineClass: String
    /// Where the configs came from, for the user's notes.
    public var origin: String

    public init(unet: UNet2DConditionConfig, vae: AutoencoderKLConfig, textEncoder: CLIPTextConfig, tokenizer: TokenizerSource,
                scheduler: SchedulerConfig, pipelineClass: String, origin: String) {
        (self.unet, self.vae, self.textEncoder, self.tokenizer) = (unet, vae, textEncoder, tokenizer)
        (self.scheduler, self.pipelineClass, self.origin) = (scheduler, pipelineClass, origin)
    }

    /// The configs of a diffusers Stable Diffusion pipeline folder: unet/, vae/ and
    /// text_encoder/ config.json, tokenizer/ and scheduler/scheduler_config.json (weights in
    /// it, if any, are not read). Each config is refused by field name as when the folder loads.
    public static func load(folder: String) throws -> StableDiffusionArchitecture {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ModelError("\(folder): no such folder (the config of a single-file checkpoint is a diffusers Stable Diffusion "
                             + "pipeline folder with unet/, vae/, text_encoder/, tokenizer/ and scheduler/)")
        }
        for sub in ["unet/config.json", "vae/config.json", "text_encoder/config.json", "tokenizer", "scheduler/scheduler_config.json"]
        where !fm.fileExists(atPath: folder + "/" + sub) {
            throw ModelError("\(folder): no \(sub) (the config of a single-file checkpoint is a diffusers Stable Diffusion pipeline "
                             + "folder with unet/, vae/, text_encoder/ config.json, tokenizer/ and scheduler/scheduler_config.json)")
        }
        let unet = try UNet2DConditionConfig.load(folder + "/unet/config.json")
        var pipelineClass = unet.inChannels == 9 ? "StableDiffusionInpaintPipeline" : "StableDiffusionPipeline"
        if let data = fm.contents(atPath: folder + "/model_index.json"),
           let index = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let name = index["_class_name"] as? String {
            pipelineClass = name
        }
        return StableDiffusionArchitecture(
            unet: unet, vae: try AutoencoderKLConfig.load(folder + "/vae/config.json"),
            textEncoder: try CLIPTextConfig.load(folder + "/text_encoder/config.json"), tokenizer: .folder(folder + "/tokenizer"),
            scheduler: try SchedulerConfig.load(folder + "/scheduler/scheduler_config.json"), pipelineClass: pipelineClass,
            origin: "the configs of \(folder)")
    }
}

/// The Stable Diffusion generations whose LDM checkpoints load here, told apart by the text
/// encoder's layout in the file.
public enum StableDiffusionVersion: String, Sendable, CaseIterable {
    /// SD 1.x: OpenAI's CLIP ViT-L/14 text model (transformers' layout in the file), 768-wide
    /// context, 512x512 images, epsilon prediction.
    case v1 = "1.x"
    /// SD 2.x: open_clip's ViT-H/14 text tower (its own layout), 1024-wide context, taken at the
    /// penultimate block.
    case v2 = "2.x"
}

extension StableDiffusionArchitecture {
    /// diffusers' configs of the full-size pipeline of `version` (stable-diffusion-v1-5,
    /// stabilityai/stable-diffusion-2-1), with `inChannels` 9 for the inpainting U-Nets
    /// (stable-diffusion-inpainting, stable-diffusion-2-inpainting).
    ///
    /// What the weights cannot tell: an SD 2.x file is taken as SD 2.1's 768x768
    /// v-prediction model (as diffusers' `from_single_file` infers it), an SD 2.x inpainting
    /// one as epsilon at 512x512. SD 2.x-base files (512x512, epsilon) and any fine-tune with
    /// another scheduler need a config folder.
    public static func builtIn(_ version: StableDiffusionVersion, inChannels: Int = 4) -> StableDiffusionArchitecture {
        let inpainting = inChannels == 9
        var unet = UNet2DConditionConfig()
        unet.inChannels = inChannels
        unet.outChannels = 4
        unet.blockOutChannels = [320, 640, 1280, 1280]
        unet.layersPerBlock = .one(2)
        unet.downBlockTypes = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]
        unet.upBlockTypes = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
        unet.normNumGroups = 32
        var vae = AutoencoderKLConfig.stableDiffusion
        var text = CLIPTextConfig()
        text.vocabSize = 49408
        text.maxPositionEmbeddings = 77
        (text.bosTokenId, text.eosTokenId, text.padTokenId) = (0, 2, 1)
        var scheduler: SchedulerConfig
        let pad: String
        switch version {
        case .v1:
            unet.sampleSize = .one(64)
            unet.crossAttentionDim = .one(768)
            unet.attentionHeadDim = .one(8)
            (text.hiddenSize, text.intermediateSize, text.numHiddenLayers, text.numAttentionHeads) = (768, 3072, 12, 12)
            (text.hiddenAct, text.projectionDim) = (.quickGelu, 768)
            scheduler = SchedulerConfig(className: "PNDMScheduler")
            scheduler.skipPrkSteps = true
            pad = "<|endoftext|>"
        case .v2:
            unet.sampleSize = .one(inpainting ? 64 : 96)
            vae.sampleSize = .one(inpainting ? 512 : 768)
            unet.crossAttentionDim = .one(1024)
            unet.attentionHeadDim = .many([5, 10, 20, 20])
            unet.useLinearProjection = true
            unet.upcastAttention = !inpainting
            // open_clip's tower has 24 blocks; SD 2.x conditions on the penultimate one's output.
            (text.hiddenSize, text.intermediateSize, text.numHiddenLayers, text.numAttentionHeads) = (1024, 4096, 23, 16)
            (text.hiddenAct, text.projectionDim) = (.gelu, 512)
            scheduler = SchedulerConfig(className: "DDIMScheduler")
            scheduler.predictionType = inpainting ? .epsilon : .vPrediction
            scheduler.clipSample = false
            scheduler.skipPrkSteps = true
            pad = "!"
        }
        (scheduler.betaStart, scheduler.betaEnd, scheduler.betaSchedule) = (0.00085, 0.012, .scaledLinear)
        (scheduler.stepsOffset, scheduler.setAlphaToOne) = (1, false)
        let name = version == .v1 ? (inpainting ? "SD 1.5 inpainting" : "SD 1.5") : (inpainting ? "SD 2 inpainting" : "SD 2.1 (768, v-prediction)")
        return StableDiffusionArchitecture(
            unet: unet, vae: vae, textEncoder: text, tokenizer: .openAIBPE(padToken: pad), scheduler: scheduler,
            pipelineClass: inpainting ? "StableDiffusionInpaintPipeline" : "StableDiffusionPipeline",
            origin: "the built-in \(name) configs")
    }
}
