/// Iteration over n-d strided operands that share one shape: the engine under every
/// elementwise op, copy and broadcast.
///
/// Dimensions are ordered by the first operand's strides (the output, so writes are
/// sequential), size-1 dimensions are dropped, and neighbours that are contiguous in every
/// operand are merged; a dense op thus becomes one flat run. The body gets runs along the
/// innermost dimension: a start offset per operand (in elements) and a length.
struct StridedLoop {
    private(set) var shape: [Int]
    /// strides[operand][dim]
    private(set) var strides: [[Int]]
    let count: Int

    init(shape: [Int], strides operandStrides: [[Int]]) {
        count = Shape.count(shape)
        var dims = Array(0..<shape.count).filter { shape[$0] != 1 }
        let first = operandStrides[0]
        // Outermost first: larger output stride first; stable for ties.
        dims.sort { a, b in
            let sa = Swift.abs(first[a]), sb = Swift.abs(first[b])
            return sa != sb ? sa > sb : a < b
        }
        var mergedShape: [Int] = []
        var merged = [[Int]](repeating: [], count: operandStrides.count)
        for d in dims {
            if let last = mergedShape.last {
                let canMerge = (0..<operandStrides.count).allSatisfy { k in
                    merged[k].last! == operandStrides[k][d] * shape[d]
                }
                if canMerge {
                    mergedShape[mergedShape.count - 1] = last * shape[d]
                    for k in 0..<operandStrides.count { merged[k][merged[k].count - 1] = operandStrides[k][d] }
                    continue
                }
            }
            mergedShape.append(shape[d])
            for k in 0..<operandStrides.count { merged[k].append(operandStrides[k][d]) }
        }
        if mergedShape.isEmpty {
            mergedShape = [1]
            merged = merged.map { _ in [0] }
        }
        self.shape = mergedShape
        self.strides = merged
    }

    var innerCount: Int { shape[shape.count - 1] }
    func innerStride(_ operand: Int) -> Int { strides[operand][shape.count - 1] }

    /// Calls `body(offsets, n)` for every inner run; work is split across threads by
    /// element ranges when `count` is large enough (`grain` elements per thread at least).
    func forEachRun(grain: Int = 32768, _ body: (UnsafePointer<Int>, Int) -> Void) {
        let operands = strides.count
        let rank = shape.count
        Parallel.forRanges(count, grain: grain) { range in
            withUnsafeTemporaryAllocation(of: Int.self, capacity: rank + operands) { buf in
                let index = buf.baseAddress!
                let offsets = index + rank
                // Position at range.lowerBound.
                var rest = range.lowerBound
                for d in stride(from: rank - 1, through: 0, by: -1) {
                    index[d] = rest % shape[d]
                    rest /= shape[d]
                }
                for k in 0..<operands {
                    var o = 0
                    for d in 0..<rank { o += index[d] * strides[k][d] }
                    offsets[k] = o
                }
                var position = range.lowerBound
                let inner = shape[rank - 1]
                while position < range.upperBound {
                    let n = Swift.min(inner - index[rank - 1], range.upperBound - position)
                    body(UnsafePointer(offsets), n)
                    position += n
                    index[rank - 1] += n
                    for k in 0..<operands { offsets[k] += n * strides[k][rank - 1] }
                    // Carry into outer dimensions.
                    var d = rank - 1
                    while d > 0 && index[d] == shape[d] {
                        index[d] = 0
                        for k in 0..<operands { offsets[k] -= shape[d] * strides[k][d] }
                        d -= 1
                        index[d] += 1
                        for k in 0..<operands { offsets[k] += strides[k][d] }
                    }
                }
            }
        }
    }

    /// Like `forEachRun`, but when the innermost dimension is short (broadcasting a
    /// per-channel vector over channels-last data, say) it hands over blocks of whole rows:
    /// `body(offsets, n, rows, rowStrides)` covers `rows` runs of `n`, run r starting at
    /// offsets[k] + r * rowStrides[k]. Saves the per-run bookkeeping.
    func forEachBlock(grain: Int = 32768, _ body: (UnsafePointer<Int>, Int, Int, UnsafePointer<Int>) -> Void) {
        guard count > 0 else { return }  // empty: nothing to do (the row count below divides by a 0 dimension)
        let rank = shape.count, operands = strides.count
        let inner = shape[rank - 1]
        guard rank >= 2 && inner < 1024 else {
            withUnsafeTemporaryAllocation(of: Int.self, capacity: operands) { zero in
                zero.initialize(repeating: 0)
                forEachRun(grain: grain) { off, n in body(off, n, 1, zero.baseAddress!) }
            }
            return
        }
        let rowShape = Array(shape[0..<(rank - 1)])
        let rowCount = count / inner
        let rowsDim = rowShape[rowShape.count - 1]
        Parallel.forRanges(rowCount, grain: Swift.max(1, grain / inner)) { range in
            withUnsafeTemporaryAllocation(of: Int.self, capacity: 2 * operands + rank) { buf in
                let offsets = buf.baseAddress!, rowStrides = offsets + operands, index = rowStrides + operands
                for k in 0..<operands { rowStrides[k] = strides[k][rank - 2] }
                var row = range.lowerBound
                while row < range.upperBound {
                    // Position of `row` in the outer dimensions.
                    var rest = row
                    for d in stride(from: rank - 2, through: 0, by: -1) {
                        index[d] = rest % shape[d]
                        rest /= shape[d]
                    }
                    for k in 0..<operands {
                        var o = 0
                        for d in 0..<(rank - 1) { o += index[d] * strides[k][d] }
                        offsets[k] = o
                    }
                    let rows = Swift.min(rowsDim - index[rank - 2], range.upperBound - row)
                    body(UnsafePointer(offsets), inner, rows, UnsafePointer(rowStrides))
                    row += rows
                }
            }
        }
    }
}
