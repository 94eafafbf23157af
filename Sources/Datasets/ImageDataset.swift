import Foundation
import Tensors

/// A set of images held in memory, ready for training: `images` is `[N, C, H, W]` float32
/// with values in [-1, 1] (the range diffusion models train on), `labels` the class of each
/// image and `captions` a text for each image, where the data has them.
public struct ImageDataset: @unchecked Sendable {
    public let name: String
    public let images: Tensor
    public let labels: [Int]?
    public let classNames: [String]?
    /// A caption per image (text-to-image data), or nil.
    public let captions: [String]?

    public init(name: String, images: Tensor, labels: [Int]? = nil, classNames: [String]? = nil, captions: [String]? = nil) throws {
        guard images.rank == 4, images.dtype == .float32 else {
            throw DatasetError("\(name): images must be a float32 [N, C, H, W] tensor, found \(images.dtype) \(images.shape)")
        }
        guard images.shape[0] > 0 else { throw DatasetError("\(name): the data set is empty") }
        if let labels {
            guard labels.count == images.shape[0] else {
                throw DatasetError("\(name): \(labels.count) labels for \(images.shape[0]) images")
            }
            if let classNames, let bad = labels.first(where: { $0 < 0 || $0 >= classNames.count }) {
                throw DatasetError("\(name): label \(bad) outside the \(classNames.count) classes")
            }
        }
        if let captions, captions.count != images.shape[0] {
            throw DatasetError("\(name): \(captions.count) captions for \(images.shape[0]) images")
        }
        self.name = name
        self.captions = captions
        self.images = images.contiguous()
        self.labels = labels
        self.classNames = classNames
    }

    public var count: Int { images.shape[0] }
    public var channels: Int { images.shape[1] }
    public var height: Int { images.shape[2] }
    public var width: Int { images.shape[3] }
    /// The number of classes, where the data set has labels.
    public var classCount: Int? { classNames?.count ?? labels.map { ($0.max() ?? -1) + 1 } }

    /// The first `n` images (or all of them), e.g. for a quick run or a held-out split.
    public func prefix(_ n: Int) throws -> ImageDataset {
        let n = min(n, count)
        return try ImageDataset(name: name, images: images.sliced(axis: 0, 0..<n).contiguous(),
                                labels: labels.map { Array($0.prefix(n)) }, classNames: classNames,
                                captions: captions.map { Array($0.prefix(n)) })
    }

    /// The same images with these captions (one per image).
    public func withCaptions(_ captions: [String]) throws -> ImageDataset {
        try ImageDataset(name: name, images: images, labels: labels, classNames: classNames, captions: captions)
    }

    /// Captions from the class names by a template ("a photo of a {}" gives "a photo of a
    /// sneaker"); class names are lowercased, "/" read as "or".
    public func withTemplateCaptions(_ template: String = "a {}") throws -> ImageDataset {
        try withTemplateCaptions([template])
    }

    /// Captions from several templates in turn: image i takes template i mod their count
    /// (so the words around the class name vary and a text encoder learns to find it).
    public func withTemplateCaptions(_ templates: [String]) throws -> ImageDataset {
        guard let labels, let classNames else { throw DatasetError("\(name): template captions need class labels") }
        guard !templates.isEmpty else { throw DatasetError("\(name): no caption template given") }
        let names = classNames.map { $0.lowercased().replacingOccurrences(of: "/", with: " or ") }
        return try withCaptions(labels.enumerated().map { i, label in
            templates[i % templates.count].replacingOccurrences(of: "{}", with: names[label])
        })
    }
}

/// A data set that cannot be read or used, with the file and the reason.
public struct DatasetError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
