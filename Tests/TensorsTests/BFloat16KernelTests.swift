import Testing
@testable import Tensors

/// The bf16 paths that skip a conversion pass (elementwise tiles, GroupNorm's output, the
/// fused attention, conversions themselves) give bit for bit what the float32 op gives when
/// its inputs are widened and its output rounded to bf16: the old two-pass path.
@Suite struct BFloat16KernelTests {
    /// The bit patterns of a bf16 tensor, row-major.
    static func bits(_ t: Tensor) -> [UInt16] {
        t.withUnsafeBytes { Array($0.bindMemory(to: UInt16.self)) }
    }

    /// How many elements of two bf16 tensors differ in their bits (0 when equal).
    static func mismatches(_ a: Tensor, _ b: Tensor) -> Int {
        zip(bits(a), bits(b)).filter { $0 != $1 }.count + abs(a.count - b.count)
    }

    @Test func conversionRoundsAsBFloat16Init() {
        // Ties both ways, the largest finite values, infinities, NaNs whose payload sits only in
        // the bits that are dropped (they must stay NaN), subnormals, and random bit patterns.
        var patterns: [UInt32] = [0x3F80_8000, 0x3F81_8000, 0x3F80_7FFF, 0x7F7F_FFFF, 0xFF7F_FFFF, 0x7F80_0000, 0xFF80_0000,
                                  0x7F80_0001, 0xFF80_0001, 0x7FFF_FFFF, 0xFFFF_FFFF, 0x7FC0_0000, 0x0000_0001, 0x8000_8000, 0]
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<4093 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            patterns.append(UInt32(truncatingIfNeeded: state >> 29))
        }
        let values = patterns.map { Float(bitPattern: $0) }
        // Contiguous (the vector loop) and strided (a transposed view: the scalar loop).
        let t = Tensor(values, shape: [4108])
        let converted = Self.bits(t.to(.bfloat16))
        #expect(zip(converted, values).filter { $0 != BFloat16($1).bitPattern }.count == 0)
        let m = Tensor(values, shape: [52, 79]).transposed()
        let want = Self.bits(m.contiguous().to(.bfloat16))
        #expect(Self.mismatches(m.to(.bfloat16), m.contiguous().to(.bfloat16)) == 0)
        #expect(want.count == 4108 && want.enumerated().allSatisfy { i, b in b == BFloat16(values[(i % 52) * 79 + i / 52]).bitPattern })
        // Widening is exact.
        #expect(Self.mismatches(t.to(.bfloat16).to(.float32).to(.bfloat16), t.to(.bfloat16)) == 0)
    }

    @Test func elementwiseWithBFloat16Operands() {
        let a = random([3, 16, 7, 9], seed: 1).to(.bfloat16).channelsLast()
        let b = random([3, 16, 7, 9], seed: 2).to(.bfloat16)  // row-major: the two layouts differ
        let bias = random([16, 1, 1], seed: 3)
        let (fa, fb) = (a.to(.float32), b.to(.float32))
        for (got, want) in [(a + b, fa + fb), (a * b, fa * fb), (a.silu(), fa.silu()), ((a - 0.5).exp(), (fa - 0.5).to(.bfloat16).to(.float32).exp()), (a.exp(), fa.exp())] {
            #expect(got.dtype == .bfloat16)
            #expect(Self.mismatches(got, want.to(.bfloat16)) == 0)
        }
        // A float32 operand makes the result float32, computed from the widened bf16 values.
        let mixed = a + bias
        #expect(mixed.dtype == .float32 && mixed.scalars == (fa + bias).scalars)
        // Long runs (more than one tile of the mixed path) and a broadcast bf16 row.
        let long = random([2, 3000], seed: 4).to(.bfloat16), row = random([3000], seed: 5).to(.bfloat16)
        #expect(Self.mismatches(long * row, (long.to(.float32) * row.to(.float32)).to(.bfloat16)) == 0)
    }

    /// 16 channels, and 64: with AVX-512, channels-last bf16 rows of whole 32-channel blocks
    /// run the in-register kernels (`AVX512Kernels.siluAffine(bf16:)` and the gradient's).
    @Test(arguments: [(true, 16), (false, 16), (true, 64)])
    func groupNormWritesBFloat16(channelsLast: Bool, channels: Int) {
        var x = random([2, channels, 6, 5], -2, 3, seed: 6).to(.bfloat16)
        if channelsLast { x = x.channelsLast() }
        let (w, b) = (random([channels], seed: 7), random([channels], seed: 8))
        for activation in [ConvActivation.none, .silu] {
            let got = x.groupNorm(groups: 4, weight: w, bias: b, activation: activation)
            let want = x.to(.float32).groupNorm(groups: 4, weight: w, bias: b, activation: activation)
            #expect(got.dtype == .bfloat16)
            #expect(Self.mismatches(got, want.to(.bfloat16)) == 0)
        }
        // The backward pass reads bf16 x and bf16 dy as they are: the same dx as the float32
        // pass given the same (widened) values, rounded once.
        for activation in [ConvActivation.none, .silu] {
            let g = valueAndGradient(at: [x, w]) { t in
                t[0].groupNorm(groups: 4, weight: t[1], activation: activation).to(.float32).square().sum()
            }.gradients
            let want = valueAndGradient(at: [x.to(.float32), w]) { t in
                t[0].groupNorm(groups: 4, weight: t[1], activation: activation).to(.bfloat16).to(.float32).square().sum()
            }.gradients
            #expect(g[0].dtype == .bfloat16 && g[1].dtype == .float32)
            #expect(Self.mismatches(g[0], want[0].to(.bfloat16)) == 0)
            #expect(g[1].scalars == want[1].scalars)
        }
    }

    @Test func fusedAttentionWithBFloat16Operands() {
        let q = random([2, 2, 40, 16], seed: 9).to(.bfloat16), k = random([2, 2, 33, 16], seed: 10).to(.bfloat16)
        let v = random([2, 2, 33, 16], seed: 11).to(.bfloat16)
        #expect(FusedAttention.supports(q, k, v))
        let got = scaledDotProductAttention(query: q, key: k, value: v)
        let want = scaledDotProductAttention(query: q.to(.float32), key: k.to(.float32), value: v.to(.float32))
        #expect(got.dtype == .bfloat16)
        if FusedAttention.supportsBF16(q, k, v) {
            // bf16 products: P is rounded to bf16 for P V (see `fusedAttentionBF16Forward`).
            #expect(Self.maxDifference(got, want) <= 1.5e-2 * Self.maxMagnitude(v))
        } else {
            #expect(Self.mismatches(got, want.to(.bfloat16)) == 0)
        }
        // Gradients come back in the operands' type, equal to the float32 ones rounded (near
        // them after the bf16 forward, whose output enters dQ and dK through rowsum(dO O)).
        let r = random([2, 2, 40, 16], seed: 12)
        let g16 = valueAndGradient(at: [q, k, v]) { t in (scaledDotProductAttention(query: t[0], key: t[1], value: t[2]).to(.float32) * r).sum() }.gradients
        let g32 = valueAndGradient(at: [q.to(.float32), k.to(.float32), v.to(.float32)]) { t in
            (scaledDotProductAttention(query: t[0], key: t[1], value: t[2]).to(.bfloat16).to(.float32) * r).sum()
        }.gradients
        for (a, b) in zip(g16, g32) {
            #expect(a.dtype == .bfloat16)
            if FusedAttention.supportsBF16(q, k, v) {
                #expect(Self.maxDifference(a, b) <= 2e-2 * Self.maxMagnitude(b), "\(Self.maxDifference(a, b)) of \(Self.maxMagnitude(b))")
            } else {
                #expect(Self.mismatches(a, b.to(.bfloat16)) == 0)
            }
        }
    }

    /// The bf16 forward (where LIBXSMM makes bf16 kernels) against float32 attention on the
    /// same bf16 values: head views with strides (as the attention layers pass them), an odd
    /// number of keys (padded pair), several key blocks, a query tail, heads of 40 and 64. The
    /// only roundings are P's to bf16 (2^-9 relative: the output moves by at most that times
    /// the largest |v|) and the sums' order.
    @Test func fusedAttentionBF16Forward() throws {
        for (lq, lk, d, heads) in [(40, 33, 40, 2), (100, 197, 64, 3), (64, 77, 40, 8), (131, 64, 16, 1)] {
            let qkv = random([2, lq, heads * d], seed: 20).to(.bfloat16)
            let kv = random([2, lk, 2 * heads * d], seed: 21).to(.bfloat16)
            let q = qkv.reshaped([2, lq, heads, d]).permuted(0, 2, 1, 3)
            let k = kv.sliced(axis: 2, start: 0, end: heads * d).reshaped([2, lk, heads, d]).permuted(0, 2, 1, 3)
            let v = kv.sliced(axis: 2, start: heads * d, end: 2 * heads * d).reshaped([2, lk, heads, d]).permuted(0, 2, 1, 3)
            let want = scaledDotProductAttention(query: q.to(.float32), key: k.to(.float32), value: v.to(.float32))
            guard FusedAttention.supportsBF16(q, k, v) else { return }  // no bf16 kernels on this CPU
            let (out, lse) = FusedAttention.forwardBF16(q, k, v, scale: 1 / Float(d).squareRoot())
            let bound = 2 / Float(1 << 9) * Self.maxMagnitude(v) + 1e-5
            #expect(Self.maxDifference(out, want) <= bound, "\(lq)x\(lk)x\(d): \(Self.maxDifference(out, want)) > \(bound)")
            // The log-sum-exp of the float32 scores.
            let scores = matmul(q.to(.float32), k.to(.float32).transposed()) * (1 / Float(d).squareRoot())
            let m = scores.max(axes: [3], keepDims: true)
            let reference = ((scores - m).exp().sum(axes: [3], keepDims: true).log() + m).reshaped([2, heads, lq])
            #expect(Self.maxDifference(lse, reference) <= 1e-4, "\(lq)x\(lk)x\(d) lse")
            // The bf16 backward against the float32 one on the same values, out and lse: P,
            // dS and the operands in bf16 (2^-9 relative each), sums of many terms.
            guard FusedAttention.supportsBF16Backward(q, k, v) else { continue }
            let g = random([2, heads, lq, d], seed: 22).to(.bfloat16)
            let got = FusedAttention.backwardBF16(q, k, v, out: out.permuted(0, 2, 1, 3).contiguous().permuted(0, 2, 1, 3),
                                                  lse: lse, gout: g, scale: 1 / Float(d).squareRoot())
            let ref = FusedAttention.backward(q.to(.float32), k.to(.float32), v.to(.float32), out: out, lse: lse,
                                              gout: g.to(.float32), scale: 1 / Float(d).squareRoot())
            for (name, a, b) in [("dq", got.0, ref.0), ("dk", got.1, ref.1), ("dv", got.2, ref.2)] {
                #expect(Self.maxDifference(a, b) <= 1e-2 * Self.maxMagnitude(b), "\(lq)x\(lk)x\(d) \(name): \(Self.maxDifference(a, b)) of \(Self.maxMagnitude(b))")
            }
        }
    }

    static func maxDifference(_ a: Tensor, _ b: Tensor) -> Float {
        zip(a.to(.float32).contiguous().scalars, b.to(.float32).contiguous().scalars).map { Swift.abs($0 - $1) }.max() ?? 0
    }

    static func maxMagnitude(_ a: Tensor) -> Float { a.to(.float32).contiguous().scalars.map { Swift.abs($0) }.max() ?? 0 }

    @Test func cachedCastFollowsTheSource() {
        var w = random([8, 5], seed: 13)
        let first = w.toCached(.bfloat16)
        #expect(first.dtype == .bfloat16 && Self.mismatches(first, w.to(.bfloat16)) == 0)
        // The same conversion again is the cached one: the same storage.
        #expect(w.toCached(.bfloat16).storage === first.storage)
        // An in-place update makes a new conversion with the new values.
        w.withUnsafeMutableFloats { $0[0] = 7.25 }
        let second = w.toCached(.bfloat16)
        #expect(second.storage !== first.storage && second.scalars[0] == 7.25)
        // The gradient goes back to the float32 source, as `to`'s does.
        let g = valueAndGradient(at: [w]) { t in (t[0].toCached(.bfloat16).to(.float32) * 3).sum() }.gradients[0]
        #expect(g.dtype == .float32 && g.scalars.allSatisfy { $0 == 3 })
    }
}
