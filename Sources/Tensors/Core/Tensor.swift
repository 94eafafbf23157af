/// An n-dimensional array: a value type with copy-on-write storage.
///
/// A tensor is a view of a `Storage`: `shape`, `strides` (in elements) and `offset` say
/// where each element lives, so reshape, permute, slice and expand share memory without a
/// copy. Convolutions keep activations channels-last (NHWC in memory, NCHW in `shape`), as
/// PyTorch's `channels_last` does; elementwise ops keep the layout of their operands.
///
/// Ops record themselves on the active gradient tape (see `valueAndGrad`) when one of their
/// inputs is being differentiated; without a tape nothing is recorded.
public struct Tensor: @unchecked Sendable {
    public internal(set) var storage: Storage
    public internal(set) var shape: [Int]
    public internal(set) var strides: [Int]
    public internal(set) var offset: Int
    public let dtype: DType
    /// The tape node this value is, while a tape that differentiates it is recording.
    var node: TapeNodeRef?

    init(storage: Storage, shape: [Int], strides: [Int], offset: Int = 0, dtype: DType) {
        self.storage = storage
        self.shape = shape
        self.strides = strides
        self.offset = offset
        self.dtype = dtype
        self.node = nil
    }

    /// A new, uninitialised contiguous tensor.
    init(uninitializedShape shape: [Int], dtype: DType) {
        let count = Shape.count(shape)
        self.init(storage: Storage(byteCount: count * dtype.byteSize), shape: shape,
                  strides: Shape.contiguousStrides(shape), dtype: dtype)
    }

    /// A new, uninitialised tensor with the given strides (a permutation of a dense layout).
    init(uninitializedShape shape: [Int], strides: [Int], dtype: DType) {
        let count = Shape.count(shape)
        self.init(storage: Storage(byteCount: count * dtype.byteSize), shape: shape,
                  strides: strides, dtype: dtype)
    }

    public var rank: Int { shape.count }
    public var count: Int { Shape.count(shape) }
    public var isScalar: Bool { shape.isEmpty }

    /// True when the elements are laid out row-major without gaps.
    public var isContiguous: Bool { strides == Shape.contiguousStrides(shape) || count <= 1 }

    /// True when the elements fill `count` consecutive slots of memory in some order
    /// (any permutation of a contiguous layout, e.g. channels-last), so an elementwise op
    /// can run over the flat buffer.
    public var isDense: Bool { Shape.isDense(shape: shape, strides: strides) }

    /// True for a rank-4 tensor stored NHWC (its channels innermost).
    public var isChannelsLast: Bool {
        rank == 4 && strides == Shape.channelsLastStrides(shape)
    }

    /// The address of element zero of this view.
    @inlinable var baseAddress: UnsafeMutableRawPointer {
        storage.base + offset * dtype.byteSize
    }

    func pointer<T>(as: T.Type) -> UnsafeMutablePointer<T> {
        baseAddress.assumingMemoryBound(to: T.self)
    }

    /// Size of an axis, negative axes counting from the end.
    public func size(_ axis: Int) -> Int { shape[Shape.normalize(axis, rank: rank, op: "size")] }
}

/// Shape arithmetic shared by every op.
public enum Shape {
    public static func count(_ shape: [Int]) -> Int { shape.reduce(1, *) }

    public static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var s = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[i] = s
            s *= max(shape[i], 1)
        }
        return strides
    }

    /// NHWC strides for an NCHW shape.
    public static func channelsLastStrides(_ shape: [Int]) -> [Int] {
        precondition(shape.count == 4)
        let (c, h, w) = (max(shape[1], 1), max(shape[2], 1), max(shape[3], 1))
        return [h * w * c, 1, w * c, c]
    }

    /// Whether (shape, strides) covers exactly `count` consecutive elements.
    static func isDense(shape: [Int], strides: [Int]) -> Bool {
        let n = count(shape)
        if n <= 1 { return true }
        let dims = zip(shape, strides).filter { $0.0 != 1 }.sorted { $0.1 < $1.1 }
        var expected = 1
        for (size, stride) in dims {
            if stride != expected { return false }
            expected *= size
        }
        return true
    }

    /// Strides for a new dense tensor of `shape` laid out in the same order as `like`.
    static func denseStrides(shape: [Int], like strides: [Int]) -> [Int] {
        let order = (0..<shape.count).sorted { a, b in
            strides[a] != strides[b] ? strides[a] > strides[b] : a < b
        }
        var result = [Int](repeating: 0, count: shape.count)
        var s = 1
        for axis in order.reversed() {
            result[axis] = s
            s *= max(shape[axis], 1)
        }
        return result
    }

    static func normalize(_ axis: Int, rank: Int, op: String) -> Int {
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0 && a < max(rank, 1) else {
            fail(op, "axis \(axis) is out of range for a tensor of rank \(rank)")
        }
        return a
    }

    /// The NumPy broadcast of two shapes.
    public static func broadcast(_ a: [Int], _ b: [Int], op: String) -> [Int] {
        let n = max(a.count, b.count)
        var out = [Int](repeating: 1, count: n)
        for i in 0..<n {
            let da = i < n - a.count ? 1 : a[i - (n - a.count)]
            let db = i < n - b.count ? 1 : b[i - (n - b.count)]
            if da == db || db == 1 {
                out[i] = da
            } else if da == 1 {
                out[i] = db
            } else {
                fail(op, "shapes \(a) and \(b) cannot be broadcast together (dimension \(i): \(da) vs \(db))")
            }
        }
        return out
    }

    /// Strides that read a tensor of (shape, strides) as the broadcast shape `to`.
    static func broadcastStrides(shape: [Int], strides: [Int], to target: [Int]) -> [Int] {
        let lead = target.count - shape.count
        var out = [Int](repeating: 0, count: target.count)
        for i in 0..<shape.count where shape[i] != 1 || target[lead + i] == 1 {
            out[lead + i] = shape[i] == 1 ? 0 : strides[i]
        }
        return out
    }
}

/// Stops with a message that names the op and what was wrong with its arguments. Misuse of
/// a tensor op is a programming error, like an array index out of range.
public func fail(_ op: String, _ message: String) -> Never {
    fatalError("Tensors.\(op): \(message)")
}

@inline(__always)
func check(_ condition: Bool, _ op: String, _ message: @autoclosure () -> String) {
    if !condition { fail(op, message()) }
}
