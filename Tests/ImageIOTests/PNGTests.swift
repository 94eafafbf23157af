import Foundation
import Testing
@testable import ImageIO

struct ExpectedImage: Decodable {
    let width: Int
    let height: Int
    let channels: Int
    let pixels: [UInt8]
    /// Largest difference allowed (0 unless the fixture script says otherwise).
    let tolerance: Int?
}

@Suite struct PNGTests {
    /// Each channel count survives a write and a read, through a file and through memory.
    @Test(arguments: [1, 2, 3, 4])
    func roundTrip(channels: Int) throws {
        var data = TestBytes(seed: UInt64(channels))
        let image = data.image(width: 37, height: 23, channels: channels)
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/image.png"
        try image.write(to: path)
        #expect(try Image.read(contentsOf: path) == image)
        #expect(try Image.decodePNG(image.encodedPNG()) == image)
        // Overwriting replaces the file and leaves no temporary files behind.
        let other = data.image(width: 3, height: 2, channels: channels)
        try other.write(to: path)
        #expect(try Image.read(contentsOf: path) == other)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder) == ["image.png"])
        // The initialiser and URL forms read and write the same files.
        #expect(try Image(contentsOf: path) == other)
        let url = URL(fileURLWithPath: folder + "/url.png")
        try image.write(to: url)
        #expect(try Image(contentsOf: url) == image)
        #expect(throws: ImageIOError.self) { try Image(contentsOf: URL(string: "https://example.com/a.png")!) }
    }

    /// One-pixel and one-row images, and an image that compresses badly (random bytes).
    @Test func extremeShapes() throws {
        var data = TestBytes(seed: 9)
        for (w, h) in [(1, 1), (1, 300), (300, 1), (512, 512)] {
            let image = data.image(width: w, height: h, channels: 4)
            #expect(try Image.decodePNG(image.encodedPNG()) == image, "\(w)x\(h)")
        }
    }

    /// Files of every colour type and bit depth (palette with and without tRNS, 1/4/8/16-bit
    /// gray, gray + tRNS, gray + alpha, RGB + tRNS, 16-bit RGB/RGBA, Adam7 interlaced, all
    /// five scanline filters, split IDAT chunks; written by hand and by PIL) read as the
    /// expected 8-bit pixels.
    @Test func readsEveryKindOfPNG() throws {
        let json = try Data(contentsOf: URL(fileURLWithPath: try fixturePath("read_expected.json")))
        let expected = try JSONDecoder().decode([String: ExpectedImage].self, from: json)
        #expect(expected.count >= 19)
        for (name, want) in expected.sorted(by: { $0.key < $1.key }) {
            let image = try Image.read(contentsOf: try fixturePath(name))
            #expect(image.width == want.width && image.height == want.height && image.channels == want.channels,
                    "\(name): \(image.width)x\(image.height)x\(image.channels)")
            guard image.pixels.count == want.pixels.count else { continue }
            let off = maxDifference(image, Image(width: want.width, height: want.height, channels: want.channels, pixels: want.pixels))
            #expect(off <= (want.tolerance ?? 0), "\(name): up to \(off) off")
        }
    }

    /// Not-PNG, empty, truncated and damaged files give errors naming the file and the kind.
    @Test func badFilesGiveErrors() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var data = TestBytes(seed: 3)
        let small = data.image(width: 2, height: 2, channels: 1)
        let good = try data.image(width: 20, height: 20, channels: 3).encodedPNG()
        let idat = try #require((0..<good.count - 4).first { Array(good[$0..<$0 + 4]) == Array("IDAT".utf8) })
        func expectError(_ bytes: [UInt8], _ kind: ImageIOError.Kind, _ label: String) throws {
            let path = "\(folder)/\(label).png"
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            do {
                _ = try Image.read(contentsOf: path)
                Issue.record("\(label): read without error")
            } catch let error as ImageIOError {
                #expect(error.path == path, "\(label)")
                #expect(error.kind == kind, "\(label): \(error)")
                #expect(error.description.hasPrefix(path + ": "), "\(label): \(error)")
            }
        }
        try expectError(Array("hello, world\n".utf8), .notPNG, "text")
        try expectError([], .notPNG, "empty")
        try expectError(Array(good.prefix(5)), .truncated, "signature-only")
        try expectError(Array(good.prefix(40)), .truncated, "header-only")
        try expectError(Array(good.prefix(good.count / 2)), .truncated, "half")
        var crc = good
        crc[idat + 10] ^= 0x55   // inside IDAT: its checksum no longer matches
        try expectError(crc, .corrupt, "bad-crc")
        var header = good
        header[16] = 0x7F   // width 2^31-ish, and IHDR's CRC is now wrong
        try expectError(header, .corrupt, "bad-header")

        // Missing files and folders are read errors.
        #expect(throws: ImageIOError(path: folder + "/missing.png", kind: .cannotRead, detail: "No such file or directory")) {
            try Image.read(contentsOf: folder + "/missing.png")
        }
        #expect { try Image.read(contentsOf: folder) } throws: { ($0 as? ImageIOError)?.kind == .cannotRead }
        // Writing into a missing folder names the file.
        #expect { try small.write(to: folder + "/no/such/x.png") }
            throws: { ($0 as? ImageIOError)?.kind == .cannotWrite && ($0 as? ImageIOError)?.path == folder + "/no/such/x.png" }
    }

    /// Random byte flips and truncations of valid files never crash the reader: each either
    /// decodes to an image of a sane size or throws an ImageIOError.
    @Test func fuzzedFilesNeverCrash() throws {
        var data = TestBytes(seed: 77)
        var sources = [try data.image(width: 9, height: 7, channels: 4).encodedPNG()]
        for name in ["read_palette4_trns.png", "read_interlaced_rgba_9x7.png", "read_rgb16.png", "read_gray1.png"] {
            sources.append(Array(try Data(contentsOf: URL(fileURLWithPath: try fixturePath(name)))))
        }
        var decoded = 0, failed = 0
        for round in 0..<600 {
            var bytes = sources[round % sources.count]
            switch data.next() % 3 {
            case 0:
                bytes.removeSubrange(Int(data.next() % UInt64(bytes.count))...)
            case 1:
                for _ in 0..<(1 + data.next() % 4) {
                    bytes[Int(data.next() % UInt64(bytes.count))] ^= UInt8(1 + data.next() % 255)
                }
            default:
                let at = Int(data.next() % UInt64(bytes.count))
                bytes.insert(contentsOf: data.bytes(Int(1 + data.next() % 16)), at: at)
            }
            do {
                let image = try Image.decodePNG(bytes, name: "fuzz-\(round)")
                #expect(image.pixels.count == image.width * image.height * image.channels)
                decoded += 1
            } catch let error as ImageIOError {
                #expect(error.path == "fuzz-\(round)")
                failed += 1
            }
        }
        #expect(failed > 300, "most damaged files should be refused (\(decoded) decoded, \(failed) refused)")
    }
}
