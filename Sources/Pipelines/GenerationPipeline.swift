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
        _ = try checked(request)
    }

    /// The checks of `validate`, returning what passed them: the request as the model runs it
    /// (an inpainting model's mask channels added) and its sampler.
    func checked(_ request: GenerationRequest) throws -> (request: GenerationRequest, sampler: any Sampler) {
        try request.validate()
        let request = withMaskChannels(request)
        if let checked = model as? any ValidatingDenoiser {
            try checked.validate(request, schedulerConfig: schedulerConfig)
        }
        return (request, try sampler(for: request))
    }

    /// Whether the model inpaints by itself: it takes a mask and a masked image beside the
    /// sample (C + 1 conditioning channels), as Stable Diffusion's inpainting U-Net does.
    func inpaintsByItself(_ request: GenerationRequest) -> Bool {
        guard request.mask != nil, let checked = model as? any ValidatingDenoiser else { return false }
        return checked.conditioningChannels == request.sampleShape[0] + 1
    }

    /// For an inpainting model, the request with the mask (1 = generate) and the masked image
    /// (the kept pixels, 0 where the mask is) as conditioning channels of both the conditional
    /// and the unconditional inputs; any other request as it is.
    func withMaskChannels(_ request: GenerationRequest) -> GenerationRequest {
        guard inpaintsByItself(request), let mask = request.fillMask, let image = request.initBatch else { return request }
        var r = request
        let spatial = Array(request.sampleShape.dropFirst())
        let fill = mask.to(.float32)
        let oneChannel = fill.shape[1] == 1 ? fill : fill.max(axes: [1], keepDims: true)
        let maskBatch = oneChannel.expanded([request.batchSize, 1] + spatial).contiguous()
        let channels = Tensor.concatenate([maskBatch, image * (1 - fill)], axis: 1)
        r.conditioning = request.conditioning ?? Conditioning()
        r.conditioning?.image = channels
        r.unconditional?.image = channels
        return r
    }

    /// Runs the request and returns the final samples, shape [batchSize] + sampleShape, in the
    /// model's space (images in [-1, 1]: see `postprocess`). `onStep` sees every step.
    /// With an initial image and a strength below 1 the run starts part way (SDEdit); with a
    /// mask it inpaints, and the kept pixels of the result are the initial image's.
    public func generate(_ request: GenerationRequest, onStep: ((GenerationStep) -> Void)? = nil) throws -> Tensor {
        let (request, sampler) = try checked(request)
        let generator = request.rng.generator(seed: request.seed)
        let noise = request.noise?.to(.float32) ?? generator.normal(request.batchShape, mean: 0, std: 1)
        let first = request.firstEvaluation(order: sampler.order)
        let start = first == 0 ? noise * sampler.initialNoiseSigma : sampler.noised(request.initBatch!, noise: noise, step: first)
        let conditioning = request.conditioning
        var result: Tensor
        if request.guidanceScale != 1, let unconditional = request.unconditional {
            let guided = ClassifierFreeGuidance(model, scale: request.guidanceScale, rescale: request.guidanceRescale,
                                                unconditional: unconditional)
            result = Self.denoise(sampler, from: start, firstStep: first, generator: generator, onStep: onStep) { x, t in
                guided(x, timesteps: t, conditioning: conditioning)
            }
        } else {
            result = Self.denoise(sampler, from: start, firstStep: first, generator: generator, onStep: onStep) { x, t in
                model(x, timesteps: t, conditioning: conditioning)
            }
        }
        if let fill = request.fillMask, let image = request.initBatch {
            result = Tensor.where(fill, result, image)
        }
        return result
    }

    /// The loop itself from x (already scaled or noised for step `firstStep`): per timestep
    /// the model on the sampler's scaled input and the sampler's step (its state kept across
    /// steps).
    static func denoise<S: Sampler>(_ sampler: S, from start: Tensor, firstStep: Int = 0, generator: RandomGenerator,
                                    onStep: ((GenerationStep) -> Void)?, model: (Tensor, Tensor) -> Tensor) -> Tensor {
        var x = start
        var state = sampler.makeState()
        let batch = start.shape[0]
        let timesteps = sampler.timesteps
        for i in firstStep..<timesteps.count {
            let t = timesteps[i]
            let output = model(sampler.modelInput(x, step: i), Tensor.full([batch], Float(t)))
            let result = sampler.step(output, step: i, sample: x, state: &state, generator: generator)
            x = result.sample
            onStep?(GenerationStep(index: i + 1 - firstStep, count: timesteps.count - firstStep, timestep: t, sample: x,
                                   predictedOriginal: result.predictedOriginal))
        }
        return x
    }
}

/// What a pipeline reports after each step (for progress bars and previews).
public struct GenerationStep {
    /// Steps done so far, 1...count.
    public let index: Int
    /// Model evaluations in the run (the sampler's timesteps: Heun's 2 N - 1 for N steps).
    public let count: Int
    /// The timestep the model was evaluated at.
    public let timestep: Double
    /// The sample after the step.
    public let sample: Tensor
    /// The step's estimate of the clean sample x0, where the sampler forms one.
    public let predictedOriginal: Tensor?
}

/// diffusers' image post-processing (`VaeImageProcessor.denormalize`): samples in [-1, 1] to
/// [0, 1] as (x / 2 + 0.5) clamped to [0, 1], as its pipelines do before `output_type` "pt",
/// "np" or "pil".
public func denormalize(_ samples: Tensor) -> Tensor {
    (samples * 0.5 + 0.5).clamped(min: 0, max: 1)
}
