/// Concatenation, stacking, splitting and padding.
extension Tensor {
    /// Tensors joined along `axis` (torch.cat). All must match except along `axis`; the
    /// result is channels-last when every input is.
    public static func concatenate(_ tensors: [Tensor], axis: Int) -> Tensor {
        check(!tensors.isEmpty, "concatenate", "needs at least one tensor")
        let first = tensors[0]
        let a = Shape.normalize(axis, rank: first.rank, op: "concatenate")
        for (i, t) in tensors.enumerated() {
            check(t.rank == first.rank, "concatenate", "tensor \(i) has shape \(t.shape), tensor 0 has \(first.shape)")
            for d in 0..<first.rank where d != a {
                check(t.shape[d] == first.shape[d], "concatenate",
                      "tensor \(i) has shape \(t.shape), tensor 0 has \(first.shape): they differ in dimension \(d)")
            }
        }
        let dtype = tensors.dropFirst().reduce(first.dtype) { DType.promote($0, $1.dtype) }
        var shape = first.shape
        shape[a] = tensors.reduce(0) { $0 + $1.shape[a] }
        let channelsLast = first.rank == 4 && tensors.allSatisfy { $0.isChannelsLast }
        let out = Tensor(uninitializedShape: shape,
                         strides: channelsLast ? Shape.channelsLastStrides(shape) : Shape.contiguousStrides(shape), dtype: dtype)
        var start = 0
        var bounds: [(Int, Int)] = []
        for t in tensors {
            let size = t.shape[a]
            out.sliced(axis: a, start: start, end: start + size).assign(t.detached())
            bounds.append((start, start + size))
            start += size
        }
        guard let tape = Tape.active(tensors) else { return out }
        let types = tensors.map(\.dtype)
        return tape.record(out, "concatenate", tensors) { g in
            zip(bounds, types).map { b, type in g.sliced(axis: a, start: b.0, end: b.1).to(type.isFloatingPoint ? type : .float32) }
        }
    }

    /// Tensors stacked along a new axis (torch.stack).
    public static func stack(_ tensors: [Tensor], axis: Int = 0) -> Tensor {
        check(!tensors.isEmpty, "stack", "needs at least one tensor")
        for t in tensors {
            check(t.shape == tensors[0].shape, "stack", "shapes differ: \(t.shape) and \(tensors[0].shape)")
        }
        let a = axis < 0 ? axis + tensors[0].rank + 1 : axis
        return concatenate(tensors.map { $0.unsqueezed(axis: a) }, axis: a)
    }

    /// Consecutive pieces along `axis` with the given sizes (torch.split); views.
    public func split(sizes: [Int], axis: Int) -> [Tensor] {
        let a = Shape.normalize(axis, rank: rank, op: "split")
        check(sizes.allSatisfy { $0 >= 0 } && sizes.reduce(0, +) == shape[a], "split",
              "sizes \(sizes) do not add up to \(shape[a]), the size of axis \(a) of \(shape)")
        var start = 0
        return sizes.map { size in
            defer { start += size }
            return sliced(axis: a, start: start, end: start + size)
        }
    }

    /// `count` pieces of equal size along `axis` (the last may be smaller, as torch.chunk).
    public func chunked(_ count: Int, axis: Int) -> [Tensor] {
        let a = Shape.normalize(axis, rank: rank, op: "chunk")
        check(count >= 1, "chunk", "count must be positive, got \(count)")
        let size = (shape[a] + count - 1) / count
        var sizes: [Int] = []
        var left = shape[a]
        while left > 0 {
            sizes.append(Swift.min(size, left))
            left -= size
        }
        return split(sizes: sizes, axis: a)
    }

    /// Padded with `value`: `widths[i]` = (before, after) for axis i (one pair per axis).
    public func padded(_ widths: [(before: Int, after: Int)], value: Float = 0) -> Tensor {
        check(widths.count == rank, "pad", "\(widths.count) padding pairs given for a tensor of rank \(rank)")
        check(widths.allSatisfy { $0.before >= 0 && $0.after >= 0 }, "pad", "padding widths must not be negative: \(widths)")
        let shape = zip(self.shape, widths).map { $0 + $1.before + $1.after }
        let strides = isChannelsLast ? Shape.channelsLastStrides(shape) : Shape.contiguousStrides(shape)
        let out = Tensor(uninitializedShape: shape, strides: strides, dtype: dtype)
        out.fill(value)
        var interior = out
        for (axis, w) in widths.enumerated() {
            interior = interior.sliced(axis: axis, start: w.before, end: w.before + self.shape[axis])
        }
        interior.assign(self.detached())
        guard let tape = Tape.active(self) else { return out }
        return tape.record(out, "pad", [self]) { g in
            var inner = g
            for (axis, w) in widths.enumerated() {
                inner = inner.sliced(axis: axis, start: w.before, end: w.before + g.shape[axis] - w.before - w.after)
            }
            return [inner]
        }
    }

    /// Spatial padding of an NCHW tensor (PyTorch's F.pad order: left, right, top, bottom).
    public func padded2D(left: Int, right: Int, top: Int, bottom: Int, value: Float = 0) -> Tensor {
        check(rank == 4, "pad2D", "needs an NCHW tensor, got shape \(shape)")
        return padded([(0, 0), (0, 0), (top, bottom), (left, right)], value: value)
    }
}
