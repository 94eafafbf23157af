import Foundation

/// Reading and writing PNG files by path or file URL, as initialisers and methods that read
/// like Foundation's (`Data(contentsOf:)`, `data.write(to:)`).
extension Image {
    /// Reads a PNG file (any bit depth, palette, gray/RGB, with or without alpha, interlaced
    /// or not); see `Image.read(contentsOf:)` for how samples are converted to 8 bits.
    /// Throws `ImageIOError` naming the file when it cannot be read or is not a valid PNG.
    public init(contentsOf path: String) throws {
        self = try Image.read(contentsOf: path)
    }

    /// Reads a PNG file at a `file://` URL; see `init(contentsOf: String)`.
    public init(contentsOf url: URL) throws {
        guard url.isFileURL else {
            throw ImageIOError(path: url.absoluteString, kind: .cannotRead, detail: "only file URLs can be read (nothing is downloaded)")
        }
        self = try Image.read(contentsOf: url.path)
    }

    /// Writes the image as a PNG file at a `file://` URL, atomically (see `write(to: String)`).
    public func write(to url: URL) throws {
        guard url.isFileURL else {
            throw ImageIOError(path: url.absoluteString, kind: .cannotWrite, detail: "only file URLs can be written")
        }
        try write(to: url.path)
    }
}
