import Diffusion
import Foundation
import ModelIO
import Models
import Tensors

/// A `SamplingRequest` validated once against its model: the model, the request as tensors
/// (`GenerationRequest`) and the sampler, built once; `run` executes it through the one
/// denoising loop (`Sampler.denoise`). Every input was checked before the first model
/// evaluation.
public struct PreparedRun {
    /// The loaded model (kept by the store).
    public let model: StoredModel
    /// The scheduler config the sampler was built from.
    public let schedulerConfig: SchedulerConfig
    /// The request as tensors, as built from the `SamplingRequest`.
    public let request: GenerationRequest
    /// The request as the model runs it (its first chunk, when it runs in chunks), and its sampler.
    public let generation: PreparedGeneration
    /// Facts worth telling the user (defaults taken, what was loaded).
    public let notes: [String]
    /// Samples per grid row: the samples per prompt for text-to-image, nil otherwise.
    public let samplesPerPrompt: Int?

    /// Samples per chunk (the request's chunk size); nil: the whole batch at once.
    public let chunkSize: Int?

    /// Generates the samples [batch, C, H, W] in the model's space ([-1, 1]). `onStep` sees
    /// every model evaluation (with x0 where the sampler forms it); `isCancelled` is asked
    /// before each, and a cancelled run throws `DenoisingCancelled`. With a chunk size below
    /// the batch, chunk i (its samples' labels, prompts and images) runs with the generator
    /// seeded `seed + i`, so chunk 0 is what a run of that batch gives; `onChunk` gets the
    /// number of samples done after each chunk.
    public func run(onStep: ((GenerationStep) -> Void)? = nil, isCancelled: (() -> Bool)? = nil,
                    onChunk: ((Int) -> Void)? = nil) throws -> Tensor {
        guard let chunkSize, chunkSize < request.batchSize else {
            let samples = try execute(generation, onStep: onStep, isCancelled: isCancelled)
            onChunk?(request.batchSize)
            return samples
        }
        var parts: [Tensor] = []
        for (i, start) in stride(from: 0, to: request.batchSize, by: chunkSize).enumerated() {
            let count = Swift.min(chunkSize, request.batchSize - start)
            let chunk = Self.chunk(of: request, start: start, count: count, index: i)
            parts.append(try execute(i == 0 ? generation : prepare(chunk), onStep: onStep, isCancelled: isCancelled))
            onChunk?(start + count)
        }
        return Tensor.concatenate(parts, axis: 0)
    }

    /// One sample's shape [C, H, W].
    public var sampleShape: [Int] { request.sampleShape }

    /// Checks a chunk's request against the model and builds its sampler.
    private func prepare(_ chunk: GenerationRequest) throws -> PreparedGeneration {
        try model.pipeline(schedulerConfig).prepare(chunk)
    }

    /// Runs a checked request through the model's pipeline.
    private func execute(_ generation: PreparedGeneration, onStep: ((GenerationStep) -> Void)?, isCancelled: (() -> Bool)?) throws -> Tensor {
        try model.pipeline(schedulerConfig).generate(generation, onStep: onStep, isCancelled: isCancelled)
    }

    /// Samples start..<start + count of a request: every per-sample tensor sliced, the seed
    /// advanced by the chunk's index.
    static func chunk(of request: GenerationRequest, start: Int, count: Int, index: Int) -> GenerationRequest {
        let batch = request.batchSize
        func slice(_ t: Tensor?) -> Tensor? {
            guard let t, t.shape.first == batch else { return t }
            return t.sliced(axis: 0, start: start, end: start + count).contiguous()
        }
        func slice(_ c: Conditioning?) -> Conditioning? {
            c.map { Conditioning(classLabels: slice($0.classLabels), context: slice($0.context), image: slice($0.image), tokens: slice($0.tokens)) }
        }
        var r = request
        r.batchSize = count
        r.seed = request.seed &+ UInt64(index)
        r.noise = slice(request.noise)
        r.conditioning = slice(request.conditioning)
        r.unconditional = slice(request.unconditional)
        r.initImage = slice(request.initImage)
        r.mask = slice(request.mask)
        r.pixelInputs = request.pixelInputs.map { GenerationRequest.PixelInputs(image: slice($0.image)!, mask: slice($0.mask)) }
        return r
    }
}

extension StoredModel {
    /// The generation pipeline of the loaded network with `schedulerConfig`.
    func pipeline(_ schedulerConfig: SchedulerConfig) -> any PreparingPipeline {
        switch network {
        case .unet(let unet): return GenerationPipeline(model: unet, schedulerConfig: schedulerConfig)
        case .dit(let dit): return GenerationPipeline(model: dit, schedulerConfig: schedulerConfig)
        case .textToImage(let text): return GenerationPipeline(model: text, schedulerConfig: schedulerConfig)
        case .stableDiffusion(let sd): return StableDiffusionPipeline(model: sd, schedulerConfig: schedulerConfig)
        }
    }
}

extension SamplingRequest {
    /// Validates the request once: the settings, then the model (loaded through `store`, once
    /// per folder), the noise, the labels or prompts, the guidance and the image inputs, and
    /// what the model can run (shape, channels, memory); builds the sampler. `noiseFile` is
    /// the command line's `--noise`: a .npy file of initial noise [B, C, H, W] (not part of
    /// the Codable request, so that a request from the network never names a local file).
    public func prepare(in store: ModelStore, noiseFile: String? = nil) throws -> PreparedRun {
        let folder = try store.folder(for: model)
        if prompts == nil && (ModelStore.isTextToImage(folder) || ModelStore.isStableDiffusion(folder)) {
            let what = ModelStore.isTextToImage(folder) ? "pipeline (it has text_encoder/)" : "checkpoint (Stable Diffusion)"
            throw PipelineError("\(folder) is a text-to-image \(what): generate from it with "
                                + "diffuse generate --model \(folder) --prompt TEXT")
        }
        let latent = ModelStore.isStableDiffusion(folder)
        if prompts != nil && !latent { try checkTextToImage(folder: folder, noiseFile: noiseFile) }
        try checkSettings()
        let stored = try store.model(folder, config: modelConfig, precision: precision)
        var notes = [stored.note]
        if precision != stored.precision { notes.append(BFloat16Support.fallbackNote) }
        switch stored.network {
        case .stableDiffusion(let sd):
            return try prepareStableDiffusion(sd, stored: stored, notes: notes, noiseFile: noiseFile)
        case .unet(let unet):
            let (config, kind, note) = try stored.scheduler(sampler)
            notes.append(note)
            var nullClass: (label: Int, note: String)? = nil
            if let rows = unet.config.numClassEmbeds, unet.config.classEmbedType == nil {
                nullClass = (rows - 1, "null class \(rows - 1): the last row of the class embedding, as diffuse train --class-conditional makes it")
            }
            var request = try tensors(sampleChannels: unet.sampleChannels, modelShape: unet.defaultSampleShape, nullClass: nullClass,
                                      sampler: kind, noiseFile: noiseFile, notes: &notes)
            try addImageInputs(to: &request)
            let generation = try GenerationPipeline(model: unet, schedulerConfig: config).prepare(firstChunk(of: request))
            return PreparedRun(model: stored, schedulerConfig: config, request: request, generation: generation, notes: notes,
                               samplesPerPrompt: nil, chunkSize: chunkSize)
        case .dit(let dit):
            let (config, kind, note) = try stored.scheduler(sampler)
            notes.append(note)
            let null = dit.nullClassLabel
            var request = try tensors(sampleChannels: dit.config.inChannels, modelShape: dit.defaultSampleShape,
                                      nullClass: (null, "null class \(null): the DiT's num_embeds_ada_norm, its class table's last row"),
                                      sampler: kind, noiseFile: noiseFile, notes: &notes)
            try addImageInputs(to: &request)
            let generation = try GenerationPipeline(model: dit, schedulerConfig: config).prepare(firstChunk(of: request))
            return PreparedRun(model: stored, schedulerConfig: config, request: request, generation: generation, notes: notes,
                               samplesPerPrompt: nil, chunkSize: chunkSize)
        case .textToImage(let text):
            return try prepareTextToImage(text, stored: stored, notes: notes)
        }
    }

    /// The request, or its first chunk when it runs in chunks (memory is checked per chunk).
    func firstChunk(of request: GenerationRequest) -> GenerationRequest {
        guard let chunkSize, chunkSize < request.batchSize else { return request }
        return PreparedRun.chunk(of: request, start: 0, count: chunkSize, index: 0)
    }

    /// The sample shape: the model's, or the request's height and width.
    func sampleShape(channels: Int, modelShape: [Int]?, configFile: String) throws -> [Int] {
        if let height, let width { return [channels, height, width] }
        guard let shape = modelShape else {
            throw PipelineError("\(configFile) gives no sample_size: give the height and width (or the initial noise as a .npy file)")
        }
        return [channels, height ?? shape[1], width ?? shape[2]]
    }

    /// The request as tensors for a UNet2DModel or a DiT taking `sampleChannels`-channel samples
    /// (of `modelShape` by default): noise or batch and shape, generator, sampler settings, class
    /// labels, the null class (the request's, else the model's `nullClass`, noted when guidance
    /// takes it) and guidance.
    func tensors(sampleChannels: Int, modelShape: [Int]?, nullClass modelNullClass: (label: Int, note: String)?,
                 sampler kind: SamplerKind, noiseFile: String?, notes: inout [String]) throws -> GenerationRequest {
        var request: GenerationRequest
        if let noiseFile {
            let noise = try NPY.load(noiseFile)
            guard noise.dtype == .float32 else {
                throw PipelineError("\(noiseFile): the noise must be floating point, got \(noise.dtype)")
            }
            if let problem = GenerationRequest.nonFiniteProblem(noise) { throw PipelineError("\(noiseFile): the noise \(problem)") }
            guard noise.rank == 4 else {
                throw PipelineError("\(noiseFile): the noise must be [B, C, H, W], got shape \(noise.shape)")
            }
            if let batch, batch != noise.shape[0] {
                throw PipelineError("\(noiseFile) holds a batch of \(noise.shape[0]), but a batch of \(batch) was asked for")
            }
            request = GenerationRequest(sampler: kind, steps: steps, noise: noise)
            notes.append("noise \(noiseFile): shape \(noise.shape)")
        } else {
            guard modelShape != nil || (height != nil && width != nil) else {
                throw PipelineError("config.json gives no sample_size: pass the initial noise as a .npy file to set the sample shape")
            }
            let shape = try sampleShape(channels: sampleChannels, modelShape: modelShape, configFile: "config.json")
            request = GenerationRequest(sampler: kind, steps: steps, batchSize: batch ?? 1, sampleShape: shape)
        }
        request.seed = seed
        request.rng = rng
        request.eta = eta
        request.karrasSigmas = karras
        let batch = request.batchSize
        if let labels = classLabels {
            guard labels.count == 1 || labels.count == batch else {
                throw PipelineError("\(labels.count) class labels for a batch of \(batch): give one label, or one per sample")
            }
            let perSample = labels.count == 1 ? Array(repeating: labels[0], count: batch) : labels
            request.conditioning = Conditioning(classLabels: Tensor(integers: perSample))
        }
        var nullClass = self.nullClass
        if guidance != 1 && nullClass == nil, let modelNullClass {
            nullClass = modelNullClass.label
            notes.append(modelNullClass.note)
        }
        if let nullClass {
            request.unconditional = Conditioning(classLabels: Tensor(integers: Array(repeating: nullClass, count: batch)))
        }
        if guidance != 1 {
            guard classLabels != nil else { throw PipelineError("guidance (scale \(guidance)) needs class labels to guide toward") }
            guard nullClass != nil else {
                throw PipelineError("guidance (scale \(guidance)) needs the null class: the label the model was trained with for \"no class\"")
            }
        }
        request.guidanceScale = guidance
        request.guidanceRescale = guidanceRescale
        return request
    }
}
