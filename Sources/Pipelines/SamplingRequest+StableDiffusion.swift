import Diffusion
import Foundation
import ModelIO
import Models
import Tensors

extension SamplingRequest {
    /// Validates a Stable Diffusion request: the prompts (and negative prompts) encoded by
    /// CLIP, `batch` images per prompt, the size (a multiple of the autoencoder's 8), the
    /// image inputs in pixels (image-to-image, inpainting) and guidance as diffusers runs it
    /// (only above 1); the sampler built from the folder's scheduler config.
    func prepareStableDiffusion(_ sd: StableDiffusionModel, stored: StoredModel, notes: [String], noiseFile: String?) throws -> PreparedRun {
        var notes = notes
        guard let prompts, !prompts.isEmpty else { throw PipelineError("no prompt: give at least one") }
        guard classLabels == nil else { throw PipelineError("class labels do not apply to Stable Diffusion: it takes prompts") }
        if let negativePrompts, negativePrompts.count != 1 && negativePrompts.count != prompts.count {
            throw PipelineError("\(negativePrompts.count) negative prompts for \(prompts.count) prompts: give one, or one per prompt")
        }
        let layers = sd.textEncoder.config.numHiddenLayers
        if let clipSkip, !(0..<layers).contains(clipSkip) {
            throw PipelineError("clip_skip must be in 0...\(layers - 1) (the text encoder has \(layers) layers), got \(clipSkip)")
        }
        let perPrompt = batch ?? 1
        let size = try imageSize(sd)
        let scale = sd.vaeScaleFactor
        let latentShape = [sd.latentChannels, size[0] / scale, size[1] / scale]
        for (i, removed) in sd.truncatedParts(prompts + (negativePrompts ?? [])) {
            notes.append("prompt \"\(i < prompts.count ? prompts[i] : negativePrompts![i - prompts.count])\" is longer than the "
                         + "text encoder's \(sd.tokenizer.modelMaxLength) tokens; cut (as diffusers does): \(removed)")
        }
        let (config, kind, note) = try stored.scheduler(sampler)
        notes.append(note)
        var request: GenerationRequest
        if let noiseFile {
            let noise = try NPY.load(noiseFile)
            guard noise.dtype == .float32, noise.shape == [prompts.count * perPrompt] + latentShape else {
                throw PipelineError("\(noiseFile): the initial latents must be float32 \([prompts.count * perPrompt] + latentShape), "
                                    + "got \(noise.dtype) \(noise.shape)")
            }
            request = GenerationRequest(sampler: kind, steps: steps, noise: noise)
        } else {
            request = GenerationRequest(sampler: kind, steps: steps, batchSize: prompts.count * perPrompt, sampleShape: latentShape)
        }
        request.seed = seed
        request.rng = rng
        request.eta = eta
        request.karrasSigmas = karras
        request.conditioning = Conditioning(context: repeated(sd.promptEmbeddings(prompts, clipSkip: clipSkip), perPrompt))
        if guidance > 1 {
            let negatives = negativePrompts.map { $0.count == 1 ? Array(repeating: $0[0], count: prompts.count) : $0 }
                ?? Array(repeating: "", count: prompts.count)
            // diffusers' encode_prompt embeds the negative prompts from the last hidden state
            // whatever clip_skip says; so does this, to generate what diffusers generates.
            request.unconditional = Conditioning(context: repeated(sd.promptEmbeddings(negatives), perPrompt))
            request.guidanceScale = guidance
            request.guidanceRescale = guidanceRescale
        } else {
            if negativePrompts != nil { notes.append("negative prompts apply only with guidance above 1 (as in diffusers); not used") }
            if guidance != 1 { notes.append("guidance \(guidance) is not above 1: the conditional model runs alone (as in diffusers)") }
        }
        try addPixelInputs(to: &request, size: size)
        let generation = try StableDiffusionPipeline(model: sd, schedulerConfig: config).prepare(firstChunk(of: request))
        return PreparedRun(model: stored, schedulerConfig: config, request: request, generation: generation, notes: notes,
                           samplesPerPrompt: perPrompt, chunkSize: chunkSize)
    }

    /// The image size [H, W]: the request's or the model's default, a multiple of the
    /// autoencoder's scale factor.
    private func imageSize(_ sd: StableDiffusionModel) throws -> [Int] {
        guard let size = (height.flatMap { h in width.map { [h, $0] } }) ?? sd.defaultImageSize.map({ [height ?? $0[0], width ?? $0[1]] }) else {
            throw PipelineError("unet/config.json gives no sample_size: give the height and width")
        }
        for (name, side) in zip(["height", "width"], size) where side % sd.vaeScaleFactor != 0 {
            throw PipelineError("the \(name) must be a multiple of \(sd.vaeScaleFactor) (the autoencoder's downsampling), got \(side)")
        }
        return size
    }

    /// Each of `n` rows of `t` [P, ...] repeated `times` times in a row: [P * times, ...]
    /// (diffusers' `num_images_per_prompt`, prompt-major).
    private func repeated(_ t: Tensor, _ times: Int) -> Tensor {
        guard times > 1 else { return t }
        let rest = Array(t.shape.dropFirst())
        return t.reshaped([t.shape[0], 1] + rest).expanded([t.shape[0], times] + rest).contiguous().reshaped([t.shape[0] * times] + rest)
    }

    /// The image inputs in pixels, checked against the size: image-to-image's image and
    /// strength, inpainting's image and binarised mask (white >= 128: generate).
    private func addPixelInputs(to request: inout GenerationRequest, size: [Int]) throws {
        let shape = [3] + size
        switch images {
        case .none:
            return
        case .upscale:
            throw PipelineError("Stable Diffusion pipelines here generate and edit; upscaling takes an SR3 model")
        case .imageToImage(let image, let strength):
            request.strength = strength
            request.pixelInputs = .init(image: try pixelImage(image, shape: shape, role: "initial image"))
        case .inpaint(let image, let mask, _):
            let pixels = try pixelImage(image, shape: shape, role: "image to inpaint")
            let m = try mask.decoded(role: "mask", channels: 1)
            guard [m.height, m.width] == size else {
                throw PipelineError("\(mask.name(role: "mask")): the mask is \(m.width)x\(m.height), but the image is \(size[1])x\(size[0])")
            }
            let binary = m.tensor(range: 0...1).reshaped([1, 1] + size) .>= 0.5
            request.pixelInputs = .init(image: pixels, mask: binary.to(.float32))
        }
    }

    /// A PNG of exactly the generated size as [1, 3, H, W] in [-1, 1] (not resized: the user
    /// sees the size they asked for).
    private func pixelImage(_ encoded: EncodedImage, shape: [Int], role: String) throws -> Tensor {
        let image = try encoded.decoded(role: role, channels: 3)
        guard [image.height, image.width] == Array(shape.dropFirst()) else {
            throw PipelineError("\(encoded.name(role: role)): the image is \(image.width)x\(image.height), but the request generates "
                                + "\(shape[2])x\(shape[1]) (give --width and --height, or an image of that size)")
        }
        return image.tensor().reshaped([1] + shape)
    }
}
