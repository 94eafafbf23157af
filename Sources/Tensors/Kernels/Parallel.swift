import COpenMP
import Glibc
import Synchronization

/// Runs kernels on libgomp's thread team: the same threads oneDNN uses for convolutions and
/// matmuls, so Swift kernels and oneDNN take turns on the cores instead of fighting over them
/// (two pools on 2 cores halve both, measured).
public enum Parallel {
    private static let threadSetting = Atomic<Int>(0)

    /// Threads per kernel: `setThreadCount`, else `OMP_NUM_THREADS`, else the CPU count.
    public static var threadCount: Int {
        let t = threadSetting.load(ordering: .relaxed)
        return t > 0 ? t : Int(omp_get_max_threads())
    }

    /// Sets the threads used by Swift kernels and by oneDNN calls made from now on.
    public static func setThreadCount(_ n: Int) {
        precondition(n >= 1, "Parallel.setThreadCount: need at least one thread, got \(n)")
        threadSetting.store(n, ordering: .relaxed)
        omp_set_num_threads(Int32(n))
    }

    /// Makes oneDNN calls from this thread use `threadCount` threads (the OpenMP setting is
    /// per calling thread).
    static func prepareForOneDNN() {
        let t = threadSetting.load(ordering: .relaxed)
        if t > 0 { omp_set_num_threads(Int32(t)) }
    }

    private struct Context {
        let body: (Int, Int) -> Void
    }

    /// Calls `body(thread, threads)` once on each thread of a team and waits for all.
    /// Inside another parallel region the team has one thread.
    public static func team(threads: Int = Parallel.threadCount, _ body: (Int, Int) -> Void) {
        if threads <= 1 || omp_in_parallel() != 0 {
            body(0, 1)
            return
        }
        withoutActuallyEscaping(body) { escaping in
            var context = Context(body: escaping)
            withUnsafeMutablePointer(to: &context) { ptr in
                GOMP_parallel({ raw in
                    let ctx = raw!.assumingMemoryBound(to: Context.self)
                    ctx.pointee.body(Int(omp_get_thread_num()), Int(omp_get_num_threads()))
                }, UnsafeMutableRawPointer(ptr), UInt32(threads), 0)
            }
        }
    }

    /// Splits `0..<count` into contiguous ranges and runs `body` on each, on the team's
    /// threads. Work below `grain` items per thread runs on the calling thread alone.
    ///
    /// The ranges are fixed (`piecesPerThread` per thread, each at least `grain` items, the
    /// same bounds at every call), and each thread owns a contiguous run of them: it takes its
    /// own in order, then, when they are done, the ones another thread has not started. A core
    /// that the host slows does less of the work instead of holding the others at the end (one
    /// range per thread left each thread idle for a fifth of a ddpm training step in libgomp,
    /// `perf`), while in the common case thread t reads and writes the same part of a tensor at
    /// every call, which stays in its own caches: on hosts whose two cores do not share an L3
    /// (a cache line's round trip between them 300-500 ns), a range taken by the other core
    /// than last time comes from memory (mean over HW of 16 MB, see `Split`). Results never
    /// depend on which thread ran a range.
    public static func forRanges(_ count: Int, grain: Int = 16384, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let threads = min(threadCount, max(1, count / max(grain, 1)))
        if threads <= 1 {
            body(0..<count)
            return
        }
        let pieces = split == .halves ? threads : max(threads, min(threads * piecesPerThread, count / max(grain, 1)))
        // Each owner's next range; owners in turn from a thread's own (shared: one of all).
        let owners = split == .shared ? 1 : threads
        let counters = (0..<owners).map { _ in PieceCounter() }
        team(threads: threads) { t, _ in
            for v in 0..<owners {
                let owner = (t + v) % owners
                let first = pieces * owner / owners, last = pieces * (owner + 1) / owners
                while true {
                    let k = first + counters[owner].value.wrappingAdd(1, ordering: .relaxed).oldValue
                    guard k < last else { break }
                    let start = count * k / pieces, end = count * (k + 1) / pieces
                    if start < end { body(start..<end) }
                }
            }
        }
    }

    /// Ranges per thread in `forRanges`.
    static let piecesPerThread = 4

    /// How `forRanges` hands out its ranges: `owned` (the default), or for comparison
    /// `DIFFUSE_SPLIT=halves` (one range per thread, its own first) or `shared` (all ranges
    /// from one counter, each taken by whichever thread is free).
    /// Mean over HW of a 64x64x32x32 tensor (16 MB) on an EPYC Zen 3 whose two cores do not
    /// share an L3: shared 0.87-0.94 ms, owned 0.37-0.54 (PyTorch 0.33-0.35), in
    /// alternating runs; ddpm-cifar10-32 training at batch 8 the same within the noise.
    enum Split: String { case owned, shared, halves }
    static let split = getenv("DIFFUSE_SPLIT").flatMap { Split(rawValue: String(cString: $0)) } ?? .owned

    /// A thread's next range; the padding keeps two threads' counters off one cache line.
    private final class PieceCounter: Sendable {
        private let before: (Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0)
        let value = Atomic<Int>(0)
        private let after: (Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0)
    }

    /// Runs `body(i)` for each `i` in `0..<count`, items split evenly among the threads.
    /// `cost` is the work per item in element-operations, to decide if threads pay.
    public static func forEach(_ count: Int, cost: Int = 1, _ body: (Int) -> Void) {
        let grain = max(1, 16384 / max(cost, 1))
        forRanges(count, grain: grain) { r in
            for i in r { body(i) }
        }
    }
}

/// A raw buffer that kernels share across threads; each thread writes a disjoint part.
struct SendablePointer<T>: @unchecked Sendable {
    let p: UnsafeMutablePointer<T>
    init(_ p: UnsafeMutablePointer<T>) { self.p = p }
}
