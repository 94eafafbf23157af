import Foundation
import Testing
@testable import Datasets

/// The Twemoji caption set from the installed packages.
@Suite struct EmojiTests {
    @Test func loadsCaptionedEmoji() throws {
        let set = try Emoji.load(size: 16, limit: 40)
        #expect(set.count == 40 && set.channels == 3 && set.height == 16)
        #expect(set.captions?.count == 40)
        let all = try Emoji.names(testFile: Emoji.defaultTestFile)
        #expect(all["1f600"] == "grinning face")
        #expect(all[Emoji.key(["2764", "FE0F"])] == "red heart")
        #expect(all.count > 3000)
        let values = set.images.scalars
        #expect(values.min()! >= -1 && values.max()! <= 1)
    }

    /// A damaged emoji-test.txt is refused with the file and line.
    @Test func refusesDamagedNames() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("emoji-test-\(UUID().uuidString).txt").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "# header\n1F600 ; fully-qualified # 😀 E1.0 grinning face\n1F603 fully-qualified\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: DatasetError.self) { _ = try Emoji.names(testFile: path) }
        let message = (try? Emoji.names(testFile: path)).map { _ in "" } ?? { do { _ = try Emoji.names(testFile: path); return "" } catch { return "\(error)" } }()
        #expect(message.contains(":3: expected"))
    }

    /// Fashion-MNIST with template captions.
    @Test func templateCaptions() throws {
        let set = try Datasets.load(name: "fashion-mnist", split: .test).prefix(3).withTemplateCaptions("a photo of a {}")
        #expect(set.captions == ["a photo of a ankle boot", "a photo of a pullover", "a photo of a trouser"])
    }
}
