import ArgumentParser
import Diffusion
import Foundation
import Pipelines
import Tensors

/// The options every generating command shares (`sample`, `inpaint`, `upscale`, `generate`): the model, sampler,
/// noise, conditioning, guidance and outputs. `job(defaultSteps:)` turns them into a
/// `SampleJob`; `run(_:)` runs it with a progress line per step.
struct SamplingOptions: ParsableArguments {
    @Option(help: "A diffusers UNet2DModel folder (config.json, diffusion_pytorch_model.safetensors, scheduler_config.json), or a pipeline folder with unet/ (default: the bundled Fashion-MNIST model; upscale: the bundled SR3 model; generate: the bundled text-to-image model).")
    var model: String?

    @Option(help: "A bundled model by name, instead of --model.")
    var bundled: String?

    @Option(help: "The sampler: \(SamplerKind.allCases.map(\.rawValue).joined(separator: ", ")). Default: the one the scheduler config names (ddpm without one).")
    var sampler: SamplerKind?

    @Option(help: "Sampling steps (default: 20; inpaint: 50).")
    var steps: Int?

    @Option(help: "DDIM's eta: 0 deterministic, 1 DDPM-like noise (ddim only).")
    var eta: Float = 0

    @Flag(inversion: .prefixedNo, help: "Karras sigmas for the sigma-space samplers (default: as the scheduler config says).")
    var karras: Bool?

    @Option(help: "Samples to generate (default: the noise file's batch, or 64; inpaint: 1).")
    var batch: Int?

    @Option(help: "Generate in chunks of at most this many samples (bounds memory; chunk i uses seed + i).")
    var batchSize: Int?

    @Option(help: "Initial noise [B, C, H, W] as .npy (default: drawn from the generator).")
    var noise: String?

    @Option(help: "Seed of the generator (initial noise without --noise, and the stochastic samplers' noise).")
    var seed: UInt64 = 0

    @Option(help: "The generator: philox, or torch (torch's CPU generator, bit for bit, as torch draws on this CPU); torch-avx2 / torch-avx512 draw as torch does on that kind of CPU (their randn differs in the last bits).")
    var rng: RandomSource = .philox

    @Option(name: .customLong("class"), help: "Class label(s) for a class-conditional model: one for the batch, or one per sample, comma-separated.")
    var classLabels: ClassLabels?

    @Option(help: "The label the model was trained with for \"no class\" (needed by --guidance).")
    var nullClass: Int?

    @Option(help: "Classifier-free guidance scale (1: none; default 1, generate: 3).")
    var guidance: Float?

    @Option(help: "Guidance rescale phi in [0, 1] (Lin et al. 2023).")
    var guidanceRescale: Float = 0

    @Option(help: "Where to write the final samples (.npy, float32).")
    var outNpy: String?

    @Option(help: "Where to write the samples as one PNG grid (default: samples.png when no other output is given).")
    var out: String?

    @Option(help: "A folder for one PNG per sample (sample-0000.png, ...).")
    var outDir: String?

    @Option(help: "Threads (default: all cores).")
    var threads: Int?

    /// The job the options describe.
    func job(defaultSteps: Int, defaultBatch: Int, defaultOut: String, defaultModel: String = BundledModel.defaultName) throws -> SampleJob {
        try applyThreadsOption(threads)
        if model != nil && bundled != nil { throw ValidationError("give --model or --bundled, not both") }
        let folder = try model ?? BundledModel.folder(bundled ?? defaultModel)
        var job = SampleJob(modelFolder: folder, steps: steps ?? defaultSteps)
        job.sampler = sampler
        job.eta = eta
        job.karrasSigmas = karras
        job.batchSize = batch ?? (noise == nil ? defaultBatch : nil)
        job.chunkSize = batchSize
        job.noiseFile = noise
        job.seed = seed
        job.rng = rng
        job.classLabels = classLabels?.labels
        job.nullClass = nullClass
        job.guidanceScale = guidance ?? 1
        job.guidanceRescale = guidanceRescale
        job.samplesFile = outNpy
        job.gridFile = out ?? (outNpy == nil && outDir == nil ? defaultOut : nil)
        job.imagesFolder = outDir
        return job
    }

    /// Runs the job, printing what it loaded, a progress line per 2% of the steps, and the time.
    func run(_ job: SampleJob) throws {
        try report { try job.run(log: { print($0) }, onStep: $0) }
    }

    /// Runs a text-to-image job the same way.
    func run(_ job: TextToImageJob) throws {
        try report { try job.run(log: { print($0) }, onStep: $0) }
    }

    /// Runs `work` with a progress line per 2% of the steps, then prints the time.
    private func report(_ work: (@escaping (GenerationStep) -> Void) throws -> Void) throws {
        let start = DispatchTime.now().uptimeNanoseconds
        func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        try work { step in
            let every = Swift.max(step.count / 50, 1)
            guard step.index % every == 0 || step.index == step.count else { return }
            print(String(format: "step %d/%d  t=%g  %.2f s", step.index, step.count, step.timestep, elapsed()))
            fflush(nil)
        }
        print(String(format: "done in %.2f s", elapsed()))
    }
}

/// `--class 3` or `--class 1,2,3`.
struct ClassLabels: ExpressibleByArgument {
    let labels: [Int]

    init?(argument: String) {
        let parts = argument.split(separator: ",", omittingEmptySubsequences: false)
        let labels = parts.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard labels.count == parts.count else { return nil }
        self.labels = labels
    }
}

extension SamplerKind: ExpressibleByArgument {}
extension RandomSource: ExpressibleByArgument {}
