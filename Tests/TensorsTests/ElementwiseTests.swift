import Foundation
import Testing
import Tensors

@Suite struct ElementwiseForwardTests {
    /// The vector math agrees with libm in Double to a few ulp, over many values (the vector
    /// body and the tail lanes) and at the special values.
    @Test func unaryMatchesLibm() {
        let n = 10_003
        var d = TestData(seed: 5)
        let wide = Tensor((0..<n).map { _ in (d.next() - 0.5) * 40 }, shape: [n])
        let positive = Tensor((0..<n).map { _ in exp((d.next() - 0.5) * 60) }, shape: [n])
        /// Relative error, or absolute error against `absolute` x |x| where that is larger
        /// (functions whose tail cancels in float32, as in PyTorch).
        func check(_ name: String, _ x: Tensor, _ y: Tensor, tolerance: Double, absolute: Double = 0, _ f: (Double) -> Double) {
            var worst = 0.0
            for (a, b) in zip(x.scalars, y.scalars) {
                let want = f(Double(a))
                let err = abs(Double(b) - want) / max(abs(want), absolute * abs(Double(a)) / tolerance, 1e-30)
                if !(want.isNaN && b.isNaN) && !(want.isInfinite && Double(b) == want) && abs(want) > 1e-37 {
                    worst = max(worst, err)
                }
            }
            #expect(worst <= tolerance, "\(name): worst relative error \(worst)")
        }
        check("exp", wide, wide.exp(), tolerance: 4e-7, Foundation.exp)
        check("log", positive, positive.log(), tolerance: 4e-7, Foundation.log)
        check("sqrt", positive, positive.sqrt(), tolerance: 1.2e-7, Foundation.sqrt)
        check("rsqrt", positive, positive.rsqrt(), tolerance: 3e-7) { 1 / Foundation.sqrt($0) }
        check("tanh", wide, wide.tanh(), tolerance: 6e-7, Foundation.tanh)
        check("sigmoid", wide, wide.sigmoid(), tolerance: 6e-7) { 1 / (1 + Foundation.exp(-$0)) }
        check("silu", wide, wide.silu(), tolerance: 8e-7) { $0 / (1 + Foundation.exp(-$0)) }
        check("sin", wide, wide.sin(), tolerance: 1e-6) { Foundation.sin($0) }
        check("cos", wide, wide.cos(), tolerance: 1e-6) { Foundation.cos($0) }
        check("gelu", wide, wide.gelu(), tolerance: 5e-6, absolute: 3e-7) { 0.5 * $0 * (1 + Foundation.erf($0 / 2.0.squareRoot())) }
        check("gelu-tanh", wide, wide.gelu(approximate: true), tolerance: 2e-6, absolute: 3e-7) {
            0.5 * $0 * (1 + Foundation.tanh(0.7978845608028654 * ($0 + 0.044715 * $0 * $0 * $0)))
        }
        check("pow 2.5", positive, positive.pow(2.5), tolerance: 2e-6) { Foundation.pow($0, 2.5) }
        let big = Tensor([1e4, -3e5, 8192.5, 1e6])
        check("sin large", big, big.sin(), tolerance: 1e-6) { Foundation.sin($0) }
    }

    @Test func specialValues() {
        let x = Tensor([0, -1, .infinity, -.infinity, .nan, 1e-40, 100, -100])
        let e = x.exp().scalars
        #expect(e[0] == 1 && e[2] == .infinity && e[3] == 0 && e[4].isNaN && e[6] == .infinity)
        #expect(e[7] == Foundation.exp(Float(-100)))  // a denormal, not flushed to zero
        let l = x.log().scalars
        #expect(l[0] == -.infinity && l[1].isNaN && l[2] == .infinity && l[4].isNaN)
        #expect(abs(l[5] - Float(Foundation.log(1e-40))) < 1e-4)
        let t = x.tanh().scalars
        #expect(t[2] == 1 && t[3] == -1 && t[6] == 1 && t[7] == -1)
        let s = x.sigmoid().scalars
        #expect(s[2] == 1 && s[3] == 0 && s[0] == 0.5)
        #expect(Tensor([-8, 8]).pow(Tensor([3, 0.5])).scalars == [-512, Float(8).squareRoot()])
        #expect(Tensor([-8]).pow(0.5).scalars[0].isNaN)
        #expect(Tensor([0, 2]).pow(0).scalars == [1, 1])
    }

    @Test func broadcastingAndScalars() {
        let a = Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3])
        let b = Tensor([10, 20, 30])
        #expect((a + b).scalars == [11, 22, 33, 14, 25, 36])
        #expect((a * Tensor([2, 3], shape: [2, 1])).scalars == [2, 4, 6, 12, 15, 18])
        #expect((1 - a).scalars == [0, -1, -2, -3, -4, -5])
        #expect((a / 2).scalars == [0.5, 1, 1.5, 2, 2.5, 3])
        #expect(a.maximum(Tensor(3.5)).scalars == [3.5, 3.5, 3.5, 4, 5, 6])
        #expect(a.minimum(b).scalars == [1, 2, 3, 4, 5, 6])
        #expect(Tensor.where(a .> 3, a, -a).scalars == [-1, -2, -3, 4, 5, 6])
        #expect(a.clamped(min: 2, max: 4).scalars == [2, 2, 3, 4, 4, 4])
        #expect(a.maskedFill(a .== 2, 0).scalars == [1, 0, 3, 4, 5, 6])
        // A strided (transposed) operand broadcast against a row.
        let t = a.transposed()
        #expect((t + Tensor([100, 200])).scalars == [101, 204, 102, 205, 103, 206])
    }

    /// Empty tensors (a dimension of 0, as an attention over no queries makes): ops give
    /// empty results of the broadcast shape instead of dividing by the empty dimension.
    @Test func emptyTensors() {
        let x = random([1, 2, 0, 5]), bias = random([5])
        #expect((x * 2).shape == [1, 2, 0, 5])
        #expect((x + bias).shape == [1, 2, 0, 5])
        #expect((x.permuted(0, 2, 3, 1) + 1).shape == [1, 0, 5, 2])
        #expect(x.exp().count == 0)
    }

    @Test func comparisonsAndLogic() {
        let a = Tensor([1, 2, 3]), b = Tensor([3, 2, 1])
        #expect((a .< b).booleans == [true, false, false])
        #expect((a .<= b).booleans == [true, true, false])
        #expect((a .== b).booleans == [false, true, false])
        #expect(((a .< b) .| (a .> b)).booleans == [true, false, true])
        #expect((.!(a .== b)).booleans == [true, false, true])
        let i = Tensor(integers: [1, 5, 7]), j = Tensor(integers: [1, 6, 7])
        #expect((i .== j).booleans == [true, false, true])
        #expect(i.addingIntegers(j).integers == [2, 11, 14])
        // int64 values beyond Float's 24 bits compare exactly.
        #expect((Tensor(integers: [16_777_217]) .== Tensor(integers: [16_777_216])).booleans == [false])
    }

    @Test func bfloat16() {
        let x = Tensor([1, 1.00390625, 3.14159, -2.5e-3, 65504])
        let b = x.to(.bfloat16)
        #expect(b.dtype == .bfloat16)
        // Round to nearest even: 1 + 2^-8 is a tie between 1 and 1 + 2^-7: it goes to 1.
        #expect(b.scalars == [1, 1, 3.140625, -0.0025024414, 65536])
        #expect((b * b).dtype == .bfloat16)
        #expect((b * x).dtype == .float32)
        #expect(BFloat16(Float.nan).float.isNaN)
    }
}

@Suite struct ElementwiseGradientTests {
    @Test func unary() {
        let x = random([2, 5], -2, 2, seed: 3)
        let p = random([2, 5], 0.3, 2.5, seed: 4)
        checkGradients([x], "exp") { $0[0].exp() }
        checkGradients([p], "log") { $0[0].log() }
        checkGradients([p], "sqrt") { $0[0].sqrt() }
        checkGradients([p], "rsqrt") { $0[0].rsqrt() }
        checkGradients([x], "sin") { $0[0].sin() }
        checkGradients([x], "cos") { $0[0].cos() }
        checkGradients([x], "tanh") { $0[0].tanh() }
        checkGradients([x], "sigmoid") { $0[0].sigmoid() }
        checkGradients([x], "silu") { $0[0].silu() }
        checkGradients([x], "gelu") { $0[0].gelu() }
        checkGradients([x], "gelu tanh") { $0[0].gelu(approximate: true) }
        checkGradients([x], "square") { $0[0].square() }
        checkGradients([x], "neg") { -$0[0] }
        checkGradients([p], "pow 2.5") { $0[0].pow(2.5) }
        checkGradients([x], "pow 3") { $0[0].pow(3) }
        let k = awayFromZero([2, 5], seed: 5)
        checkGradients([k], "abs") { $0[0].abs() }
        checkGradients([k], "relu") { $0[0].relu() }
        checkGradients([k], "clamp") { $0[0].clamped(min: -0.7, max: 0.9) }
    }

    /// GEGLU's fused gate equals the two ops it replaces, on the strided halves of a projection.
    @Test func gatedGELUIsTheProductOfTheTwoOps() {
        let parts = random([3, 7, 16], -4, 4, seed: 9).chunked(2, axis: -1)
        for approximate in [false, true] {
            let fused = parts[0].timesGELU(of: parts[1], approximate: approximate)
            let separate = parts[0] * parts[1].gelu(approximate: approximate)
            #expect(fused.shape == [3, 7, 8] && fused.scalars == separate.scalars, "approximate: \(approximate)")
        }
    }

    @Test func binaryWithBroadcasting() {
        let a = random([2, 3], seed: 1), b = random([3], seed: 2), c = random([2, 1], seed: 3)
        checkGradients([a, b], "add") { $0[0] + $0[1] }
        checkGradients([a, c], "sub") { $0[0] - $0[1] }
        checkGradients([a, b], "mul") { $0[0] * $0[1] }
        checkGradients([a, b], "gated gelu") { $0[0].timesGELU(of: $0[1]) }
        checkGradients([a, c], "gated gelu tanh") { $0[0].timesGELU(of: $0[1], approximate: true) }
        checkGradients([a, awayFromZero([2, 1], seed: 4)], "div") { $0[0] / $0[1] }
        checkGradients([random([2, 3], 0.5, 2, seed: 5), random([1, 3], -1.5, 1.5, seed: 6)], "pow") { $0[0].pow($0[1]) }
        let m = random([2, 3], seed: 7)
        checkGradients([a, m], "maximum") { $0[0].maximum($0[1]) }
        checkGradients([a, m], "minimum") { $0[0].minimum($0[1]) }
        checkGradients([a], "scalar ops") { (2 - $0[0]) * 3 / 4 + 1 }
        checkGradients([a, m], "where") { Tensor.where($0[1] .> 0, $0[0], $0[1] * 2) }
        // The same input used twice accumulates its gradients.
        checkGradients([a], "reuse") { $0[0] * $0[0] + $0[0].exp() }
        // A transposed (strided) operand.
        checkGradients([random([3, 2], seed: 8), b], "strided") { $0[0].transposed() * $0[1] }
    }

    @Test func dtypeConversion() {
        let x = random([4], seed: 9)
        // Through bf16 and back: the gradient of a conversion is the conversion back.
        let (_, g) = valueAndGradient(at: [x]) { xs in (xs[0].to(.bfloat16).to(.float32) * 3).sum() }
        #expect(g[0].scalars == [3, 3, 3, 3])
    }
}
