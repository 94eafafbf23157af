import Foundation
import Testing
@testable import ImageIO

/// The path of a committed fixture (made by scripts/fixtures/png_files.py).
func fixturePath(_ name: String) throws -> String {
    guard let url = Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures") else {
        throw FixtureMissing(name: name)
    }
    return url.path
}

struct FixtureMissing: Error { let name: String }

/// A fresh folder under the temporary directory, removed by the caller.
func temporaryFolder() throws -> String {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("diffuse-imageio-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url.path
}

/// Deterministic test bytes: a small LCG, independent of the code under test.
struct TestBytes {
    var state: UInt64
    init(seed: UInt64) { state = seed &* 6364136223846793005 &+ 1442695040888963407 }

    mutating func next() -> UInt64 {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return state >> 33
    }

    mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: next()) } }

    mutating func image(width: Int, height: Int, channels: Int) -> Image {
        Image(width: width, height: height, channels: channels, pixels: bytes(width * height * channels))
    }
}

/// The largest absolute difference between two images' samples.
func maxDifference(_ a: Image, _ b: Image) -> Int {
    precondition(a.pixels.count == b.pixels.count)
    return zip(a.pixels, b.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0
}
