import Testing
@testable import Datasets

/// Fashion-MNIST from Debian's files, against values Python read from them.
@Suite struct FashionMNISTTests {
    @Test(arguments: DatasetSplit.allCases)
    func matchesPython(split: DatasetSplit) throws {
        let set = try Datasets.load(name: "fashion-mnist", split: split)
        #expect(set.images.shape == [split == .train ? 60000 : 10000, 1, 28, 28])
        #expect(set.classNames?.first == "T-shirt/top" && set.classNames?.last == "Ankle boot" && set.classNames?.count == 10)
        check(set, against: try expected("fashion-mnist-\(split.rawValue)"), scale: 1 / 255)
    }

    /// size 32 interpolates (bilinear); channels 3 replicates gray into R, G and B.
    @Test func resizedAndColour() throws {
        let small = try FashionMNIST.load(split: .test, channels: 3)
        #expect(small.images.shape == [10000, 3, 28, 28])
        for c in 1..<3 {
            #expect(small.images.sliced(axis: 1, c..<c + 1).scalars == small.images.sliced(axis: 1, 0..<1).scalars)
        }
        let big = try FashionMNIST.load(split: .test, size: 32)
        #expect(big.images.shape == [10000, 1, 32, 32])
        #expect(big.labels == small.labels)
        // Borders of Fashion-MNIST images are black (-1); interpolation keeps the corners black,
        // and the value range stays within [-1, 1].
        #expect(big.images[element: [0, 0, 0, 0]] == -1)
        let values = big.images.scalars
        #expect(values.min()! >= -1 && values.max()! <= 1 && values.max()! > 0.9)
    }

    @Test func unknownNamesAndBadOptions() {
        let unknown = errorMessage { try Datasets.load(name: "cifar") }
        #expect(unknown?.contains("unknown data set \"cifar\"") == true)
        let channels = errorMessage { try Datasets.load(name: "fashion-mnist", channels: 2, split: .test) }
        #expect(channels?.contains("channels must be 1 (gray) or 3 (RGB), got 2") == true)
        let size = errorMessage { try Datasets.load(name: "fashion-mnist", size: 0, split: .test) }
        #expect(size?.contains("size must be at least 1") == true)
    }
}
