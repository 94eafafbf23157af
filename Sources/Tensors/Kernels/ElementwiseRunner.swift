/// A Float32 function applied lane-wise; the kernels specialise on the conforming type.
/// Conformers mark `callAsFunction` `@_transparent`: under `@inline(__always)` an unrolled
/// loop's second call stayed out of line, one call per 8 lanes (SiLU 3.6 ms against 2.6).
protocol UnaryKernel {
    func callAsFunction(_ x: Vec8) -> Vec8
}

protocol BinaryKernel {
    func callAsFunction(_ a: Vec8, _ b: Vec8) -> Vec8
}

protocol TernaryKernel {
    func callAsFunction(_ a: Vec8, _ b: Vec8, _ c: Vec8) -> Vec8
}

/// Loads and stores of 8 lanes with a stride, or a partial tail, through a temporary.
enum Lanes {
    @inline(__always)
    static func load(_ p: UnsafePointer<Float>, _ stride: Int, _ n: Int = 8) -> Vec8 {
        if stride == 1 && n == 8 {
            return UnsafeRawPointer(p).loadUnaligned(as: Vec8.self)
        }
        var v = Vec8()
        if stride == 0 {
            v = Vec8(repeating: p.pointee)
        } else {
            for i in 0..<n { v[i] = p[i * stride] }
        }
        return v
    }

    @inline(__always)
    static func store(_ v: Vec8, _ p: UnsafeMutablePointer<Float>, _ stride: Int, _ n: Int = 8) {
        if stride == 1 && n == 8 {
            UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vec8.self)
            return
        }
        for i in 0..<n { p[i * stride] = v[i] }
    }
}

/// An operand of the mixed-type path: float32 or bfloat16 elements at `base`.
struct MixedOperand: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let isBF16: Bool

    init(_ t: Tensor) {
        precondition(t.dtype == .float32 || t.dtype == .bfloat16)
        base = t.baseAddress
        isBF16 = t.dtype == .bfloat16
    }

    /// Elements [offset + i * stride] for i < n as float32: the operand itself when it is
    /// float32 (stride kept), else widened into `tile` (stride 1; a broadcast stays one value).
    @inline(__always)
    func read(_ offset: Int, _ stride: Int, _ n: Int, _ tile: UnsafeMutablePointer<Float>) -> (UnsafePointer<Float>, Int) {
        if !isBF16 { return (UnsafePointer(base.assumingMemoryBound(to: Float.self) + offset), stride) }
        let p = UnsafePointer(base.assumingMemoryBound(to: UInt16.self) + offset)
        if stride == 0 {
            BFloat16Runs.widen(p, 0, tile, 1, 1)
            return (UnsafePointer(tile), 0)
        }
        BFloat16Runs.widen(p, stride, tile, 1, n)
        return (UnsafePointer(tile), 1)
    }

    /// Where a kernel writes elements [offset + i * stride]: the operand itself when it is
    /// float32, else `tile` (then `finish` narrows it into place).
    @inline(__always)
    func target(_ offset: Int, _ stride: Int, _ tile: UnsafeMutablePointer<Float>) -> (UnsafeMutablePointer<Float>, Int) {
        isBF16 ? (tile, 1) : (base.assumingMemoryBound(to: Float.self) + offset, stride)
    }

    @inline(__always)
    func finish(_ offset: Int, _ stride: Int, _ n: Int, _ tile: UnsafeMutablePointer<Float>) {
        if isBF16 { BFloat16Runs.narrow(tile, 1, base.assumingMemoryBound(to: UInt16.self) + offset, stride, n) }
    }
}

/// Runs kernels over `StridedLoop` runs of Float32 operands; where an operand or the output
/// is bfloat16, each run goes through float32 tiles of `mixedTile` elements (converted in
/// cache, never as a separate pass over the tensor).
enum ElementwiseRunner {
    static let mixedTile = 512

    static func unary<K: UnaryKernel>(_ k: K, x: Tensor, out: Tensor) {
        OpProfiler.measure("elementwise \(K.self)") { unaryUnprofiled(k, x: x, out: out) }
    }

    private static func unaryUnprofiled<K: UnaryKernel>(_ k: K, x: Tensor, out: Tensor) {
        if x.dtype != .float32 || out.dtype != .float32 { return unaryMixed(k, x: x, out: out) }
        let loop = StridedLoop(shape: out.shape, strides: [out.strides, x.strides])
        let o = SendablePointer(out.pointer(as: Float.self)), a = SendablePointer(x.pointer(as: Float.self))
        let os = loop.innerStride(0), xs = loop.innerStride(1)
        loop.forEachRun { off, n in
            let op = o.p + off[0], xp = UnsafePointer(a.p + off[1])
            var i = 0
            if os == 1 && xs == 1 {
                // Two vectors a step: a kernel's latency chain (SiLU's exponential and
                // division) overlaps with the next vector's.
                while i + 16 <= n {
                    let v = Vec8.load(xp + i), w = Vec8.load(xp + i + 8)
                    let kv = k(v), kw = k(w)
                    kv.store(op + i)
                    kw.store(op + i + 8)
                    i += 16
                }
                while i + 8 <= n {
                    k(Vec8.load(xp + i)).store(op + i)
                    i += 8
                }
            }
            while i < n {
                let m = Swift.min(8, n - i)
                Lanes.store(k(Lanes.load(xp + i * xs, xs, m)), op + i * os, os, m)
                i += m
            }
        }
    }

    static func binary<K: BinaryKernel>(_ k: K, a: Tensor, b: Tensor, out: Tensor) {
        OpProfiler.measure("elementwise \(K.self)") { binaryUnprofiled(k, a: a, b: b, out: out) }
    }

    private static func binaryUnprofiled<K: BinaryKernel>(_ k: K, a: Tensor, b: Tensor, out: Tensor) {
        if a.dtype != .float32 || b.dtype != .float32 || out.dtype != .float32 { return binaryMixed(k, a: a, b: b, out: out) }
        let sa = Shape.broadcastStrides(shape: a.shape, strides: a.strides, to: out.shape)
        let sb = Shape.broadcastStrides(shape: b.shape, strides: b.strides, to: out.shape)
        let loop = StridedLoop(shape: out.shape, strides: [out.strides, sa, sb])
        let o = SendablePointer(out.pointer(as: Float.self))
        let pa = SendablePointer(a.pointer(as: Float.self)), pb = SendablePointer(b.pointer(as: Float.self))
        let os = loop.innerStride(0), as_ = loop.innerStride(1), bs = loop.innerStride(2)
        loop.forEachBlock { off, n, rows, rowStride in
            for r in 0..<rows {
                run(k, o.p + off[0] + r * rowStride[0], os, UnsafePointer(pa.p + off[1] + r * rowStride[1]), as_,
                    UnsafePointer(pb.p + off[2] + r * rowStride[2]), bs, n)
            }
        }
    }

    /// One run of a binary kernel: vector loops for the unit-stride and broadcast cases.
    @inline(__always)
    private static func run<K: BinaryKernel>(_ k: K, _ op: UnsafeMutablePointer<Float>, _ os: Int,
                                             _ ap: UnsafePointer<Float>, _ as_: Int,
                                             _ bp: UnsafePointer<Float>, _ bs: Int, _ n: Int) {
        var i = 0
        if os == 1 && as_ == 1 && bs == 1 {
            while i + 8 <= n {
                k(Vec8.load(ap + i), Vec8.load(bp + i)).store(op + i)
                i += 8
            }
        } else if os == 1 && as_ == 1 && bs == 0 {
            let vb = Vec8(repeating: bp.pointee)
            while i + 8 <= n {
                k(Vec8.load(ap + i), vb).store(op + i)
                i += 8
            }
        } else if os == 1 && as_ == 0 && bs == 1 {
            let va = Vec8(repeating: ap.pointee)
            while i + 8 <= n {
                k(va, Vec8.load(bp + i)).store(op + i)
                i += 8
            }
        }
        while i < n {
            let m = Swift.min(8, n - i)
            Lanes.store(k(Lanes.load(ap + i * as_, as_, m), Lanes.load(bp + i * bs, bs, m)), op + i * os, os, m)
            i += m
        }
    }

    private static func unaryMixed<K: UnaryKernel>(_ k: K, x: Tensor, out: Tensor) {
        let loop = StridedLoop(shape: out.shape, strides: [out.strides, x.strides])
        let o = MixedOperand(out), a = MixedOperand(x)
        let os = loop.innerStride(0), xs = loop.innerStride(1)
        loop.forEachRun { off, n in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * mixedTile) { buffer in
                let inTile = buffer.baseAddress!, outTile = inTile + mixedTile
                var i = 0
                while i < n {
                    let m = Swift.min(mixedTile, n - i)
                    let (xp, xst) = a.read(off[1] + i * xs, xs, m, inTile)
                    let (op, ost) = o.target(off[0] + i * os, os, outTile)
                    var j = 0
                    while j < m {
                        let w = Swift.min(8, m - j)
                        Lanes.store(k(Lanes.load(xp + j * xst, xst, w)), op + j * ost, ost, w)
                        j += w
                    }
                    o.finish(off[0] + i * os, os, m, outTile)
                    i += m
                }
            }
        }
    }

    private static func binaryMixed<K: BinaryKernel>(_ k: K, a: Tensor, b: Tensor, out: Tensor) {
        let sa = Shape.broadcastStrides(shape: a.shape, strides: a.strides, to: out.shape)
        let sb = Shape.broadcastStrides(shape: b.shape, strides: b.strides, to: out.shape)
        let loop = StridedLoop(shape: out.shape, strides: [out.strides, sa, sb])
        let o = MixedOperand(out), pa = MixedOperand(a), pb = MixedOperand(b)
        let os = loop.innerStride(0), as_ = loop.innerStride(1), bs = loop.innerStride(2)
        loop.forEachBlock { off, n, rows, rowStride in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 3 * mixedTile) { buffer in
                let aTile = buffer.baseAddress!, bTile = aTile + mixedTile, outTile = bTile + mixedTile
                for r in 0..<rows {
                    let (o0, a0, b0) = (off[0] + r * rowStride[0], off[1] + r * rowStride[1], off[2] + r * rowStride[2])
                    var i = 0
                    while i < n {
                        let m = Swift.min(mixedTile, n - i)
                        let (ap, ast) = pa.read(a0 + i * as_, as_, m, aTile)
                        let (bp, bst) = pb.read(b0 + i * bs, bs, m, bTile)
                        let (op, ost) = o.target(o0 + i * os, os, outTile)
                        run(k, op, ost, ap, ast, bp, bst, m)
                        o.finish(o0 + i * os, os, m, outTile)
                        i += m
                    }
                }
            }
        }
    }

    static func ternary<K: TernaryKernel>(_ k: K, a: Tensor, b: Tensor, c: Tensor, out: Tensor) {
        let strides = [a, b, c].map { Shape.broadcastStrides(shape: $0.shape, strides: $0.strides, to: out.shape) }
        let loop = StridedLoop(shape: out.shape, strides: [out.strides] + strides)
        let o = SendablePointer(out.pointer(as: Float.self))
        let pa = SendablePointer(a.pointer(as: Float.self)), pb = SendablePointer(b.pointer(as: Float.self))
        let pc = SendablePointer(c.pointer(as: Float.self))
        let os = loop.innerStride(0), s1 = loop.innerStride(1), s2 = loop.innerStride(2), s3 = loop.innerStride(3)
        loop.forEachRun { off, n in
            let op = o.p + off[0]
            let ap = UnsafePointer(pa.p + off[1]), bp = UnsafePointer(pb.p + off[2]), cp = UnsafePointer(pc.p + off[3])
            var i = 0
            while i < n {
                let m = Swift.min(8, n - i)
                let r = k(Lanes.load(ap + i * s1, s1, m), Lanes.load(bp + i * s2, s2, m), Lanes.load(cp + i * s3, s3, m))
                Lanes.store(r, op + i * os, os, m)
                i += m
            }
        }
    }
}
