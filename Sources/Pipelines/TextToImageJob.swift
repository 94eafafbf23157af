import Diffusion
import Foundation
import ModelIO
import Models
import Tensors

/// `diffuse generate`'s flags as a library value: translated into a `SamplingRequest` with
/// prompts (`perPrompt` samples each, guidance against the empty caption), validated once,
/// run, and written as `SampleJob` writes them (one grid row per prompt).
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
        /// The validated run (request as tensors and sampler, built once).
        public let run: PreparedRun
    }

    /// The job as a `SamplingRequest`: the prompts, `perPrompt` samples each.
    public func request() -> SamplingRequest {
        var r = SamplingRequest(model: sampling.modelFolder, steps: sampling.steps)
        r.prompts = prompts
        r.batch = perPrompt
        r.classLabels = sampling.classLabels
        r.sampler = sampling.sampler
        r.eta = sampling.eta
        r.karras = sampling.karrasSigmas
        r.seed = sampling.seed
        r.rng = sampling.rng
        r.guidance = sampling.guidanceScale
        r.guidanceRescale = sampling.guidanceRescale
        return r
    }

    /// Checks the outputs, then validates the request once (`SamplingRequest.prepare`): the
    /// folder, the prompts and the request, before any model evaluation.
    public func prepare() throws -> Prepared {
        guard sampling.initImageFile == nil, sampling.maskFile == nil, sampling.lowResolutionFile == nil else {
            throw PipelineError("text-to-image generation takes prompts; class labels, a noise file, an initial image or a mask do not apply")
        }
        if sampling.requiresOutput && !prompts.isEmpty && perPrompt >= 1 { try sampling.checkOutputs() }
        let run = try request().prepare(in: sampling.store ?? ModelStore(), noiseFile: sampling.noiseFile)
        guard case .textToImage(let model) = run.model.network else { throw PipelineError("\(sampling.modelFolder) holds no text-to-image model") }
        return Prepared(model: model, pipeline: GenerationPipeline(model: model, schedulerConfig: run.schedulerConfig),
                        request: run.request, notes: run.notes, run: run)
    }

    /// Generates and writes the outputs (grid rows = prompts); returns the samples.
    @discardableResult
    public func run(log: (String) -> Void = { _ in }, onStep: ((GenerationStep) -> Void)? = nil) throws -> Tensor {
        let prepared = try prepare()
        prepared.notes.forEach(log)
        let samples = try prepared.run.run(onStep: onStep)
        var output = sampling
        output.gridColumns = output.gridColumns ?? perPrompt
        try output.write(samples, log: log)
        return samples
    }
}
