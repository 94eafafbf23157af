import Datasets
import Foundation
import Tensors
import Training

/// FID during training (`diffuse train --eval-every N --eval-samples M`): M samples of the
/// sampling (EMA) model, DDIM with `steps` steps from a fixed seed (the same noise every time,
/// so evaluations at different steps compare), scored on InceptionV3 pool3 features against M
/// training images (picked with seed 0; their features cached for the named data sets, as
/// `diffuse eval` caches them). Each result goes to the log, to TensorBoard (`eval/fid`,
/// `eval/kid`) and to `evaluations.json` in the run directory (rewritten atomically).
///
/// Evaluating is not training: its time is not in the img/s or the ETA.
final class TrainingEvaluation {
    typealias Record = EvaluationHistory.Record

    static let seed: UInt64 = 1234, chunk = 100
    let extractor: InceptionFeatureExtractor
    let samples: Int, steps: Int
    let reference: Tensor
    let runDirectory: String

    /// Loads the Inception weights and computes (or reads) the reference features now, so a
    /// missing file or unusable data stops the run before it trains.
    init(trainer: Trainer, runDirectory: String, samples: Int, steps: Int, inception: String?, note: @escaping (String) -> Void) throws {
        let c = trainer.configuration
        if let task = c.task, task != .generation {
            throw TrainingError("--eval-every scores generated images (FID); a \(task.rawValue) run makes images from images: "
                                + "evaluate it with diffuse eval-upscale or by eye on its sample grids")
        }
        guard [1, 3].contains(c.channels) else {
            throw TrainingError("--eval-every: Inception scores grey or RGB images, the run makes \(c.channels) channels")
        }
        extractor = try InceptionFeatureExtractor(file: inception)
        (self.samples, self.steps) = (samples, steps)
        self.runDirectory = runDirectory
        // Named data sets pin their contents; a .npy file, a folder or a --limit prefix does not.
        let named = Datasets.names.contains(c.data.lowercased()) && c.limit == nil
        note("FID evaluations: \(samples) samples each, DDIM \(steps) steps, against \(samples) training images (\(extractor.file))")
        reference = try InceptionEvaluation.realFeatures(of: trainer.dataset, cacheName: named ? "\(c.data.lowercased())-train" : nil,
                                                         count: samples, seed: 0, extractor: extractor, note: note)
    }

    /// Generates the samples, scores them and records the result; returns it.
    func evaluate(_ trainer: Trainer) throws -> Record {
        let start = DispatchTime.now().uptimeNanoseconds
        let model = try trainer.samplingModel()
        var parts: [Tensor] = []
        var done = 0
        while done < samples {
            let n = Swift.min(Self.chunk, samples - done)
            let request = try TrainingSamples.request(trainer, model: model, count: n, steps: steps,
                                                      seed: Self.seed &+ UInt64(done / Self.chunk))
            parts.append(try TrainingSamples.generate(model, schedulerConfig: trainer.configuration.schedulerConfig, request))
            done += n
        }
        let images = parts.count == 1 ? parts[0] : Tensor.concatenate(parts, axis: 0)
        let features = try extractor.features(images.clamped(min: -1, max: 1))
        let c = trainer.configuration
        let report = try InceptionEvaluation.report(features, against: reference, data: c.data, evaluated: "samples",
                                                    referenceSplit: "train", extractor: extractor,
                                                    kidSubsetSize: Swift.min(1000, samples, reference.shape[0]))
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let record = Record(step: trainer.step, sampler: "ddim", steps: steps, seconds: seconds, report: report)
        try EvaluationHistory.append(record, runDirectory: runDirectory)
        return record
    }

    /// "FID 31.52  KID 0.0213 ± 0.0011  (1000 samples, DDIM 50, vs 1000 train images, 84 s)"
    static func line(_ r: Record) -> String {
        String(format: "FID %.2f  KID %.4f ± %.4f  (%d samples, DDIM %d, vs %d train images, %.0f s)", r.report.fid,
               r.report.kidMean, r.report.kidStd, r.report.count, r.steps, r.report.referenceCount, r.seconds)
    }
}
