import Foundation
import Testing
import Tensors

/// Loads a committed fixture from the test bundle.
func fixture(_ name: String) throws -> Data {
    guard let url = Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures") else {
        throw FixtureMissing(name: name)
    }
    return try Data(contentsOf: url)
}

struct FixtureMissing: Error { let name: String }

/// Deterministic test data: a small LCG, so tests do not depend on the generators under test.
struct TestData {
    var state: UInt64
    init(seed: UInt64) { state = seed &* 6364136223846793005 &+ 1442695040888963407 }

    mutating func next() -> Float {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(state >> 40) / Float(1 << 24)
    }

    /// Values uniform in [lo, hi).
    mutating func tensor(_ shape: [Int], _ lo: Float = -1, _ hi: Float = 1) -> Tensor {
        let n = shape.reduce(1, *)
        return Tensor((0..<n).map { _ in lo + (hi - lo) * next() }, shape: shape)
    }
}

/// Max |a - b| / (atol + rtol |b|) over elements; <= 1 means close.
func closeness(_ a: [Float], _ b: [Float], atol: Float, rtol: Float) -> Float {
    precondition(a.count == b.count, "lengths \(a.count) vs \(b.count)")
    var worst: Float = 0
    for (x, y) in zip(a, b) {
        if x.isNaN && y.isNaN { continue }
        if x == y { continue }
        worst = max(worst, abs(x - y) / (atol + rtol * abs(y)))
    }
    return worst
}

func expectClose(_ a: Tensor, _ b: [Float], atol: Float = 1e-5, rtol: Float = 1e-5,
                 _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
    let c = closeness(a.scalars, b, atol: atol, rtol: rtol)
    #expect(c <= 1, "closeness \(c) > 1 \(comment.map { "\($0)" } ?? "")", sourceLocation: sourceLocation)
}

func expectClose(_ a: Tensor, _ b: Tensor, atol: Float = 1e-5, rtol: Float = 1e-5,
                 _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(a.shape == b.shape, "shapes \(a.shape) vs \(b.shape)", sourceLocation: sourceLocation)
    expectClose(a, b.scalars, atol: atol, rtol: rtol, comment, sourceLocation: sourceLocation)
}
