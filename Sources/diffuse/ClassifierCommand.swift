import ArgumentParser
import Datasets
import Foundation
import Models
import Tensors
import Training

/// `diffuse classifier`: the feature classifiers behind `diffuse eval`.
struct ClassifierCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "classifier",
        abstract: "Train the small image classifiers whose features diffuse eval compares.",
        subcommands: [ClassifierTrain.self])
}

/// `diffuse classifier train`: trains an ImageClassifier on a labelled data set and writes
/// classifier.json + classifier.safetensors (with the training split's feature statistics).
struct ClassifierTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a feature classifier on a labelled data set (cross-entropy, AdamW, warm-up + cosine).",
        discussion: """
            Writes DIR/classifier.json (data, input shape, classes, test accuracy, options) and \
            DIR/classifier.safetensors (weights, and reference.mu / reference.sigma: the mean and covariance of the \
            features of the whole training split), each atomically, and prints the test accuracy.
            """)

    @Option(help: "The data set: \(Datasets.names.joined(separator: ", ")).")
    var data: String

    @Option(help: "The folder to write the classifier into (created if needed).")
    var out: String

    @Option(help: "Passes over the training split.")
    var epochs: Int = 3

    @Option(help: "Images per step.")
    var batchSize: Int = 128

    @Option(help: "Peak learning rate.")
    var lr: Double = 2e-3

    @Option(help: "Warm-up steps.")
    var warmup: Int = 100

    @Option(help: "AdamW weight decay.")
    var weightDecay: Double = 0.01

    @Option(help: "Seed of the initial weights and the data order.")
    var seed: UInt64 = 0

    @Option(help: "Resize the images to this size (default: the data's own).")
    var size: Int?

    @Option(help: "Train on the first N training images only (a quick run).")
    var limit: Int?

    @Option(help: "Threads (default: all cores).")
    var threads: Int?

    func run() throws {
        try applyThreadsOption(threads)
        if let limit, limit < batchSize { throw ValidationError("--limit \(limit) is smaller than the batch size \(batchSize)") }
        let start = DispatchTime.now().uptimeNanoseconds
        func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        var train = try Datasets.load(name: data, size: size, split: .train)
        if let limit { train = try train.prefix(limit) }
        let test = try Datasets.load(name: data, size: size, split: .test)
        guard let classes = train.classCount else { throw ValidationError("\(data) has no labels: a classifier cannot be trained on it") }
        guard train.height == train.width else { throw ValidationError("\(data): images are \(train.height)x\(train.width); the classifier needs square images") }
        print(String(format: "data %@: %d training and %d test images [%d, %d, %d], %d classes (%.1f s)",
                     data, train.count, test.count, train.channels, train.height, train.width, classes, elapsed()))
        let model = ImageClassifierConfig(imageSize: train.height, inChannels: train.channels, numClasses: classes)
        let options = ClassifierTrainingConfig(epochs: epochs, batchSize: batchSize, learningRate: lr, warmupSteps: warmup,
                                               weightDecay: weightDecay, seed: seed)
        let classifier = try ClassifierTraining.train(model, options, data: data, train: train, test: test) { p in
            print(String(format: "epoch %d step %d/%d  loss %.4f  train acc %.4f  lr %.2e  %.1f s",
                         p.epoch, p.step, p.totalSteps, p.loss, p.accuracy, p.learningRate, p.seconds))
            fflush(nil)
        }
        try classifier.save(folder: out)
        print(String(format: "test accuracy %.4f on %d images; trained in %.1f s; wrote %@/%@ and %@/%@ (%.1f s in all)",
                     classifier.info.testAccuracy, test.count, classifier.info.trainingSeconds ?? 0,
                     out, FeatureClassifier.configFile, out, FeatureClassifier.weightsFile, elapsed()))
    }
}
