import Diffusion
import Foundation
import Models
import NeuralNetworks
import Tensors

/// Everything that decides a training run, saved as `training_config.json` in the run
/// directory and inside every checkpoint, so that `diffuse train --resume` needs nothing else.
///
/// Class conditioning: with `classConditional`, the model gets an embedding table of
/// `numClasses + 1` rows (`num_class_embeds`). Rows 0..<numClasses are the data's classes; row
/// `numClasses` is the "null" class that a label becomes with probability `labelDropout` in
/// training, so the same model predicts unconditionally when given it. Classifier-free guidance
/// then samples with `--class K --null-class numClasses --guidance S`.
///
/// DiT runs (`dit` set: `model` is a `DiTPreset` or a DiTTransformer2DModel config.json) follow
/// diffusers' DiT: `num_embeds_ada_norm` = numClasses, and the class tables have one more row,
/// the null class (label numClasses), the same convention. An unconditional DiT run has
/// `num_embeds_ada_norm` 1 and always gets the null class (label 1): diffusers'
/// DiTTransformer2DModel always takes class labels, and with the null class a guided sampler
/// (diffusers' DiTPipeline guides by default) contrasts the null class with itself, which
/// changes nothing, instead of contrasting a trained row with an untrained one.
public struct TrainingConfiguration: Codable, Equatable, Sendable {
    /// The data set: a name `Datasets.load` knows (e.g. "fashion-mnist") or a path.
    public var data: String
    /// Use only the first `limit` images (nil: all).
    public var limit: Int?
    /// Resize the data's images to this side / convert to this many channels when loading
    /// (nil: as the data comes).
    public var dataSize: Int?
    public var dataChannels: Int?
    /// The model as the user named it: a preset (`ModelPreset`) or a `config.json` path.
    public var model: String
    /// The resolved UNet2DModel config (sample size, channels and class embeddings filled in).
    /// Unused by a DiT run (`dit` set), where it keeps the defaults.
    public var unet: UNet2DConfig
    /// The resolved DiTTransformer2DModel config of a DiT run (sample size, channels and class
    /// table filled in); nil for U-Net runs. With learned sigma (out_channels = 2 in_channels)
    /// the trainer learns the prediction half only: the loss never sees the variance half, which
    /// keeps its initial weights. Samplers here, and diffusers' DiTPipeline, use the prediction
    /// half alone; DDPM with a learned variance_type would read the untrained half, so the run's
    /// scheduler config keeps a fixed variance.
    public var dit: DiTTransformer2DConfig?
    /// Image side and channels, from the data.
    public var imageSize: Int
    public var channels: Int
    /// Classes of the data (nil: unlabeled data).
    public var numClasses: Int?

    /// The noise schedule: diffusers' `beta_schedule`, T, and first/last beta.
    public var betaSchedule: SchedulerConfig.BetaSchedule = .linear
    public var numTrainTimesteps: Int = 1000
    public var betaStart: Double = 0.0001
    public var betaEnd: Double = 0.02
    /// What the model learns to predict.
    public var predictionType: PredictionType = .epsilon
    /// Min-SNR-gamma loss weighting (Hang et al. 2023; 5 is the paper's choice); nil: plain MSE.
    public var minSNRGamma: Double?

    /// Images per step.
    public var batchSize: Int = 64
    /// Peak learning rate of AdamW.
    public var learningRate: Double = 1e-4
    /// Linear warm-up from 0 over this many steps (diffusers' `lr_warmup_steps`).
    public var warmupSteps: Int = 500
    /// What follows the warm-up: constant, or a half cosine down to 0 at `totalSteps`.
    public var lrSchedule: LRScheduleKind = .constant
    /// Optimizer steps of the whole run.
    public var totalSteps: Int
    /// AdamW's decoupled weight decay and betas (diffusers' train_unconditional defaults).
    public var weightDecay: Double = 1e-6
    public var adamBeta1: Double = 0.95
    public var adamBeta2: Double = 0.999
    public var adamEpsilon: Double = 1e-8
    /// Keep an exponential moving average of the weights (diffusers' `EMAModel` with warm-up,
    /// inv_gamma 1, power 3/4, as train_unconditional): it is the model that checkpoints
    /// save as the main model and that samples.
    public var useEMA: Bool = true
    /// The EMA's maximum decay.
    public var emaDecay: Double = 0.9999
    /// EMA warm-up power (decay = 1 - (1 + step)^-power, capped at `emaDecay`).
    public var emaPower: Double = 0.75
    /// Clip the gradients' global 2-norm to this (nil: no clipping).
    public var clipNorm: Double? = 1
    /// Seeds the weights, the data order, the flips, the timesteps and the noise.
    public var seed: UInt64 = 0
    /// Compute convolutions and matmuls in bfloat16 (float32 master weights).
    public var bf16: Bool = false
    /// Flip images horizontally at random.
    public var horizontalFlip: Bool = false
    /// Write a sample grid and the loss curve every this many steps (0: never).
    public var sampleEvery: Int = 1000
    /// Write a checkpoint every this many steps (0: only at the end and on interrupt).
    public var checkpointEvery: Int = 1000
    /// Train with class labels (see the type's documentation).
    public var classConditional: Bool = false
    /// Probability that a label is replaced by the null class in training.
    public var labelDropout: Double = 0.1
    /// What the model learns beyond denoising (nil: plain generation): super-resolution or
    /// inpainting, conditioned on image channels appended to the sample.
    public var task: TrainingTask?
    /// Super-resolution: how much the conditioning image is downsampled (nil: 4).
    public var superResolutionFactor: Int?
    /// Text-to-image: the tokenizer, text encoder and caption settings. With it the run
    /// trains a `TextToImageModel`: the text encoder and the cross-attention version of `unet`
    /// (`conditionUNet`), jointly.
    public var text: TextConditioning?

    /// The U-Net of a text-to-image run: `unet` with its attention blocks cross-attending to
    /// the text encoder's vectors (nil for other runs).
    public var conditionUNet: UNet2DConditionConfig? {
        text.map { UNet2DConditionConfig(crossAttentionVersionOf: unet, crossAttentionDim: $0.encoder.hiddenSize) }
    }

    /// `task`, plain generation when unset.
    public var taskKind: TrainingTask { task ?? .generation }
    /// `superResolutionFactor`, 4 when unset.
    public var superResolutionScale: Int { superResolutionFactor ?? 4 }

    /// How the learning rate moves after the warm-up.
    public enum LRScheduleKind: String, Codable, Sendable, CaseIterable {
        case constant, cosine
    }

    enum CodingKeys: String, CodingKey {
        case data, limit, dataSize = "data_size", dataChannels = "data_channels", model, unet, dit, imageSize = "image_size", channels, numClasses = "num_classes"
        case betaSchedule = "beta_schedule", numTrainTimesteps = "num_train_timesteps", betaStart = "beta_start", betaEnd = "beta_end"
        case predictionType = "prediction_type", minSNRGamma = "min_snr_gamma", batchSize = "batch_size"
        case learningRate = "learning_rate", warmupSteps = "warmup_steps", lrSchedule = "lr_schedule", totalSteps = "total_steps"
        case weightDecay = "weight_decay", adamBeta1 = "adam_beta1", adamBeta2 = "adam_beta2", adamEpsilon = "adam_epsilon"
        case useEMA = "use_ema", emaDecay = "ema_decay", emaPower = "ema_power", clipNorm = "clip_norm", seed, bf16
        case horizontalFlip = "horizontal_flip", sampleEvery = "sample_every", checkpointEvery = "checkpoint_every"
        case classConditional = "class_conditional", labelDropout = "label_dropout"
        case task, superResolutionFactor = "super_resolution_factor", text
    }

    /// A configuration for `model` (a preset name or a config.json path) on data of the given
    /// shape; the other fields keep their defaults.
    public init(data: String, model: String, imageSize: Int, channels: Int, numClasses: Int? = nil,
                classConditional: Bool = false, totalSteps: Int) throws {
        self.data = data
        self.model = model
        self.imageSize = imageSize
        self.channels = channels
        self.numClasses = numClasses
        self.classConditional = classConditional
        self.totalSteps = totalSteps
        unet = UNet2DConfig()
        try resolveModel()
    }

    /// Fills `unet` (or `dit`) from `model`: the preset's config, or the config.json file (a
    /// UNet2DModel or a DiTTransformer2DModel config, told apart by `_class_name`), with the
    /// data's size and channels and (class-conditional) numClasses + 1 class embeddings.
    public mutating func resolveModel() throws {
        dit = nil
        if let preset = DiTPreset(rawValue: model) {
            try resolveDiT(preset.configuration(size: imageSize, channels: channels, classes: 1))
            return
        }
        if (model.hasSuffix(".json") || FileManager.default.fileExists(atPath: model)) && DiTTransformer2DConfig.describesDiT(configFile: model) {
            let config: DiTTransformer2DConfig
            do { config = try DiTTransformer2DConfig.load(model) } catch { throw TrainingError("model config \(error)") }
            try resolveDiT(config)
            return
        }
        var classes: Int? = nil
        if classConditional {
            guard let n = numClasses, n >= 1 else {
                throw TrainingError("class conditioning needs labeled data; \(data) has no labels")
            }
            classes = n + 1
        }
        defer { unet.inChannels = channels + taskKind.conditioningChannels(imageChannels: channels) }
        if let preset = ModelPreset(rawValue: model) {
            unet = preset.configuration(size: imageSize, channels: channels, classEmbeddings: classes)
        } else if model.hasSuffix(".json") || FileManager.default.fileExists(atPath: model) {
            do { unet = try UNet2DConfig.load(model) } catch { throw TrainingError("model config \(error)") }
            unet.sampleSize = imageSize
            unet.inChannels = channels
            unet.outChannels = channels
            unet.classEmbedType = nil
            unet.numClassEmbeds = classes
        } else {
            throw TrainingError("model '\(model)' is neither a preset (\(Self.presetNames.joined(separator: ", "))) nor a config.json file")
        }
    }

    /// The model presets, U-Net then DiT.
    public static var presetNames: [String] { ModelPreset.allCases.map(\.rawValue) + DiTPreset.allCases.map(\.rawValue) }

    /// Sets `dit` from `config` with the data's size and channels (twice the channels out when
    /// the config learns sigma) and the class table: numClasses (+ the null class) for a
    /// class-conditional run, 1 (+ the null class) otherwise.
    private mutating func resolveDiT(_ config: DiTTransformer2DConfig) throws {
        if classConditional {
            guard let n = numClasses, n >= 1 else {
                throw TrainingError("class conditioning needs labeled data; \(data) has no labels")
            }
        }
        var c = config
        let learnsSigma = config.resolvedOutChannels == 2 * config.inChannels
        c.sampleSize = imageSize
        c.inChannels = channels
        c.outChannels = learnsSigma ? 2 * channels : channels
        c.numEmbedsAdaNorm = classConditional ? numClasses : 1
        dit = c
    }

    /// The scheduler config the model trains with (and that checkpoints save): a
    /// DDPMScheduler config with this schedule and prediction type.
    public var schedulerConfig: SchedulerConfig {
        var s = SchedulerConfig(className: "DDPMScheduler")
        s.betaSchedule = betaSchedule
        s.numTrainTimesteps = numTrainTimesteps
        s.betaStart = betaStart
        s.betaEnd = betaEnd
        s.predictionType = predictionType
        return s
    }

    /// The learning-rate multipliers by step.
    public var learningRateSchedule: LearningRateSchedule {
        switch lrSchedule {
        case .constant: return warmupSteps > 0 ? .constantWithWarmup(warmupSteps: warmupSteps) : .constant
        case .cosine: return .cosine(warmupSteps: warmupSteps, totalSteps: totalSteps)
        }
    }

    /// The class-embedding row that means "no class" (class-conditional runs).
    public var nullClass: Int? { classConditional ? numClasses : nil }

    /// Refuses settings no run can use, naming the field, the value and what is expected.
    public func validate() throws {
        func check(_ ok: Bool, _ message: @autoclosure () -> String) throws {
            if !ok { throw TrainingError(message()) }
        }
        try validateSettings()
        do { try schedulerConfig.validate() } catch { throw TrainingError("noise schedule: \(error)") }
        if let dit { return try validateDiT(dit) }
        do { try unet.validate() } catch { throw TrainingError("model \(model): \(error)") }
        let halvings = Swift.max(unet.blockOutChannels.count - 1, 0)
        try check(imageSize % (1 << halvings) == 0,
                  "model \(model) halves the resolution \(halvings) times, so the image side must divide by \(1 << halvings); the data's is \(imageSize)")
        if classConditional {
            try check(numClasses != nil, "class conditioning needs labeled data; \(data) has no labels")
        }
        if task == .superResolution {
            let f = superResolutionScale
            guard f >= 2 && imageSize % f == 0 else {
                throw TrainingError(field: "super_resolution_factor", "must be at least 2 and divide the image side \(imageSize), got \(f)")
            }
        }
        if let text {
            try check(!classConditional, "a run conditions on text or on class labels, not both")
            try text.validate()
            let u = conditionUNet!
            try check(u.downBlockTypes.contains { $0.hasPrefix("CrossAttn") } || u.midBlockType == "UNetMidBlock2DCrossAttn",
                      "model \(model) has no attention blocks, so nothing would attend to the text: choose one with attention (e.g. small)")
            do { try u.validate() } catch { throw TrainingError("model \(model) with cross-attention: \(error)") }
        }
        let expected = channels + taskKind.conditioningChannels(imageChannels: channels)
        try check(unet.inChannels == expected && unet.outChannels == channels,
                  "the model takes \(unet.inChannels) channels and predicts \(unet.outChannels); \(taskKind.rawValue) of "
                  + "\(channels)-channel images needs \(expected) in and \(channels) out")
    }

    /// The checks of a DiT run: its config, the patch size against the image side, the
    /// channels and class table against the data, and no task or text (a DiT here generates
    /// from noise, optionally conditioned on a class).
    private func validateDiT(_ dit: DiTTransformer2DConfig) throws {
        do { try dit.validate() } catch { throw TrainingError("model \(model): \(error)") }
        guard imageSize % dit.patchSize == 0 else {
            throw TrainingError(field: "patch_size", "\(dit.patchSize) (model \(model)) must divide the image side \(imageSize)")
        }
        guard dit.sampleSize == imageSize else {
            throw TrainingError(field: "sample_size", "\(dit.sampleSize) (model \(model)) must be the image side \(imageSize)")
        }
        guard dit.inChannels == channels && (dit.resolvedOutChannels == channels || dit.resolvedOutChannels == 2 * channels) else {
            throw TrainingError(field: "out_channels", "model \(model) takes \(dit.inChannels) channels and predicts \(dit.resolvedOutChannels); "
                                + "\(channels)-channel images need \(channels) in and \(channels) out (\(2 * channels) with learned sigma)")
        }
        let classes = classConditional ? numClasses : 1
        guard dit.numEmbedsAdaNorm == classes else {
            throw TrainingError(field: "num_embeds_ada_norm", "\(dit.numEmbedsAdaNorm.map(String.init) ?? "null") (model \(model)); "
                                + (classConditional ? "the data has \(numClasses ?? 0) classes" : "an unconditional run has 1 (and the null class)"))
        }
        guard taskKind == .generation else {
            throw TrainingError(field: "task", "\(taskKind.rawValue) needs conditioning channels, which a DiT does not take: "
                                + "train it with a U-Net preset (\(ModelPreset.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        guard text == nil else {
            throw TrainingError("a DiT conditions on class labels, not on text: text-to-image runs train a U-Net")
        }
    }

    /// Refuses numbers no run can use (NaN, infinity, out of range), naming the field and the
    /// value: the checks of `validate` that need neither the data nor the model, so that a
    /// front end can run them before it loads anything. Errors carry the field
    /// (`TrainingError.field`).
    public func validateSettings() throws {
        func check(_ ok: Bool, _ field: String, _ problem: @autoclosure () -> String) throws {
            if !ok { throw TrainingError(field: field, problem()) }
        }
        try check(totalSteps >= 1, "total_steps", "must be at least 1, got \(totalSteps)")
        try check(batchSize >= 1, "batch_size", "must be at least 1, got \(batchSize)")
        try check(learningRate > 0 && learningRate.isFinite, "learning_rate", "must be positive and finite, got \(learningRate)")
        try check(warmupSteps >= 0, "warmup_steps", "must be at least 0, got \(warmupSteps)")
        try check(weightDecay >= 0 && weightDecay.isFinite, "weight_decay", "must be finite and at least 0, got \(weightDecay)")
        try check(weightDecay * learningRate < 1, "weight_decay",
                  "times the learning rate must be below 1 (AdamW scales the weights by 1 - lr x wd each step), got \(weightDecay) x \(learningRate)")
        try check((0..<1).contains(adamBeta1), "adam_beta1", "must be in [0, 1), got \(adamBeta1)")
        try check((0..<1).contains(adamBeta2), "adam_beta2", "must be in [0, 1), got \(adamBeta2)")
        try check(adamEpsilon > 0 && adamEpsilon.isFinite, "adam_epsilon", "must be positive and finite, got \(adamEpsilon)")
        try check(emaDecay > 0 && emaDecay < 1, "ema_decay", "must be in (0, 1), got \(emaDecay)")
        try check(emaPower > 0 && emaPower.isFinite, "ema_power", "must be positive and finite, got \(emaPower)")
        if let c = clipNorm { try check(c > 0 && c.isFinite, "clip_norm", "must be positive and finite, got \(c)") }
        if let g = minSNRGamma { try check(g > 0 && g.isFinite, "min_snr_gamma", "must be positive and finite, got \(g)") }
        try check(sampleEvery >= 0, "sample_every", "must be at least 0, got \(sampleEvery)")
        try check(checkpointEvery >= 0, "checkpoint_every", "must be at least 0, got \(checkpointEvery)")
        try check((0..<1).contains(labelDropout), "label_dropout", "must be in [0, 1), got \(labelDropout)")
        try check(numTrainTimesteps >= 2, "num_train_timesteps", "must be at least 2, got \(numTrainTimesteps)")
        if betaSchedule != .squaredCosCapV2 {
            try check(betaStart > 0 && betaStart < 1, "beta_start", "must be in (0, 1), got \(betaStart)")
            try check(betaEnd > 0 && betaEnd < 1, "beta_end", "must be in (0, 1), got \(betaEnd)")
        }
        if let limit { try check(limit >= 1, "limit", "must be at least 1, got \(limit)") }
        if let f = superResolutionFactor { try check(f >= 2, "super_resolution_factor", "must be at least 2, got \(f)") }
        if let text { try TextConditioning.validate(captionDropout: text.captionDropout) }
    }

    /// Reads a `training_config.json`.
    public static func load(_ path: String) throws -> TrainingConfiguration {
        let bytes: Data
        do { bytes = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw TrainingError("\(path): cannot read: \(ErrorText.describe(error))")
        }
        do {
            let config = try JSONDecoder().decode(TrainingConfiguration.self, from: bytes)
            try config.validate()
            return config
        } catch let e as TrainingError {
            throw TrainingError("\(path): \(e.message)")
        } catch {
            throw TrainingError("\(path): not a valid training configuration: \(ErrorText.describe(error))")
        }
    }

    /// Writes it as pretty JSON with sorted keys, atomically.
    public func save(_ path: String) throws {
        try writeAtomically(try JSONCoding.encode(self), to: path)
    }
}

/// JSON encoding as the run directory's files use it.
enum JSONCoding {
    static func encode<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try encoder.encode(value)
    }
}

/// Writes `data` to `path` through a temporary file in the same folder and a rename, so a
/// reader sees the old file or the new one, never a part.
func writeAtomically(_ data: Data, to path: String) throws {
    do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
        throw TrainingError("\(path): cannot write: \(ErrorText.describe(error))")
    }
}
