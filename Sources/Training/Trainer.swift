import Datasets
import Diffusion
import Foundation
import Models
import NeuralNetworks
import Tensors

/// Trains a denoiser (Ho et al. 2020, Algorithm 1), one optimizer step at a time: a
/// UNet2DModel, a DiTTransformer2DModel (its prediction half with learned sigma), or for a
/// text-to-image run a `TextToImageModel` (text encoder and U-Net together):
///
///     x0 = next batch;  t ~ U{0..T-1};  eps ~ N(0, I)
///     x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps
///     loss = w(t) |model([x_t, c], t, y) - target|^2   (target eps, x0 or v; w: min-SNR;
///                                                       c: the task's conditioning image;
///                                                       y: class label or caption tokens)
///     g = grad loss;  clip |g| to clipNorm;  AdamW step at lr(step);  EMA update
///
/// The randomness of step k comes per image: the image at place j of the step's (global)
/// batch draws its timestep, noise, dropped label or caption and inpainting mask from a Philox
/// generator seeded with a pure function of (seed, k, j), and the batches come from a
/// `DataLoader` whose position is saved: a run resumed from a checkpoint takes exactly the
/// steps an uninterrupted run takes, bit for bit.
///
/// Data-parallel (a `ProcessGroup` of K ranks under mpirun): `batchSize` is the global batch;
/// rank r trains on slice r of it (`batchSize / K` images, the loader's shard r), draws the
/// randomness of those places, and the ranks average their gradients and losses (MPI
/// all-reduce, in buckets) before clipping and the optimizer step, which every rank then takes
/// identically. So K ranks take the steps one process takes with the same global batch (up to
/// float rounding in the sums), and a run can resume with another K.
public final class Trainer {
    public private(set) var configuration: TrainingConfiguration
    /// The data, captioned as the run's text settings say.
    public let dataset: ImageDataset
    /// The network trained: a UNet2DModel, a DiTTransformer2DModel, or a TextToImageModel for
    /// a text-to-image run.
    public let model: Module & Denoiser
    public let optimizer: Adam
    /// The moving average of the weights (nil without EMA).
    public let ema: ExponentialMovingAverage?
    public private(set) var loader: DataLoader
    public let objective: DiffusionObjective
    /// Optimizer steps taken.
    public private(set) var step = 0
    /// The loss of every step taken, step 1 first.
    public private(set) var losses: [Float] = []
    /// An exponential moving average of the loss (factor `lossSmoothing`), bias-corrected.
    public private(set) var smoothedLoss: Double = .nan
    private var smoothingSum = 0.0, smoothingWeight = 0.0
    /// How much of the previous smoothed loss each step keeps.
    public static let lossSmoothing = 0.98

    /// Token ids of every image's caption, image i at i * contextLength (text-to-image runs).
    private let captionTokens: [Int]
    /// The ranks this trainer shares its steps with (nil: one process).
    public let group: ProcessGroup?
    /// Packs gradients into the all-reduce buckets (data-parallel runs).
    private var buckets: GradientBuckets?
    /// Whether any rank asked to stop at the last step (`trainStep(stopRequested:)`).
    public private(set) var stopRequested = false
    /// Compare the weights across ranks every this many steps (and at every checkpoint).
    public var checksumEvery = 100
    /// The 2-norm of the last step's (averaged) gradients before clipping: measured when
    /// clipping, or when `measuresGradientNorm` (a training log asks for it); else nil.
    public private(set) var lastGradientNorm: Float?
    public var measuresGradientNorm = false
    /// The learning rate of the last step (the schedule's).
    public var learningRate: Double { optimizer.learningRate }

    /// A fresh run: weights initialised from the seed, the loader at the first batch. With
    /// `group`, this process is one rank of a data-parallel run.
    public init(configuration: TrainingConfiguration, dataset: ImageDataset, group: ProcessGroup? = nil) throws {
        try configuration.validate()
        if let group, configuration.batchSize % group.size != 0 {
            throw TrainingError(field: "batch_size", "\(configuration.batchSize) (the global batch) does not divide among \(group.size) "
                                + "processes: choose a multiple of \(group.size)")
        }
        self.group = group
        let dataset = try configuration.text?.captioned(dataset) ?? dataset
        try Self.check(dataset, fits: configuration)
        self.configuration = configuration
        self.dataset = dataset
        captionTokens = try Self.tokens(of: dataset, configuration.text)
        model = try Self.makeModel(configuration, generator: PhiloxGenerator(seed: configuration.seed))
        // bf16 only where the CPU computes it natively: elsewhere it would add conversions and rounding.
        if configuration.bf16 && BFloat16Support.native { model.setComputeType(.bfloat16) }
        model.train()
        optimizer = Adam.adamW(learningRate: configuration.learningRate, beta1: configuration.adamBeta1, beta2: configuration.adamBeta2,
                               eps: configuration.adamEpsilon, weightDecay: configuration.weightDecay)
        ema = configuration.useEMA
            ? ExponentialMovingAverage(model: model, decay: configuration.emaDecay, useWarmup: true, invGamma: 1, power: configuration.emaPower)
            : nil
        loader = try DataLoader(dataset: dataset, batchSize: configuration.batchSize, seed: configuration.seed,
                                horizontalFlip: configuration.horizontalFlip, shard: group?.rank ?? 0, shards: group?.size ?? 1)
        objective = DiffusionObjective(schedule: try NoiseSchedule(configuration.schedulerConfig),
                                       prediction: configuration.predictionType, minSNRGamma: configuration.minSNRGamma)
    }

    /// The network a configuration describes, with fresh weights.
    /// A DiT gets the paper's adaLN-Zero initialisation, and the label dropout is the
    /// trainer's (drawn per image in `draws`), never the model's own.
    static func makeModel(_ c: TrainingConfiguration, generator: RandomGenerator) throws -> Module & Denoiser {
        if let dit = c.dit {
            let model: DiTTransformer2DModel
            do {
                model = try DiTTransformer2DModel(dit, generator: generator)
                try model.zeroInitializeModulation()
            } catch { throw TrainingError("model \(c.model): \(error)") }
            model.dropsLabelsWhileTraining = false
            return model
        }
        guard let text = c.text, let unet = c.conditionUNet else { return try UNet2DModel(c.unet, generator: generator) }
        do {
            return try TextToImageModel(tokenizer: text.tokenizer, textEncoder: text.encoder, unet: unet, generator: generator)
        } catch { throw TrainingError("\(error)") }
    }

    /// The captions' token ids, flattened (empty without text conditioning); a caption the
    /// tokenizer cannot hold is refused with its index.
    static func tokens(of dataset: ImageDataset, _ text: TextConditioning?) throws -> [Int] {
        guard let text else { return [] }
        guard let captions = dataset.captions else {
            throw TrainingError("data \(dataset.name) has no captions: text conditioning needs captioned data, or a caption template")
        }
        var ids = [Int]()
        ids.reserveCapacity(captions.count * text.tokenizer.contextLength)
        for (i, caption) in captions.enumerated() {
            do { ids += try text.tokenizer.encode(caption) } catch { throw TrainingError("data \(dataset.name), caption \(i): \(error)") }
        }
        return ids
    }

    /// Checks that the data has the shape and classes the configuration was made for.
    static func check(_ dataset: ImageDataset, fits c: TrainingConfiguration) throws {
        guard dataset.height == c.imageSize, dataset.width == c.imageSize, dataset.channels == c.channels else {
            throw TrainingError("data \(dataset.name) holds \(dataset.channels)x\(dataset.height)x\(dataset.width) images; "
                                + "the run expects \(c.channels)x\(c.imageSize)x\(c.imageSize)")
        }
        guard dataset.count >= c.batchSize else {
            throw TrainingError("data \(dataset.name) has \(dataset.count) images, fewer than the batch size \(c.batchSize)")
        }
        if c.classConditional {
            guard dataset.labels != nil, let classes = dataset.classCount, classes <= c.numClasses ?? 0 else {
                throw TrainingError("data \(dataset.name) has \(dataset.classCount.map { "\($0) classes" } ?? "no labels"); "
                                    + "the run expects labels of \(c.numClasses ?? 0) classes")
            }
        }
    }

    /// Changes the length of the run (e.g. `--resume --steps N`) to a total beyond the steps
    /// taken; a cosine schedule stretches to the new end.
    public func setTotalSteps(_ total: Int) throws {
        guard total >= 1 else { throw TrainingError("total_steps must be at least 1, got \(total)") }
        guard total > step else { throw TrainingError("total_steps \(total) is not beyond the \(step) steps already taken") }
        configuration.totalSteps = total
    }

    /// The generator of image `j` of step `k`'s global batch (k 1-based, j 0-based): Philox
    /// seeded with SplitMix64 of (seed, k, j).
    static func generator(seed: UInt64, step k: Int, sample j: Int) -> PhiloxGenerator {
        var mix = SplitMix64(seed: seed ^ (UInt64(k) &* 0x9E37_79B9_7F4A_7C15) ^ (UInt64(j + 1) &* 0xC2B2_AE3D_27D4_EB4F))
        return PhiloxGenerator(seed: mix.next())
    }

    /// The random draws of a step for the images at `places` of its global batch, each image
    /// from its own generator in a fixed order: timestep, noise, label uniform, 4 mask
    /// uniforms, caption uniform (those the run uses).
    struct Draws {
        var timesteps: [Int] = [], noise: [Float] = [], labelUniforms: [Float] = [], maskUniforms: [Float] = []
        var captionUniforms: [Float] = []
    }

    func draws(step k: Int, places: Range<Int>, imageShape: [Int]) -> Draws {
        var d = Draws()
        let c = configuration
        for j in places {
            let g = Self.generator(seed: c.seed, step: k, sample: j)
            d.timesteps += objective.sampleTimesteps(batch: 1, generator: g).integers
            d.noise += g.normal([1] + imageShape, mean: 0, std: 1).scalars
            if c.classConditional { d.labelUniforms += g.uniform([1], low: 0, high: 1).scalars }
            if c.taskKind == .inpainting { d.maskUniforms += g.uniform([1, 4], low: 0, high: 1).scalars }
            if c.text != nil { d.captionUniforms += g.uniform([1], low: 0, high: 1).scalars }
        }
        return d
    }

    /// One optimizer step on the next batch; returns its loss (the global batch's, averaged
    /// over the ranks). `stopRequested`: this process wants to stop after this step; with a
    /// group, `self.stopRequested` then says whether any rank did.
    @discardableResult
    public func trainStep(stopRequested stop: Bool = false) -> Float {
        let k = step + 1
        let batch = loader.next()
        let x0 = batch.images
        let n = x0.shape[0]
        let first = (group?.rank ?? 0) * n
        let d = draws(step: k, places: first..<(first + n), imageShape: Array(x0.shape.dropFirst()))
        let timesteps = Tensor(integers: d.timesteps)
        let noise = Tensor(d.noise, shape: x0.shape)
        var labels: Tensor? = nil
        if configuration.classConditional, let l = batch.labels, let null = configuration.nullClass {
            let p = Float(configuration.labelDropout)
            labels = Tensor(integers: zip(l.integers, d.labelUniforms).map { $1 < p ? null : $0 })
        }
        let image = configuration.taskKind.conditioningImage(for: x0, factor: configuration.superResolutionScale, maskUniforms: d.maskUniforms)
        let tokens = configuration.text.map { text in captionTokens(batch.indices, dropout: text.captionDropout, uniforms: d.captionUniforms) }
        let noisy = objective.process.noised(x0, noise: noise, timesteps: timesteps)
        let conditioning = Conditioning(classLabels: labels, image: image, tokens: tokens)
        let objective = self.objective
        let model = self.model
        var (loss, gradients) = valueAndGradient(of: model as Module) { _ in
            objective.loss(output: model(noisy, timesteps: timesteps, conditioning: conditioning), x0: x0, noise: noise, timesteps: timesteps)
        }
        var value = loss.item
        stopRequested = stop
        if let group {
            if buckets == nil { buckets = GradientBuckets(gradients, bucketBytes: group.bucketBytes) }
            (value, stopRequested) = buckets!.average(&gradients, loss: value, stop: stop, group: group, step: k)
        }
        if let c = configuration.clipNorm {
            lastGradientNorm = clipGradientNorm(&gradients, maxNorm: c)
        } else if measuresGradientNorm {
            lastGradientNorm = gradientNorm(gradients)
        }
        optimizer.learningRate = configuration.learningRateSchedule.learningRate(base: configuration.learningRate, step: step)
        optimizer.update(model, gradients: gradients)
        ema?.step(model)
        step = k
        record(value)
        loss = Tensor.zeros([])
        if step % checksumEvery == 0 { try? checkSameWeights() }
        return value
    }

    /// A hash of the weights (and EMA weights) that every rank must share bit for bit.
    func weightsHash() -> UInt64 {
        var h = FNV1a()
        for (name, tensors) in [("", model.stateDict()), ("ema.", ema?.shadow ?? [:])] {
            for key in tensors.keys.sorted() {
                h.add(name + key)
                tensors[key]!.to(.float32).withUnsafeBytes { h.add($0) }
            }
        }
        return h.value
    }

    /// Data-parallel runs: ends the job when the ranks' weights differ (they take identical
    /// optimizer steps from the same averaged gradients, so they never should).
    public func checkSameWeights() throws {
        guard let group else { return }
        if !group.sameOnEveryRank(weightsHash(), what: "the weights compare at step \(step)") {
            group.fail("the weights differ between ranks at step \(step) (a rank computed differently: another version or CPU "
                       + "kernel, or corrupted memory); the last checkpoint is the run's state")
        }
    }

    /// Data-parallel runs: ends the job when the ranks do not start from the same
    /// configuration, data and weights (e.g. another data file on one host).
    public func checkSameStart() throws {
        guard let group else { return }
        var h = FNV1a()
        h.add(String(decoding: try JSONCoding.encode(configuration), as: UTF8.self))
        h.add("\(step) \(loader.position.epoch) \(loader.position.batch)")
        if !group.sameOnEveryRank(h.value, what: "the configuration compare", seconds: Swift.max(group.timeout, 600)) {
            group.fail("the ranks do not share one configuration and position (resumed from different checkpoints?)")
        }
        var data = FNV1a()
        dataset.images.withUnsafeBytes { data.add($0) }
        if !group.sameOnEveryRank(data.value, what: "the data compare") {
            group.fail("the ranks' data differ (\(dataset.name) on \(group.host) is not the same as on rank 0's host)")
        }
        if !group.sameOnEveryRank(weightsHash(), what: "the weights compare at step \(step)") {
            group.fail("the ranks start from different weights at step \(step)")
        }
    }

    /// The token ids [B, L] of the images' captions, each replaced by the empty caption
    /// with probability `dropout` (one uniform per image, from the image's generator).
    private func captionTokens(_ indices: [Int], dropout: Double, uniforms u: [Float]) -> Tensor {
        let tokenizer = configuration.text!.tokenizer
        let length = tokenizer.contextLength, empty = tokenizer.emptyCaption
        var ids = [Int]()
        ids.reserveCapacity(indices.count * length)
        for (i, index) in indices.enumerated() {
            ids += u[i] < Float(dropout) ? empty : Array(captionTokens[(index * length)..<((index + 1) * length)])
        }
        return Tensor(integers: ids, shape: [indices.count, length])
    }

    private func record(_ value: Float) {
        losses.append(value)
        smoothingSum = Self.lossSmoothing * smoothingSum + (1 - Self.lossSmoothing) * Double(value)
        smoothingWeight = Self.lossSmoothing * smoothingWeight + (1 - Self.lossSmoothing)
        smoothedLoss = smoothingSum / smoothingWeight
    }

    /// The smoothed loss after each step (for the loss curve).
    public var smoothedLosses: [Double] {
        var (sum, weight) = (0.0, 0.0)
        return losses.map { v in
            sum = Self.lossSmoothing * sum + (1 - Self.lossSmoothing) * Double(v)
            weight = Self.lossSmoothing * weight + (1 - Self.lossSmoothing)
            return sum / weight
        }
    }

    /// A copy of the model with the EMA weights (the model itself without EMA), in eval mode,
    /// computing in float32: the model to sample from (a UNet2DModel, a DiT, or a TextToImageModel).
    public func samplingModel() throws -> Module & Denoiser {
        let copy = try Self.makeModel(configuration, generator: PhiloxGenerator(seed: 0))
        try copy.load(stateDict: ema.map { $0.shadow } ?? model.stateDict())
        copy.eval()
        return copy
    }

    /// Restores the state a checkpoint saved (used by `Trainer(checkpoint:dataset:)`). Every
    /// tensor must be there, of the model's shape, and nothing else: errors are
    /// `TrainingError`s naming the file of `files` at fault and the tensor.
    func restore(step: Int, losses: [Float], loaderPosition: LoaderPosition,
                 weights: [String: Tensor], optimizerState: [String: Tensor], emaState: [String: Tensor]?,
                 files: (weights: String, optimizer: String, ema: String)) throws {
        do { try model.load(stateDict: weights) } catch {
            throw TrainingError("\(files.weights): the weights do not fit the model: \(ErrorText.describe(error))")
        }
        do { try optimizer.load(stateDict: optimizerState, parameters: model.trainableParameters()) } catch {
            throw TrainingError("\(files.optimizer): \(error)")
        }
        guard optimizer.step == step else {
            throw TrainingError("\(files.optimizer): the optimizer is at step \(optimizer.step), the training state at step \(step)")
        }
        if let ema {
            guard let emaState else { throw TrainingError("the checkpoint has no EMA weights, but the run uses EMA") }
            do { try ema.load(stateDict: emaState) } catch { throw TrainingError("\(files.ema): EMA weights: \(error)") }
        }
        loader = try DataLoader(dataset: dataset, batchSize: configuration.batchSize, seed: configuration.seed,
                                horizontalFlip: configuration.horizontalFlip, start: loaderPosition,
                                shard: group?.rank ?? 0, shards: group?.size ?? 1)
        self.step = step
        self.losses = []
        (smoothingSum, smoothingWeight) = (0, 0)
        for v in losses { record(v) }
    }
}
