import Foundation
import ImageIO

/// The 32x32 PNG icons of the icon themes installed under /usr/share/icons (Debian's
/// oxygen, moka, faenza, tango, gnome, adwaita ... icon themes), as a colour data set.
///
/// Icons are found in `<theme>/**/32x32/<category>/*.png` and Faenza's
/// `<theme>/<category>/32/*.png`; files that are not 32x32 pixels (e.g. animation strips)
/// and links whose target is missing are skipped. Each icon is composited on `background`
/// (white by default), and icons whose pixels are identical after that (the same icon in
/// several themes, or linked under several names) are kept once, the first in sorted path
/// order. The label is the category folder (apps, places, devices, ...).
public enum Icons {
    public static let defaultRoot = "/usr/share/icons"

    /// Icon files and their categories, sorted by path.
    static func files(root: String) throws -> [(path: String, category: String)] {
        guard let themes = try? FileManager.default.contentsOfDirectory(atPath: root) else {
            throw DatasetError("\(root): no such folder (install an icon theme, e.g. Debian's oxygen-icon-theme)")
        }
        var found = [(path: String, category: String)]()
        for theme in themes.sorted() {
            let base = root + "/" + theme
            guard let walk = FileManager.default.enumerator(atPath: base) else { continue }
            while let relative = walk.nextObject() as? String {
                // Themes link icons under other names; a link whose target is missing is no icon.
                guard relative.hasSuffix(".png"), FileManager.default.fileExists(atPath: base + "/" + relative) else { continue }
                let parts = relative.split(separator: "/").map(String.init)
                guard parts.count >= 3 else { continue }
                if let i = parts.firstIndex(of: "32x32"), i + 2 < parts.count {
                    found.append((base + "/" + relative, parts[i + 1]))
                } else if parts[parts.count - 2] == "32" {
                    found.append((base + "/" + relative, parts[parts.count - 3]))
                }
            }
        }
        guard !found.isEmpty else {
            throw DatasetError("\(root): holds no 32x32 PNG icons (install e.g. oxygen-icon-theme, moka-icon-theme or tango-icon-theme)")
        }
        return found.sorted { $0.path < $1.path }
    }

    /// Loads the icons as `[N, 3, 32, 32]` (or `size` x `size`, or gray with `channels: 1`)
    /// images in [-1, 1] labelled by category. Unreadable icon files are an error naming the file.
    public static func load(size: Int? = nil, channels: Int? = nil, background: Color = .white,
                            root: String = defaultRoot) throws -> ImageDataset {
        var seen = Set<[UInt8]>()
        var images = [Image](), paths = [String](), categories = [String]()
        for (path, category) in try files(root: root) {
            let image = try ImageFolder.read(path, background: background).converted(channels: 3)
            guard image.width == 32, image.height == 32, seen.insert(image.pixels).inserted else { continue }
            images.append(image)
            paths.append(path)
            categories.append(category)
        }
        let names = Array(Set(categories)).sorted()
        let index = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
        return try ImageFolder.dataset(name: "icons", images: images, paths: paths, size: size, channels: channels ?? 3,
                                       labels: categories.map { index[$0]! }, classNames: names)
    }
}
