/// Softmax and log-softmax along an axis, each one fused op with its own gradient.
extension Tensor {
    /// exp(x_i - max) / sum_j exp(x_j - max) along `axis`.
    public func softmax(axis: Int = -1) -> Tensor { softmaxOp(axis: axis, log: false) }

    /// x_i - log sum_j exp(x_j) along `axis`, computed stably.
    public func logSoftmax(axis: Int = -1) -> Tensor { softmaxOp(axis: axis, log: true) }

    private func softmaxOp(axis: Int, log: Bool) -> Tensor {
        let op = log ? "logSoftmax" : "softmax"
        let a = Shape.normalize(axis, rank: Swift.max(rank, 1), op: op)
        if rank == 0 { return log ? Tensor.zeros([], dtype: .float32) : Tensor.ones([], dtype: .float32) }
        // Work with the axis last and contiguous.
        let moved = a == rank - 1 ? self.detached() : self.detached().transposed(a, -1)
        let x = moved.asFloat32().contiguous()
        let n = x.shape[rank - 1], rows = x.count / Swift.max(n, 1)
        let y = Tensor(uninitializedShape: x.shape, dtype: .float32)
        if x.count > 0 {
            SoftmaxKernel.forward(x.pointer(as: Float.self), y.pointer(as: Float.self), rows: rows, n: n, log: log)
        }
        var out = a == rank - 1 ? y : y.transposed(a, -1)
        if dtype == .bfloat16 { out = out.to(.bfloat16) }
        guard let tape = Tape.active(self) else { return out }
        let last = rank - 1
        return tape.record(out, op, [self]) { g in
            let gm = (a == last ? g : g.transposed(a, -1)).asFloat32().contiguous()
            let dx = Tensor(uninitializedShape: y.shape, dtype: .float32)
            if y.count > 0 {
                SoftmaxKernel.backward(y.pointer(as: Float.self), gm.pointer(as: Float.self), dx.pointer(as: Float.self),
                                       rows: rows, n: n, log: log)
            }
            return [a == last ? dx : dx.transposed(a, -1)]
        }
    }
}
