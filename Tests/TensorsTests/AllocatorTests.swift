import Testing
@testable import Tensors

/// The caching allocator's rule: freed buffers are reused by size class (a large one also by a
/// cached class up to twice its size), and live + cached bytes never pass the most ever live
/// at once (plus the slack). Each test uses its own allocator, so the shared one and other
/// tests do not interfere.
struct AllocatorTests {
    let mb = 1 << 20

    @Test func aFreedBufferIsReusedForTheSameSizeClass() {
        let a = Allocator()
        let (p, size) = a.allocate(3 * mb)
        #expect(size == 3 * mb)
        a.release(p, size)
        #expect(a.cachedBytes == 3 * mb)
        let (q, same) = a.allocate(3 * mb - 100)  // same class
        #expect(q == p && same == size)
        #expect(a.cachedBytes == 0)
        a.release(q, same, keep: false)
        #expect(a.cachedBytes == 0)
    }

    @Test func aLargeRequestTakesACachedBufferUpToTwiceItsSize() {
        let a = Allocator()
        let (p, size) = a.allocate(12 * mb)
        a.release(p, size)
        // 7 MB fits in the cached 12 MB buffer (at most twice its size); the capacity says so.
        let (q, capacity) = a.allocate(7 * mb)
        #expect(q == p && capacity == 12 * mb)
        a.release(q, capacity)
        // 5 MB does not (12 > 2 x 5): a new buffer of its own class.
        let (r, own) = a.allocate(5 * mb)
        #expect(r != p && own == 5 * mb)
        #expect(a.cachedBytes == 12 * mb)
        a.release(r, own, keep: false)
        // Small requests take their own class only.
        let (s, small) = a.allocate(1 * mb)
        #expect(small == 1 * mb)
        a.release(s, small, keep: false)
    }

    @Test func largeBuffersLieOnHugePageBoundaries() {
        let a = Allocator()
        for bytes in [2 * mb, 9 * mb + 4096, 40 * mb] {
            let (p, size) = a.allocate(bytes)
            #expect(UInt(bitPattern: p) % UInt(Allocator.hugePageBytes) == 0)
            p.storeBytes(of: 1, toByteOffset: size - 1, as: UInt8.self)  // the whole class is mapped
            a.release(p, size, keep: false)
        }
    }

    @Test func aMissPastTheHighWaterMarkGivesCachedBuffersBack() {
        let a = Allocator()
        a.slack = 0
        // Two 8 MB buffers live at once: the high-water mark is 16 MB.
        let (x, _) = a.allocate(8 * mb), (y, _) = a.allocate(8 * mb)
        a.release(x, 8 * mb)
        a.release(y, 8 * mb)
        #expect(a.cachedBytes == 16 * mb)
        // A 20 MB buffer is a miss (8 MB ones are too small); 20 live + 16 cached would pass
        // the new mark of 20: both 8 MB ones go.
        let (z, zs) = a.allocate(20 * mb)
        #expect(zs == 20 * mb && a.cachedBytes == 0)
        a.release(z, zs)
        #expect(a.cachedBytes == 20 * mb)
        // A 4 MB miss (20 > 2 x 4): 4 live + 20 cached > 20, and the 20 MB buffer goes.
        let (w, ws) = a.allocate(4 * mb)
        #expect(a.cachedBytes == 0)
        a.release(w, ws)
        // Within the mark, the cache keeps what it has: 4 cached + a 1 MB miss = 5 <= 20.
        let (v, vs) = a.allocate(1 * mb)
        #expect(a.cachedBytes == 4 * mb)
        a.release(v, vs)
    }

    /// Without a fixed slack the bound is an eighth of the high-water mark, 64-256 MB. Nothing
    /// here touches the buffers, so no memory is committed.
    @Test func theDefaultSlackGrowsWithTheMark() {
        #expect(Allocator.relativeSlack(highWater: 100 * mb) == 64 * mb)
        #expect(Allocator.relativeSlack(highWater: 1024 * mb) == 128 * mb)
        #expect(Allocator.relativeSlack(highWater: 8192 * mb) == 256 * mb)
        for (slack, kept) in [(nil, 512 * mb), (64 * mb, 0)] as [(Int?, Int)] {
            let a = Allocator()
            a.slack = slack
            // Two 512 MB buffers live at once: the mark is 1 GB.
            let (x, _) = a.allocate(512 * mb), (y, _) = a.allocate(512 * mb)
            a.release(x, 512 * mb)
            a.release(y, 512 * mb)
            // A 600 MB miss (its class is 640 MB; 512 MB buffers are too small): 640 live +
            // 1024 cached passes 1024 + 128 by 512, and one cached buffer goes; with 64 MB
            // of slack both do.
            let (z, zs) = a.allocate(600 * mb)
            #expect(zs == 640 * mb && a.cachedBytes == kept, "slack \(String(describing: slack))")
            a.release(z, zs, keep: false)
            a.releaseCached()
        }
    }

    @Test func slackLetsTheCacheKeepMore() {
        let a = Allocator()
        a.slack = 64 * mb
        let (x, _) = a.allocate(8 * mb), (y, _) = a.allocate(8 * mb)
        a.release(x, 8 * mb)
        a.release(y, 8 * mb)
        let (z, zs) = a.allocate(20 * mb)  // 20 live + 16 cached = 36 <= 20 + 64
        #expect(a.cachedBytes == 16 * mb)
        a.release(z, zs, keep: false)
        #expect(a.cachedBytes == 16 * mb)
    }
}
