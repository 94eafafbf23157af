import Tensors

/// scikit-learn's optical handwritten digits (UCI, Alpaydin & Kaynak 1998): 1,797 8x8
/// images with values 0...16 and their digits, from `sklearn/datasets/data/digits.csv.gz`
/// (rows of 64 pixel values and the label, comma-separated).
///
/// The set has no separate test images: the training split is all 1,797 and asking for
/// the test split is an error.
public enum Digits {
    public static let relativePath = "sklearn/datasets/data/digits.csv.gz"
    /// An environment variable that names the file directly.
    public static let environmentVariable = "DIFFUSE_DIGITS_CSV"
    public static let classNames = (0..<10).map(String.init)

    /// The installed `digits.csv.gz` (`$DIFFUSE_DIGITS_CSV` or scikit-learn's).
    public static func locate() throws -> String {
        try PythonPackages.locate(relativePath, override: environmentVariable, package: "scikit-learn")
    }

    /// The digits as `[1797, C, 8, 8]` images in [-1, 1] (value v -> v / 8 - 1, exactly) or,
    /// when `size` asks for another size, resized through 8-bit images (v -> round(v * 255 / 16)).
    public static func load(split: DatasetSplit = .train, size: Int? = nil, channels: Int? = nil,
                            path: String? = nil) throws -> ImageDataset {
        guard split == .train else {
            throw DatasetError("digits has no test split: scikit-learn ships all 1,797 images as one set (use split .train and hold some out)")
        }
        let file = try path ?? locate()
        let (values, labels) = try read(path: file)
        let n = labels.count
        let c = channels ?? 1
        let images: Tensor
        if size == nil || size == 8, c == 1 || c == 3 {
            var floats = [Float](repeating: 0, count: n * c * 64)
            for i in 0..<n {
                for ch in 0..<c {
                    for p in 0..<64 { floats[(i * c + ch) * 64 + p] = Float(values[i * 64 + p]) / 8 - 1 }
                }
            }
            images = Tensor(floats, shape: [n, c, 8, 8])
        } else {
            let bytes = values.map { UInt8((Double($0) * 255 / 16).rounded()) }
            images = try ByteImages(count: n, width: 8, height: 8, channels: 1, pixels: bytes)
                .tensor(size: size, channels: channels, name: "digits")
        }
        return try ImageDataset(name: "digits", images: images, labels: labels, classNames: classNames)
    }

    /// The 64 values of each image (row-major) and the labels.
    static func read(path: String) throws -> ([Int], [Int]) {
        let text = try Gzip.decompress(contentsOf: path)
        var values = [Int](), labels = [Int]()
        var row = [Int](), field = 0, digits = 0, line = 1
        func endRow() throws {
            guard row.count == 65 else {
                throw DatasetError("\(path): line \(line) has \(row.count) values, expected 65 (64 pixels and the label)")
            }
            if let bad = row.prefix(64).firstIndex(where: { $0 > 16 }) {
                throw DatasetError("\(path): line \(line) pixel \(bad) is \(row[bad]), outside 0...16")
            }
            guard row[64] <= 9 else { throw DatasetError("\(path): line \(line) label \(row[64]) is not a digit") }
            values += row.prefix(64)
            labels.append(row[64])
            row.removeAll(keepingCapacity: true)
        }
        for byte in text {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                field = field * 10 + Int(byte - UInt8(ascii: "0"))
                digits += 1
                guard digits <= 6 else { throw DatasetError("\(path): line \(line) holds a number too long for a pixel") }
            case UInt8(ascii: "."):
                throw DatasetError("\(path): line \(line) holds a non-integer value")
            case UInt8(ascii: ","), UInt8(ascii: "\n"):
                guard digits > 0 else { throw DatasetError("\(path): line \(line) has an empty value") }
                row.append(field)
                field = 0
                digits = 0
                if byte == UInt8(ascii: "\n") {
                    try endRow()
                    line += 1
                }
            case UInt8(ascii: "\r"), UInt8(ascii: " "):
                continue
            default:
                throw DatasetError("\(path): line \(line) holds the unexpected byte 0x\(hex(byte))")
            }
        }
        if digits > 0 {
            row.append(field)
            try endRow()
        }
        guard !labels.isEmpty else { throw DatasetError("\(path): holds no digits") }
        return (values, labels)
    }
}
