import Tensors

/// Inpainting by latent blending, for a model that takes no mask (diffusers'
/// StableDiffusionInpaintPipeline with a 4-channel U-Net): after every step the region to
/// keep is replaced by the known sample noised to the next timestep with the run's initial
/// noise (the known sample itself after the last step),
///
///     x_{i+1} = keep * noised(known, noise, i + 1) + (1 - keep) * step(x_i)
///
/// Any sampler walks it; unlike RePaint nothing is resampled, so it costs no extra
/// evaluations (and harmonises the seam less).
public struct BlendedSampler<Base: Sampler>: Sampler {
    public let base: Base
    /// The known sample [B or 1, C, H, W] and where to keep it ([B or 1, 1 or C, H, W], 1 = keep).
    public let known: Tensor
    public let keep: Tensor
    /// The initial noise of the run (what the kept region is noised with).
    public let noise: Tensor

    public init(_ base: Base, known: Tensor, keep: Tensor, noise: Tensor) {
        (self.base, self.known, self.keep, self.noise) = (base, known, keep, noise)
    }

    public var timesteps: [Double] { base.timesteps }
    public var initialNoiseSigma: Float { base.initialNoiseSigma }
    public var order: Int { base.order }
    public func makeState() -> Base.State { base.makeState() }
    public func modelInput(_ sample: Tensor, step: Int) -> Tensor { base.modelInput(sample, step: step) }
    public func noised(_ x0: Tensor, noise: Tensor, step: Int) -> Tensor { base.noised(x0, noise: noise, step: step) }

    public func step(_ modelOutput: Tensor, step i: Int, sample: Tensor, state: inout Base.State, generator: RandomGenerator) -> SamplerStep {
        let result = base.step(modelOutput, step: i, sample: sample, state: &state, generator: generator)
        let kept = i + 1 < timesteps.count ? base.noised(known, noise: noise, step: i + 1) : known
        return SamplerStep(sample: kept * keep + result.sample * (1 - keep), predictedOriginal: result.predictedOriginal)
    }
}

/// A `BlendedSampler` around any sampler.
public func blended(_ sampler: any Sampler, known: Tensor, keep: Tensor, noise: Tensor) -> any Sampler {
    func wrap<S: Sampler>(_ s: S) -> any Sampler { BlendedSampler(s, known: known, keep: keep, noise: noise) }
    return wrap(sampler)
}
