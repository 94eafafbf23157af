import Tensors
import Testing
@testable import Datasets

/// A data set whose images say which they are: pixel (y, x) of image i is
/// `(i * 6 + y * 3 + x) / 1000 - 0.5`, labels `i % 3`.
func numberedDataset(count: Int = 10) throws -> ImageDataset {
    var values = [Float]()
    for i in 0..<count { for y in 0..<2 { for x in 0..<3 { values.append(Float(i * 6 + y * 3 + x) / 1000 - 0.5) } } }
    return try ImageDataset(name: "numbered", images: Tensor(values, shape: [count, 1, 2, 3]),
                            labels: (0..<count).map { $0 % 3 }, classNames: ["a", "b", "c"])
}

/// The image index and whether it was mirrored, read back from a batch image's 6 values.
func identify(_ v: ArraySlice<Float>) -> (index: Int, flipped: Bool)? {
    let codes = v.map { Int((($0 + 0.5) * 1000).rounded()) }
    let i = codes[0] / 6
    if codes == (0..<6).map({ i * 6 + $0 }) { return (i, false) }
    if codes == [2, 1, 0, 5, 4, 3].map({ i * 6 + $0 }) { return (i, true) }
    return nil
}

@Suite struct DataLoaderTests {
    /// The same seed gives the same batches; every epoch is a permutation; epochs differ.
    @Test func seededOrder() throws {
        let data = try numberedDataset(count: 20)
        let a = try DataLoader(dataset: data, batchSize: 4, seed: 42)
        let b = try DataLoader(dataset: data, batchSize: 4, seed: 42)
        for _ in 0..<12 { #expect(a.next().images.scalars == b.next().images.scalars) }
        let e0 = a.order(epoch: 0), e1 = a.order(epoch: 1)
        #expect(e0.sorted() == Array(0..<20) && e1.sorted() == Array(0..<20))
        #expect(e0 != e1)
        #expect(try DataLoader(dataset: data, batchSize: 4, seed: 43).order(epoch: 0) != e0)
        #expect(try DataLoader(dataset: data, batchSize: 4, shuffle: false).order(epoch: 3) == Array(0..<20))
    }

    /// Batches follow the epoch's order, labels follow their images, a partial last batch is
    /// dropped, and positions advance across epochs.
    @Test func batchesFollowTheOrder() throws {
        let data = try numberedDataset(count: 10)
        let loader = try DataLoader(dataset: data, batchSize: 3, seed: 7)
        #expect(loader.batchesPerEpoch == 3)
        for epoch in 0..<3 {
            let order = loader.order(epoch: epoch)
            for b in 0..<3 {
                let batch = loader.next()
                #expect(batch.position == LoaderPosition(epoch: epoch, batch: b))
                #expect(batch.images.shape == [3, 1, 2, 3])
                let values = batch.images.scalars
                let labels = try #require(batch.labels).scalars.map { Int($0) }
                for k in 0..<3 {
                    let id = try #require(identify(values[(k * 6)..<(k * 6 + 6)]))
                    #expect(id.index == order[b * 3 + k] && !id.flipped)
                    #expect(labels[k] == id.index % 3)
                }
            }
        }
        #expect(loader.position == LoaderPosition(epoch: 3, batch: 0))
    }

    /// Data-parallel shards: shard r of K yields the r-th slice of every global batch, flips
    /// included, so the K shards together yield exactly what one loader yields, at the same
    /// positions; a batch size K does not divide is refused.
    @Test func shardsTogetherYieldTheGlobalBatches() throws {
        let data = try numberedDataset(count: 14)
        for k in [2, 3] {
            let shards = try (0..<k).map { try DataLoader(dataset: data, batchSize: 6, seed: 5, horizontalFlip: true, shard: $0, shards: k) }
            let reference = try DataLoader(dataset: data, batchSize: 6, seed: 5, horizontalFlip: true)
            for _ in 0..<5 {
                let batch = reference.next()
                let parts = shards.map { $0.next() }
                #expect(parts.allSatisfy { $0.position == batch.position && $0.images.shape[0] == 6 / k })
                #expect(parts.flatMap(\.indices) == batch.indices)
                #expect(parts.flatMap { $0.images.scalars } == batch.images.scalars)
                #expect(parts.flatMap { $0.labels!.integers } == batch.labels!.integers)
            }
        }
        #expect(throws: DatasetError.self) { try DataLoader(dataset: data, batchSize: 6, shard: 0, shards: 4) }
    }

    /// A loader started at a saved position yields exactly the batches an uninterrupted one does.
    @Test func resumesExactly() throws {
        let data = try numberedDataset(count: 10)
        let full = try DataLoader(dataset: data, batchSize: 3, seed: 9, horizontalFlip: true)
        var batches = [Batch]()
        for _ in 0..<10 { batches.append(full.next()) }
        for start in [1, 2, 4, 7] {
            let saved = batches[start].position
            let resumed = try DataLoader(dataset: data, batchSize: 3, seed: 9, horizontalFlip: true, start: saved)
            for k in start..<10 {
                let batch = resumed.next()
                #expect(batch.position == batches[k].position)
                #expect(batch.images.scalars == batches[k].images.scalars)
                #expect(batch.labels?.scalars == batches[k].labels?.scalars)
            }
        }
    }

    /// With flips on, each image is itself or its mirror image, labels still follow, both occur,
    /// and flips are reproducible.
    @Test func flips() throws {
        let data = try numberedDataset(count: 10)
        let loader = try DataLoader(dataset: data, batchSize: 5, seed: 3, horizontalFlip: true)
        var flipped = 0, plain = 0
        for _ in 0..<20 {
            let batch = loader.next()
            let values = batch.images.scalars
            let labels = try #require(batch.labels).scalars.map { Int($0) }
            for k in 0..<5 {
                let id = try #require(identify(values[(k * 6)..<(k * 6 + 6)]))
                if id.flipped { flipped += 1 } else { plain += 1 }
                #expect(labels[k] == id.index % 3)
            }
        }
        #expect(flipped > 20 && plain > 20)
        let again = try DataLoader(dataset: data, batchSize: 5, seed: 3, horizontalFlip: true)
        let other = try DataLoader(dataset: data, batchSize: 5, seed: 3, horizontalFlip: true)
        #expect(again.next().images.scalars == other.next().images.scalars)
    }

    @Test func badArguments() throws {
        let data = try numberedDataset(count: 10)
        let zero = errorMessage { try DataLoader(dataset: data, batchSize: 0) }
        #expect(zero?.contains("batch size must be at least 1, got 0") == true)
        let large = errorMessage { try DataLoader(dataset: data, batchSize: 11) }
        #expect(large?.contains("batch size 11 is larger than the data set (10 images)") == true)
        let position = errorMessage { try DataLoader(dataset: data, batchSize: 5, start: LoaderPosition(epoch: 0, batch: 2)) }
        #expect(position?.contains("outside 0..<2") == true)
        // The data set itself refuses labels outside its classes and a wrong label count.
        let labels = errorMessage { try ImageDataset(name: "x", images: Tensor.zeros([2, 1, 1, 1]), labels: [0, 3], classNames: ["a", "b"]) }
        #expect(labels?.contains("label 3 outside the 2 classes") == true)
        let count = errorMessage { try ImageDataset(name: "x", images: Tensor.zeros([2, 1, 1, 1]), labels: [0]) }
        #expect(count?.contains("1 labels for 2 images") == true)
    }
}
