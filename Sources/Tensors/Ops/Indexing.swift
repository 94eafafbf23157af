/// Selecting by index tensors (index_select, gather, embedding) and the scatter-adds that
/// are their gradients.
extension Tensor {
    /// Integer indices as Int, checked against `size` (negative indices are not allowed).
    private static func checkedIndices(_ indices: Tensor, size: Int, op: String) -> [Int] {
        check(indices.dtype.isInteger, op, "indices must be int32 or int64, got \(indices.dtype)")
        let values = indices.integers
        for v in values {
            check(v >= 0 && v < size, op, "index \(v) is out of range for a dimension of size \(size)")
        }
        return values
    }

    /// Entries of `axis` picked by a 1-d integer `indices` (torch.index_select).
    public func indexSelect(axis: Int, indices: Tensor) -> Tensor {
        let a = Shape.normalize(axis, rank: rank, op: "indexSelect")
        check(indices.rank == 1, "indexSelect", "indices must be 1-d, got shape \(indices.shape)")
        let idx = Tensor.checkedIndices(indices, size: shape[a], op: "indexSelect")
        let src = self.detached().contiguous()
        var outShape = shape
        outShape[a] = idx.count
        let out = Tensor(uninitializedShape: outShape, dtype: dtype)
        let outer = shape[..<a].reduce(1, *), inner = shape[(a + 1)...].reduce(1, *)
        let bytes = inner * dtype.byteSize
        let (sp, op) = (src.baseAddress, out.baseAddress)
        for o in 0..<outer {
            for (i, k) in idx.enumerated() {
                (op + ((o * idx.count + i) * bytes)).copyMemory(from: sp + ((o * shape[a] + k) * bytes), byteCount: bytes)
            }
        }
        guard let tape = Tape.active(self) else { return out }
        let full = shape
        return tape.record(out, "indexSelect", [self]) { g in
            let gc = g.asFloat32().contiguous()
            let dx = Tensor.zeros(full, dtype: .float32)
            let (gp, dp) = (gc.pointer(as: Float.self), dx.pointer(as: Float.self))
            for o in 0..<outer {
                for (i, k) in idx.enumerated() {
                    let dst = dp + (o * full[a] + k) * inner, s = gp + (o * idx.count + i) * inner
                    for j in 0..<inner { dst[j] += s[j] }
                }
            }
            return [dx]
        }
    }

    /// Rows of an embedding table [vocabulary, dim] for integer `ids` of any shape.
    public func embedding(_ ids: Tensor) -> Tensor {
        check(rank == 2, "embedding", "the table must be [vocabulary, dim], got shape \(shape)")
        return indexSelect(axis: 0, indices: ids.reshaped([-1])).reshaped(ids.shape + [shape[1]])
    }

    /// out[...] = self[... with axis coordinate replaced by indices[...]] (torch.gather);
    /// `indices` has the rank of self and sizes no larger in the other axes.
    public func gathered(axis: Int, indices: Tensor) -> Tensor {
        let a = Shape.normalize(axis, rank: rank, op: "gather")
        check(indices.rank == rank, "gather", "indices of shape \(indices.shape) must have rank \(rank) like the input \(shape)")
        for d in 0..<rank where d != a {
            check(indices.shape[d] <= shape[d], "gather", "indices \(indices.shape) exceed input \(shape) in dimension \(d)")
        }
        let idx = Tensor.checkedIndices(indices, size: shape[a], op: "gather")
        let src = asFloat32().detached()
        let out = Tensor(uninitializedShape: indices.shape, dtype: .float32)
        let offsets = Tensor.gatherOffsets(indexShape: indices.shape, strides: src.strides, axis: a, idx: idx)
        let (sp, op) = (src.pointer(as: Float.self), out.pointer(as: Float.self))
        for (i, o) in offsets.enumerated() { op[i] = sp[o] }
        let y = dtype == .bfloat16 ? out.to(.bfloat16) : out
        guard let tape = Tape.active(self) else { return y }
        let full = shape
        return tape.record(y, "gather", [self]) { g in
            let gc = g.asFloat32().contiguous()
            let dx = Tensor.zeros(full, dtype: .float32)
            let dOffsets = Tensor.gatherOffsets(indexShape: gc.shape, strides: dx.strides, axis: a, idx: idx)
            let (gp, dp) = (gc.pointer(as: Float.self), dx.pointer(as: Float.self))
            for (i, o) in dOffsets.enumerated() { dp[o] += gp[i] }
            return [dx]
        }
    }

    /// Element offsets in a tensor of `strides` for each (row-major) position of the index
    /// tensor, its `axis` coordinate replaced by the index value.
    private static func gatherOffsets(indexShape: [Int], strides: [Int], axis: Int, idx: [Int]) -> [Int] {
        var offsets = [Int](repeating: 0, count: idx.count)
        var position = [Int](repeating: 0, count: indexShape.count)
        for i in 0..<idx.count {
            var o = 0
            for d in 0..<indexShape.count { o += (d == axis ? idx[i] : position[d]) * strides[d] }
            offsets[i] = o
            var d = indexShape.count - 1
            while d >= 0 {
                position[d] += 1
                if position[d] < indexShape[d] { break }
                position[d] = 0
                d -= 1
            }
        }
        return offsets
    }
}
