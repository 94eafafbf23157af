import Dispatch
import Tensors

/// Where a loader stands: the epoch and the index of the next batch within it. Saved in a
/// training checkpoint, it brings a resumed run back to exactly the same batches.
public struct LoaderPosition: Codable, Equatable, Sendable {
    public var epoch: Int
    public var batch: Int
    public init(epoch: Int = 0, batch: Int = 0) { self.epoch = epoch; self.batch = batch }
}

/// One batch: images `[B, C, H, W]`, labels `[B]` (int64) where the data has them, the
/// indices of its images in the data set (for captions and other per-image data), and the
/// position this batch came from.
public struct Batch: @unchecked Sendable {
    public let images: Tensor
    public let labels: Tensor?
    public let indices: [Int]
    public let position: LoaderPosition
}

/// Shuffles a data set with a seed, cuts it into batches and assembles the next batch on a
/// background thread while the caller trains on this one.
///
/// The order of epoch `e` and the flips of its images are pure functions of `(seed, e)` (a
/// flip of the image at place p of the epoch's order, of `(seed, e, p)`), so a loader started
/// at a saved `position` yields exactly the batches an uninterrupted loader would have,
/// whatever happened in between. Iteration runs across epochs without end.
///
/// Data-parallel runs: `batchSize` is the global batch, and shard r of K takes the r-th of
/// the K equal slices of every global batch. The position counts global batches, so it is
/// the same on every shard, and the K shards together yield what one loader of K = 1 yields:
/// a run does not depend on how many processes share it.
public final class DataLoader: @unchecked Sendable {
    public let dataset: ImageDataset
    /// Images per (global) batch.
    public let batchSize: Int
    /// This loader's slice of each batch: shard `shard` of `shards`, `batchSize / shards` images.
    public let shard: Int
    public let shards: Int
    /// Images this shard yields per batch.
    public var shardBatchSize: Int { batchSize / shards }
    public let seed: UInt64
    public let shuffle: Bool
    public let horizontalFlip: Bool
    /// Batches per epoch (a last partial batch is dropped, as training loops usually do).
    public let batchesPerEpoch: Int
    /// The position of the batch the next call to `next()` returns.
    public private(set) var position: LoaderPosition

    private let queue = DispatchQueue(label: "diffuse.dataloader")
    private var pending: (LoaderPosition, DispatchWorkItem, Box)?
    private final class Box: @unchecked Sendable { var batch: Batch? }

    public init(dataset: ImageDataset, batchSize: Int, seed: UInt64 = 0, shuffle: Bool = true,
                horizontalFlip: Bool = false, start: LoaderPosition = LoaderPosition(), shard: Int = 0, shards: Int = 1) throws {
        guard batchSize >= 1 else { throw DatasetError("the batch size must be at least 1, got \(batchSize)") }
        guard shards >= 1, (0..<shards).contains(shard) else { throw DatasetError("shard \(shard) of \(shards) does not exist") }
        guard batchSize % shards == 0 else {
            throw DatasetError("the batch size \(batchSize) does not divide among \(shards) processes: choose a multiple of \(shards)")
        }
        guard batchSize <= dataset.count else {
            throw DatasetError("\(dataset.name): batch size \(batchSize) is larger than the data set (\(dataset.count) images)")
        }
        self.dataset = dataset
        self.batchSize = batchSize
        self.shard = shard
        self.shards = shards
        self.seed = seed
        self.shuffle = shuffle
        self.horizontalFlip = horizontalFlip
        self.batchesPerEpoch = dataset.count / batchSize
        guard start.epoch >= 0, start.batch >= 0, start.batch < batchesPerEpoch else {
            throw DatasetError("loader position epoch \(start.epoch) batch \(start.batch) is outside 0..<\(batchesPerEpoch) batches per epoch")
        }
        self.position = start
        prefetch()
    }

    /// The next batch (prepared in the background while the previous one was used).
    public func next() -> Batch {
        if pending == nil || pending!.0 != position { prefetch() }
        let (_, work, box) = pending!
        work.wait()
        let batch = box.batch!
        position.batch += 1
        if position.batch == batchesPerEpoch { position = LoaderPosition(epoch: position.epoch + 1, batch: 0) }
        prefetch()
        return batch
    }

    private func prefetch() {
        let at = position
        let box = Box()
        let work = DispatchWorkItem { [self] in box.batch = assemble(at) }
        queue.async(execute: work)
        pending = (at, work, box)
    }

    /// The order of the images in `epoch`: a seeded Fisher-Yates shuffle.
    public func order(epoch: Int) -> [Int] {
        var indices = Array(0..<dataset.count)
        guard shuffle else { return indices }
        var rng = SplitMix64(seed: seed &+ 0x9E37_79B9_7F4A_7C15 &* UInt64(epoch + 1))
        for i in stride(from: indices.count - 1, to: 0, by: -1) {
            indices.swapAt(i, Int(rng.next() % UInt64(i + 1)))
        }
        return indices
    }

    private var cachedOrder: (epoch: Int, order: [Int])?
    private let orderLock = DispatchQueue(label: "diffuse.dataloader.order")

    private func assemble(_ at: LoaderPosition) -> Batch {
        let order: [Int] = orderLock.sync {
            if let c = cachedOrder, c.epoch == at.epoch { return c.order }
            let o = self.order(epoch: at.epoch)
            cachedOrder = (at.epoch, o)
            return o
        }
        let n = shardBatchSize
        let first = at.batch * batchSize + shard * n
        let picks = Array(order[first..<(first + n)])
        let (c, h, w) = (dataset.channels, dataset.height, dataset.width)
        let item = c * h * w
        var flips = [Bool](repeating: false, count: n)
        if horizontalFlip {
            for i in 0..<n { flips[i] = Self.flip(seed: seed, epoch: at.epoch, place: first + i) }
        }
        var out = Tensor.zeros([n, c, h, w])
        dataset.images.withUnsafeBytes { raw in
            let src = raw.bindMemory(to: Float.self)
            out.withUnsafeMutableFloats { dst in
                for (i, index) in picks.enumerated() {
                    let s = index * item, d = i * item
                    if flips[i] {
                        for row in 0..<(c * h) {
                            for x in 0..<w { dst[d + row * w + x] = src[s + row * w + (w - 1 - x)] }
                        }
                    } else {
                        for j in 0..<item { dst[d + j] = src[s + j] }
                    }
                }
            }
        }
        let labels = dataset.labels.map { all in Tensor(integers: picks.map { all[$0] }) }
        return Batch(images: out, labels: labels, indices: picks, position: at)
    }
}

extension DataLoader {
    /// Whether the image at `place` of epoch `epoch`'s order is flipped: a pure function of
    /// (seed, epoch, place), so that it does not depend on how batches are split.
    public static func flip(seed: UInt64, epoch: Int, place: Int) -> Bool {
        var rng = SplitMix64(seed: seed ^ (UInt64(epoch) &* 0xD1B5_4A32_D192_ED03) ^ (UInt64(place + 1) &* 0x8CB9_2BA7_2F3D_8DD7))
        return rng.next() & 1 == 1
    }
}

/// A small, fast, seedable generator (Steele et al.'s SplitMix64) for data order and flips.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
