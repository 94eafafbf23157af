/// Reductions over axes (sum, mean, variance, max, min, argmax, argmin), with keepDims.
extension Tensor {
    /// Normalised, sorted, unique axes; nil or empty means all axes.
    func reductionAxes(_ axes: [Int]?, op: String) -> [Int] {
        guard let axes, !axes.isEmpty else { return Array(0..<rank) }
        let norm = Set(axes.map { Shape.normalize($0, rank: rank, op: op) })
        return norm.sorted()
    }

    static func reducedShape(_ shape: [Int], _ axes: [Int], keepDims: Bool) -> [Int] {
        var out: [Int] = []
        for (i, d) in shape.enumerated() {
            if axes.contains(i) {
                if keepDims { out.append(1) }
            } else {
                out.append(d)
            }
        }
        return out
    }

    /// The reduction kernel on float32 data (bf16 read as it is, widened in the kernel's
    /// loads; other types widened first), the float32 result shaped with keepDims.
    private func reduceForward(_ kind: ReduceKernel.Kind, _ axes: [Int], keepDims: Bool, op: String) -> Tensor {
        let outShape = Tensor.reducedShape(shape, axes, keepDims: keepDims)
        let out = Tensor(uninitializedShape: outShape, dtype: .float32)
        if count == 0 {
            out.fill(kind == .sum ? 0 : .nan)
            return out
        }
        let src = dtype == .bfloat16 ? self : asFloat32()
        // A few combinations over axes that are not adjacent in memory (the 2x2 cells of a
        // nearest upsampling's gradient): each is a strided view of the kept axes, combined
        // elementwise where they lie instead of permuting a copy so that they are adjacent.
        let reduced = axes.map { shape[$0] }.reduce(1, *)
        guard case let (data, outer, r, inner)? = src.inPlaceGrouping(axes) ?? (reduced <= 16 ? nil : src.copiedForReduction(axes)) else {
            var offsets = [0]
            for a in axes { offsets = offsets.flatMap { o in (0..<src.shape[a]).map { o + $0 * src.strides[a] } } }
            let kept = (0..<rank).filter { !axes.contains($0) }
            ReduceKernel.reduceViews(kind, UnsafeRawPointer(src.baseAddress), bf16: src.dtype == .bfloat16,
                                     shape: kept.map { src.shape[$0] }, strides: kept.map { src.strides[$0] },
                                     offsets: offsets, into: out.pointer(as: Float.self))
            return out
        }
        ReduceKernel.reduce(kind, UnsafeRawPointer(data.baseAddress), bf16: data.dtype == .bfloat16, outer: outer, reduce: r,
                            inner: inner, into: out.pointer(as: Float.self))
        return out
    }

    /// Self viewed as [outer, reduce, inner] with `axes` in the middle where its memory allows
    /// that without a copy (row-major over consecutive axes, or `memoryGrouping`), else nil.
    func inPlaceGrouping(_ axes: [Int]) -> (Tensor, Int, Int, Int)? {
        if let inMemory = memoryGrouping(axes) { return inMemory }
        guard isContiguous && axes.last! - axes.first! + 1 == axes.count else { return nil }
        let outer = shape[..<axes.first!].reduce(1, *)
        let r = axes.map { shape[$0] }.reduce(1, *)
        let inner = shape[(axes.last! + 1)...].reduce(1, *)
        return (self, outer, r, inner)
    }

    /// A dense tensor stored in another order (channels-last activations, their gradients)
    /// is read in place when the reduced axes are consecutive in memory and the kept ones
    /// are in their logical order there (a channels-last [N, C, H, W] over H and W is
    /// [N, H*W, C]): that view as [outer, reduce, inner].
    private func memoryGrouping(_ axes: [Int]) -> (Tensor, Int, Int, Int)? {
        guard isDense && !isContiguous else { return nil }
        let order = (0..<rank).sorted { strides[$0] != strides[$1] ? strides[$0] > strides[$1] : $0 < $1 }
        let positions = axes.map { order.firstIndex(of: $0)! }.sorted()
        let kept = order.filter { !axes.contains($0) }
        let inMemory = detached().permuted(order)
        guard positions.last! - positions.first! + 1 == axes.count && kept == kept.sorted() && inMemory.isContiguous else { return nil }
        let outer = order[..<positions.first!].map { shape[$0] }.reduce(1, *)
        let r = axes.map { shape[$0] }.reduce(1, *)
        let inner = order[(positions.last! + 1)...].map { shape[$0] }.reduce(1, *)
        return (inMemory, outer, r, inner)
    }

    /// A contiguous copy (or self) viewed as [outer, reduce, inner] with `axes` in the middle.
    func groupedForReduction(_ axes: [Int]) -> (Tensor, Int, Int, Int) {
        inPlaceGrouping(axes) ?? copiedForReduction(axes)
    }

    /// `groupedForReduction` where self cannot be read in place: a row-major copy, permuted so
    /// that `axes` come last when they are not consecutive.
    private func copiedForReduction(_ axes: [Int]) -> (Tensor, Int, Int, Int) {
        if axes.last! - axes.first! + 1 == axes.count { return contiguous().inPlaceGrouping(axes)! }
        let kept = (0..<rank).filter { !axes.contains($0) }
        let c = permuted(kept + axes).detached().contiguous()
        return (c, kept.map { shape[$0] }.reduce(1, *), axes.map { shape[$0] }.reduce(1, *), 1)
    }

    /// Sum over `axes` (all when nil).
    public func sum(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let ax = reductionAxes(axes, op: "sum")
        if rank == 0 { return self }
        let y = reduceForward(.sum, ax, keepDims: keepDims, op: "sum")
        guard let tape = Tape.active(self) else { return y }
        let full = shape
        let kept = Tensor.reducedShape(full, ax, keepDims: true)
        return tape.record(y, "sum", [self]) { g in [g.reshaped(kept).expanded(full)] }
    }

    public func sum(axis: Int, keepDims: Bool = false) -> Tensor { sum(axes: [axis], keepDims: keepDims) }

    /// Mean over `axes` (all when nil).
    public func mean(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let ax = reductionAxes(axes, op: "mean")
        let n = ax.map { shape[$0] }.reduce(1, *)
        return sum(axes: ax, keepDims: keepDims) / Float(Swift.max(n, 1))
    }

    public func mean(axis: Int, keepDims: Bool = false) -> Tensor { mean(axes: [axis], keepDims: keepDims) }

    /// Variance over `axes`, dividing by n - correction (1: unbiased, as torch.var).
    public func variance(axes: [Int]? = nil, correction: Int = 1, keepDims: Bool = false) -> Tensor {
        let ax = reductionAxes(axes, op: "variance")
        let n = ax.map { shape[$0] }.reduce(1, *)
        let centered = self - mean(axes: ax, keepDims: true)
        return centered.square().sum(axes: ax, keepDims: keepDims) / Float(Swift.max(n - correction, 0))
    }

    /// Largest element over `axes`; the gradient is shared among tied maxima (as torch.amax).
    public func max(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        extremum(.max, reductionAxes(axes, op: "max"), keepDims: keepDims)
    }

    public func max(axis: Int, keepDims: Bool = false) -> Tensor { max(axes: [axis], keepDims: keepDims) }

    /// Smallest element over `axes`; the gradient is shared among tied minima.
    public func min(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        extremum(.min, reductionAxes(axes, op: "min"), keepDims: keepDims)
    }

    public func min(axis: Int, keepDims: Bool = false) -> Tensor { min(axes: [axis], keepDims: keepDims) }

    private func extremum(_ kind: ReduceKernel.Kind, _ ax: [Int], keepDims: Bool) -> Tensor {
        let op = kind == .max ? "max" : "min"
        check(count > 0, op, "cannot reduce an empty tensor of shape \(shape)")
        if rank == 0 { return self }
        var y = reduceForward(kind, ax, keepDims: keepDims, op: op)
        if dtype == .bfloat16 { y = y.to(.bfloat16) }
        guard let tape = Tape.active(self) else { return y }
        let x = self.detached(), full = shape
        let kept = Tensor.reducedShape(full, ax, keepDims: true)
        let yd = y
        return tape.record(y, op, [self]) { g in
            let hit = (x .== yd.reshaped(kept)).to(.float32)
            let ties = hit.sum(axes: ax, keepDims: true)
            return [hit * (g.reshaped(kept) / ties)]
        }
    }

    /// Index of the largest element along `axis` (first on ties), int64.
    public func argmax(axis: Int, keepDims: Bool = false) -> Tensor { argExtremum(axis, keepDims, max: true) }

    /// Index of the smallest element along `axis` (first on ties), int64.
    public func argmin(axis: Int, keepDims: Bool = false) -> Tensor { argExtremum(axis, keepDims, max: false) }

    private func argExtremum(_ axis: Int, _ keepDims: Bool, max: Bool) -> Tensor {
        let op = max ? "argmax" : "argmin"
        let a = Shape.normalize(axis, rank: rank, op: op)
        check(shape[a] > 0, op, "axis \(a) of shape \(shape) is empty")
        let (data, outer, r, inner) = asFloat32().groupedForReduction([a])
        let out = Tensor(uninitializedShape: Tensor.reducedShape(shape, [a], keepDims: keepDims), dtype: .int64)
        let x = data.pointer(as: Float.self), o = SendablePointer(out.pointer(as: Int64.self))
        let xs = SendablePointer(x)
        Parallel.forEach(outer * inner, cost: r) { job in
            let oi = job / inner, ii = job % inner
            let base = xs.p + oi * r * inner + ii
            var best = base[0], index = 0
            for k in 1..<Swift.max(r, 1) {
                let v = base[k * inner]
                if best.isNaN { break }
                if v.isNaN || (max ? v > best : v < best) { best = v; index = k }
            }
            o.p[job] = Int64(index)
        }
        return out
    }

    /// The gradient of a broadcast: sums over the axes that broadcasting added or stretched,
    /// so the result has `target` shape.
    public func summed(toShape target: [Int]) -> Tensor {
        if shape == target { return self }
        let lead = rank - target.count
        check(lead >= 0, "sumToShape", "cannot sum shape \(shape) to the larger shape \(target)")
        var axes = Array(0..<lead)
        for (i, d) in target.enumerated() where d == 1 && shape[lead + i] != 1 { axes.append(lead + i) }
        let s = axes.isEmpty ? self : sum(axes: axes, keepDims: true)
        return s.reshaped(target)
    }
}
