import ArgumentParser
import ModelIO
import Pipelines

/// `diffuse generate`: text-to-image with a Stable Diffusion pipeline folder (diffusers'
/// layout: CLIP text encoder, U-Net over latents, autoencoder), or with a pipeline folder that
/// `diffuse train --text-conditional` writes (text encoder + UNet2DConditionModel). Translates
/// the options into a `SamplingRequest` with prompts; the work is in Pipelines.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate images from text prompts with a Stable Diffusion or a Diffuse text-to-image folder.",
        discussion: """
            Stable Diffusion (a diffusers folder with model_index.json, unet/, vae/, text_encoder/, tokenizer/, \
            scheduler/, or one .safetensors file in the original CompVis/LDM layout with --config naming a folder of \
            its configs or none for SD 1.5 / 2.1's): CLIP encodes each --prompt (cut at 77 tokens, as diffusers does, with a note), the U-Net \
            denoises latents with classifier-free guidance (--guidance, default 7.5) against the empty prompt or \
            --negative-prompt, and the autoencoder decodes them: --height and --width any multiple of 8 (default the \
            model's). --init-image starts from an image (--strength of the steps run on it); --mask inpaints the \
            image's white region (with the inpainting U-Net when the folder has one, else by latent blending). \
            With --rng torch and a seed, the images are diffusers' for torch.Generator().manual_seed(seed).
            A Diffuse text-to-image folder: a prompt longer than the encoder's context is refused, never cut; guidance \
            default 3 against the empty caption. Without --model: the bundled fashion-mnist-text ("a sneaker", \
            "a photo of a bag"). The grid has one row per prompt; --out-npy holds the images [B, 3, H, W] in [-1, 1].
            """)

    @Option(name: .customLong("prompt"), help: "A prompt (repeat for several).")
    var prompts: [String] = []

    @Option(name: .customLong("negative-prompt"), help: "Stable Diffusion: what to steer away from (one, or one per --prompt).")
    var negativePrompts: [String] = []

    @Option(help: "Image height in pixels (Stable Diffusion: a multiple of 8; default: the model's).")
    var height: Int?

    @Option(help: "Image width in pixels (Stable Diffusion: a multiple of 8; default: the model's).")
    var width: Int?

    @Option(help: "Stable Diffusion: use the text encoder's hidden state this many layers before the last.")
    var clipSkip: Int?

    @Option(help: "Stable Diffusion image-to-image or inpainting: the PNG to start from (the output's size).")
    var initImage: String?

    @Option(help: "With --init-image: the share of the steps run on the noised image, in (0, 1].")
    var strength: Double = 0.8

    @Option(help: "Stable Diffusion inpainting: a PNG of the image's size, white where to generate.")
    var mask: String?

    @Option(name: .customLong("config"), help: "With --model FILE.safetensors (a single-file SD 1.x/2.x checkpoint): a diffusers SD pipeline folder whose configs describe it (default: inferred, the full-size SD 1.5 / 2.1 configs; SD 2.x as v-prediction).")
    var modelConfig: String?

    @OptionGroup var options: SamplingOptions

    func validate() throws {
        if prompts.isEmpty { throw ValidationError("give at least one --prompt") }
        if options.classLabels != nil || options.nullClass != nil {
            throw ValidationError("--class and --null-class are for class-conditional models; a text-to-image model takes --prompt")
        }
        if options.batchSize != nil { throw ValidationError("--batch-size does not apply to generate (--batch is the images per prompt)") }
        if mask != nil && initImage == nil { throw ValidationError("--mask needs --init-image: the image to inpaint") }
    }

    func run() throws {
        let model = try options.model ?? BundledModel.folder(options.bundled ?? "fashion-mnist-text")
        let latent = ModelStore.isStableDiffusion(model)
        var request = try options.request(defaultSteps: latent ? 50 : 20, defaultBatch: latent ? 1 : 4, defaultModel: "fashion-mnist-text")
        request.prompts = prompts
        request.modelConfig = modelConfig
        request.negativePrompts = negativePrompts.isEmpty ? nil : negativePrompts
        request.clipSkip = clipSkip
        (request.height, request.width) = (height, width)
        request.guidance = options.guidance ?? (latent ? 7.5 : 3)
        if let initImage {
            request.images = mask.map { .inpaint(image: EncodedImage(file: initImage), mask: EncodedImage(file: $0), resampling: .init()) }
                ?? .imageToImage(image: EncodedImage(file: initImage), strength: strength)
        }
        try options.run(request, outputs: options.outputs(defaultOut: "generated.png"))
    }
}
