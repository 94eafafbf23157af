/// Exact elementwise ops on integer and bool tensors (element by element; these are index
/// and label computations, not hot paths).
enum IntegerOps {
    static func compare(_ a: Tensor, _ b: Tensor, _ kind: Pointwise.Comparison) -> Tensor {
        combine(a, b, to: .bool, op: "compare") { x, y in
            let r: Bool
            switch kind {
            case .eq: r = x == y
            case .ne: r = x != y
            case .lt: r = x < y
            case .le: r = x <= y
            case .gt: r = x > y
            case .ge: r = x >= y
            }
            return r ? 1 : 0
        }
    }

    static func combine(_ a: Tensor, _ b: Tensor, to dtype: DType, op: String,
                        _ f: (Int64, Int64) -> Int64) -> Tensor {
        let shape = Shape.broadcast(a.shape, b.shape, op: op)
        let out = Tensor(uninitializedShape: shape, dtype: dtype)
        let sa = Shape.broadcastStrides(shape: a.shape, strides: a.strides, to: shape)
        let sb = Shape.broadcastStrides(shape: b.shape, strides: b.strides, to: shape)
        let loop = StridedLoop(shape: shape, strides: [out.strides, sa, sb])
        let (os, as_, bs) = (loop.innerStride(0), loop.innerStride(1), loop.innerStride(2))
        let (po, pa, pb) = (out.baseAddress, a.baseAddress, b.baseAddress)
        withoutActuallyEscaping(f) { f in
            let run = { (off: UnsafePointer<Int>, n: Int) in
                for i in 0..<n {
                    let x = ElementAccess.load(pa, a.dtype, off[1] + i * as_).int64
                    let y = ElementAccess.load(pb, b.dtype, off[2] + i * bs).int64
                    ElementAccess.store(.int(f(x, y)), po, dtype, off[0] + i * os)
                }
            }
            loop.forEachRun(grain: Int.max, run)
        }
        return out
    }
}

extension Tensor {
    /// Elementwise logical and of two bool tensors.
    public static func .& (a: Tensor, b: Tensor) -> Tensor {
        IntegerOps.combine(a, b, to: .bool, op: "and") { x, y in (x != 0 && y != 0) ? 1 : 0 }
    }
    /// Elementwise logical or of two bool tensors.
    public static func .| (a: Tensor, b: Tensor) -> Tensor {
        IntegerOps.combine(a, b, to: .bool, op: "or") { x, y in (x != 0 || y != 0) ? 1 : 0 }
    }
    /// Elementwise logical not.
    public static prefix func .! (a: Tensor) -> Tensor {
        IntegerOps.combine(a, Tensor([false]).reshaped([]), to: .bool, op: "not") { x, _ in x == 0 ? 1 : 0 }
    }

    /// Exact integer sum `a + b` for integer tensors (labels, indices).
    public func addingIntegers(_ other: Tensor) -> Tensor {
        check(dtype.isInteger && other.dtype.isInteger, "addingIntegers", "needs integer tensors, got \(dtype) and \(other.dtype)")
        return IntegerOps.combine(self, other, to: DType.promote(dtype, other.dtype), op: "addingIntegers") { $0 &+ $1 }
    }
}
