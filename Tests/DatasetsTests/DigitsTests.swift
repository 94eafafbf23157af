import Testing
@testable import Datasets

/// scikit-learn's 8x8 digits against values Python read from the same csv.
@Suite struct DigitsTests {
    @Test func matchesPython() throws {
        let set = try Datasets.load(name: "digits")
        #expect(set.images.shape == [1797, 1, 8, 8])
        check(set, against: try expected("digits"), scale: 1 / 16)
        // Values v in 0...16 map exactly to v / 8 - 1.
        let values = set.images.scalars
        #expect(values.allSatisfy { (($0 + 1) * 8).rounded() == ($0 + 1) * 8 })
    }

    @Test func resizedColourAndSplits() throws {
        let big = try Digits.load(size: 16, channels: 3)
        #expect(big.images.shape == [1797, 3, 16, 16])
        #expect(big.labels?.count == 1797)
        let message = errorMessage { try Datasets.load(name: "digits", split: .test) }
        #expect(message?.contains("digits has no test split") == true)
    }
}
