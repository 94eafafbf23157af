import Testing
@testable import Datasets

/// The installed 32x32 icon themes as an RGB data set.
@Suite struct IconsTests {
    @Test func loadsDistinctColourIcons() throws {
        let set = try Datasets.load(name: "icons")
        #expect(set.images.shape.dropFirst() == [3, 32, 32])
        #expect(set.count > 1000)
        let names = try #require(set.classNames)
        #expect(names.contains("apps") && names.contains("places"))
        // Deduplicated: no two images are the same.
        let n = set.count, item = 3 * 32 * 32
        let values = set.images.scalars
        var seen = Set<[Float]>()
        for i in 0..<n { seen.insert(Array(values[(i * item)..<((i + 1) * item)])) }
        #expect(seen.count == n)
        // Composited on white: values stay in [-1, 1] and corners of icons are mostly white.
        #expect(values.min()! >= -1 && values.max()! == 1)
        let whiteCorners = (0..<n).filter { values[$0 * item] == 1 }.count
        #expect(whiteCorners > n / 2)
    }
}
