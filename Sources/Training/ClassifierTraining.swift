import Datasets
import Dispatch
import Models
import NeuralNetworks
import Tensors

/// How a feature classifier is trained: the options of `diffuse classifier train`. Stored in
/// the classifier's JSON file so a shipped classifier says how it was made.
public struct ClassifierTrainingConfig: Codable, Equatable, Sendable {
    /// Passes over the training split.
    public var epochs: Int = 3
    /// Images per optimizer step.
    public var batchSize: Int = 128
    /// Peak AdamW learning rate (linear warm-up, then cosine decay to 0).
    public var learningRate: Double = 2e-3
    /// Optimizer steps of linear warm-up.
    public var warmupSteps: Int = 100
    /// AdamW's decoupled weight decay.
    public var weightDecay: Double = 0.01
    /// Seed of the initial weights and of the data order.
    public var seed: UInt64 = 0

    public init(epochs: Int = 3, batchSize: Int = 128, learningRate: Double = 2e-3, warmupSteps: Int = 100,
                weightDecay: Double = 0.01, seed: UInt64 = 0) {
        (self.epochs, self.batchSize, self.learningRate, self.warmupSteps, self.weightDecay, self.seed) =
            (epochs, batchSize, learningRate, warmupSteps, weightDecay, seed)
    }

    enum CodingKeys: String, CodingKey {
        case epochs, batchSize = "batch_size", learningRate = "learning_rate", warmupSteps = "warmup_steps"
        case weightDecay = "weight_decay", seed
    }

    func validate() throws {
        guard epochs >= 1 else { throw TrainingError("classifier training: epochs must be at least 1, got \(epochs)") }
        guard batchSize >= 1 else { throw TrainingError("classifier training: the batch size must be at least 1, got \(batchSize)") }
        guard learningRate > 0, learningRate.isFinite else { throw TrainingError("classifier training: the learning rate must be positive, got \(learningRate)") }
        guard warmupSteps >= 0 else { throw TrainingError("classifier training: warm-up steps must not be negative, got \(warmupSteps)") }
        guard weightDecay >= 0 else { throw TrainingError("classifier training: weight decay must not be negative, got \(weightDecay)") }
    }
}

/// Trains an `ImageClassifier` with cross-entropy and AdamW on a labelled data set, measures
/// its test accuracy, and computes the reference feature statistics of the training split:
/// everything a `FeatureClassifier` holds.
public enum ClassifierTraining {
    /// One line of progress.
    public struct Progress: Sendable {
        public let epoch: Int, step: Int, totalSteps: Int
        /// Mean cross-entropy and accuracy over the steps since the last report.
        public let loss: Double, accuracy: Double
        public let learningRate: Double
        public let seconds: Double
    }

    /// Trains on `train`, evaluates on `test`; `data` is the data set's name as
    /// `Datasets.load(name:)` knows it. `report` receives progress every `reportEvery` steps.
    /// The data sets must have labels and the same image shape.
    public static func train(_ model: ImageClassifierConfig, _ options: ClassifierTrainingConfig, data: String,
                             train: ImageDataset, test: ImageDataset, reportEvery: Int = 50,
                             report: (Progress) -> Void = { _ in }) throws -> FeatureClassifier {
        try options.validate()
        try model.validate()
        for set in [train, test] {
            guard let labels = set.labels else { throw TrainingError("\(set.name): the classifier needs labels, and this data set has none") }
            guard set.channels == model.inChannels, set.height == model.imageSize, set.width == model.imageSize else {
                throw TrainingError("\(set.name): images are [\(set.channels), \(set.height), \(set.width)], the classifier takes [\(model.inChannels), \(model.imageSize), \(model.imageSize)]")
            }
            if let bad = labels.first(where: { $0 < 0 || $0 >= model.numClasses }) {
                throw TrainingError("\(set.name): label \(bad) is outside the classifier's \(model.numClasses) classes")
            }
        }
        let start = DispatchTime.now().uptimeNanoseconds
        func seconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }

        let net = try ImageClassifier(model, generator: PhiloxGenerator(seed: options.seed))
        net.train()
        let loader = try DataLoader(dataset: train, batchSize: options.batchSize, seed: options.seed, shuffle: true)
        let totalSteps = options.epochs * loader.batchesPerEpoch
        let schedule = LearningRateSchedule.cosine(warmupSteps: options.warmupSteps, totalSteps: totalSteps)
        let optimizer = Adam.adamW(learningRate: options.learningRate, weightDecay: options.weightDecay)
        var (lossSum, correct, seen, steps) = (0.0, 0, 0, 0)
        for step in 0..<totalSteps {
            let batch = loader.next()
            let labels = batch.labels!
            let b = batch.images.shape[0]
            var logits = Tensor.zeros([0])
            let (loss, gradients) = valueAndGradient(of: net) { m in
                let y = m(batch.images)
                logits = y
                return -y.logSoftmax(axis: 1).gathered(axis: 1, indices: labels.reshaped(b, 1)).mean()
            }
            let lossValue = Double(loss.item)
            guard lossValue.isFinite else {
                throw TrainingError("classifier training diverged at step \(step + 1): the loss is \(lossValue); try a lower learning rate")
            }
            optimizer.learningRate = schedule.learningRate(base: options.learningRate, step: step)
            optimizer.update(net, gradients: gradients)
            lossSum += lossValue
            correct += zip(logits.argmax(axis: 1).integers, labels.integers).filter { $0 == $1 }.count
            seen += b
            steps += 1
            if (step + 1) % reportEvery == 0 || step + 1 == totalSteps {
                report(Progress(epoch: step / loader.batchesPerEpoch + 1, step: step + 1, totalSteps: totalSteps,
                                loss: lossSum / Double(steps), accuracy: Double(correct) / Double(seen),
                                learningRate: optimizer.learningRate, seconds: seconds()))
                (lossSum, correct, seen, steps) = (0, 0, 0, 0)
            }
        }
        net.eval()
        let trainedSeconds = seconds()
        let classifier = FeatureClassifier(model: net, info: FeatureClassifierInfo(
            data: data, imageSize: model.imageSize, channels: model.inChannels, numClasses: model.numClasses,
            classNames: train.classNames, featureDim: model.featureDim, testAccuracy: 0, testCount: test.count,
            referenceSplit: "train", referenceCount: train.count, trainingSeconds: trainedSeconds, model: model, training: options),
            reference: nil)
        let accuracy = try classifier.accuracy(on: test)
        let reference = try classifier.statistics(of: train.images)
        var info = classifier.info
        info.testAccuracy = accuracy
        return FeatureClassifier(model: net, info: info, reference: reference)
    }
}
