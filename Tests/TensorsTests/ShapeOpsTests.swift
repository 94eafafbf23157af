import Testing
@testable import Tensors

@Suite struct ViewTests {
    let x = Tensor((0..<24).map(Float.init), shape: [2, 3, 4])

    @Test func reshapeAndPermute() {
        #expect(x.reshaped(4, -1).shape == [4, 6])
        #expect(x.reshaped([6, 4]).scalars == x.scalars)
        let p = x.permuted(2, 0, 1)
        #expect(p.shape == [4, 2, 3])
        #expect(p[element: [3, 1, 2]] == x[element: [1, 2, 3]])
        #expect(!p.isContiguous && p.isDense)
        // A permuted tensor reshaped where strides allow (a view) and where they do not (a copy).
        let t = x.transposed(0, 1)  // [3, 2, 4]
        #expect(t.reshaped(3, 8).scalars == t.contiguous().scalars)
        #expect(x.flattened(from: 1).shape == [2, 12])
        #expect(x.unsqueezed(axis: -1).shape == [2, 3, 4, 1])
        #expect(x.unsqueezed(axis: 1).squeezed(axis: 1).shape == [2, 3, 4])
    }

    @Test func slicing() {
        #expect(x.sliced(axis: 2, start: 1, end: 4, step: 2).scalars == [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23])
        #expect(x[1].shape == [3, 4])
        #expect(x[1][2].scalars == [20, 21, 22, 23])
        #expect(x.selected(axis: 2, index: -1).scalars == [3, 7, 11, 15, 19, 23])
        #expect(x.sliced(axis: 1, start: -2).shape == [2, 2, 4])
        #expect(x[0..<1].shape == [1, 3, 4])
        let e = Tensor([1, 2, 3]).reshaped(3, 1).expanded([3, 2])
        #expect(e.scalars == [1, 1, 2, 2, 3, 3])
    }

    @Test func channelsLastLayout() {
        let img = random([2, 3, 4, 5])
        let cl = img.channelsLast()
        #expect(cl.isChannelsLast && cl.scalars == img.scalars)
        // Elementwise ops keep the layout.
        #expect((cl * 2 + 1).isChannelsLast)
        #expect(cl.silu().isChannelsLast)
        #expect(cl.contiguous().isContiguous && cl.contiguous().scalars == img.scalars)
    }

    /// A copy whose source is contiguous along a dimension two or more from the last (channels
    /// moved outermost, into a padded destination) takes the tiled transpose; element by element
    /// the same values.
    @Test func transposeWithTheUnitStrideOutermost() {
        let x = random([3, 40, 5, 36]).channelsLast()  // unit stride on the 40 channels
        let padded = Tensor.zeros([40, 3, 6, 36])
        padded.sliced(axis: 2, 0..<5).assign(x.permuted(1, 0, 2, 3))
        let (got, xs) = (padded.scalars, x.contiguous().scalars)
        var same = true
        for c in 0..<40 { for n in 0..<3 { for y in 0..<6 { for w in 0..<36 {
            let expected: Float = y < 5 ? xs[((n * 40 + c) * 5 + y) * 36 + w] : 0
            same = same && got[((c * 3 + n) * 6 + y) * 36 + w] == expected
        } } } }
        #expect(same)
    }

    @Test func gradients() {
        let a = random([2, 3, 4], seed: 21)
        checkGradients([a], "reshape") { $0[0].reshaped(4, 6) * Tensor((0..<6).map(Float.init)) }
        checkGradients([a], "permute") { $0[0].permuted(2, 0, 1).contiguous() * random([4, 2, 3], seed: 2) }
        checkGradients([a], "transpose") { $0[0].transposed(0, 2) }
        checkGradients([a], "slice step") { $0[0].sliced(axis: 2, start: 1, end: 4, step: 2) }
        checkGradients([a], "select") { $0[0][1] }
        checkGradients([a], "expand") { $0[0].sliced(axis: 0, start: 0, end: 1).expanded([3, 3, 4]) }
        checkGradients([a], "squeeze/unsqueeze") { $0[0].unsqueezed(axis: 0).squeezed(axis: 0) }
        checkGradients([a], "channels last") { $0[0].reshaped(1, 2, 3, 4).channelsLast() * 2 }
    }
}

@Suite struct JoiningTests {
    @Test func concatStackSplit() {
        let a = Tensor([1, 2, 3, 4], shape: [2, 2]), b = Tensor([5, 6], shape: [2, 1])
        let c = Tensor.concatenate([a, b], axis: 1)
        #expect(c.shape == [2, 3] && c.scalars == [1, 2, 5, 3, 4, 6])
        #expect(Tensor.concatenate([a, a], axis: 0).shape == [4, 2])
        let s = Tensor.stack([a, a * 10], axis: 1)
        #expect(s.shape == [2, 2, 2] && s.scalars == [1, 2, 10, 20, 3, 4, 30, 40])
        let parts = c.split(sizes: [2, 1], axis: 1)
        #expect(parts[0].scalars == [1, 2, 3, 4] && parts[1].scalars == [5, 6])
        let chunks = Tensor((0..<7).map(Float.init)).chunked(3, axis: 0)
        #expect(chunks.map(\.shape) == [[3], [3], [1]])
        // Channels-last inputs give a channels-last result (U-Net skip connections).
        let x = random([1, 8, 2, 2]).channelsLast(), y = random([1, 8, 2, 2], seed: 2).channelsLast()
        let cat = Tensor.concatenate([x, y], axis: 1)
        #expect(cat.isChannelsLast && cat.sliced(axis: 1, start: 8).scalars == y.scalars)
    }

    @Test func padding() {
        let a = Tensor([1, 2, 3, 4], shape: [2, 2])
        #expect(a.padded([(1, 0), (0, 2)], value: 9).scalars == [9, 9, 9, 9, 1, 2, 9, 9, 3, 4, 9, 9])
        let img = Tensor([1, 2, 3, 4], shape: [1, 1, 2, 2]).padded2D(left: 1, right: 0, top: 0, bottom: 1)
        #expect(img.shape == [1, 1, 3, 3] && img.scalars == [0, 1, 2, 0, 3, 4, 0, 0, 0])
    }

    @Test func gradients() {
        let a = random([2, 3], seed: 31), b = random([2, 2], seed: 32)
        checkGradients([a, b], "concatenate") { Tensor.concatenate([$0[0], $0[1]], axis: 1) }
        checkGradients([a, a * 2], "stack") { Tensor.stack([$0[0], $0[1]], axis: 0) }
        checkGradients([a], "split") { xs in
            let p = xs[0].split(sizes: [1, 2], axis: 1)
            return p[0] * 3 + p[1].sum(axis: 1, keepDims: true)
        }
        checkGradients([a], "pad") { $0[0].padded([(1, 2), (0, 1)], value: 0.5) }
    }
}

@Suite struct IndexingTests {
    @Test func selectAndGather() {
        let table = Tensor((0..<12).map(Float.init), shape: [4, 3])
        let ids = Tensor(integers: [3, 0, 3])
        #expect(table.indexSelect(axis: 0, indices: ids).scalars == [9, 10, 11, 0, 1, 2, 9, 10, 11])
        #expect(table.indexSelect(axis: 1, indices: Tensor(integers: [2, 0])).scalars == [2, 0, 5, 3, 8, 6, 11, 9])
        #expect(table.embedding(Tensor(integers: [1, 2, 0, 3], shape: [2, 2])).shape == [2, 2, 3])
        let g = table.gathered(axis: 1, indices: Tensor(integers: [0, 2, 1, 1, 2, 2, 0, 0], shape: [4, 2]))
        #expect(g.scalars == [0, 2, 4, 4, 8, 8, 9, 9])
        #expect(Tensor(integers: [5, 7], dtype: .int32).dtype == .int32)
    }

    @Test func gradients() {
        let table = random([4, 3], seed: 41)
        checkGradients([table], "indexSelect with repeats") { $0[0].indexSelect(axis: 0, indices: Tensor(integers: [3, 0, 3])) }
        checkGradients([table], "embedding") { $0[0].embedding(Tensor(integers: [1, 1, 2], shape: [3])) }
        checkGradients([table], "gather") { $0[0].gathered(axis: 1, indices: Tensor(integers: [0, 2, 2, 1, 0, 0, 1, 1], shape: [4, 2])) }
        checkGradients([table], "maskedFill") { $0[0].maskedFill(Tensor([true, false, false, true, true, false, false, false, true, false, true, false], shape: [4, 3]), 0) }
    }
}
