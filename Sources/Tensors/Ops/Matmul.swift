/// Matrix products with NumPy's rules (1-d operands, broadcast batch dimensions).
extension Tensor {
    /// self @ other.
    public func matmul(_ other: Tensor) -> Tensor { Tensors.matmul(self, other) }
}

/// a @ b as torch.matmul: 1-d operands are promoted to a matrix and the added dimension is
/// removed afterwards; batch dimensions broadcast. `bias` ([N], b's columns) is added to
/// every row inside the product (the kernel's epilogue, in float32 before the output is
/// rounded), as torch.nn.functional.linear's.
public func matmul(_ a: Tensor, _ b: Tensor, bias: Tensor? = nil) -> Tensor {
    check(a.rank >= 1 && b.rank >= 1, "matmul", "operands must have at least one dimension, got \(a.shape) and \(b.shape)")
    check(a.dtype.isFloatingPoint && b.dtype.isFloatingPoint, "matmul",
          "needs floating-point operands, got \(a.dtype) and \(b.dtype)")
    let k1 = a.shape[a.rank - 1]
    let k2 = b.rank == 1 ? b.shape[0] : b.shape[b.rank - 2]
    check(k1 == k2, "matmul", "shapes \(a.shape) and \(b.shape) do not match: inner dimensions \(k1) and \(k2) differ")
    if let bias {
        check(b.rank >= 2 && bias.shape == [b.shape[b.rank - 1]], "matmul",
              "bias must have shape [\(b.rank >= 2 ? b.shape[b.rank - 1] : 1)] (the columns of \(b.shape)), got \(bias.shape)")
        check(bias.dtype.isFloatingPoint, "matmul", "needs a floating-point bias, got \(bias.dtype)")
    }
    var x = a.rank == 1 ? a.unsqueezed(axis: 0) : a
    var y = b.rank == 1 ? b.unsqueezed(axis: 1) : b
    // A matrix applied to a stack of rows: one 2-d product over all the rows.
    if y.rank == 2 && x.rank > 2 {
        let rows = x.shape.dropLast().reduce(1, *)
        let flat = x.reshaped([rows, k1])
        var out = batchedMatmul(flat, y, bias: bias)
        out = out.reshaped(Array(x.shape.dropLast()) + [y.shape[1]])
        return finishVectorCases(out, a, b)
    }
    let rank = max(x.rank, y.rank)
    if x.rank < rank { x = x.reshaped(Array(repeating: 1, count: rank - x.rank) + x.shape) }
    if y.rank < rank { y = y.reshaped(Array(repeating: 1, count: rank - y.rank) + y.shape) }
    for i in 0..<(rank - 2) {
        check(x.shape[i] == y.shape[i] || x.shape[i] == 1 || y.shape[i] == 1, "matmul",
              "batch dimensions of \(a.shape) and \(b.shape) cannot be broadcast (dimension \(i))")
    }
    return finishVectorCases(batchedMatmul(x, y, bias: bias), a, b)
}

private func finishVectorCases(_ out: Tensor, _ a: Tensor, _ b: Tensor) -> Tensor {
    var r = out
    if a.rank == 1 { r = r.squeezed(axis: -2) }
    if b.rank == 1 { r = r.squeezed(axis: -1) }
    return r
}

/// The primitive: equal ranks >= 2, batch dims equal or 1; bias [N] or nil.
func batchedMatmul(_ a: Tensor, _ b: Tensor, bias: Tensor? = nil) -> Tensor {
    let y = MatmulKernel.multiply(a, b, bias: bias, outType: a.dtype == .bfloat16 && b.dtype == .bfloat16 ? .bfloat16 : .float32)
    let inputs = [a, b] + (bias.map { [$0] } ?? [])
    guard let tape = Tape.active(inputs) else { return y }
    let ad = a.detached(), bd = b.detached()
    let (ta, tb, tc) = (tape.tracks(a), tape.tracks(b), bias.map { tape.tracks($0) } ?? false)
    // b a transposed view (a Linear's weight, W^T): its gradient made as (g^T a)^T, so that
    // W's gradient comes out contiguous (not a transposed view copied when it is stored).
    let bColumns = bd.rank == 2 && bd.strides[0] == 1 && bd.strides[1] == bd.shape[0] && bd.shape[0] > 1
    return tape.record(y, "matmul", inputs) { g in
        [ta ? batchedMatmul(g, bd.transposed()).summed(toShape: ad.shape).to(ad.dtype) : nil,
         tb ? (bColumns ? batchedMatmul(g.transposed(), ad).transposed()
                            : batchedMatmul(ad.transposed(), g).summed(toShape: bd.shape)).to(bd.dtype) : nil]
            + (bias.map { [tc ? g.summed(toShape: $0.shape).to($0.dtype) : nil] } ?? [])
    }
}
