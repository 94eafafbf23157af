/// Copies between strided layouts of one element type, and conversions between types.
enum CopyKernel {
    /// Copies `src` (any strides) into the memory described by `dst` (same shape and dtype).
    static func copy(_ src: Tensor, into dst: Tensor) {
        OpProfiler.measure("copy") { copyUnprofiled(src, into: dst) }
    }

    private static func copyUnprofiled(_ src: Tensor, into dst: Tensor) {
        precondition(src.shape == dst.shape && src.dtype == dst.dtype)
        switch src.dtype.byteSize {
        case 1: copy(src, dst, as: UInt8.self)
        case 2: copy(src, dst, as: UInt16.self)
        case 4: copy(src, dst, as: UInt32.self)
        default: copy(src, dst, as: UInt64.self)
        }
    }

    private static func copy<T>(_ src: Tensor, _ dst: Tensor, as: T.Type) {
        let loop = StridedLoop(shape: src.shape, strides: [dst.strides, src.strides])
        let d = SendablePointer(dst.pointer(as: T.self))
        let s = SendablePointer(src.pointer(as: T.self))
        let rank = loop.shape.count
        // The source's unit stride on another dimension than the destination's (NCHW <-> NHWC,
        // or channels moved outermost): a tiled transpose of those two dimensions.
        if rank >= 2 && loop.innerStride(1) != 1 && loop.innerStride(0) == 1,
           let rowDim = (0..<(rank - 1)).last(where: { loop.strides[1][$0] == 1 }) {
            transposeCopy(loop, rowDim: rowDim, d.p, s.p)
            return
        }
        let ds = loop.innerStride(0), ss = loop.innerStride(1)
        loop.forEachRun { off, n in
            let dp = d.p + off[0], sp = s.p + off[1]
            if ds == 1 && ss == 1 {
                dp.update(from: sp, count: n)
            } else if ss == 0 {
                let v = sp.pointee
                for i in 0..<n { dp[i * ds] = v }
            } else {
                for i in 0..<n { dp[i * ds] = sp[i * ss] }
            }
        }
    }

    /// Dimension `rowDim` is contiguous in the source and the last one in the destination
    /// (NCHW <-> NHWC, or channels moved outermost): copy in square tiles so that both reads
    /// and writes stay in cache, every other dimension outer.
    private static func transposeCopy<T>(_ loop: StridedLoop, rowDim: Int, _ dst: UnsafeMutablePointer<T>,
                                         _ src: UnsafeMutablePointer<T>) {
        let rank = loop.shape.count
        let rows = loop.shape[rowDim], cols = loop.shape[rank - 1]
        let dRow = loop.strides[0][rowDim], sCol = loop.strides[1][rank - 1]
        let outerDims = (0..<(rank - 1)).filter { $0 != rowDim }
        let outerShape = outerDims.map { loop.shape[$0] }
        let outerCount = Shape.count(outerShape)
        let tile = 32
        let rowTiles = (rows + tile - 1) / tile
        let d = SendablePointer(dst), s = SendablePointer(src)
        Parallel.forEach(outerCount * rowTiles, cost: tile * cols) { job in
            let outer = job / rowTiles, rt = job % rowTiles
            var rest = outer, dOff = 0, sOff = 0
            for k in stride(from: outerDims.count - 1, through: 0, by: -1) {
                let i = rest % outerShape[k]
                rest /= outerShape[k]
                dOff += i * loop.strides[0][outerDims[k]]
                sOff += i * loop.strides[1][outerDims[k]]
            }
            let r0 = rt * tile, r1 = Swift.min(rows, r0 + tile)
            var c0 = 0
            while c0 < cols {
                let c1 = Swift.min(cols, c0 + tile)
                for r in r0..<r1 {
                    let dp = d.p + dOff + r * dRow
                    let sp = s.p + sOff + r
                    for c in c0..<c1 { dp[c] = sp[c * sCol] }
                }
                c0 = c1
            }
        }
    }

    /// Converts `src` to `dtype` into a new tensor laid out like `src` when it is dense.
    static func convert(_ src: Tensor, to dtype: DType) -> Tensor {
        OpProfiler.measure("convert \(src.dtype)->\(dtype)") { convertUnprofiled(src, to: dtype) }
    }

    private static func convertUnprofiled(_ src: Tensor, to dtype: DType) -> Tensor {
        let strides = src.isDense ? Shape.denseStrides(shape: src.shape, like: src.strides)
                                  : Shape.contiguousStrides(src.shape)
        let out = Tensor(uninitializedShape: src.shape, strides: strides, dtype: dtype)
        let loop = StridedLoop(shape: src.shape, strides: [out.strides, src.strides])
        let o = SendablePointer(out.baseAddress.assumingMemoryBound(to: UInt8.self))
        let s = SendablePointer(src.baseAddress.assumingMemoryBound(to: UInt8.self))
        let os = loop.innerStride(0), ss = loop.innerStride(1)
        let from = src.dtype
        loop.forEachRun { off, n in
            let op = UnsafeMutableRawPointer(o.p) + off[0] * dtype.byteSize
            let sp = UnsafeRawPointer(s.p) + off[1] * from.byteSize
            convertRun(sp, from, ss, op, dtype, os, n)
        }
        return out
    }

    @inline(__always)
    private static func convertRun(_ s: UnsafeRawPointer, _ from: DType, _ ss: Int,
                                   _ d: UnsafeMutableRawPointer, _ to: DType, _ ds: Int, _ n: Int) {
        // Fast paths for the hot pairs.
        if from == .float32 && to == .bfloat16 {
            BFloat16Runs.narrow(s.assumingMemoryBound(to: Float.self), ss, d.assumingMemoryBound(to: UInt16.self), ds, n)
            return
        }
        if from == .bfloat16 && to == .float32 {
            BFloat16Runs.widen(s.assumingMemoryBound(to: UInt16.self), ss, d.assumingMemoryBound(to: Float.self), ds, n)
            return
        }
        for i in 0..<n {
            let v = ElementAccess.load(s, from, i * ss)
            ElementAccess.store(v, d, to, i * ds)
        }
    }
}

/// Reads and writes single elements of any dtype as a `Scalar` (for the slow generic paths
/// and element access, not for kernels).
enum ElementAccess {
    enum Value {
        case float(Double)
        case int(Int64)

        var double: Double {
            switch self {
            case .float(let d): return d
            case .int(let i): return Double(i)
            }
        }

        var int64: Int64 {
            switch self {
            case .float(let d):
                if d.isNaN { return 0 }
                return d >= 9.2e18 ? Int64.max : d <= -9.2e18 ? Int64.min : Int64(d)
            case .int(let i): return i
            }
        }
    }

    @inline(__always)
    static func load(_ p: UnsafeRawPointer, _ dtype: DType, _ index: Int) -> Value {
        switch dtype {
        case .float32: return .float(Double(p.assumingMemoryBound(to: Float.self)[index]))
        case .bfloat16: return .float(Double(BFloat16(bitPattern: p.assumingMemoryBound(to: UInt16.self)[index]).float))
        case .int32: return .int(Int64(p.assumingMemoryBound(to: Int32.self)[index]))
        case .int64: return .int(p.assumingMemoryBound(to: Int64.self)[index])
        case .bool: return .int(p.assumingMemoryBound(to: UInt8.self)[index] != 0 ? 1 : 0)
        }
    }

    @inline(__always)
    static func store(_ v: Value, _ p: UnsafeMutableRawPointer, _ dtype: DType, _ index: Int) {
        switch dtype {
        case .float32: p.assumingMemoryBound(to: Float.self)[index] = Float(v.double)
        case .bfloat16: p.assumingMemoryBound(to: UInt16.self)[index] = BFloat16(Float(v.double)).bitPattern
        case .int32: p.assumingMemoryBound(to: Int32.self)[index] = Int32(truncatingIfNeeded: v.int64)
        case .int64: p.assumingMemoryBound(to: Int64.self)[index] = v.int64
        case .bool:
            let nonzero: Bool
            switch v {
            case .float(let d): nonzero = d != 0
            case .int(let i): nonzero = i != 0
            }
            p.assumingMemoryBound(to: UInt8.self)[index] = nonzero ? 1 : 0
        }
    }
}
