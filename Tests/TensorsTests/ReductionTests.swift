import Testing
import Tensors

@Suite struct ReductionTests {
    /// Reference reduction in Double over any axes.
    static func reference(_ x: Tensor, axes: [Int], _ combine: ([Double]) -> Double) -> [Float] {
        let shape = x.shape, v = x.scalars
        let kept = (0..<shape.count).filter { !axes.contains($0) }
        let outShape = kept.map { shape[$0] }
        let outCount = outShape.reduce(1, *)
        var groups = [[Double]](repeating: [], count: outCount)
        var index = [Int](repeating: 0, count: shape.count)
        for value in v {
            var o = 0
            for k in kept { o = o * shape[k] + index[k] }
            groups[o].append(Double(value))
            var d = shape.count - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < shape[d] { break }
                index[d] = 0
                d -= 1
            }
        }
        return groups.map { Float(combine($0)) }
    }

    @Test(arguments: [[0], [1], [2], [0, 2], [1, 2], [0, 1, 2]])
    func sumMeanMaxMinOverAxes(axes: [Int]) {
        let x = random([5, 7, 9], -3, 3, seed: UInt64(axes.reduce(1, *) + 1))
        expectClose(x.sum(axes: axes), Self.reference(x, axes: axes) { $0.reduce(0, +) }, atol: 1e-5, rtol: 1e-5)
        expectClose(x.mean(axes: axes), Self.reference(x, axes: axes) { $0.reduce(0, +) / Double($0.count) }, atol: 1e-6, rtol: 1e-5)
        expectClose(x.max(axes: axes), Self.reference(x, axes: axes) { $0.max()! }, atol: 0, rtol: 0)
        expectClose(x.min(axes: axes), Self.reference(x, axes: axes) { $0.min()! }, atol: 0, rtol: 0)
        expectClose(x.variance(axes: axes), Self.reference(x, axes: axes) { g in
            let m = g.reduce(0, +) / Double(g.count)
            return g.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(g.count - 1)
        }, atol: 1e-5, rtol: 1e-4)
        let kept = x.sum(axes: axes, keepDims: true)
        #expect(kept.shape == (0..<3).map { axes.contains($0) ? 1 : x.shape[$0] })
    }

    /// Channels-last data (read in place where its memory order allows, else copied) and a
    /// transposed view reduce exactly as their row-major copies; argmax too.
    @Test(arguments: [[0], [1], [2], [3], [2, 3], [1, 2, 3], [0, 2, 3], [0, 1], [1, 3], [0, 1, 2, 3]])
    func stridedLayoutsReduceAsRowMajor(axes: [Int]) {
        let x = random([3, 16, 5, 7], -3, 3, seed: UInt64(axes.reduce(7, *)))
        for view in [x.channelsLast(), x.permuted(0, 1, 3, 2).contiguous().permuted(0, 1, 3, 2)] {
            #expect(view.scalars == x.scalars)
            for keep in [false, true] {
                expectClose(view.sum(axes: axes, keepDims: keep), x.sum(axes: axes, keepDims: keep), atol: 1e-5, rtol: 1e-6)
                #expect(view.max(axes: axes, keepDims: keep).scalars == x.max(axes: axes, keepDims: keep).scalars)
                #expect(view.sum(axes: axes, keepDims: keep).shape == x.sum(axes: axes, keepDims: keep).shape)
            }
            if axes.count == 1 { #expect(view.argmax(axis: axes[0]).scalars == x.argmax(axis: axes[0]).scalars) }
        }
    }

    /// bf16 data is reduced as it is stored (widened in the kernel's loads), giving bit for
    /// bit what the widened float32 copy gives: row-major, channels-last read in place,
    /// channels-last copied, rows longer than a thread's share, and a NaN.
    @Test(arguments: [[0], [3], [2, 3], [1, 2, 3], [0, 2, 3], [1, 3], [0, 1, 2, 3]])
    func bf16ReducesAsItsWidenedCopy(axes: [Int]) {
        let x = random([3, 16, 5, 7], -3, 3, seed: UInt64(axes.reduce(11, *))).to(.bfloat16)
        for view in [x, x.channelsLast()] {
            let wide = view.to(.float32)
            for keep in [false, true] {
                #expect(view.sum(axes: axes, keepDims: keep).scalars == wide.sum(axes: axes, keepDims: keep).scalars)
                #expect(view.max(axes: axes, keepDims: keep).to(.float32).scalars == wide.max(axes: axes, keepDims: keep).scalars)
                #expect(view.min(axes: axes, keepDims: keep).to(.float32).scalars == wide.min(axes: axes, keepDims: keep).scalars)
            }
        }
        var long = [Float](repeating: 0.5, count: 300_001)
        long[123_456] = .nan
        let l = Tensor(long).to(.bfloat16)
        #expect(l.sum().scalars[0].isNaN && l.max().to(.float32).scalars[0].isNaN)
        let finite = Tensor([Float](repeating: 0.25, count: 300_001)).to(.bfloat16)
        #expect(finite.sum().scalars == finite.to(.float32).sum().scalars)
    }

    /// A few combinations over axes apart in memory (a nearest upsampling's 2x2 cells) are
    /// combined where they lie: the same values as the Double reference, float32 and bf16,
    /// contiguous and transposed, NaN winning max and min.
    @Test(arguments: [[2, 4], [0, 4], [0, 2, 4], [3]])
    func fewCombinationsReduceInPlace(axes: [Int]) {
        var x = random([2, 3, 2, 5, 2, 9], -3, 3, seed: UInt64(axes.reduce(5, *)))
        x = x.permuted(0, 1, 2, 3, 5, 4).contiguous().permuted(0, 1, 2, 3, 5, 4)
        for view in [x, x.contiguous()] {
            expectClose(view.sum(axes: axes), Self.reference(view, axes: axes) { $0.reduce(0, +) }, atol: 1e-5, rtol: 1e-6)
            #expect(view.max(axes: axes, keepDims: true).scalars == Self.reference(view, axes: axes) { $0.max()! })
            #expect(view.min(axes: axes).scalars == Self.reference(view, axes: axes) { $0.min()! })
            let narrow = view.to(.bfloat16)
            #expect(narrow.sum(axes: axes).scalars == narrow.to(.float32).sum(axes: axes).scalars)
        }
        var values = x.contiguous().scalars
        values[7] = .nan
        let withNaN = Tensor(values, shape: x.shape)
        #expect(withNaN.max(axes: axes).scalars.filter(\.isNaN).count == 1)
        #expect(withNaN.min(axes: axes).scalars.filter(\.isNaN).count == 1)
    }

    /// A long sum keeps its accuracy (blocks carried in Double).
    @Test func longSumsAreAccurate() {
        let n = 3_000_001
        let x = Tensor.full([n], 0.1)
        #expect(abs(x.sum().item - Float(Double(Float(0.1)) * Double(n))) <= 0.09)  // 3e-7 relative
        let big = Tensor.full([1000, 2000], 0.1)
        expectClose(big.sum(axis: 0), [Float](repeating: Float(Double(Float(0.1)) * 1000), count: 2000), atol: 0, rtol: 1e-6)
    }

    @Test func argmaxAndArgmin() {
        let x = Tensor([3, 9, 9, 1, -2, 7], shape: [2, 3])
        #expect(x.argmax(axis: 1).integers == [1, 2])  // first of tied maxima
        #expect(x.argmin(axis: 1).integers == [0, 1])
        #expect(x.argmax(axis: 0).integers == [0, 0, 0])
        #expect(x.argmax(axis: 1, keepDims: true).shape == [2, 1])
        #expect(Tensor([1, .nan, 3]).argmax(axis: 0).integers == [1])  // NaN is the maximum, as in torch
    }

    @Test func softmaxValues() {
        let x = Tensor([1, 2, 3, 1000, 1000, -1000], shape: [2, 3])
        let e = [1.0, 2, 3].map { Foundation.exp($0 - 3) }
        let s = e.reduce(0, +)
        expectClose(x.softmax(axis: 1), e.map { Float($0 / s) } + [0.5, 0.5, 0], atol: 1e-7, rtol: 1e-6)
        expectClose(x.logSoftmax(axis: 1), e.map { Float(Foundation.log($0 / s)) } + [-Float(Foundation.log(2.0)), -Float(Foundation.log(2.0)), -2000 - Float(Foundation.log(2.0))],
                    atol: 1e-5, rtol: 1e-6)
        // Along axis 0, and rows of length not a multiple of 8.
        let y = random([11, 13], -4, 4)
        let s0 = y.softmax(axis: 0)
        expectClose(s0.sum(axis: 0), [Float](repeating: 1, count: 13), atol: 1e-6, rtol: 0)
        expectClose(y.logSoftmax(axis: 0).exp(), s0, atol: 1e-6, rtol: 1e-5)
    }

    @Test func gradients() {
        let x = random([3, 4, 5], seed: 11)
        checkGradients([x], "sum all") { $0[0].sum() }
        checkGradients([x], "sum axes") { $0[0].sum(axes: [0, 2]) }
        checkGradients([x], "sum keepDims") { $0[0].sum(axis: 1, keepDims: true) }
        checkGradients([x], "mean") { $0[0].mean(axes: [1]) }
        checkGradients([x], "variance") { $0[0].variance(axes: [2]) }
        checkGradients([x], "variance biased") { $0[0].variance(axes: [0, 1], correction: 0) }
        checkGradients([x], "max") { $0[0].max(axis: 2) }
        checkGradients([x], "min") { $0[0].min(axes: [0, 1]) }
        checkGradients([x], "softmax last") { $0[0].softmax(axis: -1) }
        checkGradients([x], "softmax middle") { $0[0].softmax(axis: 1) }
        checkGradients([x], "logSoftmax") { $0[0].logSoftmax(axis: 0) }
    }

    /// Tied maxima share the gradient equally (torch.amax).
    @Test func tiedMaximaShareTheGradient() {
        let x = Tensor([2, 5, 5, 1])
        let (_, g) = valueAndGradient(at: [x]) { $0[0].max() }
        #expect(g[0].scalars == [0, 0.5, 0.5, 0])
    }
}

import Foundation
