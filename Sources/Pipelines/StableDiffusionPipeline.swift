import Diffusion
import Foundation
import Models
import Tensors

/// Latent diffusion with a Stable Diffusion pipeline's networks, as diffusers'
/// StableDiffusionPipeline, StableDiffusionImg2ImgPipeline and StableDiffusionInpaintPipeline
/// run it: the request's samples are latents [4, H/8, W/8]; its pixel inputs are encoded by
/// the autoencoder when the run starts, drawing from the run's generator in diffusers' order
/// (the image's latents, then the initial noise, then the masked image's latents); the U-Net
/// denoises through the one denoising loop; the autoencoder decodes each sample.
///
/// Inpainting: an inpainting U-Net (9 channels) sees [latents, mask, masked image latents];
/// any other U-Net inpaints by latent blending (`BlendedSampler`).
struct StableDiffusionPipeline: PreparingPipeline {
    let model: StableDiffusionModel
    let schedulerConfig: SchedulerConfig

    /// The denoising part: the U-Net over latents.
    var denoising: GenerationPipeline<UNet2DConditionModel> { GenerationPipeline(model: model.unet, schedulerConfig: schedulerConfig) }

    /// Checks the request against the U-Net with stand-ins (zeros) of the encoded inputs'
    /// shapes, and the autoencoder's memory, before anything runs; builds the sampler.
    func prepare(_ request: GenerationRequest) throws -> PreparedGeneration {
        var check = request
        let latent = request.sampleShape, batch = request.batchSize
        if let pixels = request.pixelInputs {
            if pixels.mask != nil {
                guard request.strength == 1 else { throw PipelineError("inpainting runs the whole reverse process: strength must be 1") }
                if model.inpaintsByItself {
                    let channels = Tensor.zeros([batch, model.latentChannels + 1] + latent.dropFirst())
                    check.conditioning?.image = channels
                    check.unconditional?.image = channels
                }
            } else {
                check.initImage = Tensor.zeros([1] + latent)
            }
        } else if model.inpaintsByItself {
            throw PipelineError("this pipeline's U-Net inpaints (9 input channels): give an image and a mask to inpaint")
        }
        let checked = try denoising.prepare(check)
        let (h, w) = (latent[1] * model.vaeScaleFactor, latent[2] * model.vaeScaleFactor)
        if !useTiling(height: h, width: w), let problem = MemoryBudget.shortfall(model.vae.decoderPeakBytes(batch: 1, height: latent[1], width: latent[2]),
                                                                                   for: "decoding a \(w)x\(h) image") {
            throw PipelineError(problem)
        }
        return PreparedGeneration(request: request, sampler: checked.sampler)
    }

    /// Whether the autoencoder decodes in tiles: when one image's decoder activations would
    /// not fit half the memory available.
    func useTiling(height: Int, width: Int) -> Bool {
        let bytes = model.vae.decoderPeakBytes(batch: 1, height: height / model.vaeScaleFactor, width: width / model.vaeScaleFactor)
        return bytes > MemoryBudget.availableBytes / 2
    }

    /// Encodes the pixel inputs, denoises, decodes: images [B, 3, H, W] in about [-1, 1].
    /// `onStep` previews x0 through a fixed linear map from latents to RGB (no decoder run).
    func generate(_ prepared: PreparedGeneration, onStep: ((GenerationStep) -> Void)?, isCancelled: (() -> Bool)?) throws -> Tensor {
        var request = prepared.request
        var sampler = prepared.sampler
        let generator = request.rng.generator(seed: request.seed)
        let batchShape = request.batchShape
        func batch(_ t: Tensor) -> Tensor { t.shape[0] == batchShape[0] ? t : t.expanded([batchShape[0]] + Array(t.shape.dropFirst())).contiguous() }
        if let pixels = request.pixelInputs {
            if let mask = pixels.mask {
                let imageLatents = model.inpaintsByItself ? nil : try model.vae.latents(of: pixels.image, generator: generator)
                let noise = request.noise ?? generator.normal(batchShape, mean: 0, std: 1)
                request.noise = noise
                let masked = pixels.image * (1 - mask)
                let maskedLatents = try model.vae.latents(of: masked, generator: generator)
                let latentMask = Self.latentMask(mask, factor: model.vaeScaleFactor)
                if let imageLatents {
                    sampler = blended(sampler, known: batch(imageLatents), keep: 1 - latentMask, noise: noise)
                } else {
                    let channels = Tensor.concatenate([batch(latentMask), batch(maskedLatents)], axis: 1)
                    request.conditioning = request.conditioning ?? Conditioning()
                    request.conditioning?.image = channels
                    request.unconditional?.image = channels
                }
            } else {
                request.initImage = batch(try model.vae.latents(of: pixels.image, generator: generator))
                request.noise = request.noise ?? generator.normal(batchShape, mean: 0, std: 1)
            }
            request.pixelInputs = nil
            model.vae.releaseDerivedForms()  // the encoder's, before the U-Net's steps
        }
        let preview = onStep.map { report in
            { (step: GenerationStep) in
                report(GenerationStep(index: step.index, count: step.count, timestep: step.timestep, sample: step.sample,
                                      predictedOriginal: step.predictedOriginal.map(Self.previewRGB)))
            }
        }
        let latents = try denoising.generate(PreparedGeneration(request: request, sampler: sampler), generator: generator,
                                             onStep: preview, isCancelled: isCancelled)
        // One network's kernel-ready weights at a time: the U-Net's go before the decoder
        // makes its own, and the decoder's before the next run's U-Net steps (each network
        // remakes them on its first call: a fraction of a second beside a step or a decode).
        model.unet.releaseDerivedForms()
        defer { model.vae.releaseDerivedForms() }
        return try decode(latents)
    }

    /// Decodes latents one sample at a time (the decoder's memory is one image's), in tiles
    /// when one image would not fit.
    func decode(_ latents: Tensor) throws -> Tensor {
        let (h, w) = (latents.shape[2] * model.vaeScaleFactor, latents.shape[3] * model.vaeScaleFactor)
        let tiled = useTiling(height: h, width: w)
        var images: [Tensor] = []
        for i in 0..<latents.shape[0] {
            let one = latents.sliced(axis: 0, start: i, end: i + 1).contiguous()
            images.append(tiled ? try model.vae.tiledDecode(model.vae.unscaled(one), tiling: VAETiling(model.vae.config))
                                : try model.vae.images(fromLatents: one))
        }
        return images.count == 1 ? images[0] : Tensor.concatenate(images, axis: 0)
    }

    /// The mask at the latents' size as diffusers resizes it (`interpolate`, nearest: pixel
    /// (f i, f j) for latent (i, j)).
    static func latentMask(_ mask: Tensor, factor: Int) -> Tensor {
        let (n, h, w) = (mask.shape[0], mask.shape[2] / factor, mask.shape[3] / factor)
        let values = mask.contiguous().scalars, (H, W) = (mask.shape[2], mask.shape[3])
        var out = [Float](repeating: 0, count: n * h * w)
        for b in 0..<n { for i in 0..<h { for j in 0..<w { out[(b * h + i) * w + j] = values[(b * H + i * factor) * W + j * factor] } } }
        return Tensor(out, shape: [n, 1, h, w])
    }

    /// A preview of latents [B, 4, h, w] as RGB [B, 3, h, w] in [-1, 1]: the fixed linear map
    /// from SD's latent channels to colour that preview tools use (an approximation of the
    /// decoder at 1/8 the size; other latent widths pass their first 3 channels).
    static func previewRGB(_ latents: Tensor) -> Tensor {
        guard latents.shape[1] == 4 else { return latents.sliced(axis: 1, start: 0, end: min(3, latents.shape[1])).contiguous() }
        let factors: [[Float]] = [[0.298, 0.207, 0.208], [0.187, 0.286, 0.173], [-0.158, 0.189, 0.264], [-0.184, -0.271, -0.473]]
        let channels = (0..<3).map { c in
            (0..<4).map { k in latents.sliced(axis: 1, start: k, end: k + 1) * factors[k][c] }.reduce(Tensor.zeros([latents.shape[0], 1] + Array(latents.shape.dropFirst(2))), +)
        }
        return Tensor.concatenate(channels, axis: 1).clamped(min: -1, max: 1)
    }
}
