import Datasets
import Tensors

/// What `diffuse eval` reports: Fréchet distance and KID of a set of images against a data
/// set, on a feature classifier's features, and the classes the classifier sees in them.
public struct EvaluationReport: Codable, Sendable, Equatable {
    /// The data set compared against.
    public var data: String
    /// What was evaluated: "samples" (generated) or "test-split" (the real-vs-real floor).
    public var evaluated: String
    /// Number of images evaluated.
    public var count: Int
    /// Fréchet distance between the evaluated images' features and the reference statistics
    /// (the classifier's `reference_split`, `reference_count` images).
    public var frechetDistance: Double
    public var referenceSplit: String
    public var referenceCount: Int
    /// KID against `kidRealCount` random real images of the training split: mean and
    /// standard deviation over `kidSubsets` subsets of `kidSubsetSize`.
    public var kidMean: Double
    public var kidStd: Double
    public var kidSubsets: Int
    public var kidSubsetSize: Int
    public var kidRealCount: Int
    /// How many of the evaluated images the classifier assigns to each class.
    public var classHistogram: [Int]
    public var classNames: [String]?
    /// The classifier's own test accuracy, for context.
    public var classifierTestAccuracy: Double
    /// For samples of requested classes: the share the classifier assigns to the class asked
    /// for (nil when no classes were requested).
    public var requestedClassAccuracy: Double? = nil

    enum CodingKeys: String, CodingKey {
        case data, evaluated, count, frechetDistance = "frechet_distance", referenceSplit = "reference_split"
        case referenceCount = "reference_count", kidMean = "kid_mean", kidStd = "kid_std", kidSubsets = "kid_subsets"
        case kidSubsetSize = "kid_subset_size", kidRealCount = "kid_real_count", classHistogram = "class_histogram"
        case classNames = "class_names", classifierTestAccuracy = "classifier_test_accuracy"
        case requestedClassAccuracy = "requested_class_accuracy"
    }
}

/// Scores images (generated samples, or real ones for the floor) against a data set with its
/// feature classifier: FD against the stored reference statistics, KID against real images.
public enum SampleEvaluation {
    /// Evaluates `images` [N, C, H, W] in [-1, 1] (values outside are clamped, as saving
    /// them as images would). `real` are real images of the data set for KID (e.g.
    /// `randomImages(of:count:seed:)` of the training split). `requestedClasses` (one per
    /// image) are the classes a conditional model was asked for: the report then gives the
    /// share of images the classifier assigns to them.
    public static func evaluate(_ images: Tensor, evaluated: String = "samples", classifier: FeatureClassifier, real: Tensor,
                                requestedClasses: [Int]? = nil,
                                kidSubsets: Int = 100, kidSubsetSize: Int = 1000, seed: UInt64 = 0,
                                batchSize: Int = 500) throws -> EvaluationReport {
        if let requestedClasses, requestedClasses.count != images.shape[0] {
            throw MetricError("\(requestedClasses.count) requested classes for \(images.shape[0]) images: one per image is needed")
        }
        guard let reference = classifier.reference else { throw MetricError("the \(classifier.info.data) classifier has no reference statistics") }
        try classifier.checkImages(images, what: "the \(evaluated)")
        try classifier.checkImages(real, what: "the real images")
        guard images.shape[0] >= 2 else { throw MetricError("evaluation needs at least 2 images, got \(images.shape[0])") }
        let finite = images.scalars.allSatisfy(\.isFinite)
        guard finite else { throw MetricError("the \(evaluated) hold NaN or infinite values: the model diverged") }
        var accumulator = try FeatureAccumulator(dimension: classifier.info.featureDim)
        var features: [Tensor] = []
        var histogram = [Int](repeating: 0, count: classifier.info.numClasses)
        var predicted: [Int] = []
        try classifier.forEachBatch(images.clamped(min: -1, max: 1), batchSize: batchSize, what: "the \(evaluated)") { f, logits in
            try accumulator.add(f)
            features.append(f)
            for c in logits.argmax(axis: 1).integers {
                histogram[c] += 1
                predicted.append(c)
            }
        }
        let statistics = try accumulator.statistics()
        let fd = try FrechetDistance.distance(statistics, reference)
        let realFeatures = try classifier.features(real, batchSize: batchSize)
        let kid = try KernelInceptionDistance.compute(Tensor.concatenate(features, axis: 0), realFeatures,
                                                      subsets: kidSubsets, subsetSize: kidSubsetSize, seed: seed)
        var report = EvaluationReport(data: classifier.info.data, evaluated: evaluated, count: images.shape[0], frechetDistance: fd,
                                      referenceSplit: classifier.info.referenceSplit, referenceCount: reference.count,
                                      kidMean: kid.mean, kidStd: kid.std, kidSubsets: kidSubsets, kidSubsetSize: kid.subsetSize,
                                      kidRealCount: real.shape[0], classHistogram: histogram, classNames: classifier.info.classNames,
                                      classifierTestAccuracy: classifier.info.testAccuracy)
        if let requestedClasses {
            let hits = zip(predicted, requestedClasses).filter { $0 == $1 }.count
            report.requestedClassAccuracy = Double(hits) / Double(requestedClasses.count)
        }
        return report
    }

    /// `count` distinct images of `set` picked at random with `seed` (all of them, shuffled,
    /// when `count` is at least the set's size).
    public static func randomImages(of set: ImageDataset, count: Int, seed: UInt64) -> Tensor {
        var rng = SplitMix64(seed: seed ^ 0x5EED_0F_4EA1)
        let picks = KernelInceptionDistance.choose(Swift.min(count, set.count), from: set.count, using: &rng)
        return set.images.indexSelect(axis: 0, indices: Tensor(integers: picks))
    }
}
