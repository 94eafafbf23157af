import Foundation
import Testing
@testable import Datasets

/// The path of a committed fixture (made by scripts/fixtures/dataset_files.py).
func fixturePath(_ name: String) throws -> String {
    guard let url = Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures") else {
        throw FixtureMissing(name: name)
    }
    return url.path
}

struct FixtureMissing: Error { let name: String }

/// Values Python read from the installed data files (Fixtures/expected.json).
struct ExpectedSet: Decodable {
    let count: Int
    let histogram: [Int]
    let first_labels: [Int]
    /// (index, y, x, value) with value a byte 0...255 (digits: 0...16).
    let pixels: [[Int]]
}

func expected(_ key: String) throws -> ExpectedSet {
    let data = try Data(contentsOf: URL(fileURLWithPath: try fixturePath("expected.json")))
    let all = try JSONDecoder().decode([String: ExpectedSet].self, from: data)
    return try #require(all[key], "no \(key) in expected.json")
}

/// A fresh folder under the temporary directory, removed by the caller.
func temporaryFolder() throws -> String {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("diffuse-datasets-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url.path
}

/// The error message a throwing call gives, or nil when it does not throw.
func errorMessage<T>(_ body: () throws -> T) -> String? {
    do { _ = try body(); return nil } catch { return "\(error)" }
}

/// Checks a loaded data set against Python's counts, label histogram and pixels; `scale`
/// maps a stored value to [0, 1] (1/255 for bytes, 1/16 for digits).
func check(_ set: ImageDataset, against want: ExpectedSet, scale: Float) {
    #expect(set.count == want.count)
    let labels = set.labels ?? []
    var histogram = [Int](repeating: 0, count: want.histogram.count)
    for l in labels where l >= 0 && l < histogram.count { histogram[l] += 1 }
    #expect(histogram == want.histogram)
    #expect(Array(labels.prefix(want.first_labels.count)) == want.first_labels)
    for p in want.pixels {
        let got = set.images[element: [p[0], 0, p[1], p[2]]]
        #expect(abs(got - (Float(p[3]) * scale * 2 - 1)) <= 1e-6, "image \(p[0]) pixel (\(p[1]), \(p[2]))")
    }
}
