import Foundation
import Testing
@testable import Datasets

/// gzip and idx files: good ones decode, damaged ones give an error naming the file and the fault.
@Suite struct GzipIDXTests {
    @Test func goodFilesDecode() throws {
        let images = try IDXArray(Gzip.decompress(contentsOf: fixturePath("good-idx3.gz")), dimensions: 3, name: "good")
        #expect(images.shape == [4, 3, 2])
        #expect(images.bytes == Array(0..<24))
        let (bytes, labels) = try readIDXPair(images: fixturePath("good-idx3.gz"), labels: fixturePath("good-idx1.gz"), classes: 10)
        #expect(bytes.count == 4 && bytes.height == 3 && bytes.width == 2 && bytes.channels == 1)
        #expect(labels == [3, 1, 4, 1])
    }

    /// Two gzip members concatenated read as one stream, as gzip(1) reads them.
    @Test func multiMemberGzip() throws {
        let one = try readFile(fixturePath("good-idx1.gz"))
        let twice = try Gzip.decompress(one + one, name: "twice")
        let single = try Gzip.decompress(one, name: "once")
        #expect(twice == single + single)
    }

    @Test(arguments: [
        ("bad_magic-idx3.gz", "magic number starts with 01 02"),
        ("bad_type-idx3.gz", "element type 0d"),
        ("short_data-idx3.gz", "truncated idx data"),
        ("long_data-idx3.gz", "longer than its header"),
        ("short_header-idx3.gz", "truncated idx header"),
        ("not_gzip-idx3.gz", "not a gzip file"),
    ])
    func damagedIDXFiles(file: String, fault: String) throws {
        let path = try fixturePath(file)
        let message = try #require(errorMessage { try IDXArray(Gzip.decompress(contentsOf: path), dimensions: 3, name: path) })
        #expect(message.contains(path) && message.contains(fault), "\(message)")
    }

    /// Found by scripts/fuzz: 24 bytes whose trailer claims 1.5 GiB made the reader allocate
    /// that much before zlib found the data cut short. The first buffer is now bounded by what
    /// the input can decompress to, and the file is refused as truncated.
    @Test func hugeLengthInTheTrailerIsNotBelieved() throws {
        let bytes: [UInt8] = [0x1F, 0x8B, 0x08, 0x1F, 0x8B, 0x08, 0x00, 0x80, 0x2A, 0x00, 0x00, 0x02,
                              0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xE0, 0x03, 0x63, 0x60, 0x60]
        #expect(Gzip.firstBufferSize(bytes) == 1 << 16)   // the 64 KiB floor, not 1.5 GiB
        let message = try #require(errorMessage { try Gzip.decompress(bytes, name: "fuzz.gz") })
        #expect(message.contains("fuzz.gz: truncated"), "\(message)")
    }

    @Test func mismatchedPairs() throws {
        let images = try fixturePath("good-idx3.gz")
        let three = try fixturePath("three-idx1.gz"), badLabel = try fixturePath("bad_label-idx1.gz")
        let count = try #require(errorMessage { try readIDXPair(images: images, labels: three, classes: 10) })
        #expect(count.contains(three) && count.contains("3 labels for the 4 images"), "\(count)")
        let label = try #require(errorMessage { try readIDXPair(images: images, labels: badLabel, classes: 10) })
        #expect(label.contains(badLabel) && label.contains("label 10 of item 2"), "\(label)")
        // Labels given where images are expected: wrong number of dimensions.
        let dims = try #require(errorMessage { try readIDXPair(images: three, labels: three, classes: 10) })
        #expect(dims.contains("1 dimensions, expected 3"), "\(dims)")
    }

    /// Copies of a real Fashion-MNIST file, cut short or with a flipped byte, in a temporary
    /// folder the reader is pointed at.
    @Test func truncatedAndCorruptGzip() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let names = FashionMNIST.files(split: .test)
        let images = try readFile(FashionMNIST.defaultFolder + "/" + names.images)
        let labels = try readFile(FashionMNIST.defaultFolder + "/" + names.labels)
        try Data(labels).write(to: URL(fileURLWithPath: folder + "/" + names.labels))
        let imagePath = folder + "/" + names.images

        try Data(images.prefix(images.count / 2)).write(to: URL(fileURLWithPath: imagePath))
        let truncated = try #require(errorMessage { try FashionMNIST.load(split: .test, folder: folder) })
        #expect(truncated.contains(imagePath) && truncated.contains("truncated"), "\(truncated)")

        // Without its 8-byte trailer the deflate stream is complete but the file is not.
        try Data(images.dropLast(8)).write(to: URL(fileURLWithPath: imagePath))
        let noTrailer = try #require(errorMessage { try FashionMNIST.load(split: .test, folder: folder) })
        #expect(noTrailer.contains(imagePath) && noTrailer.contains("truncated"), "\(noTrailer)")

        var flipped = images
        flipped[images.count / 2] ^= 0xFF
        try Data(flipped).write(to: URL(fileURLWithPath: imagePath))
        let corrupt = try #require(errorMessage { try FashionMNIST.load(split: .test, folder: folder) })
        #expect(corrupt.contains(imagePath) && corrupt.contains("corrupt"), "\(corrupt)")

        // A flipped byte in the CRC-32 of the trailer.
        var badCRC = images
        badCRC[images.count - 6] ^= 0x01
        try Data(badCRC).write(to: URL(fileURLWithPath: imagePath))
        let crc = try #require(errorMessage { try FashionMNIST.load(split: .test, folder: folder) })
        #expect(crc.contains(imagePath) && crc.contains("corrupt"), "\(crc)")

        try FileManager.default.removeItem(atPath: imagePath)
        let missing = try #require(errorMessage { try FashionMNIST.load(split: .test, folder: folder) })
        #expect(missing.contains(imagePath) && missing.contains("no such file"), "\(missing)")
    }
}
