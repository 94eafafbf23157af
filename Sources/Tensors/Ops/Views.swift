/// Views: new shapes over the same storage (no copy where the strides allow), each with
/// its gradient rule.
extension Tensor {
    /// The same elements in a new shape; one dimension may be -1 (inferred). Copies only
    /// when the strides cannot express the new shape (as torch.reshape).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        let target = Tensor.inferShape(newShape, count: count, from: shape)
        if target == shape { return self }
        let viewStrides = Tensor.viewStrides(shape: shape, strides: strides, to: target)
        let base: Tensor
        let s: [Int]
        if let viewStrides {
            base = self.detached()
            s = viewStrides
        } else {
            base = self.detached().contiguous()
            s = Shape.contiguousStrides(target)
        }
        let out = Tensor(storage: base.storage, shape: target, strides: s, offset: base.offset, dtype: dtype)
        guard let tape = Tape.active(self) else { return out }
        let old = shape
        return tape.record(out, "reshape", [self]) { g in [g.reshaped(old)] }
    }

    public func reshaped(_ dims: Int...) -> Tensor { reshaped(dims) }

    /// Collapses axes `start...end` into one.
    public func flattened(from start: Int = 0, through end: Int = -1) -> Tensor {
        if rank == 0 { return reshaped([1]) }
        let s = Shape.normalize(start, rank: rank, op: "flatten"), e = Shape.normalize(end, rank: rank, op: "flatten")
        check(s <= e, "flatten", "start axis \(start) is after end axis \(end)")
        let merged = shape[s...e].reduce(1, *)
        return reshaped(Array(shape[..<s]) + [merged] + Array(shape[(e + 1)...]))
    }

    static func inferShape(_ shape: [Int], count: Int, from old: [Int]) -> [Int] {
        let unknown = shape.indices.filter { shape[$0] == -1 }
        check(unknown.count <= 1, "reshape", "only one dimension can be -1, got \(shape)")
        check(shape.allSatisfy { $0 >= -1 }, "reshape", "invalid dimension in \(shape)")
        var result = shape
        if let u = unknown.first {
            let known = shape.enumerated().filter { $0.offset != u }.map(\.element).reduce(1, *)
            check(known > 0 && count % known == 0, "reshape", "cannot reshape \(old) (\(count) elements) into \(shape)")
            result[u] = count / known
        }
        check(Shape.count(result) == count, "reshape", "cannot reshape \(old) (\(count) elements) into \(shape) (\(Shape.count(result)) elements)")
        return result
    }

    /// Strides that view (shape, strides) as `target` without moving data, or nil
    /// (PyTorch's computeStride).
    static func viewStrides(shape: [Int], strides: [Int], to target: [Int]) -> [Int]? {
        if Shape.count(shape) == 0 || shape.isEmpty { return Shape.contiguousStrides(target) }
        var newStrides = [Int](repeating: 0, count: target.count)
        var viewD = target.count - 1
        var chunkBase = strides[strides.count - 1]
        var tensorNumel = 1, viewNumel = 1
        for d in stride(from: shape.count - 1, through: 0, by: -1) {
            tensorNumel *= shape[d]
            if d == 0 || (shape[d - 1] != 1 && strides[d - 1] != tensorNumel * chunkBase) {
                while viewD >= 0 && (viewNumel < tensorNumel || target[viewD] == 1) {
                    newStrides[viewD] = viewNumel * chunkBase
                    viewNumel *= target[viewD]
                    viewD -= 1
                }
                if viewNumel != tensorNumel { return nil }
                if d > 0 {
                    chunkBase = strides[d - 1]
                    tensorNumel = 1
                    viewNumel = 1
                }
            }
        }
        return viewD == -1 ? newStrides : nil
    }

    /// Axes reordered: result axis i is input axis `axes[i]`.
    public func permuted(_ axes: [Int]) -> Tensor {
        check(axes.count == rank, "permute", "\(axes.count) axes given for a tensor of rank \(rank)")
        let norm = axes.map { Shape.normalize($0, rank: rank, op: "permute") }
        check(Set(norm).count == rank, "permute", "axes \(axes) are not a permutation of 0..<\(rank)")
        let out = Tensor(storage: storage, shape: norm.map { shape[$0] }, strides: norm.map { strides[$0] },
                         offset: offset, dtype: dtype)
        guard let tape = Tape.active(self) else { return out }
        var inverse = [Int](repeating: 0, count: rank)
        for (i, a) in norm.enumerated() { inverse[a] = i }
        return tape.record(out, "permute", [self]) { g in [g.permuted(inverse)] }
    }

    public func permuted(_ axes: Int...) -> Tensor { permuted(axes) }

    /// Two axes swapped (default: the last two, a matrix transpose).
    public func transposed(_ a: Int = -2, _ b: Int = -1) -> Tensor {
        var axes = Array(0..<rank)
        axes.swapAt(Shape.normalize(a, rank: rank, op: "transpose"), Shape.normalize(b, rank: rank, op: "transpose"))
        return permuted(axes)
    }

    /// Elements start, start+step, ... below end along `axis` (negative bounds count from
    /// the end; bounds are clipped to the axis as in Python slicing).
    public func sliced(axis: Int, start: Int = 0, end: Int? = nil, step: Int = 1) -> Tensor {
        let a = Shape.normalize(axis, rank: rank, op: "slice")
        check(step >= 1, "slice", "step must be positive, got \(step)")
        let n = shape[a]
        func clip(_ i: Int) -> Int { Swift.min(Swift.max(i < 0 ? i + n : i, 0), n) }
        let s = clip(start), e = Swift.max(clip(end ?? n), s)
        let length = (e - s + step - 1) / step
        var newShape = shape, newStrides = strides
        newShape[a] = length
        newStrides[a] = strides[a] * step
        let out = Tensor(storage: storage, shape: newShape, strides: newStrides,
                         offset: offset + s * strides[a], dtype: dtype)
        guard let tape = Tape.active(self) else { return out }
        let full = shape, fullType = dtype
        return tape.record(out, "slice", [self]) { g in
            let z = Tensor.zeros(full, dtype: g.dtype == fullType ? fullType : g.dtype)
            z.sliced(axis: a, start: s, end: e, step: step).assign(g)
            return [z]
        }
    }

    /// Elements along `axis` in a half-open range.
    public func sliced(axis: Int, _ range: Range<Int>) -> Tensor {
        sliced(axis: axis, start: range.lowerBound, end: range.upperBound)
    }

    /// The sub-tensor at `index` along `axis`, that axis removed.
    public func selected(axis: Int, index: Int) -> Tensor {
        let a = Shape.normalize(axis, rank: rank, op: "select")
        let i = index < 0 ? index + shape[a] : index
        check(i >= 0 && i < shape[a], "select", "index \(index) is out of range for axis \(a) of size \(shape[a]) (shape \(shape))")
        return sliced(axis: a, start: i, end: i + 1).squeezed(axis: a)
    }

    /// `x[i]`: the sub-tensor at index i of the first axis.
    public subscript(_ index: Int) -> Tensor { selected(axis: 0, index: index) }

    /// `x[a..<b]`: a range of the first axis.
    public subscript(_ range: Range<Int>) -> Tensor { sliced(axis: 0, range) }

    /// A size-1 axis inserted at `axis`.
    public func unsqueezed(axis: Int) -> Tensor {
        let a = axis < 0 ? axis + rank + 1 : axis
        check(a >= 0 && a <= rank, "unsqueeze", "axis \(axis) is out of range for rank \(rank)")
        var s = shape
        s.insert(1, at: a)
        return reshaped(s)
    }

    /// The size-1 axis `axis` removed (or all size-1 axes when nil).
    public func squeezed(axis: Int? = nil) -> Tensor {
        guard let axis else { return reshaped(shape.filter { $0 != 1 }) }
        let a = Shape.normalize(axis, rank: rank, op: "squeeze")
        check(shape[a] == 1, "squeeze", "axis \(a) has size \(shape[a]), not 1 (shape \(shape))")
        var s = shape
        s.remove(at: a)
        return reshaped(s)
    }

    /// A broadcast view of `newShape` (size-1 axes repeated without copying; -1 keeps a size).
    public func expanded(_ newShape: [Int]) -> Tensor {
        check(newShape.count >= rank, "expand", "cannot expand shape \(shape) to fewer dimensions \(newShape)")
        let lead = newShape.count - rank
        var target = newShape
        for i in 0..<rank where target[lead + i] == -1 { target[lead + i] = shape[i] }
        for i in 0..<rank {
            check(shape[i] == target[lead + i] || shape[i] == 1, "expand",
                  "cannot expand shape \(shape) to \(newShape): dimension \(i) has size \(shape[i])")
        }
        if target == shape { return self }
        let s = Shape.broadcastStrides(shape: shape, strides: strides, to: target)
        let out = Tensor(storage: storage, shape: target, strides: s, offset: offset, dtype: dtype)
        guard let tape = Tape.active(self) else { return out }
        let old = shape
        return tape.record(out, "expand", [self]) { g in [g.summed(toShape: old)] }
    }

    /// Writes `values` (broadcast to this view's shape) into this view's memory. For
    /// filling parts of a freshly made tensor (a kernel-side helper; records nothing).
    func assign(_ values: Tensor) {
        var v = values.dtype == dtype ? values : values.to(dtype)
        if v.shape != shape { v = v.detached().expanded(shape) }
        CopyKernel.copy(v, into: self)
    }
}
