import Foundation
import ModelIO
import Models
import Tensors
import Testing
import Training

/// `diffuse eval` and `diffuse classifier train` run as a user runs them (the binary beside
/// the test bundle in .build/<configuration>/).
@Suite struct EvalCommandTests {
    typealias Run = DiffuseRun

    static var binary: String {
        Bundle.module.bundleURL.deletingLastPathComponent().appendingPathComponent("diffuse").path
    }

    func diffuse(_ arguments: [String], environment: [String: String] = [:]) throws -> Run {
        try runDiffuse(arguments, environment: environment)
    }

    /// A small random UNet2DModel folder making [channels, size, size] samples.
    func randomModel(in dir: String, channels: Int, size: Int) throws -> String {
        var config = UNet2DConfig()
        config.sampleSize = size
        (config.inChannels, config.outChannels) = (channels, channels)
        config.downBlockTypes = ["DownBlock2D", "DownBlock2D"]
        config.upBlockTypes = ["UpBlock2D", "UpBlock2D"]
        config.blockOutChannels = [8, 16]
        config.layersPerBlock = 1
        config.normNumGroups = 4
        config.addAttention = false
        let folder = dir + "/unet-\(channels)x\(size)"
        try UNet2DModel(config, generator: PhiloxGenerator(seed: 7)).save(folder: folder)
        return folder
    }

    /// --metric fid on given images: FID and KID against as many training images with the
    /// counts printed, the reference features cached (a second run reads them), and a missing
    /// weights file or a classifier option refused.
    @Test(.enabled(if: InceptionTests.weights != nil, InceptionTests.noWeights)) func evalInceptionMetric() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let images = InceptionTests.fixture("images.npy")
        let arguments = ["eval", "--data", "fashion-mnist", "--metric", "fid", "--images", images, "--reference-count", "6",
                         "--kid-subsets", "3", "--inception", InceptionTests.weights!]
        let cache = ["DIFFUSE_CACHE_DIR": dir + "/cache"]
        let first = try diffuse(arguments, environment: cache)
        #expect(first.status == 0, "\(first.error)")
        #expect(first.output.contains("6 samples vs 6 train images of fashion-mnist") && first.output.contains("FID ")
                && first.output.contains("KID ") && first.output.contains("computing the features of 6 images of fashion-mnist-train"), "\(first.output)")
        let second = try diffuse(arguments, environment: cache)
        #expect(second.status == 0 && second.output.contains("features from the cache"), "\(second.output)")
        // The same value (up to the convolution algorithm each run times and picks: ~1e-7).
        let fid = { (run: Run) -> Double in
            run.output.split(separator: "\n").first { $0.contains("FID ") }.flatMap { $0.split(separator: " ").dropFirst().first }
                .flatMap { Double($0) } ?? -1
        }
        #expect(fid(first) > 0 && abs(fid(first) - fid(second)) <= 1e-5 * fid(first), "\(fid(first)) \(fid(second))")
        let missing = try diffuse(["eval", "--data", "fashion-mnist", "--metric", "fid", "--real-vs-real", "4", "--inception", dir + "/absent.pt"])
        #expect(missing.status != 0 && missing.error.contains("absent.pt"), "\(missing.error)")
        let mixed = try diffuse(["eval", "--data", "fashion-mnist", "--metric", "kid", "--real-vs-real", "4", "--classifier", dir])
        #expect(mixed.status != 0 && mixed.error.contains("--classifier belongs to --metric fd"), "\(mixed.error)")
    }

    /// --real-vs-real gives the floor as JSON; a random model's samples score far worse, the
    /// report counts them, and the samples file holds them.
    @Test func evalReportsFloorAndSamples() throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.binary), "no diffuse binary at \(Self.binary)")
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let floorRun = try diffuse(["eval", "--data", "fashion-mnist", "--real-vs-real", "300", "--kid-subsets", "10", "--json"])
        #expect(floorRun.status == 0, "\(floorRun.error)")
        let floor = try JSONDecoder().decode(EvaluationReport.self, from: Data(floorRun.output.utf8))
        #expect(floor.evaluated == "test-split" && floor.count == 300 && floor.kidRealCount == 300 && floor.kidSubsetSize == 300)
        #expect(floor.classHistogram.reduce(0, +) == 300 && floor.referenceCount == 60_000)

        let model = try randomModel(in: dir, channels: 1, size: 28)
        let run = try diffuse(["eval", "--model", model, "--data", "fashion-mnist", "--samples", "10", "--steps", "2",
                               "--sampler", "ddim", "--batch-size", "4", "--kid-subsets", "5", "--out-npy", dir + "/s.npy"])
        #expect(run.status == 0, "\(run.error)")
        #expect(run.output.contains("generated 10/10"), "\(run.output)")
        #expect(run.output.contains("10 samples vs fashion-mnist"), "\(run.output)")
        #expect(run.output.contains("FD ") && run.output.contains("KID ") && run.output.contains("Ankle boot"), "\(run.output)")
        #expect(try NPY.load(dir + "/s.npy").shape == [10, 1, 28, 28])
        let fdText = run.output.split(separator: "\n").first { $0.contains("FD ") }!.split(separator: " ")[1]
        #expect(Double(fdText)! > 10 * floor.frechetDistance, "random model FD \(fdText), floor \(floor.frechetDistance)")
    }

    /// Models the classifier cannot read, unknown data sets and missing options fail with the reason.
    @Test func evalRefusesBadInput() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let rgb = try randomModel(in: dir, channels: 3, size: 16)
        let cases: [([String], String)] = [
            (["--model", rgb, "--data", "fashion-mnist", "--samples", "4", "--steps", "2"], "[3, 16, 16]"),
            (["--data", "cifar-10", "--real-vs-real", "10"], "no feature classifier is shipped"),
            (["--data", "fashion-mnist"], "--real-vs-real"),
            (["--model", rgb, "--data", "fashion-mnist"], "--samples"),
            (["--data", "fashion-mnist", "--real-vs-real", "20000"], "only 10000"),
        ]
        for (arguments, expected) in cases {
            let run = try diffuse(["eval"] + arguments)
            #expect(run.status != 0, "\(arguments)")
            #expect(run.error.contains(expected), "\(arguments): \(run.error)")
        }
        let mismatch = try diffuse(["eval", "--model", rgb, "--data", "fashion-mnist", "--samples", "4", "--steps", "2"])
        #expect(mismatch.error.contains("[1, 28, 28]"), "\(mismatch.error)")
    }

    /// `diffuse classifier train` writes a folder that `diffuse eval --classifier` uses.
    @Test func classifierTrainWritesUsableFolder() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = try diffuse(["classifier", "train", "--data", "fashion-mnist", "--out", dir + "/cls", "--limit", "512",
                               "--epochs", "1", "--batch-size", "64", "--warmup", "2", "--lr", "3e-3"])
        #expect(run.status == 0, "\(run.error)")
        #expect(run.output.contains("test accuracy"), "\(run.output)")
        let loaded = try FeatureClassifier.load(folder: dir + "/cls")
        #expect(loaded.info.referenceCount == 512 && loaded.info.training.epochs == 1)
        let eval = try diffuse(["eval", "--data", "fashion-mnist", "--real-vs-real", "50", "--classifier", dir + "/cls", "--kid-subsets", "3"])
        #expect(eval.status == 0, "\(eval.error)")
        #expect(eval.output.contains("50 real test images"), "\(eval.output)")
        let bad = try diffuse(["classifier", "train", "--data", "nothing-here", "--out", dir + "/x"])
        #expect(bad.status != 0 && bad.error.contains("nothing-here"), "\(bad.error)")
    }
}
