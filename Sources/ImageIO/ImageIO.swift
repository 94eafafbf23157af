/// ImageIO: 8-bit images in memory (`Image`), PNG files through libpng's simplified API,
/// conversion to and from `Tensor`s, image grids, and the pixel operations data pipelines
/// need (PIL-compatible resizing, centre crops, gray/RGB conversion, alpha compositing,
/// mirroring). It owns no tensor math: tensors come in and out as [C,H,W] float32.

/// A problem reading or writing an image file, naming the file.
public struct ImageIOError: Error, Equatable, CustomStringConvertible {
    /// What went wrong, in kinds a caller can act on.
    public enum Kind: String, Sendable, Equatable {
        /// The file could not be opened or read (missing, a folder, no permission).
        case cannotRead = "cannot read"
        /// The bytes do not start with the PNG signature.
        case notPNG = "not a PNG file"
        /// The PNG ends before its image data does.
        case truncated = "truncated PNG"
        /// The PNG is damaged (bad checksum, bad compressed data, invalid header).
        case corrupt = "corrupt PNG"
        /// A valid PNG this reader does not take (e.g. larger than `Image.maxPixels`).
        case unsupported = "unsupported PNG"
        /// The file could not be written (folder missing, no permission, disk full).
        case cannotWrite = "cannot write"
    }

    /// The file (or "<memory>" for in-memory data).
    public let path: String
    public let kind: Kind
    /// Details from libpng or the operating system.
    public let detail: String

    public init(path: String, kind: Kind, detail: String) {
        self.path = path
        self.kind = kind
        self.detail = detail
    }

    public var description: String { "\(path): \(kind.rawValue)\(detail.isEmpty ? "" : ": \(detail)")" }
}
