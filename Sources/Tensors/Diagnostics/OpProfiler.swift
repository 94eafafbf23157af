import Foundation
import Synchronization

/// Wall time per op kind, collected while enabled (`diffuse bench unet --profile`), like a
/// minimal torch.profiler: where a model's time goes.
public enum OpProfiler {
    private static let enabled = Atomic<Bool>(false)
    private static let totals = Mutex<[String: (seconds: Double, calls: Int)]>([:])

    public static func start() {
        totals.withLock { $0 = [:] }
        enabled.store(true, ordering: .relaxed)
    }

    /// Stops and returns (op, seconds, calls), longest first.
    public static func stop() -> [(op: String, seconds: Double, calls: Int)] {
        enabled.store(false, ordering: .relaxed)
        return totals.withLock { $0.map { ($0.key, $0.value.seconds, $0.value.calls) }.sorted { $0.1 > $1.1 } }
    }

    @inline(__always)
    static func measure<R>(_ op: @autoclosure () -> String, _ body: () throws -> R) rethrows -> R {
        guard enabled.load(ordering: .relaxed) else { return try body() }
        let start = DispatchTime.now().uptimeNanoseconds
        let r = try body()
        let t = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let name = op()
        totals.withLock { $0[name, default: (0, 0)].seconds += t; $0[name, default: (0, 0)].calls += 1 }
        return r
    }
}
