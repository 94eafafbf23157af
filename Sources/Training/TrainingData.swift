import Datasets
import Foundation
import ModelIO
import Tensors

/// The data a run trains on, from what the user names on the command line.
public enum TrainingData {
    /// Loads `spec`: a data set `Datasets.load` knows by name ("fashion-mnist", "mnist",
    /// "digits", "icons") or a folder of PNG images (its training split, resized to `size` and
    /// converted to `channels` when given), or a `.npy` file of float images [N, C, H, W] in
    /// [-1, 1] (with labels from `<name>.labels.npy`, int64 [N], when that file exists beside
    /// it; integers, NaN, infinity and values outside [-1, 1] are refused). Keeps the first
    /// `limit` images when given.
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

    /// Reads a `.npy` file of images, refusing what would train silently on wrong data:
    /// integers (8-bit images not yet scaled), NaN or infinity, and values outside [-1, 1].
    static func loadNPY(_ path: String) throws -> ImageDataset {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw TrainingError("no such data: \(path) does not exist")
        }
        guard !isDirectory.boolValue else { throw TrainingError("\(path) is a folder, not a .npy file") }
        let images: Tensor
        do { images = try NPY.load(path) } catch { throw TrainingError("\(error)") }
        guard images.dtype == .float32 else {
            let type = npyTypeName(path) ?? "\(images.dtype)"
            throw TrainingError("\(path): images must be floats in [-1, 1], found \(type) values"
                                + (type == "bool" ? "" : " (8-bit images? convert them to float32 and scale them: x / 127.5 - 1)"))
        }
        guard images.rank == 4 else {
            throw TrainingError("\(path): expected images [N, C, H, W], found an array of shape \(images.shape)")
        }
        try checkValues(images, path: path)
        let labelPath = String(path.dropLast(4)) + ".labels.npy"
        var labels: [Int]? = nil
        if FileManager.default.fileExists(atPath: labelPath) {
            let tensor: Tensor
            do { tensor = try NPY.load(labelPath) } catch { throw TrainingError("\(error)") }
            labels = tensor.integers
            if let i = labels!.firstIndex(where: { $0 < 0 }) {
                throw TrainingError("\(labelPath): the label of image \(i) is \(labels![i]); labels must be at least 0")
            }
        }
        do {
            return try ImageDataset(name: URL(fileURLWithPath: path).lastPathComponent, images: images, labels: labels)
        } catch {
            throw TrainingError("\(path): \(error)")
        }
    }

    /// Refuses NaN or infinity (naming the image and the element) and values outside [-1, 1]
    /// (with the range found and how to scale it).
    static func checkValues(_ images: Tensor, path: String) throws {
        let perImage = images.shape.dropFirst().reduce(1, *)
        var (low, high) = (Float.infinity, -Float.infinity)
        var bad: (index: Int, value: Float)? = nil
        images.withUnsafeBytes { raw in
            let values = raw.bindMemory(to: Float.self)
            for (i, v) in values.enumerated() {
                guard v.isFinite else {
                    bad = (i, v)
                    return
                }
                low = Swift.min(low, v)
                high = Swift.max(high, v)
            }
        }
        if let bad {
            throw TrainingError("\(path): image \(bad.index / perImage) holds \(bad.value) (element \(bad.index % perImage) of "
                                + "\(perImage)); the data must be finite values in [-1, 1]")
        }
        // A little slack for values computed in float (e.g. x / 127.5 - 1).
        guard low >= -1.001 && high <= 1.001 else {
            let hint = low >= 0 && high <= 255
                ? "8-bit images? scale them to [-1, 1]: x / 127.5 - 1"
                : "scale them to [-1, 1]: 2 (x - min) / (max - min) - 1"
            throw TrainingError("\(path): values must lie in [-1, 1], found min \(number(low)) max \(number(high)) (\(hint))")
        }
    }

    /// An integral value without a fraction ("255"), others as %g.
    static func number(_ v: Float) -> String {
        v == v.rounded() && Swift.abs(v) < 1e9 ? String(Int(v)) : String(format: "%g", Double(v))
    }

    /// NumPy's name of a `.npy` file's element type ("uint8" for '|u1'), from its header.
    static func npyTypeName(_ path: String) -> String? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        let header = String(decoding: handle.readData(ofLength: 512), as: UTF8.self)
        guard let key = header.range(of: "'descr':") else { return nil }
        let rest = header[key.upperBound...].drop { $0 == " " || $0 == "'" }
        let descr = String(rest.prefix { $0 != "'" })
        let names = ["u1": "uint8", "i1": "int8", "u2": "uint16", "i2": "int16", "u4": "uint32", "i4": "int32", "u8": "uint64",
                     "i8": "int64", "b1": "bool", "f2": "float16", "f4": "float32", "f8": "float64"]
        return names[String(descr.dropFirst())] ?? descr
    }
}
