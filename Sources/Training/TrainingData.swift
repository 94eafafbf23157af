import Datasets
import Foundation
import ModelIO
import Tensors

/// The data a run trains on, from what the user names on the command line.
public enum TrainingData {
    /// Loads `spec`: a data set `Datasets.load` knows by name ("fashion-mnist", "mnist",
    /// "digits", "icons") or a folder of PNG images (its training split, resized to `size` and
    /// converted to `channels` when given), or a `.npy` file of float32 images [N, C, H, W] in
    /// [-1, 1] (with labels from `<name>.labels.npy`, int64 [N], when that file exists beside
    /// it). Keeps the first `limit` images when given.
    public static func load(_ spec: String, size: Int? = nil, channels: Int? = nil, limit: Int? = nil) throws -> ImageDataset {
        var dataset: ImageDataset
        if spec.hasSuffix(".npy") {
            guard size == nil && channels == nil else {
                throw TrainingError("--image-size and --channels apply to named data sets and image folders, not to .npy files")
            }
            dataset = try loadNPY(spec)
        } else {
            do { dataset = try Datasets.load(name: spec, size: size, channels: channels, split: .train) } catch {
                throw TrainingError("no such data: \(error)")
            }
        }
        if let limit {
            guard limit >= 1 else { throw TrainingError("--limit must be at least 1, got \(limit)") }
            dataset = try dataset.prefix(limit)
        }
        return dataset
    }

    static func loadNPY(_ path: String) throws -> ImageDataset {
        guard FileManager.default.fileExists(atPath: path) else { throw TrainingError("no such data: \(path) does not exist") }
        let images: Tensor
        do { images = try NPY.load(path).to(.float32) } catch { throw TrainingError("\(error)") }
        guard images.rank == 4 else {
            throw TrainingError("\(path): expected images [N, C, H, W], found an array of shape \(images.shape)")
        }
        let labelPath = String(path.dropLast(4)) + ".labels.npy"
        var labels: [Int]? = nil
        if FileManager.default.fileExists(atPath: labelPath) {
            do { labels = try NPY.load(labelPath).integers } catch { throw TrainingError("\(error)") }
        }
        do {
            return try ImageDataset(name: URL(fileURLWithPath: path).lastPathComponent, images: images, labels: labels)
        } catch {
            throw TrainingError("\(path): \(error)")
        }
    }
}
