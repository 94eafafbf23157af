import Diffusion
import Foundation

/// What to generate, as one `Codable` value: the model, the prompts or class labels, the
/// sampler and its settings, the generator, the batch and the image inputs. Front ends (the
/// command-line tool, the HTTP server) only translate their input into it; `prepare(in:)`
/// validates it once into a `PreparedRun` (the model loaded, the request as tensors, the
/// sampler built), which `PreparedRun.run` executes.
///
/// JSON keys are snake_case; every field but `model` and `steps` may be left out (the
/// defaults below). Images travel as base64 PNG (`EncodedImage`).
public struct SamplingRequest: Codable, Equatable, Sendable {
    /// A bundled model's name (`BundledModel.names`), a diffusers model folder's path, or a
    /// single-file Stable Diffusion checkpoint's (`.safetensors`, CompVis/LDM layout).
    public var model: String
    /// A single-file checkpoint's architecture: a diffusers Stable Diffusion pipeline folder
    /// whose configs describe it (as diffusers' `from_single_file(..., config=)`); nil infers
    /// SD 1.x or 2.x from the file and takes the full-size configs (SD 2.x as v-prediction).
    public var modelConfig: String?
    /// Text-to-image: the prompts, each generated `batch` times (prompt-major order).
    public var prompts: [String]?
    /// Stable Diffusion: what to steer away from (classifier-free guidance against these
    /// instead of the empty prompt): one for every prompt, or one per prompt.
    public var negativePrompts: [String]?
    /// Stable Diffusion: take the text encoder's hidden state this many layers before the last
    /// (diffusers' `clip_skip`); nil: the last.
    public var clipSkip: Int?
    /// Class-conditional models: one label for the batch, or one per sample.
    public var classLabels: [Int]?
    /// The label the model was trained with for "no class" (for guidance); nil takes the last
    /// row of the class embedding (what `diffuse train --class-conditional` trains).
    public var nullClass: Int?
    /// The sampler; nil picks the one the model's scheduler_config.json names (DDPM without one).
    public var sampler: SamplerKind?
    /// Sampling steps (Heun evaluates the model 2 steps - 1 times).
    public var steps: Int
    /// DDIM's eta (0: deterministic). DDIM only.
    public var eta: Float = 0
    /// Karras sigmas for the sigma-space samplers; nil keeps the scheduler config's choice.
    public var karras: Bool?
    /// Classifier-free guidance scale (1: none) and rescale phi in [0, 1].
    public var guidance: Float = 1
    public var guidanceRescale: Float = 0
    /// Seed and kind of the generator (initial noise, and the stochastic samplers' noise).
    public var seed: UInt64 = 0
    public var rng: RandomSource = .philox
    /// Samples to generate (per prompt with prompts); nil: the noise's batch, or 1.
    public var batch: Int?
    /// Generate in chunks of at most this many samples (memory); chunk i draws from the
    /// generator seeded `seed + i`. nil: all at once.
    public var chunkSize: Int?
    /// The sample's height and width; nil takes the model's sample size. Checked against the
    /// model (its downsamplings and memory) before anything is allocated.
    public var height: Int?
    public var width: Int?
    /// The image the run starts from or is conditioned on.
    public var images: ImageInput = .none
    /// The type the networks compute in (bfloat16 only where the CPU has it; the samples
    /// are float32 either way).
    public var precision: ComputePrecision = .float32

    public init(model: String, steps: Int) { (self.model, self.steps) = (model, steps) }

    enum CodingKeys: String, CodingKey {
        case model, modelConfig = "model_config", prompts, negativePrompts = "negative_prompts", clipSkip = "clip_skip", classLabels = "class_labels", nullClass = "null_class", sampler, steps, eta, karras, guidance
        case guidanceRescale = "guidance_rescale", seed, rng, batch, chunkSize = "chunk_size", height, width, images, precision
    }

    /// Decodes a request, taking the defaults for absent fields and refusing unknown values of
    /// the enums (sampler, rng).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decode(String.self, forKey: .model)
        modelConfig = try c.decodeIfPresent(String.self, forKey: .modelConfig)
        steps = try c.decode(Int.self, forKey: .steps)
        prompts = try c.decodeIfPresent([String].self, forKey: .prompts)
        negativePrompts = try c.decodeIfPresent([String].self, forKey: .negativePrompts)
        clipSkip = try c.decodeIfPresent(Int.self, forKey: .clipSkip)
        classLabels = try c.decodeIfPresent([Int].self, forKey: .classLabels)
        nullClass = try c.decodeIfPresent(Int.self, forKey: .nullClass)
        sampler = try c.decodeIfPresent(SamplerKind.self, forKey: .sampler)
        eta = try c.decodeIfPresent(Float.self, forKey: .eta) ?? 0
        karras = try c.decodeIfPresent(Bool.self, forKey: .karras)
        guidance = try c.decodeIfPresent(Float.self, forKey: .guidance) ?? 1
        guidanceRescale = try c.decodeIfPresent(Float.self, forKey: .guidanceRescale) ?? 0
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? 0
        rng = try c.decodeIfPresent(RandomSource.self, forKey: .rng) ?? .philox
        batch = try c.decodeIfPresent(Int.self, forKey: .batch)
        chunkSize = try c.decodeIfPresent(Int.self, forKey: .chunkSize)
        height = try c.decodeIfPresent(Int.self, forKey: .height)
        width = try c.decodeIfPresent(Int.self, forKey: .width)
        images = try c.decodeIfPresent(ImageInput.self, forKey: .images) ?? .none
        precision = try c.decodeIfPresent(ComputePrecision.self, forKey: .precision) ?? .float32
    }

    /// The checks that need no model, made before any weights load.
    func checkSettings() throws {
        guard steps >= 1 else { throw PipelineError("the number of sampling steps must be at least 1, got \(steps)") }
        if let batch, batch < 1 { throw PipelineError("the batch size must be at least 1, got \(batch)") }
        if let chunkSize, chunkSize < 1 { throw PipelineError("the chunk size must be at least 1, got \(chunkSize)") }
        for (name, side) in [("height", height), ("width", width)] {
            if let side, side < 1 { throw PipelineError("the \(name) must be at least 1, got \(side)") }
        }
    }
}
