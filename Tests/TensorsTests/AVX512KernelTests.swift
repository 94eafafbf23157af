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

    /// GroupNorm's backward rows: dz = SiLU'(x a + b) dy summed (dz x, dz) per channel over
    /// the rows, and k1 dz + k2 x + k3, lane for lane the 8-lane expressions (the sums in the
    /// same row order per channel): bit for bit, channel counts with and without a tail.
    @Test func siluGradientRowsAreTheAVX2ExpressionsBitForBit() throws {
        guard CPUFeatures.avx512 else { return }
        let rows = 5
        for c in [8, 16, 24, 40] {
            let x = Self.values(rows * c, seed: 11).map { $0.isNaN ? 0.5 : $0 / 4 }
            let dy = Self.values(rows * c, seed: 12).map { $0.isNaN ? -1 : $0 / 8 }
            let k = Self.values(5 * c, seed: 13).map { $0.isNaN ? 2 : $0 / 30 }
            var acc1 = [Float](repeating: 0.25, count: c), acc2 = acc1
            var out = [Float](repeating: 0, count: rows * c)
            AVX512Kernels.siluGradSums(x, dy, a: k, b: Array(k[c...]), rows: rows, c: c, acc1: &acc1, acc2: &acc2)
            AVX512Kernels.siluGradApply(x, dy, k: k, rows: rows, c: c, &out)
            var want1 = [Float](repeating: 0.25, count: c), want2 = want1, wantOut = out
            for ch in 0..<c {
                var v1: Float = 0, v2: Float = 0
                for r in 0..<rows {
                    let xv = Vec8(repeating: x[r * c + ch])
                    let dz = SiLUActivation.grad(Vec8(repeating: dy[r * c + ch]),
                                                 VectorMath.fma(xv, Vec8(repeating: k[ch]), Vec8(repeating: k[c + ch])))
                    v1 = VectorMath.fma(dz, xv, Vec8(repeating: v1))[0]
                    v2 += dz[0]
                    wantOut[r * c + ch] = VectorMath.fma(dz, Vec8(repeating: k[2 * c + ch]),
                                                         VectorMath.fma(Vec8(repeating: k[3 * c + ch]), xv, Vec8(repeating: k[4 * c + ch])))[0]
                }
                want1[ch] += v1
                want2[ch] += v2
            }
            #expect(Self.same(acc1, want1) && Self.same(acc2, want2), "c \(c)")
            #expect(Self.same(out, wantOut), "c \(c)")
        }
    }

    /// The bf16 rows (32 channels split into even and odd lanes, coefficients in pair order)
    /// give the float32 rows' bits on the widened values, rounded to bf16 as BFloat16Runs;
    /// the statistics' shifted sums the 8-lane pass's.
    @Test func bf16RowsAreTheFloat32RowsRounded() throws {
        guard CPUFeatures.avx512 else { return }
        let (rows, c) = (3, 64)
        func bf16(_ v: [Float]) -> [UInt16] { v.map { BFloat16Runs.narrow($0.bitPattern) } }
        func wide(_ h: [UInt16]) -> [Float] { h.map { Float(bitPattern: UInt32($0) << 16) } }
        func paired(_ v: [Float]) -> [Float] {
            var out = v
            for start in stride(from: 0, to: v.count, by: c) {
                v.withUnsafeBufferPointer { AVX512Kernels.pairOrder($0.baseAddress! + start, c, into: &out[start]) }
            }
            return out
        }
        let x = bf16(Self.values(rows * c, seed: 21).map { $0.isNaN ? .nan : $0 / 4 })
        let dy = bf16(Self.values(rows * c, seed: 22).map { $0.isNaN ? 1 : $0 / 8 })
        let k = Self.values(5 * c, seed: 23).map { $0.isNaN ? 2 : $0 / 30 }
        // Forward.
        var y16 = [UInt16](repeating: 0, count: rows * c), y32 = [Float](repeating: 0, count: rows * c)
        let (pa, pb) = (paired(Array(k[..<c])), paired(Array(k[c..<(2 * c)])))
        AVX512Kernels.siluAffine(bf16: x, pa, pb, &y16, rows: rows, c: c)
        for r in 0..<rows {
            wide(x).withUnsafeBufferPointer { xp in
                y32.withUnsafeMutableBufferPointer { yp in
                    AVX512Kernels.siluAffine(xp.baseAddress! + r * c, Array(k[..<c]), Array(k[c..<(2 * c)]), yp.baseAddress! + r * c, c)
                }
            }
        }
        #expect(y16 == bf16(y32))
        // Backward sums and dx.
        var acc1 = [Float](repeating: 0, count: c), acc2 = acc1, want1 = acc1, want2 = acc1
        AVX512Kernels.siluGradSums(bf16: x, dy, a: pa, b: pb, rows: rows, c: c, acc1: &acc1, acc2: &acc2)
        AVX512Kernels.siluGradSums(wide(x), wide(dy), a: k, b: Array(k[c...]), rows: rows, c: c, acc1: &want1, acc2: &want2)
        #expect(Self.same(paired(want1), acc1) && Self.same(paired(want2), acc2))
        var dx16 = [UInt16](repeating: 0, count: rows * c), dx32 = [Float](repeating: 0, count: rows * c)
        AVX512Kernels.siluGradApply(bf16: x, dy, k: paired(k), rows: rows, c: c, &dx16)
        AVX512Kernels.siluGradApply(wide(x), wide(dy), k: k, rows: rows, c: c, &dx32)
        #expect(dx16 == bf16(dx32))
        // Statistics: shifted sums per channel, in row order in float32, as the 8-lane pass.
        var s1 = [Float](repeating: 0, count: c), s2 = s1
        AVX512Kernels.shiftedSums(bf16: x, shift: Array(x[c..<(2 * c)]), rows: rows, c: c, acc1: &s1, acc2: &s2)
        var want3 = [Float](repeating: 0, count: c), want4 = want3
        let xw = wide(x)
        for ch in 0..<c {
            for r in 0..<rows {
                let d = xw[r * c + ch] - xw[c + ch]
                want3[ch] += d
                want4[ch] = VectorMath.fma(Vec8(repeating: d), Vec8(repeating: d), Vec8(repeating: want4[ch]))[0]
            }
        }
        #expect(Self.same(paired(want3), s1) && Self.same(paired(want4), s2))
    }

    /// e^x (one vscalefps for 2^n) against the 8-lane twin's (two factors built in the
    /// exponent bits) at every 251st float32 bit pattern: NaNs, infinities, subnormal inputs
    /// and results, the clamps. (All 2^32 agreed when the 16-lane form was written.)
    @Test func expIsVectorMathExpAcrossFloat32() throws {
        guard CPUFeatures.avx512 else { return }
        let chunk = 1 << 20, step: UInt64 = 251
        var row = [Float](repeating: 0, count: chunk), x = row
        var bits: UInt64 = 0, mismatches = 0, first = ""
        while bits < 1 << 32 {
            let n = Swift.min(chunk, Int(((1 << 32) - bits + step - 1) / step))
            for i in 0..<n { x[i] = Float(bitPattern: UInt32(bits + UInt64(i) * step)) }
            for i in 0..<n { row[i] = x[i] }
            AVX512Kernels.exponentiate(&row, n, scale: 1, shift: 0)
            var i = 0
            while i < n {
                var v = Vec8()
                for j in 0..<8 { v[j] = i + j < n ? x[i + j] : 0 }
                let e = VectorMath.exp(v * 1 - 0)
                for j in 0..<8 where i + j < n {
                    let (got, want) = (row[i + j], e[j])
                    if got.bitPattern != want.bitPattern && !(got.isNaN && want.isNaN) {
                        if mismatches == 0 { first = "exp(\(x[i + j])) = \(got), 8 lanes \(want)" }
                        mismatches += 1
                    }
                }
                i += 8
            }
            bits += UInt64(n) * step
        }
        #expect(mismatches == 0, "\(mismatches) mismatches, first \(first)")
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
