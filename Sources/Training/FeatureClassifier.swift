import Datasets
import Foundation
import ModelIO
import Models
import Tensors

/// What a feature classifier's `classifier.json` holds: the data it was trained on, its
/// input shape, its accuracy, how it was trained, and facts about the reference statistics
/// (whose values live in `classifier.safetensors` as `reference.mu` and `reference.sigma`).
public struct FeatureClassifierInfo: Codable, Equatable, Sendable {
    /// The data set name (`Datasets.load(name:)`), e.g. "fashion-mnist".
    public var data: String
    /// Height = width and channels of the images the classifier reads.
    public var imageSize: Int
    public var channels: Int
    /// Number of classes, and their names where the data set has them.
    public var numClasses: Int
    public var classNames: [String]?
    /// Width of the feature vectors.
    public var featureDim: Int
    /// Accuracy on the test split, and that split's size.
    public var testAccuracy: Double
    public var testCount: Int
    /// The split the reference statistics were computed on, and its size.
    public var referenceSplit: String
    public var referenceCount: Int
    /// Wall-clock seconds the training took (nil when unknown).
    public var trainingSeconds: Double?
    /// The network and its training options.
    public var model: ImageClassifierConfig
    public var training: ClassifierTrainingConfig

    public init(data: String, imageSize: Int, channels: Int, numClasses: Int, classNames: [String]?, featureDim: Int,
                testAccuracy: Double, testCount: Int, referenceSplit: String, referenceCount: Int, trainingSeconds: Double?,
                model: ImageClassifierConfig, training: ClassifierTrainingConfig) {
        (self.data, self.imageSize, self.channels, self.numClasses, self.classNames, self.featureDim) =
            (data, imageSize, channels, numClasses, classNames, featureDim)
        (self.testAccuracy, self.testCount, self.referenceSplit, self.referenceCount, self.trainingSeconds) =
            (testAccuracy, testCount, referenceSplit, referenceCount, trainingSeconds)
        (self.model, self.training) = (model, training)
    }

    enum CodingKeys: String, CodingKey {
        case data, imageSize = "image_size", channels, numClasses = "num_classes", classNames = "class_names"
        case featureDim = "feature_dim", testAccuracy = "test_accuracy", testCount = "test_count"
        case referenceSplit = "reference_split", referenceCount = "reference_count"
        case trainingSeconds = "training_seconds", model, training
    }
}

/// A trained `ImageClassifier` with its facts and the reference feature statistics of its
/// training split: the feature extractor of `diffuse eval`.
///
/// On disk: a folder with `classifier.json` (`FeatureClassifierInfo`) and
/// `classifier.safetensors` (the weights, plus `reference.mu` [d] and `reference.sigma` [d, d]).
/// Diffuse ships one for each data set it has a classifier for (`bundled(for:)`).
public final class FeatureClassifier: @unchecked Sendable {
    public let model: ImageClassifier
    public let info: FeatureClassifierInfo
    /// Mean and covariance of the features of the reference split (nil before computed).
    public let reference: FeatureStatistics?

    public static let configFile = "classifier.json"
    public static let weightsFile = "classifier.safetensors"

    public init(model: ImageClassifier, info: FeatureClassifierInfo, reference: FeatureStatistics?) {
        model.eval()
        (self.model, self.info, self.reference) = (model, info, reference)
    }

    /// The data sets Diffuse ships a classifier for.
    public static var bundledDataSets: [String] {
        guard let root = bundledRoot,
              let names = try? FileManager.default.contentsOfDirectory(atPath: root.path) else { return [] }
        return names.filter { FileManager.default.fileExists(atPath: root.appendingPathComponent($0).appendingPathComponent(configFile).path) }.sorted()
    }

    private static var bundledRoot: URL? {
        Bundle.module.url(forResource: "Resources", withExtension: nil)?.appendingPathComponent("classifiers")
    }

    /// The classifier shipped for data set `name` (e.g. "fashion-mnist").
    public static func bundled(for name: String) throws -> FeatureClassifier {
        let available = bundledDataSets
        guard let root = bundledRoot, available.contains(name) else {
            throw TrainingError("no feature classifier is shipped for the data set \"\(name)\" (shipped: \(available.isEmpty ? "none" : available.joined(separator: ", "))); train one with `diffuse classifier train --data \(name) --out DIR`")
        }
        return try load(folder: root.appendingPathComponent(name).path)
    }

    /// Loads a classifier folder written by `save(folder:)`.
    public static func load(folder: String) throws -> FeatureClassifier {
        let configPath = folder + "/" + configFile, weightsPath = folder + "/" + weightsFile
        guard FileManager.default.fileExists(atPath: configPath) else { throw TrainingError("\(folder): no \(configFile): not a feature classifier folder") }
        let info: FeatureClassifierInfo
        do {
            info = try JSONDecoder().decode(FeatureClassifierInfo.self, from: Data(contentsOf: URL(fileURLWithPath: configPath)))
        } catch {
            throw TrainingError("\(configPath): not a feature classifier description: \(error)")
        }
        guard info.model.imageSize == info.imageSize, info.model.inChannels == info.channels,
              info.model.numClasses == info.numClasses, info.model.featureDim == info.featureDim else {
            throw TrainingError("\(configPath): the model config \(info.model) disagrees with image_size \(info.imageSize), channels \(info.channels), num_classes \(info.numClasses), feature_dim \(info.featureDim)")
        }
        let model = try ImageClassifier(info.model)
        var tensors = try Safetensors.load(weightsPath).tensors
        guard let mu = tensors.removeValue(forKey: "reference.mu"), let sigma = tensors.removeValue(forKey: "reference.sigma") else {
            throw TrainingError("\(weightsPath): no reference.mu / reference.sigma (the feature statistics of the \(info.referenceSplit) split)")
        }
        let d = info.featureDim
        guard mu.shape == [d], sigma.shape == [d, d] else {
            throw TrainingError("\(weightsPath): reference.mu \(mu.shape) and reference.sigma \(sigma.shape) should be [\(d)] and [\(d), \(d)]")
        }
        do { try model.load(stateDict: tensors) } catch { throw TrainingError("\(weightsPath): \(error)") }
        let reference = try FeatureStatistics(mean: mu.scalars.map(Double.init), covariance: sigma.scalars.map(Double.init),
                                              count: info.referenceCount)
        return FeatureClassifier(model: model, info: info, reference: reference)
    }

    /// Writes `classifier.json` and `classifier.safetensors` into `folder` (created if needed),
    /// each atomically.
    public func save(folder: String) throws {
        guard let reference else { throw TrainingError("the classifier has no reference statistics to save") }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var tensors = model.stateDict()
        tensors["reference.mu"] = reference.meanTensor
        tensors["reference.sigma"] = reference.covarianceTensor
        try Safetensors(tensors: tensors, metadata: ["data": info.data]).save(folder + "/" + FeatureClassifier.weightsFile)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(info).write(to: URL(fileURLWithPath: folder + "/" + FeatureClassifier.configFile), options: .atomic)
    }

    /// Refuses images the classifier cannot read, naming what they are and what it takes.
    public func checkImages(_ images: Tensor, what: String = "images") throws {
        guard images.rank == 4, images.shape[1] == info.channels, images.shape[2] == info.imageSize, images.shape[3] == info.imageSize else {
            throw TrainingError("\(what) have shape \(images.shape), but the \(info.data) classifier reads [N, \(info.channels), \(info.imageSize), \(info.imageSize)]")
        }
        guard images.dtype == .float32 || images.dtype == .bfloat16 else {
            throw TrainingError("\(what) must be floating point, found \(images.dtype)")
        }
    }

    /// Runs the classifier over `images` [N, C, H, W] (in [-1, 1]) in batches; `body` gets
    /// each batch's features and logits.
    public func forEachBatch(_ images: Tensor, batchSize: Int = 500, what: String = "images",
                             _ body: (_ features: Tensor, _ logits: Tensor) throws -> Void) throws {
        try checkImages(images, what: what)
        model.eval()
        let n = images.shape[0]
        for start in stride(from: 0, to: n, by: max(batchSize, 1)) {
            let batch = images.sliced(axis: 0, start: start, end: min(start + batchSize, n)).to(.float32)
            let (f, y) = model.featuresAndLogits(batch)
            try body(f, y)
        }
    }

    /// The features [N, feature_dim] of `images`.
    public func features(_ images: Tensor, batchSize: Int = 500) throws -> Tensor {
        var parts: [Tensor] = []
        try forEachBatch(images, batchSize: batchSize) { f, _ in parts.append(f) }
        return Tensor.concatenate(parts, axis: 0)
    }

    /// The predicted class of each image.
    public func predictions(_ images: Tensor, batchSize: Int = 500) throws -> [Int] {
        var out: [Int] = []
        try forEachBatch(images, batchSize: batchSize) { _, y in out += y.argmax(axis: 1).integers }
        return out
    }

    /// The fraction of a labelled data set classified correctly.
    public func accuracy(on set: ImageDataset, batchSize: Int = 500) throws -> Double {
        guard let labels = set.labels else { throw TrainingError("\(set.name): accuracy needs labels, and this data set has none") }
        let predicted = try predictions(set.images, batchSize: batchSize)
        return Double(zip(predicted, labels).filter { $0 == $1 }.count) / Double(labels.count)
    }

    /// Mean and covariance of the features of `images`, accumulated batch by batch.
    public func statistics(of images: Tensor, batchSize: Int = 500) throws -> FeatureStatistics {
        var accumulator = try FeatureAccumulator(dimension: info.featureDim)
        try forEachBatch(images, batchSize: batchSize) { f, _ in try accumulator.add(f) }
        return try accumulator.statistics()
    }
}
