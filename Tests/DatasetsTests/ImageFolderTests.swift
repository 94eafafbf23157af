import Foundation
import ImageIO
import Testing
@testable import Datasets

/// Folders of PNG files written here, read back through `Datasets.load(name: path)`.
@Suite struct ImageFolderTests {
    /// Two classes in subfolders, one RGBA image composited on white or black, and a nested
    /// file: sorted order, labels from the first-level folder, exact pixel values.
    @Test func roundTrip() throws {
        let root = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/cats/deeper", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/dogs", withIntermediateDirectories: true)
        // cats/a.png: RGB 4x4, pixel (x, y) = (10x, 20y, 200).
        var rgb = [UInt8]()
        for y in 0..<4 { for x in 0..<4 { rgb += [UInt8(10 * x), UInt8(20 * y), 200] } }
        try Image(width: 4, height: 4, channels: 3, pixels: rgb).write(to: root + "/cats/a.png")
        // cats/deeper/b.png: gray 4x4 of 51.
        try Image(width: 4, height: 4, fill: [51]).write(to: root + "/cats/deeper/b.png")
        // dogs/c.png: RGBA, red at alpha 0 and opaque blue.
        var rgba = [UInt8]()
        for i in 0..<16 { rgba += i < 8 ? [255, 0, 0, 0] : [0, 0, 255, 255] }
        try Image(width: 4, height: 4, channels: 4, pixels: rgba).write(to: root + "/dogs/c.png")
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: root + "/dogs/notes.txt"))

        let set = try Datasets.load(name: root)
        #expect(set.images.shape == [3, 3, 4, 4])
        #expect(set.classNames == ["cats", "dogs"])
        #expect(set.labels == [0, 0, 1])
        func v(_ byte: Int) -> Float { Float(byte) / 255 * 2 - 1 }
        #expect(set.images[element: [0, 0, 2, 3]] == v(30) && set.images[element: [0, 1, 2, 3]] == v(40))
        #expect(set.images[element: [0, 2, 0, 0]] == v(200))
        #expect(set.images[element: [1, 0, 1, 1]] == v(51) && set.images[element: [1, 2, 1, 1]] == v(51))
        // Transparent red on white is white; opaque blue stays blue.
        #expect((0..<3).map { set.images[element: [2, $0, 0, 0]] } == [1, 1, 1])
        #expect((0..<3).map { set.images[element: [2, $0, 3, 3]] } == [-1, -1, 1])
        let onBlack = try Datasets.load(name: root, background: .black)
        #expect((0..<3).map { onBlack.images[element: [2, $0, 0, 0]] } == [-1, -1, -1])

        // Gray on request, by Pillow's luma; resized to 8x8 (constant images stay constant).
        let gray = try Datasets.load(name: root, size: 8, channels: 1)
        #expect(gray.images.shape == [3, 1, 8, 8])
        #expect(gray.images[element: [1, 0, 5, 2]] == v(51))
        #expect(gray.images[element: [2, 0, 0, 0]] == 1)
    }

    /// Files at the top level mean no labels; images of different sizes need a size.
    @Test func unlabelledAndMixedSizes() throws {
        let root = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Image(width: 6, height: 4, fill: [0]).write(to: root + "/wide.png")
        try Image(width: 4, height: 4, fill: [255]).write(to: root + "/square.png")
        let mixed = errorMessage { try Datasets.load(name: root) }
        #expect(mixed?.contains("images differ in size") == true && mixed?.contains("wide.png is 6x4") == true, "\(mixed ?? "")")
        let set = try ImageFolder.load(folder: root, size: 4)
        #expect(set.images.shape == [2, 1, 4, 4] && set.labels == nil)
        #expect(set.images[element: [0, 0, 0, 0]] == 1 && set.images[element: [1, 0, 3, 3]] == -1)   // square.png first
    }

    @Test func errorsNameThePath() throws {
        let root = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let empty = errorMessage { try Datasets.load(name: root) }
        #expect(empty?.contains(root) == true && empty?.contains("holds no PNG files") == true)
        let missing = errorMessage { try Datasets.load(name: root + "/nothing") }
        #expect(missing?.contains("no such folder") == true)
        try Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0]).write(to: URL(fileURLWithPath: root + "/broken.png"))
        let broken = errorMessage { try Datasets.load(name: root) }
        #expect(broken?.contains(root + "/broken.png") == true && broken?.contains("cannot be used as an image") == true, "\(broken ?? "")")
    }
}
