import Testing
@testable import Tensors

/// The caching allocator's rule: freed buffers are reused by size class, and live + cached
/// bytes never pass the most ever live at once (plus the slack). Each test uses its own
/// allocator, so the shared one and other tests do not interfere.
struct AllocatorTests {
    let mb = 1 << 20

    @Test func aFreedBufferIsReusedForTheSameSizeClass() {
        let a = Allocator()
        let p = a.allocate(3 * mb)
        a.release(p, 3 * mb)
        #expect(a.cachedBytes == 3 * mb)
        let q = a.allocate(3 * mb - 100)  // same class
        #expect(q == p)
        #expect(a.cachedBytes == 0)
        a.release(q, 3 * mb - 100, keep: false)
        #expect(a.cachedBytes == 0)
    }

    @Test func aMissPastTheHighWaterMarkGivesCachedBuffersBack() {
        let a = Allocator()
        a.slack = 0
        // Two 8 MB buffers live at once: the high-water mark is 16 MB.
        let x = a.allocate(8 * mb), y = a.allocate(8 * mb)
        a.release(x, 8 * mb)
        a.release(y, 8 * mb)
        #expect(a.cachedBytes == 16 * mb)
        // A 16 MB buffer is a miss; 16 live + 16 cached would pass 16: both 8 MB ones go.
        let z = a.allocate(16 * mb)
        #expect(a.cachedBytes == 0)
        a.release(z, 16 * mb)
        #expect(a.cachedBytes == 16 * mb)
        // An 8 MB miss: 8 live + 16 cached > 16, and the 16 MB buffer covers the excess alone.
        let w = a.allocate(8 * mb)
        #expect(a.cachedBytes == 0)
        a.release(w, 8 * mb)
        // Within the mark, the cache keeps what it has: 8 cached + a 4 MB miss = 12 <= 16.
        let v = a.allocate(4 * mb)
        #expect(a.cachedBytes == 8 * mb)
        a.release(v, 4 * mb)
    }

    @Test func slackLetsTheCacheKeepMore() {
        let a = Allocator()
        a.slack = 64 * mb
        let x = a.allocate(8 * mb), y = a.allocate(8 * mb)
        a.release(x, 8 * mb)
        a.release(y, 8 * mb)
        let z = a.allocate(16 * mb)  // 16 live + 16 cached = 32 <= 16 + 64
        #expect(a.cachedBytes == 16 * mb)
        a.release(z, 16 * mb, keep: false)
        #expect(a.cachedBytes == 16 * mb)
    }
}
