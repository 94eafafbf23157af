import Diffusion
import Foundation
import ModelIO
import Models
import Tensors

/// `diffuse generate`'s work: load a text-to-image pipeline folder (`TextToImageFolder`),
/// encode the prompts (refusing one longer than the text encoder's context), and generate
/// `perPrompt` samples per prompt with classifier-free guidance against the empty caption,
/// written as `SampleJob` writes them (one grid row per prompt).
public struct TextToImageJob: Sendable {
    /// The prompts, each generated `perPrompt` times (prompt-major order).
    public var prompts: [String]
    public var perPrompt: Int
    /// The model folder, sampler, steps, generator, guidance and outputs (its `batchSize`,
    /// class labels and noise file are not used).
    public var sampling: SampleJob

    public init(prompts: [String], perPrompt: Int, sampling: SampleJob) {
        (self.prompts, self.perPrompt, self.sampling) = (prompts, perPrompt, sampling)
    }

    /// The loaded model, the pipeline and the request, checked.
    public struct Prepared {
        public let model: TextToImageModel
        public let pipeline: GenerationPipeline<TextToImageModel>
        public let request: GenerationRequest
        public let notes: [String]
    }

    /// Loads and checks everything before any model evaluation: the folder, the prompts, the
    /// outputs and the request.
    public func prepare() throws -> Prepared {
        let folder = sampling.modelFolder
        guard !prompts.isEmpty else { throw PipelineError("no prompt: give at least one") }
        guard perPrompt >= 1 else { throw PipelineError("samples per prompt must be at least 1, got \(perPrompt)") }
        guard sampling.steps >= 1 else { throw PipelineError("the number of sampling steps must be at least 1, got \(sampling.steps)") }
        guard sampling.classLabels == nil, sampling.noiseFile == nil, sampling.initImageFile == nil, sampling.maskFile == nil else {
            throw PipelineError("text-to-image generation takes prompts; class labels, a noise file, an initial image or a mask do not apply")
        }
        guard TextToImageFolder.isTextToImage(folder) else {
            throw PipelineError("\(folder) is not a text-to-image pipeline folder (no text_encoder/config.json); "
                                + "train one with diffuse train --text-conditional")
        }
        if sampling.requiresOutput { try sampling.checkOutputs() }
        let model: TextToImageModel
        do { model = try TextToImageModel.load(folder: folder) } catch { throw PipelineError("\(error)") }
        model.eval()
        let prompted = prompts.flatMap { Array(repeating: $0, count: perPrompt) }
        let tokens: Tensor
        do { tokens = try model.tokens(prompted) } catch { throw PipelineError("prompt: \(error)") }
        var notes = ["model \(folder): text encoder + UNet2DConditionModel, \(model.parameterCount()) parameters, "
                     + "a vocabulary of \(model.tokenizer.vocabulary.count) words"]
        let unknown = Set(prompts.flatMap { WordTokenizer.tokens($0) }).subtracting(model.tokenizer.vocabulary).sorted()
        if !unknown.isEmpty { notes.append("words the model never saw (read as <unk>): \(unknown.joined(separator: ", "))") }
        let (config, kind, note) = try sampling.scheduler(besides: folder + "/unet")
        notes.append(note)
        guard let shape = model.defaultSampleShape else { throw PipelineError("\(folder)/unet/config.json gives no sample_size") }
        var request = GenerationRequest(sampler: kind, steps: sampling.steps, batchSize: prompted.count, sampleShape: shape)
        request.seed = sampling.seed
        request.rng = sampling.rng
        request.eta = sampling.eta
        request.karrasSigmas = sampling.karrasSigmas
        request.conditioning = Conditioning(tokens: tokens)
        request.unconditional = Conditioning(tokens: model.emptyCaption(batch: prompted.count))
        request.guidanceScale = sampling.guidanceScale
        request.guidanceRescale = sampling.guidanceRescale
        let pipeline = GenerationPipeline(model: model, schedulerConfig: config)
        try pipeline.validate(request)
        return Prepared(model: model, pipeline: pipeline, request: request, notes: notes)
    }

    /// Generates and writes the outputs (grid rows = prompts); returns the samples.
    @discardableResult
    public func run(log: (String) -> Void = { _ in }, onStep: ((GenerationStep) -> Void)? = nil) throws -> Tensor {
        let prepared = try prepare()
        prepared.notes.forEach(log)
        let samples = try prepared.pipeline.generate(prepared.request, onStep: onStep)
        var output = sampling
        output.gridColumns = output.gridColumns ?? perPrompt
        try output.write(samples, log: log)
        return samples
    }
}
