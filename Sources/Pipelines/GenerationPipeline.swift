import Diffusion
import Tensors

/// Generation from noise with any `Denoiser`: the sampling loop of diffusers' pipelines
/// (DDPMPipeline, DDIMPipeline, and the generic loop of its guided pipelines):
///
///     x = noise * init_noise_sigma
///     for each timestep t: x = sampler.step(model(scale_model_input(x, t), t, cond), t, x)
///
/// with the initial noise drawn first from the request's generator and every stochastic
/// step's noise after it from the same generator, in diffusers' order, so that
/// `rng: .torch` with seed K gives what diffusers gives with `torch.Generator().manual_seed(K)`.
/// With a guidance scale other than 1 the model is wrapped in `ClassifierFreeGuidance`.
public struct GenerationPipeline<Model: Denoiser> {
    /// The denoiser (a UNet2DModel, or any conditional model).
    public let model: Model
    /// The scheduler config the samplers are built from (diffusers' scheduler_config.json).
    public let schedulerConfig: SchedulerConfig

    public init(model: Model, schedulerConfig: SchedulerConfig) {
        (self.model, self.schedulerConfig) = (model, schedulerConfig)
    }

    /// The sampler a request runs, built from the scheduler config. With a mask it is RePaint,
    /// whose generated region steps as DDIM with the request's eta (DDPM: eta 1).
    public func sampler(for request: GenerationRequest) throws -> any Sampler {
        do {
            if let fill = request.fillMask, let image = request.initBatch, !inpaintsByItself(request) {
                guard request.sampler == .ddim || request.sampler == .ddpm else {
                    throw PipelineError("inpainting with RePaint steps as DDIM (with eta) or DDPM, not \(request.sampler.rawValue)")
                }
                let keep = 1 - fill.to(.float32)
                return try RePaintSampler(schedulerConfig, steps: request.steps, known: image, keep: keep,
                                          jumpLength: request.resampling.jumpLength, jumpSamples: request.resampling.samples,
                                          eta: request.sampler == .ddpm ? 1 : request.eta)
            }
            return try makeSampler(request.sampler, config: schedulerConfig, steps: request.steps,
                                   karras: request.karrasSigmas, eta: request.eta)
        } catch let e as DiffusionError {
            throw PipelineError("sampler \(request.sampler.rawValue): \(e.message)")
        }
    }

    /// Checks the request (and, for a `ValidatingDenoiser`, that the model can run it) without
    /// running anything: a bad request fails here, before any model evaluation.
    public func validate(_ request: GenerationRequest) throws {
        _ = try prepare(request)
    }

    /// Checks the request once and builds what runs it: the request as the model runs it
    /// (an inpainting model's mask channels added) and its sampler.
    public func prepare(_ request: GenerationRequest) throws -> PreparedGeneration {
        try request.validate()
        let request = withMaskChannels(request)
        if let checked = model as? any ValidatingDenoiser {
            try checked.validate(request, schedulerConfig: schedulerConfig)
        }
        return PreparedGeneration(request: request, sampler: try sampler(for: request))
    }

    /// Whether the model inpaints by itself: it takes a mask and a masked image beside the
    /// sample (C + 1 conditioning channels), as Stable Diffusion's inpainting U-Net does.
    func inpaintsByItself(_ request: GenerationRequest) -> Bool {
        guard request.mask != nil, let checked = model as? any ValidatingDenoiser else { return false }
        return checked.conditioningChannels == request.sampleShape[0] + 1
    }

    /// For an inpainting model, the request with the mask (1 = generate) and the masked image
    /// (the kept pixels, 0 where the mask is) as conditioning channels of both the conditional
    /// and the unconditional inputs (`ConditioningImages.maskChannels`); any other request as it is.
    func withMaskChannels(_ request: GenerationRequest) -> GenerationRequest {
        guard inpaintsByItself(request), let mask = request.fillMask, let image = request.initBatch else { return request }
        var r = request
        let channels = ConditioningImages.maskChannels(image: image, mask: mask.to(.float32))
        r.conditioning = request.conditioning ?? Conditioning()
        r.conditioning?.image = channels
        r.unconditional?.image = channels
        return r
    }

    /// Checks and runs the request (`prepare`, then `generate(_:)` of the prepared run).
    public func generate(_ request: GenerationRequest, onStep: ((GenerationStep) -> Void)? = nil) throws -> Tensor {
        try generate(prepare(request), onStep: onStep)
    }

    /// Runs a prepared request and returns the final samples, shape [batchSize] + sampleShape,
    /// in the model's space (images in [-1, 1]: see `postprocess`), through the denoising loop
    /// (`Sampler.denoise`). `onStep` sees every model evaluation; `isCancelled` is asked before
    /// each (a cancelled run throws `DenoisingCancelled`). With an initial image and a strength
    /// below 1 the run starts part way (SDEdit); with a mask it inpaints, and the kept pixels
    /// of the result are the initial image's.
    public func generate(_ prepared: PreparedGeneration, onStep: ((GenerationStep) -> Void)? = nil,
                         isCancelled: (() -> Bool)? = nil) throws -> Tensor {
        try generate(prepared, generator: prepared.request.rng.generator(seed: prepared.request.seed), onStep: onStep, isCancelled: isCancelled)
    }

    /// Runs a prepared request drawing from `generator` (a run that drew from it already, as a
    /// latent pipeline encoding its images does, passes it on): the initial noise unless the
    /// request holds it, then every stochastic step's noise.
    public func generate(_ prepared: PreparedGeneration, generator: RandomGenerator, onStep: ((GenerationStep) -> Void)? = nil,
                         isCancelled: (() -> Bool)? = nil) throws -> Tensor {
        let (request, sampler) = (prepared.request, prepared.sampler)
        let noise = request.noise?.to(.float32) ?? generator.normal(request.batchShape, mean: 0, std: 1)
        let first = request.firstEvaluation(order: sampler.order)
        let start = first == 0 ? noise * sampler.initialNoiseSigma : sampler.noised(request.initBatch!, noise: noise, step: first)
        let conditioning = request.conditioning
        let model = SampleTypedOutput(model: self.model)
        var result: Tensor
        if request.guidanceScale != 1, let unconditional = request.unconditional {
            let guided = ClassifierFreeGuidance(model, scale: request.guidanceScale, rescale: request.guidanceRescale,
                                                unconditional: unconditional)
            result = try sampler.denoise(from: start, firstStep: first, generator: generator, progress: onStep, isCancelled: isCancelled) { x, t in
                guided(x, timesteps: t, conditioning: conditioning)
            }
        } else {
            result = try sampler.denoise(from: start, firstStep: first, generator: generator, progress: onStep, isCancelled: isCancelled) { x, t in
                model(x, timesteps: t, conditioning: conditioning)
            }
        }
        if let fill = request.fillMask, let image = request.initBatch {
            result = Tensor.where(fill, result, image)
        }
        return result
    }
}

/// A denoiser's output in the sample's type: a network computing in bfloat16 hands the
/// sampler (and the guidance before it) float32, as the samples are.
struct SampleTypedOutput<Model: Denoiser>: Denoiser {
    let model: Model

    func callAsFunction(_ sample: Tensor, timesteps: Tensor, conditioning: Conditioning?) -> Tensor {
        let out = model(sample, timesteps: timesteps, conditioning: conditioning)
        return out.dtype == sample.dtype ? out : out.to(sample.dtype)
    }
}

/// A pipeline whatever its model's type: checks a request, runs a checked one (what a
/// `PreparedRun` needs of the model a store loaded).
public protocol PreparingPipeline {
    func prepare(_ request: GenerationRequest) throws -> PreparedGeneration
    func generate(_ prepared: PreparedGeneration, onStep: ((GenerationStep) -> Void)?, isCancelled: (() -> Bool)?) throws -> Tensor
}

extension GenerationPipeline: PreparingPipeline {}

/// A request checked against a model, with the sampler built for it: what
/// `GenerationPipeline.generate(_:)` runs.
public struct PreparedGeneration {
    /// The request as the model runs it (an inpainting model's mask channels added).
    public let request: GenerationRequest
    /// The sampler, built once from the scheduler config.
    public let sampler: any Sampler
}

/// What a pipeline reports after each model evaluation (the denoising loop's progress).
public typealias GenerationStep = DenoisingProgress

/// diffusers' image post-processing (`VaeImageProcessor.denormalize`): samples in [-1, 1] to
/// [0, 1] as (x / 2 + 0.5) clamped to [0, 1], as its pipelines do before `output_type` "pt",
/// "np" or "pil".
public func denormalize(_ samples: Tensor) -> Tensor {
    (samples * 0.5 + 0.5).clamped(min: 0, max: 1)
}
