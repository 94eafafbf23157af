import Diffusion
import Foundation
import ImageIO
import ModelIO
import Models
import Tensors

/// `diffuse sample`'s flags, as a library value: translated into a `SamplingRequest`
/// (`request()`, the noise file beside it), validated once (`prepare()`), run, and written as
/// the front end writes samples (.npy, a PNG grid, a PNG folder all or nothing), each
/// atomically. Every input is checked before the first model evaluation.
public struct SampleJob: Sendable {
    /// A diffusers UNet2DModel folder (config.json + diffusion_pytorch_model.safetensors), or a
    /// pipeline folder with `unet/` inside.
    public var modelFolder: String
    /// The sampler; nil picks the one the folder's scheduler_config.json names (DDPM without one).
    public var sampler: SamplerKind?
    /// Sampling steps.
    public var steps: Int
    /// DDIM's eta (0: deterministic).
    public var eta: Float = 0
    /// Karras sigmas for the sigma-space samplers; nil keeps the scheduler config's choice.
    public var karrasSigmas: Bool?
    /// Samples to generate; nil: the noise file's batch, or 1.
    public var batchSize: Int?
    /// A .npy file of initial noise [B, C, H, W]; nil draws it from the generator.
    public var noiseFile: String?
    /// Seed and kind of the generator (initial noise when there is no noise file, and the
    /// stochastic samplers' per-step noise).
    public var seed: UInt64 = 0
    public var rng: RandomSource = .philox
    /// Class labels: one for the whole batch, or one per sample. Class-conditional models only.
    public var classLabels: [Int]?
    /// The label the model was trained with for "no class" (for guidance); nil with guidance
    /// takes the last row of the model's class embedding (what `diffuse train
    /// --class-conditional` trains as the null class).
    public var nullClass: Int?
    /// Classifier-free guidance scale (1: none) and rescale.
    public var guidanceScale: Float = 1
    public var guidanceRescale: Float = 0
    /// Where to write the final samples [B, C, H, W] (float32 .npy, model space: [-1, 1] for images).
    public var samplesFile: String?
    /// Where to write the samples as one PNG grid, and a folder for one PNG per sample
    /// (`sample-0000.png`, ...); both as 8-bit images of the model space [-1, 1].
    public var gridFile: String?
    public var imagesFolder: String?
    /// Columns of the grid (nil: about square).
    public var gridColumns: Int?
    /// Generate in chunks of at most this many samples (memory); nil: all at once. Chunk i
    /// draws its noise from the generator seeded `seed + i`.
    public var chunkSize: Int?
    /// Image-to-image: a PNG to start from (the model's size), and the share of the steps to
    /// run on it, in (0, 1] (1: ignore the image, generate from noise).
    public var initImageFile: String?
    public var strength: Double = 1
    /// Inpainting: a PNG mask of the initial image's size, white (>= 128) where to generate,
    /// black where to keep the image; and RePaint's resampling.
    public var maskFile: String?
    public var resampling = GenerationRequest.Resampling()
    /// Super-resolution with an SR3 model: a PNG whose sides times `upscaleFactor` are the
    /// model's sample size; the model sees it upsampled (nearest) beside the sample.
    public var lowResolutionFile: String?
    public var upscaleFactor: Int = 4
    /// Whether `prepare()` insists on somewhere to write (false for callers that use the
    /// samples themselves, as `generate(count:batchSize:)` does).
    public var requiresOutput = true

    public init(modelFolder: String, steps: Int) {
        (self.modelFolder, self.steps) = (modelFolder, steps)
    }

    /// The store the job loads its model through; nil: a store of its own.
    public var store: ModelStore? = nil

    /// What the job loaded and built, ready to run.
    public struct Prepared {
        public let model: UNet2DModel
        public let pipeline: GenerationPipeline<UNet2DModel>
        public let request: GenerationRequest
        /// Facts worth telling the user (defaults taken, what was loaded).
        public let notes: [String]
        /// The validated run (request as tensors and sampler, built once).
        public let run: PreparedRun
    }

    /// The job's request: its flags as a `SamplingRequest` (image files read when prepared;
    /// the noise file stays the job's, passed to `prepare(in:noiseFile:)`).
    public func request() throws -> SamplingRequest {
        var r = SamplingRequest(model: modelFolder, steps: steps)
        r.sampler = sampler
        r.eta = eta
        r.karras = karrasSigmas
        r.batch = batchSize
        r.chunkSize = chunkSize
        r.seed = seed
        r.rng = rng
        r.classLabels = classLabels
        r.nullClass = nullClass
        r.guidance = guidanceScale
        r.guidanceRescale = guidanceRescale
        r.images = try imageInput()
        return r
    }

    /// The one image input the job's files describe.
    func imageInput() throws -> ImageInput {
        if let lowResolutionFile {
            guard initImageFile == nil && maskFile == nil else {
                throw PipelineError("super-resolution takes the low-resolution image alone: no initial image or mask beside it")
            }
            return .upscale(image: EncodedImage(file: lowResolutionFile), factor: upscaleFactor)
        }
        guard let initImageFile else {
            if maskFile != nil { throw PipelineError("a mask needs the image to inpaint beside it") }
            guard strength > 0 && strength <= 1 else {
                throw PipelineError("the strength must be in (0, 1] (the share of the steps run on the initial image), got \(strength)")
            }
            if strength < 1 { throw PipelineError("a strength below 1 needs an initial image to start from") }
            return .none
        }
        if let maskFile {
            guard strength == 1 else { throw PipelineError("inpainting runs the whole reverse process: strength must be 1, got \(strength)") }
            return .inpaint(image: EncodedImage(file: initImageFile), mask: EncodedImage(file: maskFile), resampling: resampling)
        }
        return .imageToImage(image: EncodedImage(file: initImageFile), strength: strength)
    }

    /// Checks the outputs, then validates the job's request once (`SamplingRequest.prepare`);
    /// throws with the reason on any input that cannot run.
    public func prepare() throws -> Prepared {
        if requiresOutput { try checkOutputs() }
        let run = try request().prepare(in: store ?? ModelStore(), noiseFile: noiseFile)
        guard case .unet(let model) = run.model.network else {
            throw PipelineError("\(modelFolder) is a text-to-image pipeline: generate from it with diffuse generate")
        }
        return Prepared(model: model, pipeline: GenerationPipeline(model: model, schedulerConfig: run.schedulerConfig),
                        request: run.request, notes: run.notes, run: run)
    }

    /// Loads the model folder and its scheduler config and picks the sampler (the job's, or
    /// the one the config names); checks the folder, the outputs and the step count first.
    public func loadModel() throws -> (model: UNet2DModel, schedulerConfig: SchedulerConfig, sampler: SamplerKind, notes: [String]) {
        if requiresOutput { try checkOutputs() }
        var settings = SamplingRequest(model: modelFolder, steps: steps)
        settings.batch = batchSize
        try settings.checkSettings()
        let store = self.store ?? ModelStore()
        let folder = try store.folder(for: modelFolder)
        if ModelStore.isTextToImage(folder) {
            throw PipelineError("\(modelFolder) is a text-to-image pipeline (it has text_encoder/): generate from it with "
                                + "diffuse generate --model \(modelFolder) --prompt TEXT")
        }
        let stored = try store.model(folder)
        guard case .unet(let model) = stored.network else { throw PipelineError("\(modelFolder) holds no UNet2DModel") }
        let (config, kind, note) = try stored.scheduler(sampler)
        return (model, config, kind, [stored.note, note])
    }

    /// Generates and writes the outputs; returns the final samples. `log` receives the notes
    /// and what was written, `onStep` every step.
    @discardableResult
    public func run(log: (String) -> Void = { _ in }, onStep: ((GenerationStep) -> Void)? = nil) throws -> Tensor {
        let samples: Tensor
        if let chunkSize, let total = batchSize, chunkSize < total {
            try checkOutputs()
            samples = try generate(count: total, batchSize: chunkSize, log: log) { done in
                log("\(done)/\(total) samples")
            }
        } else {
            let prepared = try prepare()
            prepared.notes.forEach(log)
            samples = try prepared.run.run(onStep: onStep)
        }
        try write(samples, log: log)
        return samples
    }

    /// Writes `samples` to every output the job names.
    public func write(_ samples: Tensor, log: (String) -> Void = { _ in }) throws {
        if let samplesFile {
            try NPY.save(samples, to: samplesFile)
            log("wrote \(samplesFile): samples \(samples.shape) float32")
        }
        guard gridFile != nil || imagesFolder != nil else { return }
        guard (1...4).contains(samples.shape[1]) else {
            throw PipelineError("samples with \(samples.shape[1]) channels cannot be written as PNG images (1 to 4 channels)")
        }
        let clamped = samples.clamped(min: -1, max: 1)
        if let gridFile {
            try Image.grid(clamped, columns: gridColumns).write(to: gridFile)
            log("wrote \(gridFile): a grid of \(samples.shape[0]) samples")
        }
        if let imagesFolder {
            try Self.writeAll(into: imagesFolder, names: (0..<samples.shape[0]).map { String(format: "sample-%04d.png", $0) }) { i, path in
                try Image(tensor: clamped.sliced(axis: 0, i..<(i + 1))).write(to: path)
            }
            log("wrote \(samples.shape[0]) PNG images into \(imagesFolder)")
        }
    }

    /// Writes a set of files into `folder` all or nothing: each is written by `write(index,
    /// path)` into a temporary folder inside `folder`, and only when every one is written are
    /// they renamed into place (renames need no space). On a failure (a full disk, say) the
    /// temporary folder is removed and `folder` keeps what it had.
    static func writeAll(into folder: String, names: [String], _ write: (Int, String) throws -> Void) throws {
        let fm = FileManager.default
        let temp = folder + "/.partial-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        do {
            try fm.createDirectory(atPath: temp, withIntermediateDirectories: false)
        } catch {
            throw PipelineError("\(folder): cannot write into the folder: \(ErrorText.describe(error))")
        }
        defer { try? fm.removeItem(atPath: temp) }
        do {
            for (i, name) in names.enumerated() { try write(i, temp + "/" + name) }
        } catch {
            throw PipelineError("\(folder): the images could not be written, none were kept: \(ErrorText.describe(error))")
        }
        for name in names where rename(temp + "/" + name, folder + "/" + name) != 0 {
            throw PipelineError("\(folder)/\(name): cannot move into place: \(ErrorText.system())")
        }
    }

    /// Refuses a job with nowhere to write, or an output whose folder does not exist, before
    /// any work.
    func checkOutputs() throws {
        guard samplesFile != nil || gridFile != nil || imagesFolder != nil else {
            throw PipelineError("nothing to write: give a .npy file, a PNG grid or a folder for the samples")
        }
        if let imagesFolder {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: imagesFolder, isDirectory: &isDirectory) {
                guard isDirectory.boolValue else { throw PipelineError("\(imagesFolder) is a file, not a folder for the images") }
            } else {
                do { try FileManager.default.createDirectory(atPath: imagesFolder, withIntermediateDirectories: true) } catch {
                    throw PipelineError("\(imagesFolder): cannot create the folder: \(ErrorText.describe(error))")
                }
            }
        }
        if let gridFile, !gridFile.lowercased().hasSuffix(".png") {
            throw PipelineError("\(gridFile): the grid is written as PNG, so its name must end in .png")
        }
        for path in [samplesFile, gridFile].compactMap({ $0 }) {
            let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory) else {
                throw PipelineError("\(path): the folder \(folder) does not exist")
            }
            guard isDirectory.boolValue else { throw PipelineError("\(path): \(folder) is a file, not a folder") }
        }
    }
}

extension SamplerKind {
    /// The sampler a diffusers scheduler config describes: its class, and for
    /// DPMSolverMultistepScheduler its solver order and algorithm; nil for other classes.
    public init?(schedulerConfig config: SchedulerConfig) {
        switch config.className {
        case "DDPMScheduler": self = .ddpm
        case "DDIMScheduler": self = .ddim
        case "DPMSolverMultistepScheduler":
            if config.algorithmType == "sde-dpmsolver++" {
                guard config.solverOrder == 2 else { return nil }
                self = .dpmSolverSDE2M
            } else {
                self = config.solverOrder == 1 ? .dpmSolver1 : config.solverOrder == 3 ? .dpmSolver3M : .dpmSolver2M
            }
        case "EulerDiscreteScheduler": self = .euler
        case "EulerAncestralDiscreteScheduler": self = .eulerAncestral
        case "HeunDiscreteScheduler": self = .heun
        default: return nil
        }
    }

    /// The diffusers scheduler class whose defaults this sampler takes when a folder has no
    /// scheduler_config.json.
    public var diffusersSchedulerClass: String {
        switch self {
        case .ddpm: return "DDPMScheduler"
        case .ddim: return "DDIMScheduler"
        case .dpmSolver1, .dpmSolver2M, .dpmSolver3M, .dpmSolverSDE2M: return "DPMSolverMultistepScheduler"
        case .euler: return "EulerDiscreteScheduler"
        case .eulerAncestral: return "EulerAncestralDiscreteScheduler"
        case .heun: return "HeunDiscreteScheduler"
        }
    }
}
