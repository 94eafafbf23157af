import ArgumentParser
import Diffusion
import Foundation
import Pipelines
import Tensors

/// The options every generating command shares (`sample`, `inpaint`, `upscale`, `generate`): the model, sampler,
/// noise, conditioning, guidance and outputs. `request(defaultSteps:defaultBatch:)` translates
/// them into the one `SamplingRequest`, `outputs(defaultOut:)` says where the samples go, and
/// `run(_:outputs:)` prepares, runs and writes it.
struct SamplingOptions: ParsableArguments {
    @Option(help: "A diffusers UNet2DModel or DiTTransformer2DModel folder (config.json, diffusion_pytorch_model.safetensors, scheduler_config.json), or a pipeline folder with unet/ or transformer/ (default: the bundled Fashion-MNIST model; upscale: the bundled SR3 model; generate: the bundled text-to-image model).")
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

    @Flag(help: "Compute in bfloat16 where the CPU has it (avx512_bf16 or amx_bf16; weights rounded to bf16 at load, float32 samples); elsewhere float32, with a note.")
    var bf16 = false

    /// The request the options describe (the command adds its image input or prompts).
    func request(defaultSteps: Int, defaultBatch: Int, defaultModel: String = BundledModel.defaultName) throws -> SamplingRequest {
        try applyThreadsOption(threads)
        if model != nil && bundled != nil { throw ValidationError("give --model or --bundled, not both") }
        var r = SamplingRequest(model: try model ?? BundledModel.folder(bundled ?? defaultModel), steps: steps ?? defaultSteps)
        r.sampler = sampler
        r.eta = eta
        r.karras = karras
        r.batch = batch ?? (noise == nil ? defaultBatch : nil)
        r.chunkSize = batchSize
        r.seed = seed
        r.rng = rng
        r.classLabels = classLabels?.labels
        r.nullClass = nullClass
        r.guidance = guidance ?? 1
        r.guidanceRescale = guidanceRescale
        r.precision = bf16 ? .bfloat16 : .float32
        return r
    }

    /// Where the samples go; `defaultOut` (a PNG grid) when no output is named.
    func outputs(defaultOut: String) -> SampleOutputs {
        SampleOutputs(samplesFile: outNpy, gridFile: out ?? (outNpy == nil && outDir == nil ? defaultOut : nil), imagesFolder: outDir)
    }

    /// Checks the outputs, validates the request once (with `--noise`), runs it with a
    /// progress line per 2% of the model evaluations (and per chunk), and writes the samples
    /// (a text-to-image grid has one row per prompt).
    func run(_ request: SamplingRequest, outputs: SampleOutputs) throws {
        try outputs.check()
        let run = try request.prepare(in: ModelStore(), noiseFile: noise)
        run.notes.forEach { print($0) }
        let total = run.request.batchSize
        let chunked = run.chunkSize.map { $0 < total } ?? false
        let start = DispatchTime.now().uptimeNanoseconds
        func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        let samples = try run.run(onStep: { step in
            let every = Swift.max(step.count / 50, 1)
            guard step.index % every == 0 || step.index == step.count else { return }
            print(String(format: "step %d/%d  t=%g  %.2f s", step.index, step.count, step.timestep, elapsed()))
            fflush(nil)
        }, onChunk: { done in
            if chunked { print("\(done)/\(total) samples"); fflush(nil) }
        })
        print(String(format: "done in %.2f s", elapsed()))
        try outputs.write(samples, gridColumns: run.samplesPerPrompt) { print($0) }
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
