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
    /// What keeps borrowed memory alive (a mapped file); nil for memory this storage owns.
    private let owner: AnyObject?
    /// Whether the memory goes back to the system when freed rather than into the
    /// allocator's cache: set on derived buffers (weights in a kernel's layout), long-lived
    /// and of sizes that activations rarely reuse.
    var returnsToSystem = false

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
        self.base = Allocator.shared.allocate(byteCount)
        self.owner = nil
    }

    /// Memory that `owner` keeps alive (a memory-mapped file's region, say); writable in the
    /// sense of copy-on-write mappings: writes never reach the owner's backing store.
    public init(borrowing base: UnsafeMutableRawPointer, byteCount: Int, owner: AnyObject) {
        self.base = base
        self.byteCount = byteCount
        self.owner = owner
    }

    deinit {
        if owner == nil {
            if returnsToSystem { free(base) } else { Allocator.shared.release(base, byteCount) }
        }
    }

    /// A buffer derived from these contents, made by `make` once per `version`.
    func derivedBuffer(_ key: String, make: () -> Storage) -> Storage {
        if let hit = derived.withLock({ $0[key] }), hit.version == version { return hit.storage }
        let made = make()
        if made.owner == nil { made.returnsToSystem = true }
        guard made.byteCount <= Storage.derivedCacheLimit else { return made }
        let current = version
        // Entries of earlier versions can never be used again: drop them with the new one in.
        derived.withLock { d in
            d = d.filter { $0.value.version == current }
            d[key] = (current, made)
        }
        return made
    }

    /// Drops every derived buffer (after an algorithm choice timed candidates whose
    /// reordered weights would otherwise stay alive beside the chosen one's).
    func clearDerived() {
        derived.withLock { $0.removeAll() }
    }

    func markMutated() {
        version &+= 1
    }
}

/// A caching allocator: freed buffers are kept by size class and reused, so the large
/// activations of a training step do not go back to the kernel (and fault their pages in
/// again) every step. Alignment is 64 bytes (one cache line, one AVX-512 register).
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
    /// The largest buffer kept in the free lists: larger ones go back to the system when
    /// freed (as glibc returns its blocks above 32 MB), so that a model whose activations
    /// change size from layer to layer (the VAE decoder: 128 MB at 512x512 x 128 channels)
    /// does not hold one freed buffer of every size beside the live ones.
    var largestCached = 64 << 20

    private struct State {
        var free: [Int: [UInt]] = [:]  // addresses, by size class
        var cachedBytes = 0
    }
    private let state = Mutex(State())

    /// Size classes: exact below 4 KiB, then 8 classes per power of two (<= 12.5% waste).
    static func sizeClass(_ bytes: Int) -> Int {
        if bytes <= 4096 { return max(64, (bytes + 63) & ~63) }
        let top = Int.bitWidth - bytes.leadingZeroBitCount - 1
        let step = 1 << (top - 3)
        return (bytes + step - 1) / step * step
    }

    func allocate(_ bytes: Int) -> UnsafeMutableRawPointer {
        let size = Allocator.sizeClass(max(bytes, 1))
        if let hit = state.withLock({ s -> UInt? in
            guard var list = s.free[size], let p = list.popLast() else { return nil }
            s.free[size] = list
            s.cachedBytes -= size
            return p
        }) {
            return UnsafeMutableRawPointer(bitPattern: hit)!
        }
        var p: UnsafeMutableRawPointer?
        let rc = posix_memalign(&p, 64, size)
        guard rc == 0, let p else {
            fatalError("Tensors: out of memory allocating \(size) bytes")
        }
        return p
    }

    func release(_ p: UnsafeMutableRawPointer, _ bytes: Int) {
        let size = Allocator.sizeClass(max(bytes, 1))
        let address = UInt(bitPattern: p)
        let limit = cacheLimit
        let kept = size <= largestCached && state.withLock { s -> Bool in
            guard s.cachedBytes + size <= limit else { return false }
            s.free[size, default: []].append(address)
            s.cachedBytes += size
            return true
        }
        if !kept { free(p) }
    }
}
