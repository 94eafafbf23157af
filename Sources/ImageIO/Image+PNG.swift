import CPNG
import Glibc

/// PNG files through libpng's simplified API (`png_image`), which reports errors in
/// `png_image.message` instead of jumping out of the caller.
extension Image {
    /// The eight bytes every PNG file starts with.
    static let pngSignature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// Reads any PNG file: palette images are expanded to RGB (RGBA with a tRNS chunk), gray
    /// with tRNS gains an alpha channel, 1/2/4-bit gray is scaled to 0...255 and 16-bit
    /// samples are reduced to 8 bits (v * 255 / 65535, rounded). Interlaced files are
    /// de-interlaced. The channel count follows the file: 1, 2, 3 or 4.
    ///
    /// 16-bit files without gamma information are taken as sRGB-encoded (as almost every
    /// writer means them), not linear; files with a gAMA chunk other than sRGB's are
    /// converted to sRGB by libpng.
    public static func read(contentsOf path: String) throws -> Image {
        let bytes = try readFile(path)
        return try decodePNG(bytes, name: path)
    }

    /// Decodes PNG bytes held in memory; `name` only labels errors.
    public static func decodePNG(_ bytes: [UInt8], name: String = "<memory>") throws -> Image {
        guard bytes.count >= 8, Array(bytes[0..<8]) == pngSignature else {
            let detail = bytes.isEmpty ? "the file is empty" : "the first bytes are not the PNG signature"
            throw ImageIOError(path: name, kind: bytes.count < 8 && bytes == Array(pngSignature.prefix(bytes.count)) && !bytes.isEmpty
                               ? .truncated : .notPNG, detail: detail)
        }
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        defer { png_image_free(&image) }
        let began = bytes.withUnsafeBytes { buffer in
            png_image_begin_read_from_memory(&image, buffer.baseAddress, buffer.count)
        }
        guard began != 0 else { throw pngError(&image, name: name, reading: true) }

        let width = Int(image.width), height = Int(image.height)
        guard width > 0, height > 0, width * height <= maxPixels else {
            throw ImageIOError(path: name, kind: .unsupported,
                               detail: "\(width)x\(height) pixels is more than the \(maxPixels) this reader takes")
        }
        let source = image.format
        let hasAlpha = source & UInt32(PNG_FORMAT_FLAG_ALPHA) != 0
        let hasColor = source & UInt32(PNG_FORMAT_FLAG_COLOR) != 0
        let channels = (hasColor ? 3 : 1) + (hasAlpha ? 1 : 0)
        // 8-bit sRGB output in the file's own channel layout; no colormap, so palettes expand.
        image.format = (hasColor ? UInt32(PNG_FORMAT_FLAG_COLOR) : 0) | (hasAlpha ? UInt32(PNG_FORMAT_FLAG_ALPHA) : 0)
        image.flags |= UInt32(PNG_IMAGE_FLAG_16BIT_sRGB)
        if source & UInt32(PNG_FORMAT_FLAG_LINEAR) != 0 && bytes[28] == 1 {
            return try decodeInterlaced16(&image, bytes, name: name, channels: channels)
        }
        var pixels = [UInt8](repeating: 0, count: width * height * channels)
        let finished = bytes.withUnsafeBytes { _ in   // the source must outlive finish_read
            pixels.withUnsafeMutableBytes { out in
                png_image_finish_read(&image, nil, out.baseAddress, Int32(width * channels), nil)
            }
        }
        guard finished != 0 else { throw pngError(&image, name: name, reading: true) }
        return Image(width: width, height: height, channels: channels, pixels: pixels)
    }

    /// Adam7-interlaced 16-bit files, read at 16 bits and reduced here.
    ///
    /// libpng 1.6's simplified reader (since its fix for the png_image_finish_read overflow,
    /// in Debian 12's 1.6.39-2+deb12u4 among others) scrambles rows when it reduces
    /// interlaced 16-bit images to 8 bits (libpng issue #853), so these are read in its
    /// 16-bit "linear" format instead. That format premultiplies colour by alpha; it is
    /// divided out again, so colour under alpha that rounds to 0 reads as black and other
    /// colour samples of such images can differ by one step from the non-interlaced path.
    static func decodeInterlaced16(_ image: inout png_image, _ bytes: [UInt8], name: String, channels: Int) throws -> Image {
        let width = Int(image.width), height = Int(image.height)
        // Without gamma information the samples are sRGB-encoded already: leaving the flag
        // unset makes libpng take them as linear, i.e. pass them through unchanged. With a
        // gAMA or sRGB chunk libpng decodes them to linear light, and they are encoded to
        // sRGB here, as its 8-bit path would.
        let encoded = !hasChunk(bytes, "gAMA") && !hasChunk(bytes, "sRGB")
        image.flags &= ~UInt32(PNG_IMAGE_FLAG_16BIT_sRGB)
        image.format |= UInt32(PNG_FORMAT_FLAG_LINEAR)
        var wide = [UInt16](repeating: 0, count: width * height * channels)
        let finished = bytes.withUnsafeBytes { _ in
            wide.withUnsafeMutableBytes { out in
                png_image_finish_read(&image, nil, out.baseAddress, Int32(width * channels), nil)
            }
        }
        guard finished != 0 else { throw pngError(&image, name: name, reading: true) }
        let alpha = channels == 2 || channels == 4
        let colors = alpha ? channels - 1 : channels
        var pixels = [UInt8](repeating: 0, count: wide.count)
        for i in 0..<(width * height) {
            let a = alpha ? Int(wide[i * channels + colors]) : 65535
            for c in 0..<colors {
                var v = Int(wide[i * channels + c])
                if alpha { v = a == 0 ? 0 : Swift.min(65535, (v * 65535 + a / 2) / a) }
                pixels[i * channels + c] = encoded ? UInt8((v * 255 + 32767) / 65535) : sRGBByte(linear: v)
            }
            if alpha { pixels[i * channels + colors] = UInt8((a * 255 + 32767) / 65535) }
        }
        return Image(width: width, height: height, channels: channels, pixels: pixels)
    }

    /// The sRGB transfer function of a 16-bit linear value, as a byte.
    static func sRGBByte(linear v: Int) -> UInt8 {
        let x = Double(v) / 65535
        let s = x <= 0.0031308 ? 12.92 * x : 1.055 * pow(x, 1 / 2.4) - 0.055
        return UInt8((s * 255).rounded())
    }

    /// Whether a chunk of this type comes before the image data.
    static func hasChunk(_ bytes: [UInt8], _ type: String) -> Bool {
        let want = Array(type.utf8)
        var at = 8
        while at + 8 <= bytes.count {
            let length = bytes[at..<at + 4].reduce(0) { $0 << 8 | Int($1) }
            let kind = Array(bytes[at + 4..<at + 8])
            if kind == want { return true }
            if kind == Array("IDAT".utf8) { return false }
            at += 12 + length
        }
        return false
    }

    /// The image encoded as a PNG file (8-bit, non-interlaced, default compression).
    public func encodedPNG() throws -> [UInt8] {
        try encodedPNG(name: "<memory>")
    }

    func encodedPNG(name: String) throws -> [UInt8] {
        guard width > 0, height > 0 else {
            throw ImageIOError(path: name, kind: .cannotWrite, detail: "a PNG cannot hold an empty \(width)x\(height) image")
        }
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(width)
        image.height = UInt32(height)
        image.format = (isColor ? UInt32(PNG_FORMAT_FLAG_COLOR) : 0) | (hasAlpha ? UInt32(PNG_FORMAT_FLAG_ALPHA) : 0)
        defer { png_image_free(&image) }
        // Enough for stored (uncompressed) deflate blocks plus the chunks around them; if
        // libpng still needs more it says how much and the write is repeated.
        let raw = height * (width * channels + 1)
        var capacity = raw + raw / 1000 * 5 + 4096
        for _ in 0..<2 {
            var out = [UInt8](repeating: 0, count: capacity)
            var size = capacity
            let ok = pixels.withUnsafeBytes { src in
                out.withUnsafeMutableBytes { dst in
                    png_image_write_to_memory(&image, dst.baseAddress, &size, 0, src.baseAddress, Int32(width * channels), nil)
                }
            }
            if ok != 0 {
                out.removeSubrange(size...)
                return out
            }
            guard size > capacity else { throw Image.pngError(&image, name: name, reading: false) }
            capacity = size
            image.warning_or_error = 0
        }
        throw Image.pngError(&image, name: name, reading: false)
    }

    /// Writes the image as a PNG file, atomically: the bytes go to a temporary file in the
    /// same folder, which is then renamed over `path`, so readers never see a partial file.
    public func write(to path: String) throws {
        let bytes = try encodedPNG(name: path)
        try Image.writeAtomically(bytes, to: path)
    }

    // MARK: Files

    /// The whole file, or an error naming it.
    static func readFile(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ImageIOError(path: path, kind: .cannotRead, detail: errnoText()) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw ImageIOError(path: path, kind: .cannotRead, detail: errnoText()) }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw ImageIOError(path: path, kind: .cannotRead, detail: "not a regular file")
        }
        var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ImageIOError(path: path, kind: .cannotRead, detail: errnoText())
            }
            if n == 0 { bytes.removeSubrange(done...); break }   // the file shrank meanwhile
            done += n
        }
        return bytes
    }

    /// Writes `bytes` to a temporary file beside `path`, flushes it and renames it over `path`.
    static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        let slash = path.lastIndex(of: "/")
        let folder = slash.map { String(path[...$0]) } ?? ""
        let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
        var template = Array("\(folder).\(base).tmp-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw ImageIOError(path: path, kind: .cannotWrite, detail: errnoText()) }
        // mkstemp makes the file owner-only; give it the permissions a plain create would (0666 & ~umask).
        let mask = umask(0); umask(mask); fchmod(fd, 0o666 & ~mask)
        let temp = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        var failure: String?
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                failure = errnoText()
                break
            }
            done += n
        }
        if failure == nil, fchmod(fd, 0o644) != 0 || fsync(fd) != 0 { failure = errnoText() }
        if close(fd) != 0, failure == nil { failure = errnoText() }
        if failure == nil, rename(temp, path) != 0 { failure = errnoText() }
        if let failure {
            unlink(temp)
            throw ImageIOError(path: path, kind: .cannotWrite, detail: failure)
        }
    }

    /// An error from libpng's message, sorted into a kind.
    static func pngError(_ image: inout png_image, name: String, reading: Bool) -> ImageIOError {
        let message = withUnsafeBytes(of: &image.message) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        guard reading else { return ImageIOError(path: name, kind: .cannotWrite, detail: message) }
        let lower = message.lowercased()
        let kind: ImageIOError.Kind
        if lower.contains("not a png") || lower.contains("not a png file") {
            kind = .notPNG
        } else if lower.contains("read beyond end") || lower.contains("not enough image data") || lower.contains("end of")
                    || lower.contains("truncated") || lower.contains("read error") {
            kind = .truncated
        } else if lower.contains("too large") || lower.contains("exceeds") || lower.contains("unsupported")
                    || lower.contains("not supported") || lower.contains("memory") {
            kind = .unsupported
        } else {
            kind = .corrupt
        }
        return ImageIOError(path: name, kind: kind, detail: message.isEmpty ? "libpng gave no reason" : message)
    }
}

/// The message for the current `errno`.
func errnoText() -> String { String(cString: strerror(errno)) }
