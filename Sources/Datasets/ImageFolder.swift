import Foundation
import ImageIO

/// A folder of PNG images, searched recursively, as a data set.
///
/// Files are taken in sorted path order. Transparent pixels are composited on `background`;
/// images are converted to gray or RGB and resized (`ByteImages.tensor`). When every image
/// lies in a first-level subfolder, the subfolder names are the classes (as torchvision's
/// `ImageFolder`); otherwise the set has no labels.
public enum ImageFolder {
    /// The PNG files under `folder` (recursively, following no links to folders), as sorted
    /// paths. Throws when the folder does not exist or holds no PNG file.
    public static func pngFiles(in folder: String) throws -> [String] {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder) else {
            throw DatasetError("\(folder): no such folder")
        }
        guard isFolder.boolValue else { throw DatasetError("\(folder): is a file, not a folder of PNG images") }
        guard let walk = FileManager.default.enumerator(atPath: folder) else {
            throw DatasetError("\(folder): cannot be read")
        }
        var files = [String]()
        while let relative = walk.nextObject() as? String {
            if relative.lowercased().hasSuffix(".png") { files.append(relative) }
        }
        guard !files.isEmpty else { throw DatasetError("\(folder): holds no PNG files (searched recursively)") }
        let base = folder.hasSuffix("/") ? folder : folder + "/"
        return files.sorted().map { base + $0 }
    }

    /// Loads every PNG under `folder`. `size` nil keeps the images' own size, which must then
    /// be the same for all; `channels` nil gives RGB if any image has colour, else gray.
    /// An unreadable PNG gives a `DatasetError` naming the file.
    public static func load(folder: String, size: Int? = nil, channels: Int? = nil,
                            background: Color = .white) throws -> ImageDataset {
        let paths = try pngFiles(in: folder)
        var images = [Image]()
        images.reserveCapacity(paths.count)
        for path in paths { images.append(try read(path, background: background)) }
        let base = folder.hasSuffix("/") ? folder : folder + "/"
        let relative = paths.map { String($0.dropFirst(base.count)) }
        var labels: [Int]?, classNames: [String]?
        if relative.allSatisfy({ $0.contains("/") }) {
            let classes = relative.map { String($0.prefix(while: { $0 != "/" })) }
            let names = Array(Set(classes)).sorted()
            let index = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
            labels = classes.map { index[$0]! }
            classNames = names
        }
        let name = URL(fileURLWithPath: folder).lastPathComponent
        return try dataset(name: name, images: images, paths: paths, size: size, channels: channels,
                           labels: labels, classNames: classNames)
    }

    /// A PNG file read and flattened onto `background` (gray or RGB, no alpha).
    static func read(_ path: String, background: Color) throws -> Image {
        do {
            return try Image(contentsOf: path).composited(on: background)
        } catch let error as ImageIOError {
            throw DatasetError("\(path): cannot be used as an image: \(error.kind.rawValue): \(error.detail)")
        }
    }

    /// Decoded images (gray or RGB) as a data set of one size and channel count.
    static func dataset(name: String, images: [Image], paths: [String], size: Int?, channels: Int?,
                        labels: [Int]?, classNames: [String]?) throws -> ImageDataset {
        guard let first = images.first else { throw DatasetError("\(name): no images") }
        let c = channels ?? (images.contains { $0.isColor } ? 3 : 1)
        guard c == 1 || c == 3 else { throw DatasetError("\(name): channels must be 1 (gray) or 3 (RGB), got \(c)") }
        if let size, size < 1 { throw DatasetError("\(name): the image size must be at least 1, got \(size)") }
        if size == nil, let odd = images.firstIndex(where: { $0.width != first.width || $0.height != first.height }) {
            throw DatasetError("\(name): images differ in size (\(paths[0]) is \(first.width)x\(first.height), "
                               + "\(paths[odd]) is \(images[odd].width)x\(images[odd].height)); ask for a size to resize them to")
        }
        let w = size ?? first.width, h = size ?? first.height
        var pixels = [UInt8]()
        pixels.reserveCapacity(images.count * w * h * c)
        for var im in images {
            if im.channels != c { im = im.converted(channels: c) }
            if im.width != w || im.height != h {
                im = im.width == im.height ? im.resized(width: w, height: h, filter: .bilinear)
                                           : im.resizedToFill(width: w, height: h, filter: .bilinear)
            }
            pixels += im.pixels
        }
        let bytes = ByteImages(count: images.count, width: w, height: h, channels: c, pixels: pixels)
        return try ImageDataset(name: name, images: bytes.tensor(size: nil, channels: nil, name: name),
                                labels: labels, classNames: classNames)
    }
}
