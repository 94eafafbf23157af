import Tensors

/// A set of images held in memory, ready for training: `images` is `[N, C, H, W]` float32
/// with values in [-1, 1] (the range diffusion models train on), `labels` the class of each
/// image where the data has them.
public struct ImageDataset: @unchecked Sendable {
    public let name: String
    public let images: Tensor
    public let labels: [Int]?
    public let classNames: [String]?

    public init(name: String, images: Tensor, labels: [Int]? = nil, classNames: [String]? = nil) throws {
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
        self.name = name
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
                                labels: labels.map { Array($0.prefix(n)) }, classNames: classNames)
    }
}

/// A data set that cannot be read or used, with the file and the reason.
public struct DatasetError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
