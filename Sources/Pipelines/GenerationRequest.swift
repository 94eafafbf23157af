import Diffusion
import Tensors

/// What to generate: the sampler and its step count, the batch and sample shape, where the
/// noise comes from, and the conditioning and guidance. A plain value; the model and the
/// scheduler config live in `GenerationPipeline`.
public struct GenerationRequest: Sendable {
    /// The sampler (diffusers' scheduler) that walks the reverse process.
    public var sampler: SamplerKind
    /// Sampling steps. Heun evaluates the model 2 steps - 1 times, the others once per step.
    public var steps: Int
    /// DDIM's eta: 0 is deterministic DDIM, 1 the DDPM posterior variance. DDIM only.
    public var eta: Float = 0
    /// Karras et al. (2022) sigmas for the sigma-space samplers; nil keeps the scheduler config's choice.
    public var karrasSigmas: Bool? = nil
    /// Samples per batch.
    public var batchSize: Int = 1
    /// The shape of one sample, e.g. [C, H, W] for images.
    public var sampleShape: [Int]
    /// The initial noise x_T, shape [batchSize] + sampleShape, before it is scaled by the
    /// sampler's initial sigma; nil draws it from the generator, before any step draws.
    public var noise: Tensor? = nil
    /// Seed of the generator that draws the initial noise (when `noise` is nil) and the noise
    /// of the stochastic samplers (DDPM, DDIM with eta > 0, Euler ancestral, DPM-Solver++ SDE).
    public var seed: UInt64 = 0
    /// Which generator: Philox (counter based) or torch's CPU generator (diffusers' results).
    public var rng: RandomSource = .philox
    /// The conditioning of every sample (class labels, context), batch-sized; nil for none.
    public var conditioning: Conditioning? = nil
    /// The "no condition" inputs that classifier-free guidance contrasts with; needed when
    /// `guidanceScale` is not 1.
    public var unconditional: Conditioning? = nil
    /// Classifier-free guidance scale w: u + w (c - u). 1 runs the conditional model alone.
    public var guidanceScale: Float = 1
    /// Guidance rescale phi (Lin et al. 2023) in [0, 1]; 0 is plain guidance.
    public var guidanceRescale: Float = 0
    /// Image-to-image (SDEdit, Meng et al. 2022) and inpainting: the image to start from,
    /// [batchSize or 1] + sampleShape, in the model's space ([-1, 1] for images).
    public var initImage: Tensor? = nil
    /// How much of the reverse process runs on `initImage`, in (0, 1]: the run skips the first
    /// steps - Int(steps * strength) steps and starts from `initImage` noised to the first step
    /// it runs (diffusers' img2img). 1 starts from pure noise and ignores `initImage`, so it
    /// equals generating with the same seed.
    public var strength: Double = 1
    /// Inpainting: 1 where to generate, 0 where to keep `initImage`, shape [batchSize or 1,
    /// 1 or C, H, W] (values are binarised at 0.5). The kept pixels of the result are
    /// `initImage`'s exactly.
    public var mask: Tensor? = nil
    /// How inpainting resamples (RePaint's jumps).
    public var resampling = Resampling()
    /// A latent model's image inputs in pixel space, encoded by its autoencoder when the run
    /// starts (with the run's generator, in diffusers' order); nil for pixel-space models.
    public var pixelInputs: PixelInputs? = nil

    /// Images for a latent model, in pixels: the image [1 or batchSize, C, H, W] in [-1, 1],
    /// and for inpainting the mask [1 or batchSize, 1, H, W] (1 = generate, binarised).
    public struct PixelInputs: Sendable {
        public var image: Tensor
        public var mask: Tensor?
        public init(image: Tensor, mask: Tensor? = nil) { (self.image, self.mask) = (image, mask) }
    }

    /// RePaint's resampling schedule (Lugmayr et al. 2022): every `jumpLength` steps, go back
    /// up `jumpLength` steps, `samples - 1` times; samples 1 turns resampling off.
    public struct Resampling: Codable, Equatable, Sendable {
        public var jumpLength: Int = 10
        public var samples: Int = 10
        public init(jumpLength: Int = 10, samples: Int = 10) { (self.jumpLength, self.samples) = (jumpLength, samples) }
    }

    /// A request for `batchSize` samples of `sampleShape` from the generator's noise.
    public init(sampler: SamplerKind, steps: Int, batchSize: Int = 1, sampleShape: [Int]) {
        (self.sampler, self.steps, self.batchSize, self.sampleShape) = (sampler, steps, batchSize, sampleShape)
    }

    /// A request that starts from given noise [B, ...]: batch size and sample shape come from it.
    public init(sampler: SamplerKind, steps: Int, noise: Tensor) {
        self.init(sampler: sampler, steps: steps, batchSize: noise.shape.first ?? 0, sampleShape: Array(noise.shape.dropFirst()))
        self.noise = noise
    }

    /// The shape of the whole batch.
    public var batchShape: [Int] { [batchSize] + sampleShape }

    /// Refuses requests no model can run, with the reason. The step count is the sampler's
    /// to check (with the training timesteps it must not exceed) when it is built.
    public func validate() throws {
        guard batchSize >= 1 else { throw PipelineError("the batch size must be at least 1, got \(batchSize)") }
        guard !sampleShape.isEmpty, sampleShape.allSatisfy({ $0 >= 1 }) else {
            throw PipelineError("the sample shape must have positive sizes, got \(sampleShape)")
        }
        if let noise {
            guard noise.shape == batchShape else {
                throw PipelineError("the noise has shape \(noise.shape), but the request is for \(batchShape) (batch \(batchSize) of \(sampleShape))")
            }
            guard noise.dtype == .float32 || noise.dtype == .bfloat16 else {
                throw PipelineError("the noise must be floating point, got \(noise.dtype)")
            }
        }
        for (name, t) in [("noise", noise), ("initial image", initImage), ("mask", mask)] {
            if let problem = t.flatMap(Self.nonFiniteProblem) { throw PipelineError("the \(name) \(problem)") }
        }
        guard eta >= 0 else { throw PipelineError("eta must not be negative, got \(eta)") }
        guard eta == 0 || sampler == .ddim else { throw PipelineError("eta applies to the DDIM sampler only, not \(sampler.rawValue)") }
        guard guidanceScale.isFinite else { throw PipelineError("the guidance scale must be finite, got \(guidanceScale)") }
        guard (0...1).contains(guidanceRescale) else { throw PipelineError("the guidance rescale must be in [0, 1], got \(guidanceRescale)") }
        if guidanceScale != 1 {
            guard conditioning != nil else {
                throw PipelineError("classifier-free guidance (scale \(guidanceScale)) needs a condition (class labels, context or a caption) to guide toward")
            }
            guard unconditional != nil else {
                throw PipelineError("classifier-free guidance (scale \(guidanceScale)) needs the unconditional inputs (the null class, empty context or empty caption)")
            }
        }
        try validateImageInputs()
        for (name, c) in [("conditioning", conditioning), ("unconditional conditioning", unconditional)] {
            for (part, t) in [("class labels", c?.classLabels), ("context", c?.context), ("caption tokens", c?.tokens)] {
                if let t, t.shape.first != batchSize {
                    throw PipelineError("the \(name)'s \(part) have shape \(t.shape): one per sample of the batch of \(batchSize) is needed")
                }
            }
        }
    }
}

extension GenerationRequest {
    /// "holds 3 NaN or infinite values (the first at element 17)", or nil when all are finite:
    /// such inputs would only show as NaN samples and a black image.
    static func nonFiniteProblem(_ t: Tensor) -> String? {
        let n = t.nonFiniteCount
        guard n > 0 else { return nil }
        return "holds \(n) NaN or infinite value\(n == 1 ? "" : "s") (the first at element \(t.firstNonFiniteIndex ?? 0))"
    }

    /// The index of the first model evaluation that runs, for a sampler of `order` (diffusers'
    /// img2img: t_start = steps - min(Int(steps * strength), steps), times the order).
    public func firstEvaluation(order: Int) -> Int {
        guard strength < 1, initImage != nil else { return 0 }
        return (steps - Swift.min(Int(Double(steps) * strength), steps)) * order
    }

    /// `initImage` as a whole batch (a single image repeated).
    var initBatch: Tensor? {
        guard let image = initImage?.to(.float32) else { return nil }
        return image.shape[0] == batchSize ? image : image.expanded(batchShape)
    }

    /// `mask` binarised: true where to generate (values >= 0.5).
    var fillMask: Tensor? { mask.map { $0.to(.float32) .>= 0.5 } }

    /// Checks strength, initial image and mask against the request.
    func validateImageInputs() throws {
        guard strength > 0 && strength <= 1 else {
            throw PipelineError("the strength must be in (0, 1] (the share of the steps run on the initial image), got \(strength)")
        }
        guard let image = initImage else {
            if strength < 1 { throw PipelineError("a strength below 1 needs an initial image to start from") }
            if mask != nil { throw PipelineError("inpainting needs the image to inpaint (the initial image) beside the mask") }
            return
        }
        guard image.rank == sampleShape.count + 1, Array(image.shape.dropFirst()) == sampleShape,
              image.shape[0] == batchSize || image.shape[0] == 1 else {
            throw PipelineError("the initial image has shape \(image.shape), but the request is for \(batchShape) "
                                + "(batch \(batchSize) of \(sampleShape), or one image for the whole batch)")
        }
        if strength < 1 && Int(Double(steps) * strength) < 1 {
            throw PipelineError("strength \(strength) of \(steps) steps leaves no step to run; raise the strength or the steps")
        }
        if let mask {
            guard strength == 1 else { throw PipelineError("inpainting runs the whole reverse process: strength must be 1, got \(strength)") }
            let spatial = Array(sampleShape.dropFirst())
            guard mask.rank == image.rank, Array(mask.shape.suffix(spatial.count)) == spatial,
                  mask.shape[0] == 1 || mask.shape[0] == batchSize,
                  mask.shape[1] == 1 || mask.shape[1] == sampleShape[0] else {
                throw PipelineError("the mask has shape \(mask.shape), but the image is \(sampleShape) per sample: "
                                    + "a mask of [1 or \(batchSize), 1 or \(sampleShape[0])] + \(spatial) is needed")
            }
            guard resampling.jumpLength >= 1, resampling.samples >= 1 else {
                throw PipelineError("RePaint's jump length and resampling count must be at least 1, got \(resampling.jumpLength) and \(resampling.samples)")
            }
        }
    }
}

/// The random number generators a request can draw from.
public enum RandomSource: String, CaseIterable, Codable, Sendable {
    /// Philox 4x32-10: counter based, the same draws whatever the thread count.
    case philox
    /// PyTorch's CPU generator, bit for bit: `torch.Generator().manual_seed(seed)`, so that a
    /// seed gives diffusers' images. Its `randn` differs in the last bits between torch's
    /// AVX2 build and its AVX-512/default build, so this draws as torch on this CPU draws.
    case torch
    /// torch's generator as it draws on an AVX2-only CPU, whatever this CPU is: to repeat a
    /// run made there.
    case torchAVX2 = "torch-avx2"
    /// torch's generator as it draws on an AVX-512 CPU (or with ATEN_CPU_CAPABILITY=default).
    case torchAVX512 = "torch-avx512"

    /// The source that draws as torch did at a `torch.backends.cpu.get_cpu_capability()`
    /// value (what the fixtures record).
    public static func torch(capability: String) -> RandomSource {
        TorchGenerator.Kernel(torchCapability: capability) == .avx2 ? .torchAVX2 : .torchAVX512
    }

    /// A fresh generator seeded with `seed`.
    public func generator(seed: UInt64) -> RandomGenerator {
        switch self {
        case .philox: return PhiloxGenerator(seed: seed)
        case .torch: return TorchGenerator(seed: seed)
        case .torchAVX2: return TorchGenerator(seed: seed, kernel: .avx2)
        case .torchAVX512: return TorchGenerator(seed: seed, kernel: .scalar)
        }
    }
}

/// A request or input a pipeline refuses, with the reason.
public struct PipelineError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
