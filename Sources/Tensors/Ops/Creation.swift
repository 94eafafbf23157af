/// Making tensors and reading their elements back.
extension Tensor {
    /// A tensor holding `scalars` (row-major) with `shape`.
    public init(_ scalars: [Float], shape: [Int]) {
        check(scalars.count == Shape.count(shape), "init",
              "\(scalars.count) values do not fill shape \(shape) (\(Shape.count(shape)) elements)")
        self.init(uninitializedShape: shape, dtype: .float32)
        scalars.withUnsafeBufferPointer { buf in
            pointer(as: Float.self).update(from: buf.baseAddress!, count: buf.count)
        }
    }

    /// A rank-1 tensor.
    public init(_ scalars: [Float]) { self.init(scalars, shape: [scalars.count]) }

    /// A rank-0 tensor.
    public init(_ scalar: Float) { self.init([scalar], shape: []) }

    /// An integer tensor (int64 by default, as PyTorch's indices are).
    public init(integers values: [Int], shape: [Int]? = nil, dtype: DType = .int64) {
        let shape = shape ?? [values.count]
        check(values.count == Shape.count(shape), "init", "\(values.count) values do not fill shape \(shape)")
        self.init(uninitializedShape: shape, dtype: dtype)
        let p = baseAddress
        for (i, v) in values.enumerated() { ElementAccess.store(.int(Int64(v)), p, dtype, i) }
    }

    /// A boolean tensor.
    public init(_ values: [Bool], shape: [Int]? = nil) {
        let shape = shape ?? [values.count]
        check(values.count == Shape.count(shape), "init", "\(values.count) values do not fill shape \(shape)")
        self.init(uninitializedShape: shape, dtype: .bool)
        let p = pointer(as: UInt8.self)
        for (i, v) in values.enumerated() { p[i] = v ? 1 : 0 }
    }

    public static func full(_ shape: [Int], _ value: Float, dtype: DType = .float32) -> Tensor {
        let t = Tensor(uninitializedShape: shape, dtype: dtype)
        t.fill(value)
        return t
    }

    public static func zeros(_ shape: [Int], dtype: DType = .float32) -> Tensor {
        let t = Tensor(uninitializedShape: shape, dtype: dtype)
        t.baseAddress.initializeMemory(as: UInt8.self, repeating: 0, count: t.count * dtype.byteSize)
        return t
    }

    public static func ones(_ shape: [Int], dtype: DType = .float32) -> Tensor { full(shape, 1, dtype: dtype) }

    public static func zeros(like t: Tensor, dtype: DType? = nil) -> Tensor { zeros(t.shape, dtype: dtype ?? t.dtype) }
    public static func ones(like t: Tensor, dtype: DType? = nil) -> Tensor { ones(t.shape, dtype: dtype ?? t.dtype) }

    /// start, start + step, ... below end.
    public static func arange(_ start: Float, _ end: Float, step: Float = 1) -> Tensor {
        check(step != 0, "arange", "step must not be zero")
        let n = Swift.max(0, Int(((end - start) / step).rounded(.up)))
        return Tensor((0..<n).map { start + Float($0) * step })
    }

    /// Integer range 0..<n (int64).
    public static func arange(_ n: Int, dtype: DType = .int64) -> Tensor {
        Tensor(integers: Array(0..<n), dtype: dtype)
    }

    /// `count` evenly spaced values from start to end inclusive (as torch.linspace).
    public static func linspace(_ start: Float, _ end: Float, count: Int) -> Tensor {
        check(count >= 1, "linspace", "count must be at least 1, got \(count)")
        if count == 1 { return Tensor([start]) }
        let step = (Double(end) - Double(start)) / Double(count - 1)
        let half = count / 2
        return Tensor((0..<count).map { i in
            // torch fills from both ends so that the last value is exactly `end`.
            i < half ? Float(Double(start) + step * Double(i)) : Float(Double(end) - step * Double(count - 1 - i))
        })
    }

    public static func eye(_ n: Int) -> Tensor {
        var v = [Float](repeating: 0, count: n * n)
        for i in 0..<n { v[i * n + i] = 1 }
        return Tensor(v, shape: [n, n])
    }

    /// Writes `value` to every element of this (freshly made, unshared) tensor.
    func fill(_ value: Float) {
        let n = count
        switch dtype {
        case .float32:
            let p = SendablePointer(pointer(as: Float.self))
            Parallel.forRanges(n, grain: 1 << 18) { r in (p.p + r.lowerBound).update(repeating: value, count: r.count) }
        case .bfloat16:
            pointer(as: UInt16.self).update(repeating: BFloat16(value).bitPattern, count: n)
        default:
            for i in 0..<n { ElementAccess.store(.float(Double(value)), baseAddress, dtype, i) }
        }
    }

    // MARK: Reading elements

    /// All elements as Float, row-major (bf16 widened, integers converted).
    public var scalars: [Float] {
        let c = dtype == .float32 ? contiguous() : to(.float32).contiguous()
        return Array(UnsafeBufferPointer(start: c.pointer(as: Float.self), count: c.count))
    }

    /// All elements as Int, row-major.
    public var integers: [Int] {
        let c = contiguous()
        return (0..<c.count).map { Int(ElementAccess.load(c.baseAddress, dtype, $0).int64) }
    }

    /// All elements as Bool, row-major (nonzero is true).
    public var booleans: [Bool] {
        let c = contiguous()
        return (0..<c.count).map { ElementAccess.load(c.baseAddress, dtype, $0).double != 0 }
    }

    /// The one element of a single-element tensor.
    public var item: Float {
        check(count == 1, "item", "tensor of shape \(shape) has \(count) elements, not 1")
        return Float(ElementAccess.load(baseAddress, dtype, 0).double)
    }

    /// The element at a full index.
    public subscript(element index: [Int]) -> Float {
        check(index.count == rank, "subscript", "index \(index) has \(index.count) components for a tensor of rank \(rank)")
        var o = 0
        for (axis, i) in index.enumerated() {
            check(i >= 0 && i < shape[axis], "subscript", "index \(i) is out of range for axis \(axis) of size \(shape[axis])")
            o += i * strides[axis]
        }
        return Float(ElementAccess.load(baseAddress, dtype, o).double)
    }

    /// A tensor over existing storage (a memory-mapped file's region, say), row-major.
    public init(storage: Storage, shape: [Int], dtype: DType, byteOffset: Int = 0) {
        check(byteOffset % dtype.byteSize == 0, "init", "byte offset \(byteOffset) is not a multiple of \(dtype)'s size")
        check(byteOffset + Shape.count(shape) * dtype.byteSize <= storage.byteCount, "init",
              "shape \(shape) of \(dtype) does not fit in \(storage.byteCount - byteOffset) bytes")
        self.init(storage: storage, shape: shape, strides: Shape.contiguousStrides(shape),
                  offset: byteOffset / dtype.byteSize, dtype: dtype)
    }

    /// Reads the elements as a row-major buffer of `T` (float32: Float, bfloat16: UInt16,
    /// int32: Int32, int64: Int64, bool: UInt8), without copying when already row-major.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let c = contiguous()
        return try withExtendedLifetime(c) {
            try body(UnsafeRawBufferPointer(start: c.baseAddress, count: c.count * dtype.byteSize))
        }
    }

    /// The key of `toCached(type)`'s form on the storage.
    private func castKey(_ type: DType) -> String { "cast|\(type)|\(offset)|\(strides)|\(shape)" }

    /// `withUnsafeMutableFloats` for an update that also rounds the new values to bf16, where
    /// the previous values' bf16 form was cached (`toCached(.bfloat16)`: a float32 master
    /// weight of a bf16 model): `body` gets a buffer for the new values' bf16 bits, which
    /// becomes the cached form of the new version, so the next use takes it without a
    /// conversion pass. Without such a form (or one too large to keep) `body` gets nil.
    /// `body` must write every element of the bf16 buffer as `to(.bfloat16)` would round it.
    public mutating func withUnsafeMutableFloats<R>(
        keepingBFloat16Form body: (UnsafeMutableBufferPointer<Float>, UnsafeMutablePointer<UInt16>?) -> R
    ) -> R {
        check(dtype == .float32, "withUnsafeMutableFloats", "needs a float32 tensor, got \(dtype)")
        let cached = isContiguous && isKnownUniquelyReferenced(&storage) && storage.hasDerived(castKey(.bfloat16))
            && count * 2 <= Storage.derivedCacheLimit
        guard cached else { return withUnsafeMutableFloats { body($0, nil) } }
        node = nil
        storage.markMutated()
        let floats = UnsafeMutableBufferPointer(start: pointer(as: Float.self), count: count)
        var result: R?
        // The stale form goes back to the allocator first, and the new one takes its memory.
        _ = storage.derivedBuffer(castKey(.bfloat16)) {
            let form = Storage(byteCount: count * 2)
            result = body(floats, form.base.assumingMemoryBound(to: UInt16.self))
            return form
        }
        return result!
    }

    /// Writes the float32 elements in place, row-major. The storage is first copied if it is
    /// shared with another tensor or not row-major, so other values never change (copy on
    /// write); derived caches (reordered weights) see the change.
    public mutating func withUnsafeMutableFloats<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        check(dtype == .float32, "withUnsafeMutableFloats", "needs a float32 tensor, got \(dtype)")
        if !isContiguous || !isKnownUniquelyReferenced(&storage) {
            self = self.detached().relayout(strides: Shape.contiguousStrides(shape), op: "copy")
        }
        node = nil
        storage.markMutated()
        return try body(UnsafeMutableBufferPointer(start: pointer(as: Float.self), count: count))
    }

    // MARK: Layout and type

    /// The same values in a row-major buffer (self when already so).
    public func contiguous() -> Tensor {
        if isContiguous { return self }
        return relayout(strides: Shape.contiguousStrides(shape), op: "contiguous")
    }

    /// The same values stored NHWC (for rank-4 NCHW tensors), as oneDNN's convolutions want.
    public func channelsLast() -> Tensor {
        check(rank == 4, "channelsLast", "needs a rank-4 NCHW tensor, got shape \(shape)")
        if isChannelsLast { return self }
        return relayout(strides: Shape.channelsLastStrides(shape), op: "channelsLast")
    }

    /// A copy with new dense strides; the gradient is the identity.
    func relayout(strides newStrides: [Int], op: String) -> Tensor {
        let out = Tensor(uninitializedShape: shape, strides: newStrides, dtype: dtype)
        CopyKernel.copy(self, into: out)
        if let tape = Tape.active(self) {
            return tape.record(out, op, [self]) { g in [g] }
        }
        return out
    }

    /// A copy that owns its storage (for writing in place).
    public func copy() -> Tensor {
        let strides = isDense ? Shape.denseStrides(shape: shape, like: self.strides) : Shape.contiguousStrides(shape)
        return relayout(strides: strides, op: "copy")
    }

    /// The values converted to `dtype`. Between floating types the gradient converts back.
    public func to(_ newType: DType) -> Tensor {
        if newType == dtype { return self }
        let out = CopyKernel.convert(self, to: newType)
        if newType.isFloatingPoint && dtype.isFloatingPoint, let tape = Tape.active(self) {
            let from = dtype
            return tape.record(out, "to(\(newType))", [self]) { g in [g.to(from)] }
        }
        return out
    }

    /// `to(newType)`, converted once per version of this tensor's storage and kept on it (a
    /// float32 master weight cast for mixed precision is converted once per optimizer step,
    /// not at every use, and the kernels' forms of the cast, cached on the cast's storage,
    /// live as long). The gradient converts back, as `to`'s does.
    public func toCached(_ newType: DType) -> Tensor {
        if newType == dtype { return self }
        let detachedSelf = detached()
        let storage = self.storage.derivedBuffer(castKey(newType)) {
            CopyKernel.convert(detachedSelf.contiguous(), to: newType).storage
        }
        let out = Tensor(storage: storage, shape: shape, strides: Shape.contiguousStrides(shape), dtype: newType)
        if newType.isFloatingPoint && dtype.isFloatingPoint, let tape = Tape.active(self) {
            let from = dtype
            return tape.record(out, "to(\(newType))", [self]) { g in [g.to(from)] }
        }
        return out
    }
}
