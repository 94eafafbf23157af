import Foundation
import Testing
@testable import Tensors

/// The softmax's e^x (`VectorMath.expNonPositive`) against libm and against `VectorMath.exp`.
@Suite struct VectorMathTests {
    /// Every 997th float32 in [-87.3, 0]: within 2.5e-7 relative of e^x in Double, and within
    /// 2 ulp of `exp`; below -87.3 (and -inf) 0, NaN stays NaN, -0 and 0 give 1.
    @Test func expNonPositiveAgreesWithExp() {
        let last = (-87.3 as Float).bitPattern
        var values: [Float] = []
        var bits = (-0.0 as Float).bitPattern
        while bits <= last { values.append(Float(bitPattern: bits)); bits += 997 }
        values += [-87.29, -87.0, -1e-30, -1e-40, 0, -0.0]
        var worst = 0.0, worstUlps: Float = 0
        var i = 0
        while i < values.count {
            var x = Vec8(repeating: 0)
            let n = Swift.min(8, values.count - i)
            for j in 0..<n { x[j] = values[i + j] }
            let (lean, full) = (VectorMath.expNonPositive(x), VectorMath.exp(x))
            for j in 0..<n {
                let want = Foundation.exp(Double(x[j]))
                worst = Swift.max(worst, Swift.abs(Double(lean[j]) - want) / want)
                worstUlps = Swift.max(worstUlps, Swift.abs(lean[j] - full[j]) / full[j].ulp)
            }
            i += 8
        }
        #expect(worst <= 2.5e-7, "worst relative error \(worst)")
        #expect(worstUlps <= 2, "\(worstUlps) ulp from exp")
        let special = VectorMath.expNonPositive(Vec8([-87.31, -88, -104, -1e30, -.infinity, .nan, 0, -0.0]))
        #expect((0..<5).map { special[$0] } == [0, 0, 0, 0, 0])
        #expect(special[5].isNaN && special[6] == 1 && special[7] == 1)
    }
}
