/// Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): 70,000 28x28 gray images of clothing in ten
/// classes, 60,000 for training and 10,000 for testing, as Debian's `dataset-fashion-mnist`
/// installs them: gzip-compressed idx files.
public enum FashionMNIST {
    /// Where Debian's `dataset-fashion-mnist` puts the files.
    public static let defaultFolder = "/usr/share/datasets/fashion-mnist"

    /// The ten classes, in label order.
    public static let classNames = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

    /// The file names of a split: `train-images-idx3-ubyte.gz` and `train-labels-idx1-ubyte.gz`
    /// for training, `t10k-...` for testing.
    public static func files(split: DatasetSplit) -> (images: String, labels: String) {
        let prefix = split == .train ? "train" : "t10k"
        return ("\(prefix)-images-idx3-ubyte.gz", "\(prefix)-labels-idx1-ubyte.gz")
    }

    /// Loads a split as `[N, C, 28, 28]` (or `size` x `size`) images in [-1, 1] with labels.
    /// `folder` holds the four files (default: Debian's). See `ByteImages.tensor` for how
    /// `size` and `channels` are applied. Damaged files give a `DatasetError` naming the
    /// file and what was wrong.
    public static func load(split: DatasetSplit = .train, size: Int? = nil, channels: Int? = nil,
                            folder: String = defaultFolder) throws -> ImageDataset {
        let (images, labels) = try read(split: split, folder: folder)
        return try ImageDataset(name: "fashion-mnist-\(split.rawValue)",
                                images: images.tensor(size: size, channels: channels, name: "fashion-mnist"),
                                labels: labels, classNames: classNames)
    }

    /// The decoded bytes and labels of a split.
    static func read(split: DatasetSplit, folder: String) throws -> (ByteImages, [Int]) {
        let names = files(split: split)
        let imagePath = folder + "/" + names.images, labelPath = folder + "/" + names.labels
        return try readIDXPair(images: imagePath, labels: labelPath, classes: classNames.count)
    }
}

/// An idx image file (N x H x W bytes) and its idx label file (N bytes, each < `classes`).
func readIDXPair(images imagePath: String, labels labelPath: String, classes: Int) throws -> (ByteImages, [Int]) {
    let images = try IDXArray(Gzip.decompress(contentsOf: imagePath), dimensions: 3, name: imagePath)
    let labels = try IDXArray(Gzip.decompress(contentsOf: labelPath), dimensions: 1, name: labelPath)
    guard images.shape[0] == labels.shape[0] else {
        throw DatasetError("\(labelPath): \(labels.shape[0]) labels for the \(images.shape[0]) images of \(imagePath)")
    }
    guard images.shape[0] > 0, images.shape[1] > 0, images.shape[2] > 0 else {
        throw DatasetError("\(imagePath): holds no images (shape \(images.shape))")
    }
    if let bad = labels.bytes.firstIndex(where: { Int($0) >= classes }) {
        throw DatasetError("\(labelPath): label \(labels.bytes[bad]) of item \(bad) is outside the \(classes) classes")
    }
    let bytes = ByteImages(count: images.shape[0], width: images.shape[2], height: images.shape[1], channels: 1,
                           pixels: images.bytes)
    return (bytes, labels.bytes.map(Int.init))
}
