import CDNNL
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The buffer behind one or more tensors (views share it).
///
/// A tensor is a value: writing through a storage is allowed only when the writer holds
/// the sole reference (`isKnownUniquelyReferenced`), or on a storage just allocated.
/// `version` counts in-place writes, so caches derived from the contents (oneDNN's reordered
/// weights) know when they are stale.
public final class Storage: @unchecked Sendable {
    public let base: UnsafeMutableRawPointer
    public let byteCount: Int
    /// Incremented by every in-place mutation of the contents.
    public internal(set) var version: Int = 0
    /// Buffers derived from the contents (reordered weights), keyed by what they are for;
    /// valid while `version` equals the version they were made at.
    let derived = Mutex<[String: (version: Int, storage: Storage)]>([:])
    /// The bytes the allocator gave (its size class, which may exceed `byteCount`).
    private let capacity: Int
    /// What keeps borrowed memory alive (a mapped file); nil for memory this storage owns.
    private let owner: AnyObject?
    /// Whether the memory goes back to the system when freed rather than into the
    /// allocator's cache: set on derived buffers (weights in a kernel's layout), long-lived
    /// and of sizes that activations rarely reuse.
    var returnsToSystem = false {
        didSet { if returnsToSystem != oldValue { Allocator.derivedBytes.add(returnsToSystem ? byteCount : -byteCount, ordering: .relaxed) } }
    }

    /// The largest derived buffer kept (`derivedBuffer`): larger ones are made again at each
    /// use and freed after it, so that a large model does not hold its weights twice (Stable
    /// Diffusion's U-Net: 2.4 GB of convolution weights in oneDNN's layout beside the plain
    /// ones). 16 MB keeps every layer of the small U-Nets trained here (and SD's up to 640
    /// channels); `DIFFUSE_DERIVED_CACHE_MB` sets another limit.
    public static let derivedCacheLimit: Int = {
        let mb = getenv("DIFFUSE_DERIVED_CACHE_MB").flatMap { Double(String(cString: $0)) } ?? 16
        return Int(mb * 1_048_576)
    }()

    init(byteCount: Int) {
        self.byteCount = byteCount
        (self.base, self.capacity) = Allocator.shared.allocate(byteCount)
        self.owner = nil
    }

    /// Memory that `owner` keeps alive (a memory-mapped file's region, say); writable in the
    /// sense of copy-on-write mappings: writes never reach the owner's backing store.
    public init(borrowing base: UnsafeMutableRawPointer, byteCount: Int, owner: AnyObject) {
        self.base = base
        self.byteCount = byteCount
        self.capacity = byteCount
        self.owner = owner
    }

    deinit {
        // Its derived forms go into the allocator's cache as a stale version's do: a training
        // step's bf16 weights are a derived buffer of the float32 masters, dropped at each
        // update, and their successors' forms (Winograd's transformed weights, 9.4 MB for a
        // 256-channel layer) can then take this memory instead of faulting in fresh pages.
        expireDerived()
        if owner == nil {
            if returnsToSystem { Allocator.derivedBytes.subtract(byteCount, ordering: .relaxed) }
            Allocator.shared.release(base, capacity, keep: !returnsToSystem)
        }
    }

    /// A buffer derived from these contents, made by `make` once per `version`; kept when at
    /// most `limit` bytes (else made again at each use).
    func derivedBuffer(_ key: String, limit: Int = Storage.derivedCacheLimit, make: () -> Storage) -> Storage {
        if let hit = derived.withLock({ $0[key] }), hit.version == version { return hit.storage }
        let current = version
        // Entries of earlier versions can never be used again. Dropped before `make`, into the
        // allocator's cache: a training step's new weights then take the memory their
        // previous version's forms had, not fresh pages (ddpm's 3x3 layers made 5-9 MB of
        // transformed weights each, twice a step, every page faulted in again).
        dropDerived { $0 != current }
        let made = make()
        if made.owner == nil { made.returnsToSystem = true }
        guard made.byteCount <= limit else { return made }
        derived.withLock { $0[key] = (current, made) }
        return made
    }

    /// Whether a buffer was derived under `key`, at any version (a form some kernel used).
    func hasDerived(_ key: String) -> Bool {
        derived.withLock { $0[key] != nil }
    }

    /// Drops every derived buffer (after an algorithm choice timed candidates whose
    /// reordered weights would otherwise stay alive beside the chosen one's).
    func clearDerived() {
        derived.withLock { $0.removeAll() }
    }

    /// Drops every derived buffer into the allocator's cache, as a new version of the contents
    /// would (`derivedBuffer`): the next use makes its form again in the memory of the old one,
    /// as in a training step after the optimizer's update.
    func expireDerived() {
        dropDerived { _ in true }
    }

    /// Drops the derived buffers whose version `stale` picks into the allocator's cache (their
    /// last references released outside the lock).
    private func dropDerived(_ stale: (Int) -> Bool) {
        var dropped = derived.withLock { d in
            let old = d.values.filter { stale($0.version) }.map(\.storage)
            d = d.filter { !stale($0.value.version) }
            return old
        }
        for buffer in dropped { buffer.returnsToSystem = false }
        dropped = []
    }

    func markMutated() {
        version &+= 1
    }
}

/// A caching allocator: freed buffers are kept by size class and reused, so the large
/// activations of a training step do not go back to the kernel (and fault their pages in
/// again) every step. Alignment is 64 bytes (one cache line, one AVX-512 register).
///
/// The cache never makes the process larger than its largest working set: the bytes it hands
/// out and keeps (live + cached) may exceed the most ever live at once only by the slack. A miss
/// that would pass that bound first gives cached buffers back to the system. A loop whose
/// sizes repeat (training steps, denoising steps) is served from the cache after its first
/// round, while a phase that needs other sizes (a VAE decode after the U-Net's steps) spends
/// the previous phase's cached buffers instead of holding them beside its own.
final class Allocator: @unchecked Sendable {
    static let shared = Allocator()

    init() {
        // Blocks of 4 MB and more straight from mmap and back with munmap when freed: glibc's
        // default threshold rises with every large block freed (up to 32 MB), after which such
        // blocks come from the heap, whose freed memory is seldom returned.
        _ = cdnnl_set_mmap_threshold(4 << 20)
    }
    /// The most bytes kept in the free lists; beyond it buffers go back to the system.
    var cacheLimit = 4 << 30
    /// How far live + cached bytes may exceed the most bytes ever live at once: a fixed number
    /// of bytes (`DIFFUSE_ALLOCATOR_SLACK_MB`), or nil for `relativeSlack` (more slack: fewer
    /// buffers given back and faulted in again, a higher peak).
    var slack: Int? = getenv("DIFFUSE_ALLOCATOR_SLACK_MB").flatMap { Double(String(cString: $0)) }.map { Int($0 * 1_048_576) }

    /// The slack for a high-water mark: an eighth of it, 64-256 MB. A loop's buffers come in
    /// size classes that are not all free at the moments they are asked for, so it holds more
    /// than its most live bytes: ddpm-cifar10-32's bf16 step (826 MB at the mark) between 64
    /// and 96 MB more. Under a fixed 64 MB each step missed and evicted 10-20 buffers of
    /// 1.3-2.6 MB that a later request of the step then missed (1,700 page faults a step; 196
    /// with 96 MB or more, at the same peak RSS). The cap keeps the phases of a large pipeline
    /// (Stable Diffusion's U-Net, then its VAE decode) within 256 MB of the larger one's mark.
    static func relativeSlack(highWater: Int) -> Int {
        Swift.min(Swift.max(highWater / 8, 64 << 20), 256 << 20)
    }

    private struct State {
        var free: [Int: [UInt]] = [:]  // addresses, by size class
        var cachedBytes = 0
        /// Bytes handed out and not yet released (by size class).
        var liveBytes = 0
        /// The most bytes live at once so far.
        var highWater = 0
    }
    private let state = Mutex(State())
    /// Bytes in derived buffers alive now (kernels' weight forms, cached or in use).
    static let derivedBytes = Atomic<Int>(0)

    /// Bytes held in the free lists now.
    var cachedBytes: Int { state.withLock { $0.cachedBytes } }

    /// Size classes: exact below 4 KiB, then 8 classes per power of two (<= 12.5% waste).
    static func sizeClass(_ bytes: Int) -> Int {
        if bytes <= 4096 { return max(64, (bytes + 63) & ~63) }
        let top = Int.bitWidth - bytes.leadingZeroBitCount - 1
        let step = 1 << (top - 3)
        return (bytes + step - 1) / step * step
    }

    /// A buffer of at least `bytes`, and its size (the size class it came from, which
    /// `release` takes back).
    func allocate(_ bytes: Int) -> (UnsafeMutableRawPointer, Int) {
        let size = Allocator.sizeClass(max(bytes, 1))
        var evicted: [(UInt, Int)] = []
        let hit = state.withLock { s -> (UInt, Int)? in
            // The size's own class, else (2 MB and more) the smallest cached one up to twice
            // the size: a training step's sizes recur, but not in the same classes at the same
            // time, and each miss faults its pages in. ddpm-cifar10's bf16 training step took
            // 80,000 faults with exact classes and 4 KB pages, 10,000 with huge pages, 3,000
            // with both.
            let found = s.free[size] != nil || size < Allocator.hugePageBytes ? size
                : s.free.keys.filter { $0 > size && $0 <= 2 * size }.min()
            if let found, var list = s.free[found], let p = list.popLast() {
                s.free[found] = list.isEmpty ? nil : list  // only classes with buffers are keys
                s.cachedBytes -= found
                s.liveBytes += found
                s.highWater = max(s.highWater, s.liveBytes)
                return (p, found)
            }
            s.liveBytes += size
            s.highWater = max(s.highWater, s.liveBytes)
            // A miss: the new buffer comes from the system; pay for it with cached ones while
            // live + cached would pass the high-water mark.
            var excess = s.liveBytes + s.cachedBytes - s.highWater - (slack ?? Allocator.relativeSlack(highWater: s.highWater))
            while excess > 0 && s.cachedBytes > 0 {
                let classes = s.free.keys
                // The smallest class that covers the excess alone, else the largest.
                let pick = classes.filter { $0 >= excess }.min() ?? classes.max()!
                var list = s.free[pick]!
                evicted.append((list.removeLast(), pick))
                s.free[pick] = list.isEmpty ? nil : list
                s.cachedBytes -= pick
                excess -= pick
            }
            return nil
        }
        for (address, bytes) in evicted { Allocator.systemFree(address, bytes) }
        if let hit { return (UnsafeMutableRawPointer(bitPattern: hit.0)!, hit.1) }
        return (Allocator.systemAllocate(size), size)
    }

    /// Buffers of 2 MB and more are mapped on 2 MB boundaries and advised to use transparent
    /// huge pages (where the kernel's setting is `madvise` or `always`): first touching them
    /// then takes one fault per 2 MB instead of 512. A 4 KB fault costs about 2 us in the VMs
    /// this runs on: 9.4 MB of Winograd weights took 4.8 ms to fault in, and 0.4 ms to
    /// compute; a huge-page fault about 0.2 ms.
    static let hugePageBytes = 2 << 20

    private static func systemAllocate(_ size: Int) -> UnsafeMutableRawPointer {
        if size >= hugePageBytes {
            let span = size + hugePageBytes
            guard let raw = mmap(nil, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), raw != MAP_FAILED else {
                fatalError("Tensors: out of memory mapping \(size) bytes")
            }
            let start = UInt(bitPattern: raw), aligned = (start + UInt(hugePageBytes - 1)) & ~UInt(hugePageBytes - 1)
            // Unmap the unaligned head and the tail beyond size.
            if aligned > start { munmap(raw, Int(aligned - start)) }
            let end = aligned + UInt(size), spanEnd = start + UInt(span)
            if spanEnd > end { munmap(UnsafeMutableRawPointer(bitPattern: end), Int(spanEnd - end)) }
            let p = UnsafeMutableRawPointer(bitPattern: aligned)!
            _ = madvise(p, size, MADV_HUGEPAGE)
            return p
        }
        var p: UnsafeMutableRawPointer?
        let rc = posix_memalign(&p, 64, size)
        guard rc == 0, let p else {
            fatalError("Tensors: out of memory allocating \(size) bytes")
        }
        return p
    }

    /// Gives a buffer of `size` bytes (its size class) from `systemAllocate` back.
    private static func systemFree(_ address: UInt, _ size: Int) {
        let p = UnsafeMutableRawPointer(bitPattern: address)
        if size >= hugePageBytes { munmap(p, size) } else { free(p) }
    }

    /// Gives every cached buffer back to the system and lowers the high-water mark to what is
    /// live now: for the end of a phase whose buffers will not be asked for again.
    func releaseCached() {
        let addresses = state.withLock { s -> [(UInt, Int)] in
            let all = s.free.flatMap { size, list in list.map { ($0, size) } }
            s.free = [:]
            s.cachedBytes = 0
            s.highWater = s.liveBytes
            return all
        }
        for (address, size) in addresses { Allocator.systemFree(address, size) }
    }

    /// Takes back a buffer from `allocate`: into the free lists when `keep` and they have
    /// room, else to the system.
    func release(_ p: UnsafeMutableRawPointer, _ bytes: Int, keep: Bool = true) {
        let size = bytes  // a size class, from `allocate`
        let address = UInt(bitPattern: p)
        let limit = cacheLimit
        let kept = state.withLock { s -> Bool in
            s.liveBytes -= size
            guard keep, s.cachedBytes + size <= limit else { return false }
            s.free[size, default: []].append(address)
            s.cachedBytes += size
            return true
        }
        if !kept { Allocator.systemFree(address, size) }
    }
}

/// Where a process's memory is, for reports: the caching allocator's free lists and the
/// kernels' derived weight forms.
public enum MemoryStatistics {
    /// Bytes the allocator keeps in its free lists (freed tensors awaiting reuse).
    public static var allocatorCachedBytes: Int { Allocator.shared.cachedBytes }
    /// Bytes in derived buffers (weights in a kernel's layout) alive now.
    public static var derivedBytes: Int { Allocator.derivedBytes.load(ordering: .relaxed) }

    /// Returns the allocator's free lists to the system (after a phase whose buffers will not
    /// be reused, such as weights replaced by their bf16 forms).
    public static func releaseCachedBuffers() { Allocator.shared.releaseCached() }
}

extension Tensor {
    /// Drops the forms of this tensor's storage that kernels derived and cached (a weight in
    /// oneDNN's blocked layout, Winograd's transform): the memory goes back to the system,
    /// and the next kernel that needs one makes it again. A pipeline calls this for a model's
    /// weights when it moves on to another model, so that two models' derived weights are
    /// not held at once. Results do not change.
    public func releaseDerivedForms() {
        storage.clearDerived()
    }
}
