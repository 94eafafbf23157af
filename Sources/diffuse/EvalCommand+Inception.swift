import ArgumentParser
import Datasets
import Foundation
import ModelIO
import Pipelines
import Tensors
import Training

extension EvalCommand {
    /// `--metric fid | kid`: the evaluated images and `--reference-count` real training images
    /// through InceptionV3 (Training's `InceptionEvaluation`), the reference features cached.
    func runInception() throws {
        let start = DispatchTime.now().uptimeNanoseconds
        func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        func note(_ line: String) { if !json { print(line); fflush(nil) } }

        let extractor = try InceptionFeatureExtractor(file: inception)
        note("InceptionV3 (FID, pool3 2048-d): \(extractor.file)")

        let images: Tensor
        let evaluated: String
        if !imageFiles.isEmpty {
            var parts: [Tensor] = []
            for file in imageFiles {
                let part = try NPY.load(file)
                guard part.dtype == .float32, part.rank == 4, part.shape[1] == 1 || part.shape[1] == 3,
                      parts.isEmpty || Array(part.shape.dropFirst()) == Array(parts[0].shape.dropFirst()) else {
                    throw ValidationError("\(file): expected float32 samples [N, 1 or 3, H, W] (all files alike), got \(part.dtype) \(part.shape)")
                }
                parts.append(part)
            }
            images = parts.count == 1 ? parts[0] : Tensor.concatenate(parts, axis: 0)
            note("scoring \(images.shape[0]) samples from \(imageFiles.count) file(s)")
            evaluated = "samples"
        } else if let n = realVsReal {
            let test = try Datasets.load(name: data, split: .test)
            guard n <= test.count else { throw ValidationError("--real-vs-real \(n): the test split has only \(test.count) images") }
            images = SampleEvaluation.randomImages(of: test, count: n, seed: seed &+ 1)
            evaluated = "test-split"
        } else {
            let classes = (try? FeatureClassifier.bundled(for: data))?.info.numClasses ?? 10
            images = try generate(classLabels: try labels(count: samples!, classes: classes), note: note, elapsed: elapsed) { shape in
                guard shape.count == 3, shape[0] == 1 || shape[0] == 3 else {
                    throw ValidationError("the model makes samples of shape \(shape): Inception scores grey or RGB images")
                }
            }
            evaluated = "samples"
        }
        let n = images.shape[0]
        let (channels, size) = (images.shape[1], images.shape[2])
        let reference = try InceptionEvaluation.realFeatures(
            data: data, split: .train, count: referenceCount ?? n, seed: seed, size: size, channels: channels,
            extractor: extractor, note: note)
        let what = evaluated == "samples" ? "samples" : "test images"
        let features = try extractor.features(images.clamped(min: -1, max: 1),
                                              progress: InceptionEvaluation.progressNote(n, what, note))
        let rate = extractor.lastImagesPerSecond
        let report = try InceptionEvaluation.report(features, against: reference, data: data, evaluated: evaluated,
                                                    referenceSplit: "train", extractor: extractor,
                                                    kidSubsets: kidSubsets, kidSubsetSize: kidSubsetSize, seed: seed)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
            return
        }
        print("\(n) \(evaluated == "samples" ? "samples" : "real test images") vs \(report.referenceCount) train images of \(data) (InceptionV3 pool3):")
        if metric == .fid {
            print(String(format: "  FID  %.4f   (%d vs %d images; FID is biased: compare runs with the same counts)",
                         report.fid, n, report.referenceCount))
        }
        print(String(format: "  KID  %.5f ± %.5f   (%d subsets of %d)", report.kidMean, report.kidStd, report.kidSubsets, report.kidSubsetSize))
        print(String(format: "  Inception: %.1f images/s over the %d scored images", rate, n))
        print(String(format: "done in %.1f s", elapsed()))
    }
}
