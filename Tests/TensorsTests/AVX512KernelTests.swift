import Foundation
import Testing
@testable import Tensors
import TensorsAVX512

/// The 16-lane kernels of TensorsAVX512 against their 8-lane twins in Tensors, where the CPU
/// has AVX-512 (elsewhere they are never called, and these tests have nothing to run): the
/// fused SiLU bit for bit, e^x bit for bit lane by lane, a softmax row's sum to rounding.
@Suite struct AVX512KernelTests {
    static let lengths = [1, 7, 8, 16, 33, 130]

    /// Values across e^x's range: the clamps (-104, 89), large and tiny magnitudes, zero, NaN.
    static func values(_ n: Int, seed: UInt64) -> [Float] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(state >> 40) / Float(1 << 24) * 60 - 30
        }
        let special: [Float] = [0, -0.0, 1e-30, -120, 95, .nan, 88.7, -103.9, 3.5, -7.25]
        return (0..<n).map { i in i < special.count && i % 3 == 0 ? special[i] : next() }
    }

    static func same(_ a: [Float], _ b: [Float]) -> Bool {
        zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) }
    }

    @Test func siluAffineIsTheAVX2KernelBitForBit() throws {
        guard CPUFeatures.avx512 else { return }
        for n in Self.lengths {
            let x = Self.values(n, seed: 1), a = Self.values(n, seed: 2).map { $0 / 10 }, b = Self.values(n, seed: 3)
            var got = [Float](repeating: 0, count: n), scalarAB = got
            var want = got, wantScalar = got
            AVX512Kernels.siluAffine(x, a, b, &got, n)
            AVX512Kernels.siluAffine(x, a: 0.7, b: -1.5, &scalarAB, n)
            x.withUnsafeBufferPointer { xp in a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in
                for i in stride(from: 0, to: n, by: 8) {
                    let m = Swift.min(8, n - i)
                    let z = VectorMath.fma(Lanes.load(xp.baseAddress! + i, 1, m), Lanes.load(ap.baseAddress! + i, 1, m),
                                           Lanes.load(bp.baseAddress! + i, 1, m))
                    let zs = VectorMath.fma(Lanes.load(xp.baseAddress! + i, 1, m), Vec8(repeating: 0.7), Vec8(repeating: -1.5))
                    for l in 0..<m {
                        want[i + l] = SiLUActivation.apply(z)[l]
                        wantScalar[i + l] = SiLUActivation.apply(zs)[l]
                    }
                }
            } } }
            #expect(Self.same(got, want), "n \(n)")
            #expect(Self.same(scalarAB, wantScalar), "n \(n), scalar a and b")
        }
    }

    @Test func exponentiationIsVectorMathExp() throws {
        guard CPUFeatures.avx512 else { return }
        for n in Self.lengths {
            let x = Self.values(n, seed: 4).map { $0.isNaN ? 1 : $0 }
            var row = x
            let (m, total) = AVX512Kernels.exponentiate(&row, n, scale: 0.125)
            #expect(m == x.map { $0 * 0.125 }.max()!)
            var want = [Float](repeating: 0, count: n)
            for i in 0..<n { want[i] = VectorMath.exp(Vec8(repeating: x[i] * 0.125) - Vec8(repeating: m))[0] }
            #expect(Self.same(row, want), "n \(n)")
            let sum = want.reduce(0, +)
            #expect(Swift.abs(total - sum) <= 1e-6 * sum, "n \(n): \(total) vs \(sum)")
            var shifted = x
            AVX512Kernels.exponentiate(&shifted, n, scale: 0.5, shift: 2)
            for i in 0..<n { want[i] = VectorMath.exp(Vec8(repeating: x[i] * 0.5) - Vec8(repeating: 2))[0] }
            #expect(Self.same(shifted, want), "n \(n), shifted")
        }
    }
}
