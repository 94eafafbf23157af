import Datasets
import Foundation
import ModelIO
import Models
import Tensors
import Testing
import Training

@Suite struct FeatureClassifierTests {
    /// The shipped Fashion-MNIST classifier loads from the package's resources, describes
    /// itself, and classifies the first 500 test images with >= 88% accuracy.
    @Test func bundledFashionMNISTClassifier() throws {
        #expect(FeatureClassifier.bundledDataSets.contains("fashion-mnist"))
        let classifier = try FeatureClassifier.bundled(for: "fashion-mnist")
        let info = classifier.info
        #expect(info.data == "fashion-mnist" && info.imageSize == 28 && info.channels == 1 && info.numClasses == 10)
        #expect(info.testAccuracy >= 0.9 && info.testCount == 10_000)
        #expect(info.referenceSplit == "train" && info.referenceCount == 60_000)
        #expect(classifier.reference?.dimension == info.featureDim)
        let test = try Datasets.load(name: "fashion-mnist", split: .test).prefix(500)
        let accuracy = try classifier.accuracy(on: test)
        #expect(accuracy >= 0.88, "accuracy \(accuracy) on the first 500 test images")
    }

    /// The shipped MNIST classifier: >= 97% on the first 500 test digits.
    @Test func bundledMNISTClassifier() throws {
        let classifier = try FeatureClassifier.bundled(for: "mnist")
        #expect(classifier.info.data == "mnist" && classifier.info.referenceCount == 60_000 && classifier.info.testAccuracy >= 0.97)
        let test = try Datasets.load(name: "mnist", split: .test).prefix(500)
        let accuracy = try classifier.accuracy(on: test)
        #expect(accuracy >= 0.97, "accuracy \(accuracy) on the first 500 test digits")
    }

    @Test func unknownDataSetIsRefusedByName() {
        do {
            _ = try FeatureClassifier.bundled(for: "cifar-10")
            Issue.record("no error for a data set without a classifier")
        } catch {
            let message = "\(error)"
            #expect(message.contains("\"cifar-10\"") && message.contains("fashion-mnist") && message.contains("classifier train"), "\(message)")
        }
    }

    /// save(folder:) then load(folder:) gives the same features and reference statistics;
    /// a file without the statistics is refused with its name.
    @Test func saveAndLoadRoundTrip() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = ImageClassifierConfig(imageSize: 8, inChannels: 1, numClasses: 3, channels: [4], featureDim: 5, normNumGroups: 2)
        let model = try ImageClassifier(config, generator: PhiloxGenerator(seed: 5))
        let images = PhiloxGenerator(seed: 6).uniform([20, 1, 8, 8], low: -1, high: 1)
        let info = FeatureClassifierInfo(data: "toy", imageSize: 8, channels: 1, numClasses: 3, classNames: nil, featureDim: 5,
                                         testAccuracy: 0.5, testCount: 20, referenceSplit: "train", referenceCount: 20,
                                         trainingSeconds: nil, model: config, training: ClassifierTrainingConfig())
        let draft = FeatureClassifier(model: model, info: info, reference: nil)
        let classifier = FeatureClassifier(model: model, info: info, reference: try draft.statistics(of: images))
        try classifier.save(folder: dir)
        let loaded = try FeatureClassifier.load(folder: dir)
        #expect(loaded.info == info)
        // Bit for bit: convolutions pinned to oneDNN, whatever timing would choose.
        let (reloaded, original) = try ConvolutionAlgorithm.with(.onednn) { () throws -> ([Float], [Float]) in
            (try loaded.features(images).scalars, try classifier.features(images).scalars)
        }
        #expect(reloaded == original)
        let (a, b) = (loaded.reference!, classifier.reference!)
        #expect(zip(a.covariance, b.covariance).allSatisfy { abs($0 - $1) <= 1e-6 * Swift.max(abs($1), 1e-3) })
        #expect(throws: TrainingError.self) { try loaded.features(Tensor.zeros([2, 3, 8, 8])) }
        // Drop the statistics: refused, naming the file.
        var tensors = try ModelIOAccess.tensors(dir + "/classifier.safetensors")
        tensors["reference.sigma"] = nil
        try ModelIOAccess.save(tensors, dir + "/classifier.safetensors")
        do {
            _ = try FeatureClassifier.load(folder: dir)
            Issue.record("no error without reference.sigma")
        } catch {
            #expect("\(error)".contains("classifier.safetensors") && "\(error)".contains("reference.sigma"), "\(error)")
        }
    }

    /// One short epoch on 1,024 Fashion-MNIST images already classifies far above chance, and
    /// the result carries its facts and the reference statistics of its training images.
    @Test func trainingLearns() throws {
        let train = try Datasets.load(name: "fashion-mnist", split: .train).prefix(1024)
        let test = try Datasets.load(name: "fashion-mnist", split: .test).prefix(500)
        let options = ClassifierTrainingConfig(epochs: 1, batchSize: 64, learningRate: 3e-3, warmupSteps: 2, seed: 1)
        var reports = 0
        let classifier = try ClassifierTraining.train(ImageClassifierConfig(), options, data: "fashion-mnist", train: train, test: test,
                                                      reportEvery: 4) { _ in reports += 1 }
        #expect(reports == 4)
        #expect(classifier.info.testAccuracy > 0.6, "test accuracy \(classifier.info.testAccuracy)")
        #expect(classifier.reference?.count == 1024 && classifier.info.referenceCount == 1024 && classifier.info.testCount == 500)
        #expect(classifier.info.classNames?.first == "T-shirt/top")
        #expect(throws: TrainingError.self) {
            try ClassifierTraining.train(ImageClassifierConfig(imageSize: 32), options, data: "fashion-mnist", train: train, test: test)
        }
    }

    /// Real images against real images: the Fréchet distance of 1,000 test images to the
    /// training split's statistics is tiny next to that of noise or of one class only, and
    /// KID is ~0; a feature set against its own statistics is exactly 0.
    @Test func realVersusRealIsNearZero() throws {
        let classifier = try FeatureClassifier.bundled(for: "fashion-mnist")
        let train = try Datasets.load(name: "fashion-mnist", split: .train)
        let test = try Datasets.load(name: "fashion-mnist", split: .test)
        let images = SampleEvaluation.randomImages(of: test, count: 1000, seed: 1)
        let real = SampleEvaluation.randomImages(of: train, count: 1000, seed: 2)
        let report = try SampleEvaluation.evaluate(images, evaluated: "test-split", classifier: classifier, real: real, kidSubsets: 20)
        let noise = try SampleEvaluation.evaluate(PhiloxGenerator(seed: 3).uniform([1000, 1, 28, 28], low: -1, high: 1),
                                                  classifier: classifier, real: real, kidSubsets: 20)
        let trousers = test.images.indexSelect(axis: 0, indices: Tensor(integers: test.labels!.indices.filter { test.labels![$0] == 1 }))
        let oneClass = try SampleEvaluation.evaluate(trousers, classifier: classifier, real: real, kidSubsets: 20)
        #expect(report.count == 1000 && report.classHistogram.reduce(0, +) == 1000)
        #expect(report.classHistogram.allSatisfy { $0 > 60 }, "\(report.classHistogram)")  // ~100 per class
        #expect(report.frechetDistance < 0.02 * noise.frechetDistance, "real \(report.frechetDistance), noise \(noise.frechetDistance)")
        #expect(report.frechetDistance < 0.1 * oneClass.frechetDistance, "real \(report.frechetDistance), trousers only \(oneClass.frechetDistance)")
        #expect(abs(report.kidMean) < 0.01 * noise.kidMean && abs(report.kidMean) < 0.05 * oneClass.kidMean,
                "KID real \(report.kidMean), noise \(noise.kidMean), trousers only \(oneClass.kidMean)")
        #expect(oneClass.classHistogram[1] > oneClass.count * 9 / 10)
        let stats = try classifier.statistics(of: real)
        #expect(abs(try FrechetDistance.distance(stats, stats)) < 1e-9)
    }
}

/// Safetensors files for the tests.
enum ModelIOAccess {
    static func tensors(_ path: String) throws -> [String: Tensor] {
        // Copies, so the file can be replaced while they live.
        try Safetensors.load(path, memoryMapped: false).tensors
    }
    static func save(_ tensors: [String: Tensor], _ path: String) throws { try Safetensors(tensors: tensors).save(path) }
}
