import Diffusion
import Foundation
import ImageIO
import ModelIO
import Models
import Tensors

/// `diffuse sample`'s work, as a library call: load a diffusers UNet2DModel folder and its
/// scheduler config, build the request (noise from a .npy file or a seeded generator, class
/// labels, guidance), generate, and write the samples (.npy) and an image grid (PNG), each
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

    /// What the job loaded and built, ready to run.
    public struct Prepared {
        public let model: UNet2DModel
        public let pipeline: GenerationPipeline<UNet2DModel>
        public let request: GenerationRequest
        /// Facts worth telling the user (defaults taken, what was loaded).
        public let notes: [String]
    }

    /// Loads the model and the scheduler config and builds the request; throws with the reason
    /// on any input that cannot run.
    public func prepare() throws -> Prepared {
        let (model, config, kind, loadNotes) = try loadModel()
        var notes = loadNotes
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
            if let batchSize, batchSize != noise.shape[0] {
                throw PipelineError("\(noiseFile) holds a batch of \(noise.shape[0]), but a batch of \(batchSize) was asked for")
            }
            request = GenerationRequest(sampler: kind, steps: steps, noise: noise)
            notes.append("noise \(noiseFile): shape \(noise.shape)")
        } else {
            guard let shape = model.defaultSampleShape else {
                throw PipelineError("config.json gives no sample_size: pass the initial noise as a .npy file to set the sample shape")
            }
            request = GenerationRequest(sampler: kind, steps: steps, batchSize: batchSize ?? 1, sampleShape: shape)
        }
        request.seed = seed
        request.rng = rng
        request.eta = eta
        request.karrasSigmas = karrasSigmas
        let batch = request.batchSize
        if let labels = classLabels {
            guard labels.count == 1 || labels.count == batch else {
                throw PipelineError("\(labels.count) class labels for a batch of \(batch): give one label, or one per sample")
            }
            let perSample = labels.count == 1 ? Array(repeating: labels[0], count: batch) : labels
            request.conditioning = Conditioning(classLabels: Tensor(integers: perSample))
        }
        var nullClass = self.nullClass
        if guidanceScale != 1 && nullClass == nil, let rows = model.config.numClassEmbeds, model.config.classEmbedType == nil {
            nullClass = rows - 1
            notes.append("null class \(rows - 1): the last row of the class embedding, as diffuse train --class-conditional makes it")
        }
        if let nullClass {
            request.unconditional = Conditioning(classLabels: Tensor(integers: Array(repeating: nullClass, count: batch)))
        }
        if guidanceScale != 1 {
            guard classLabels != nil else { throw PipelineError("guidance (scale \(guidanceScale)) needs class labels to guide toward") }
            guard nullClass != nil else {
                throw PipelineError("guidance (scale \(guidanceScale)) needs the null class: the label the model was trained with for \"no class\"")
            }
        }
        request.guidanceScale = guidanceScale
        request.guidanceRescale = guidanceRescale
        try addImageInputs(to: &request)
        let pipeline = GenerationPipeline(model: model, schedulerConfig: config)
        try pipeline.validate(request)
        return Prepared(model: model, pipeline: pipeline, request: request, notes: notes)
    }

    /// Loads the model folder and its scheduler config and picks the sampler (the job's, or
    /// the one the config names); checks the folder, the outputs and the step count first.
    public func loadModel() throws -> (model: UNet2DModel, schedulerConfig: SchedulerConfig, sampler: SamplerKind, notes: [String]) {
        var notes: [String] = []
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: modelFolder, isDirectory: &isDirectory) else {
            throw PipelineError("\(modelFolder): no such folder")
        }
        guard isDirectory.boolValue else { throw PipelineError("\(modelFolder) is a file, not a diffusers model folder") }
        if FileManager.default.fileExists(atPath: modelFolder + "/text_encoder") {
            throw PipelineError("\(modelFolder) is a text-to-image pipeline (it has text_encoder/): generate from it with "
                                + "diffuse generate --model \(modelFolder) --prompt TEXT")
        }
        let unetFolder = FileManager.default.fileExists(atPath: modelFolder + "/config.json") ? modelFolder : modelFolder + "/unet"
        guard FileManager.default.fileExists(atPath: unetFolder + "/config.json") else {
            throw PipelineError("\(modelFolder) has no config.json (nor unet/config.json): not a diffusers UNet2DModel folder")
        }
        if requiresOutput { try checkOutputs() }
        // The cheap checks first, before the weights load.
        guard steps >= 1 else { throw PipelineError("the number of sampling steps must be at least 1, got \(steps)") }
        if let batchSize, batchSize < 1 { throw PipelineError("the batch size must be at least 1, got \(batchSize)") }
        let model = try UNet2DModel.load(folder: modelFolder)
        model.eval()
        notes.append("model \(unetFolder): UNet2DModel, \(model.parameterCount()) parameters")

        let (config, kind, note) = try scheduler(besides: unetFolder)
        notes.append(note)
        return (model, config, kind, notes)
    }

    /// The scheduler config beside a model folder (its own, or the pipeline's scheduler/) and
    /// the sampler: the job's, or the one the config names; diffusers' defaults without one.
    func scheduler(besides unetFolder: String) throws -> (SchedulerConfig, SamplerKind, note: String) {
        guard let found = try DiffusersFolder.schedulerConfig(unetFolder) else {
            let kind = sampler ?? .ddpm
            let config = SchedulerConfig(className: kind.diffusersSchedulerClass)
            return (config, kind, "no scheduler_config.json in \(unetFolder): using diffusers' \(config.className) defaults"
                    + (sampler == nil ? " and the DDPM sampler" : ""))
        }
        guard let kind = sampler ?? SamplerKind(schedulerConfig: found) else {
            throw PipelineError("the scheduler config names \(found.className), which has no sampler here; choose one with the sampler option")
        }
        return (found, kind, "scheduler config: \(found.className)" + (sampler == nil ? ", sampler \(kind.rawValue)" : ""))
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
            samples = try prepared.pipeline.generate(prepared.request, onStep: onStep)
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
            throw PipelineError("\(folder)/\(name): cannot move into place: \(String(cString: strerror(errno)))")
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
