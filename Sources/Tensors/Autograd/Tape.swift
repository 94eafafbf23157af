import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Identifies a value recorded on a tape.
struct TapeNodeRef: Sendable {
    let tape: Int
    let index: Int
}

/// A define-by-run record of the ops applied to the values being differentiated.
///
/// `valueAndGradient` pushes a tape for the current thread, runs the function, pops it and
/// walks the records backwards. Each op states its own gradient rule (a vector-Jacobian
/// product) when it records itself; ops on values the tape does not track record nothing,
/// and without a tape (inference) nothing is recorded at all.
final class Tape {
    /// The gradient rule of one op: output cotangent in, one cotangent per input out
    /// (nil for inputs that get none).
    typealias Backward = (Tensor) -> [Tensor?]

    struct Entry {
        let op: String
        /// Tape indices of the inputs; -1 for inputs the tape does not track.
        let inputs: [Int]
        var backward: Backward?
        let shape: [Int]
        let dtype: DType
    }

    private static let nextID = Atomic<Int>(1)
    let id: Int
    var entries: [Entry] = []

    init() { id = Tape.nextID.add(1, ordering: .relaxed).oldValue }

    /// Adds an input to differentiate with respect to.
    func leaf(_ t: Tensor) -> Tensor {
        var marked = t
        marked.node = TapeNodeRef(tape: id, index: entries.count)
        entries.append(Entry(op: "leaf", inputs: [], backward: nil, shape: t.shape, dtype: t.dtype))
        return marked
    }

    func tracks(_ t: Tensor) -> Bool { t.node?.tape == id }

    /// Records `output` as computed by `op` from `inputs` with the rule `backward`.
    func record(_ output: Tensor, _ op: String, _ inputs: [Tensor], _ backward: @escaping Backward) -> Tensor {
        var out = output
        out.node = TapeNodeRef(tape: id, index: entries.count)
        let indices = inputs.map { tracks($0) ? $0.node!.index : -1 }
        entries.append(Entry(op: op, inputs: indices, backward: backward, shape: output.shape, dtype: output.dtype))
        return out
    }

    // MARK: The tape of the current thread

    private final class Stack {
        var tapes: [Tape] = []
    }

    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k) { raw in
            if let raw { Unmanaged<AnyObject>.fromOpaque(raw).release() }
        }
        return k
    }()

    private static var stack: Stack {
        if let raw = pthread_getspecific(key) {
            return Unmanaged<AnyObject>.fromOpaque(raw).takeUnretainedValue() as! Stack
        }
        let s = Stack()
        pthread_setspecific(key, Unmanaged<AnyObject>.passRetained(s).toOpaque())
        return s
    }

    static var current: Tape? {
        guard let raw = pthread_getspecific(key) else { return nil }
        return (Unmanaged<AnyObject>.fromOpaque(raw).takeUnretainedValue() as! Stack).tapes.last
    }

    static func push(_ tape: Tape) { stack.tapes.append(tape) }
    static func pop() { _ = stack.tapes.popLast() }

    /// The current tape if it tracks any of `inputs`: the op must record itself on it.
    @inline(__always)
    static func active(_ inputs: Tensor...) -> Tape? {
        guard inputs.contains(where: { $0.node != nil }), let tape = current else { return nil }
        return inputs.contains(where: { tape.tracks($0) }) ? tape : nil
    }

    static func active(_ inputs: [Tensor]) -> Tape? {
        guard inputs.contains(where: { $0.node != nil }), let tape = current else { return nil }
        return inputs.contains(where: { tape.tracks($0) }) ? tape : nil
    }
}
