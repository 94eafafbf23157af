import Foundation
import Synchronization
import Testing
@testable import Tensors

/// `Parallel.forRanges`: every index once, in ranges whose bounds do not depend on the call
/// or on which thread ran them, also when one thread's own ranges are slow and the other
/// takes them over.
@Suite(.serialized) struct ParallelTests {
    /// The ranges one call ran, sorted.
    static func ranges(_ count: Int, grain: Int, slowBelow: Int = 0) -> [Range<Int>] {
        let seen = Mutex<[Range<Int>]>([])
        Parallel.forRanges(count, grain: grain) { r in
            if r.lowerBound < slowBelow { usleep(2000) }
            seen.withLock { $0.append(r) }
        }
        return seen.withLock { $0 }.sorted { $0.lowerBound < $1.lowerBound }
    }

    @Test(arguments: [2, 3]) func everyIndexOnceInFixedRanges(threads: Int) {
        let before = Parallel.threadCount
        defer { Parallel.setThreadCount(before) }
        Parallel.setThreadCount(threads)
        for (count, grain) in [(1, 1), (7, 1), (100, 16), (40_000, 16384), (100_003, 1000), (5, 16384)] {
            let first = Self.ranges(count, grain: grain)
            #expect(first.first?.lowerBound == 0 && first.last?.upperBound == count, "\(count)/\(grain)")
            #expect(zip(first, first.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound }, "\(count)/\(grain): gaps or overlaps")
            #expect(first.allSatisfy { !$0.isEmpty })
            // The first half's ranges slowed (the other thread, done with its own, may take
            // some of them): the bounds stay the same.
            #expect(Self.ranges(count, grain: grain, slowBelow: count / 2) == first, "\(count)/\(grain)")
        }
    }
}
