import Diffusion
import Foundation
import ImageIO
import ModelIO
import Models
import Tensors

extension SamplingRequest {
    /// Reads the image inputs into the request, checked against the sample shape: an image of
    /// another size is refused with both sizes, not resized (inpainting keeps its pixels exactly).
    func addImageInputs(to request: inout GenerationRequest) throws {
        let shape = request.sampleShape
        switch images {
        case .none:
            return
        case .upscale(let low, let factor):
            guard factor >= 1 else { throw PipelineError("the upscale factor must be at least 1, got \(factor)") }
            let name = low.name(role: "low-resolution image")
            let image = try low.decoded(role: "low-resolution image", channels: shape[0])
            guard image.height * factor == shape[1] && image.width * factor == shape[2] else {
                throw PipelineError("\(name): the image is \(image.width)x\(image.height), so x\(factor) makes "
                                    + "\(image.width * factor)x\(image.height * factor), but the model generates \(shape[2])x\(shape[1]) images "
                                    + "(give a \(shape[2] / factor)x\(shape[1] / factor) image, or another scale)")
            }
            let up = ConditioningImages.upsampled(image.tensor().reshaped([1, shape[0], image.height, image.width]), factor: factor)
            let batch = up.expanded([request.batchSize] + shape).contiguous()
            request.conditioning = request.conditioning ?? Conditioning()
            request.conditioning?.image = batch
            request.unconditional?.image = batch
        case .imageToImage(let image, let strength):
            request.strength = strength
            request.initImage = try initialImage(image, shape: shape).tensor
        case .inpaint(let image, let mask, let resampling):
            request.resampling = resampling
            let (initial, pixels) = try initialImage(image, shape: shape)
            request.initImage = initial
            let maskName = mask.name(role: "mask")
            let m = try mask.decoded(role: "mask", channels: 1)
            guard m.width == pixels.width && m.height == pixels.height else {
                throw PipelineError("\(maskName): the mask is \(m.width)x\(m.height), but the image \(image.name(role: "initial image")) is "
                                    + "\(pixels.width)x\(pixels.height)")
            }
            request.mask = m.tensor(range: 0...1).reshaped([1, 1, m.height, m.width])
        }
    }

    /// The initial image as [1] + shape, refused unless it has the sample's size.
    private func initialImage(_ encoded: EncodedImage, shape: [Int]) throws -> (tensor: Tensor, image: Image) {
        let image = try encoded.decoded(role: "initial image", channels: shape[0])
        guard [image.height, image.width] == Array(shape.dropFirst()) else {
            throw PipelineError("\(encoded.name(role: "initial image")): the image is \(image.width)x\(image.height), but the model generates "
                                + "\(shape[2])x\(shape[1]) images")
        }
        return (image.tensor().reshaped([1] + shape), image)
    }

    /// The checks of a text-to-image request before its model loads: prompts, and no input
    /// that does not apply.
    func checkTextToImage(folder: String, noiseFile: String?) throws {
        guard let prompts, !prompts.isEmpty else { throw PipelineError("no prompt: give at least one") }
        if let batch, batch < 1 { throw PipelineError("samples per prompt must be at least 1, got \(batch)") }
        guard classLabels == nil, noiseFile == nil, images == .none else {
            throw PipelineError("text-to-image generation takes prompts; class labels, a noise file, an initial image or a mask do not apply")
        }
        guard TextToImageFolder.isTextToImage(folder) else {
            throw PipelineError("\(folder) is not a text-to-image pipeline folder (no text_encoder/config.json); "
                                + "train one with diffuse train --text-conditional")
        }
    }

    /// Encodes the prompts (refusing one longer than the text encoder's context) and builds
    /// `batch` samples per prompt with guidance against the empty caption.
    func prepareTextToImage(_ model: TextToImageModel, stored: StoredModel, notes: [String]) throws -> PreparedRun {
        var notes = notes
        let perPrompt = batch ?? 1
        let prompted = (prompts ?? []).flatMap { Array(repeating: $0, count: perPrompt) }
        let tokens: Tensor
        do { tokens = try model.tokens(prompted) } catch { throw PipelineError("prompt: \(error)") }
        let unknown = Set((prompts ?? []).flatMap { WordTokenizer.tokens($0) }).subtracting(model.tokenizer.vocabulary).sorted()
        if !unknown.isEmpty { notes.append("words the model never saw (read as <unk>): \(unknown.joined(separator: ", "))") }
        let (config, kind, note) = try stored.scheduler(sampler)
        notes.append(note)
        let shape = try sampleShape(channels: model.unet.config.outChannels, modelShape: model.defaultSampleShape,
                                    configFile: stored.folder + "/unet/config.json")
        var request = GenerationRequest(sampler: kind, steps: steps, batchSize: prompted.count, sampleShape: shape)
        request.seed = seed
        request.rng = rng
        request.eta = eta
        request.karrasSigmas = karras
        request.conditioning = Conditioning(tokens: tokens)
        request.unconditional = Conditioning(tokens: model.emptyCaption(batch: prompted.count))
        request.guidanceScale = guidance
        request.guidanceRescale = guidanceRescale
        let generation = try GenerationPipeline(model: model, schedulerConfig: config).prepare(firstChunk(of: request))
        return PreparedRun(model: stored, schedulerConfig: config, request: request, generation: generation, notes: notes,
                           samplesPerPrompt: perPrompt, chunkSize: chunkSize)
    }
}
