import Foundation
import Testing
@testable import Tensors

@Suite struct NormalizationTests {
    /// Group norm in Double: mean and biased variance over each group's channels and positions.
    static func referenceGroupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Double, silu: Bool) -> [Float] {
        let n = x.shape[0], c = x.shape[1], s = x.count / (n * c)
        let v = x.scalars, w = weight?.scalars, b = bias?.scalars
        var out = [Float](repeating: 0, count: v.count)
        let cg = c / groups
        for i in 0..<n {
            for g in 0..<groups {
                let start = (i * c + g * cg) * s, end = start + cg * s
                let vals = v[start..<end].map(Double.init)
                let mean = vals.reduce(0, +) / Double(vals.count)
                let variance = vals.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(vals.count)
                for k in start..<end {
                    let ch = (k / s) % c
                    var y = (Double(v[k]) - mean) / (variance + eps).squareRoot() * Double(w?[ch] ?? 1) + Double(b?[ch] ?? 0)
                    if silu { y = y / (1 + Foundation.exp(-y)) }
                    out[k] = Float(y)
                }
            }
        }
        return out
    }

    @Test(arguments: [(4, 2, false), (16, 4, true), (16, 16, false), (24, 3, true)])
    func groupNormMatchesReference(channels: Int, groups: Int, silu: Bool) {
        let x = random([3, channels, 5, 7], -2, 3, seed: UInt64(channels))
        let w = random([channels], 0.5, 1.5, seed: 2), b = random([channels], seed: 3)
        let want = Self.referenceGroupNorm(x, groups: groups, weight: w, bias: b, eps: 1e-5, silu: silu)
        let act: ConvActivation = silu ? .silu : .none
        expectClose(x.groupNorm(groups: groups, weight: w, bias: b, activation: act), want, atol: 2e-5, rtol: 2e-5)
        // Channels-last input: same values, layout kept.
        let y = x.channelsLast().groupNorm(groups: groups, weight: w, bias: b, activation: act)
        #expect(y.isChannelsLast == (channels % 8 == 0))
        expectClose(y, want, atol: 2e-5, rtol: 2e-5)
        // Without affine parameters, batch of one (threads split the positions).
        let one = x[0..<1]
        expectClose(one.groupNorm(groups: groups), Self.referenceGroupNorm(one, groups: groups, weight: nil, bias: nil, eps: 1e-5, silu: false),
                    atol: 2e-5, rtol: 2e-5)
    }

    /// A large mean does not cancel the variance (shifted sums).
    @Test func groupNormLargeMean() {
        let x = random([1, 8, 16, 16], -1, 1) + 1000
        let want = Self.referenceGroupNorm(x, groups: 2, weight: nil, bias: nil, eps: 1e-5, silu: false)
        expectClose(x.groupNorm(groups: 2), want, atol: 1e-3, rtol: 1e-3)
        expectClose(x.channelsLast().groupNorm(groups: 2), want, atol: 1e-3, rtol: 1e-3)
    }

    @Test func groupNormGradients() {
        let x = random([2, 8, 3, 3], -2, 2, seed: 5), w = random([8], 0.5, 1.5, seed: 6), b = random([8], seed: 7)
        checkGradients([x, w, b], "channels first") { $0[0].groupNorm(groups: 4, weight: $0[1], bias: $0[2]) }
        checkGradients([x, w, b], "channels first + silu") { $0[0].groupNorm(groups: 2, weight: $0[1], bias: $0[2], activation: .silu) }
        checkGradients([x, w, b], "channels last + silu") {
            $0[0].channelsLast().groupNorm(groups: 2, weight: $0[1], bias: $0[2], activation: .silu)
        }
        checkGradients([random([1, 4, 5], seed: 8)], "rank 3, no affine") { $0[0].groupNorm(groups: 2) }
    }

    /// A per-(n, c) shift added inside the pass normalises x + shift: the explicit sum's
    /// values (channels-first and last, with a large shift that must not cancel the variance,
    /// a [1, C] shift broadcast over the batch, bf16 x) and finite-difference gradients.
    @Test func groupNormShift() {
        let x = random([3, 16, 5, 7], -2, 3, seed: 31), w = random([16], 0.5, 1.5, seed: 32), b = random([16], seed: 33)
        for t in [random([3, 16], -2, 2, seed: 34), random([3, 16], 500, 600, seed: 35), random([1, 16], -1, 1, seed: 36)] {
            let want = (x + t.reshaped(-1, 16, 1, 1)).groupNorm(groups: 4, weight: w, bias: b, activation: .silu)
            expectClose(x.groupNorm(groups: 4, weight: w, bias: b, shift: t, activation: .silu), want, atol: 1e-4, rtol: 1e-4)
            expectClose(x.channelsLast().groupNorm(groups: 4, weight: w, bias: b, shift: t, activation: .silu), want, atol: 1e-4, rtol: 1e-4)
        }
        let t = random([3, 16], -2, 2, seed: 37)
        let xb = x.to(.bfloat16).channelsLast()
        let got = xb.groupNorm(groups: 4, weight: w, bias: b, shift: t, activation: .silu)
        #expect(got.dtype == .bfloat16)
        expectClose(got.to(.float32), xb.to(.float32).groupNorm(groups: 4, weight: w, bias: b, shift: t, activation: .silu),
                    atol: 1e-2, rtol: 0.0079)
        let small = random([2, 8, 3, 3], -2, 2, seed: 38)
        checkGradients([small, random([8], 0.5, 1.5, seed: 39), random([2, 8], -1, 1, seed: 40)], "shift, channels first + silu") {
            $0[0].groupNorm(groups: 2, weight: $0[1], shift: $0[2], activation: .silu)
        }
        checkGradients([small, random([1, 8], -1, 1, seed: 41)], "broadcast shift, channels last") {
            $0[0].channelsLast().groupNorm(groups: 4, shift: $0[1])
        }
    }

    @Test func layerNorm() {
        let x = random([4, 3, 10], -2, 2, seed: 9), w = random([10], 0.5, 1.5, seed: 10), b = random([10], seed: 11)
        let v = x.scalars, wv = w.scalars, bv = b.scalars
        var want = [Float](repeating: 0, count: v.count)
        for r in 0..<12 {
            let row = v[(r * 10)..<(r * 10 + 10)].map(Double.init)
            let m = row.reduce(0, +) / 10
            let variance = row.map { ($0 - m) * ($0 - m) }.reduce(0, +) / 10
            for i in 0..<10 { want[r * 10 + i] = Float((row[i] - m) / (variance + 1e-5).squareRoot() * Double(wv[i]) + Double(bv[i])) }
        }
        expectClose(x.layerNorm(weight: w, bias: b), want, atol: 1e-5, rtol: 1e-5)
        checkGradients([x, w, b], "layerNorm") { $0[0].layerNorm(weight: $0[1], bias: $0[2]) }
        checkGradients([random([3, 2, 4], seed: 12)], "layerNorm over 2 axes") { $0[0].layerNorm(normalizedRank: 2) }
    }
}

@Suite struct AttentionAndResamplingTests {
    @Test func attentionValues() {
        let q = random([2, 3, 4], seed: 1), k = random([2, 5, 4], seed: 2), v = random([2, 5, 6], seed: 3)
        let out = scaledDotProductAttention(query: q, key: k, value: v)
        // Reference: softmax(q k^T / 2) v per batch.
        var want: [Float] = []
        let qv = q.scalars, kv = k.scalars, vv = v.scalars
        for b in 0..<2 {
            for i in 0..<3 {
                var scores = (0..<5).map { j in (0..<4).reduce(0.0) { $0 + Double(qv[(b * 3 + i) * 4 + $1]) * Double(kv[(b * 5 + j) * 4 + $1]) } / 2 }
                let m = scores.max()!
                scores = scores.map { Foundation.exp($0 - m) }
                let s = scores.reduce(0, +)
                for d in 0..<6 { want.append(Float((0..<5).reduce(0.0) { $0 + scores[$1] / s * Double(vv[(b * 5 + $1) * 6 + d]) })) }
            }
        }
        expectClose(out, want, atol: 1e-5, rtol: 1e-5)
        // Causal: the first query sees only the first key.
        let causal = scaledDotProductAttention(query: q, key: q, value: v.sliced(axis: 1, start: 0, end: 3), causal: true)
        expectClose(causal[0][0], v[0][0].scalars, atol: 1e-6, rtol: 1e-6)
        // A boolean mask that hides all but one key selects that key's value.
        let mask = Tensor([false, false, true, false, false]).reshaped(1, 1, 5)
        expectClose(scaledDotProductAttention(query: q, key: k, value: v, mask: mask)[1][2], v[1][2].scalars, atol: 1e-6, rtol: 1e-6)
    }

    @Test func attentionGradients() {
        checkGradients([random([1, 3, 4], seed: 4), random([1, 5, 4], seed: 5), random([1, 5, 2], seed: 6)], "attention") {
            scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2])
        }
        checkGradients([random([2, 3, 4], seed: 7)], "causal self-attention") {
            scaledDotProductAttention(query: $0[0], key: $0[0], value: $0[0], causal: true)
        }
    }

    /// Rank-4 float32 attention without a mask runs fused (no scores in memory): the same
    /// values as the composite path (forced by an all-true mask), with query blocks that do
    /// not divide the length, key and value sizes that are not multiples of 8, and heads as
    /// strided views of [B, L, H, D]; gradients against finite differences.
    @Test func fusedAttention() {
        let (b, h, lq, lk, d, dv) = (2, 3, 70, 37, 8, 5)
        let q = random([b, lq, h, d], seed: 11).permuted(0, 2, 1, 3)
        let k = random([b, lk, h, d], seed: 12).permuted(0, 2, 1, 3)
        let v = random([b, h, lk, dv], seed: 13)
        let fused = scaledDotProductAttention(query: q, key: k, value: v)
        let all = Tensor([Bool](repeating: true, count: lk)).reshaped(1, 1, 1, lk)
        let composite = scaledDotProductAttention(query: q, key: k, value: v, mask: all)
        #expect(fused.shape == [b, h, lq, dv])
        expectClose(fused, composite.scalars, atol: 1e-5, rtol: 1e-5)
        let (_, fg) = valueAndGradient(at: [q, k, v]) { x in scaledDotProductAttention(query: x[0], key: x[1], value: x[2]).square().sum() }
        let (_, cg) = valueAndGradient(at: [q, k, v]) { x in
            scaledDotProductAttention(query: x[0], key: x[1], value: x[2], mask: all).square().sum()
        }
        for i in 0..<3 { expectClose(fg[i], cg[i].scalars, atol: 1e-4, rtol: 1e-4) }
        checkGradients([random([1, 3, 2, 4], seed: 14).permuted(0, 2, 1, 3), random([1, 2, 5, 4], seed: 15),
                        random([1, 2, 5, 3], seed: 16)], "fused attention") {
            scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2])
        }
    }

    /// Long key sequences: the forward runs over key steps that keep a query block's scores
    /// and V's part in L2 (several steps, the last not a whole key block), with the softmax
    /// online across them: the same values and log-sum-exp as the composite path, at widths
    /// that make few steps and many, and with keys whose scores grow 40-fold in the last
    /// steps or shrink there (each way of joining a step's maxima to the running ones).
    @Test(arguments: [40, 128]) func fusedAttentionOverLongKeySequences(width: Int) {
        let (b, h, lq, lk) = (1, 2, 70, 1000)
        let steps = FusedAttention.keySteps(lk, width: width)
        #expect(steps.count > 2 && steps.first?.0 == 0 && steps.last.map { $0.0 + $0.1 } == lk)
        #expect(zip(steps, steps.dropFirst()).allSatisfy { $0.0 + $0.1 == $1.0 })
        #expect(steps.allSatisfy { $0.1 * Swift.max(width, FusedAttention.queryBlock) * 4 <= FusedAttention.stepBytes })
        #expect(steps.allSatisfy { $0.0 % FusedAttention.keyBlock == 0 })
        #expect(FusedAttention.keySteps(256, width: 32).count == 1)
        // Empty sequences are not the kernels' (the composite path takes them).
        #expect(!FusedAttention.supports(random([1, 2, 0, 8]), random([1, 2, 5, 8]), random([1, 2, 5, 8])))
        #expect(!FusedAttention.supports(random([1, 2, 3, 8]), random([1, 2, 0, 8]), random([1, 2, 0, 8])))
        #expect(scaledDotProductAttention(query: random([1, 2, 0, 8]), key: random([1, 2, 5, 8]), value: random([1, 2, 5, 8])).shape == [1, 2, 0, 8])
        #expect(scaledDotProductAttention(query: random([1, 2, 3, 8]), key: random([1, 2, 0, 8]), value: random([1, 2, 0, 8])).shape == [1, 2, 3, 8])
        let q = random([b, lq, h, width], seed: 21).permuted(0, 2, 1, 3)
        let v = random([b, lk, h, width], seed: 23).permuted(0, 2, 1, 3)
        let ramp = Tensor((0..<lk).map { Float($0 < lk - 300 ? 1 : 40) }, shape: [1, 1, lk, 1])
        let fall = Tensor((0..<lk).map { Float($0 < 300 ? 40 : 1) }, shape: [1, 1, lk, 1])
        let all = Tensor([Bool](repeating: true, count: lk)).reshaped(1, 1, 1, lk)
        for growth in [nil, ramp, fall] {
            var k = random([b, lk, h, width], seed: 22).permuted(0, 2, 1, 3)
            if let growth { k = k * growth }
            let fused = scaledDotProductAttention(query: q, key: k, value: v)
            let composite = scaledDotProductAttention(query: q, key: k, value: v, mask: all)
            #expect(fused.scalars.allSatisfy { $0.isFinite })
            expectClose(fused, composite.scalars, atol: 1e-5, rtol: 1e-4)
            let (_, lse) = FusedAttention.forward(q, k, v, scale: 1 / Float(width).squareRoot())
            let scores = q.matmul(k.transposed(2, 3)) * (1 / Float(width).squareRoot())
            let m = scores.max(axes: [3], keepDims: true)
            expectClose(lse, ((scores - m).exp().sum(axes: [3]).log() + m.reshaped(b, h, lq)).scalars, atol: 1e-4, rtol: 1e-5)
        }
    }

    @Test func upsampleAndPool() {
        let x = Tensor([1, 2, 3, 4], shape: [1, 1, 2, 2])
        #expect(x.upsampledNearest().scalars == [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4])
        let img = random([2, 8, 4, 6])
        let up = img.channelsLast().upsampledNearest()
        #expect(up.isChannelsLast && up.scalars == img.upsampledNearest().scalars)
        #expect(up.avgPooled(kernel: 2).scalars == img.channelsLast().scalars)
        let p = Tensor((0..<16).map(Float.init), shape: [1, 1, 4, 4]).avgPooled(kernel: 2)
        #expect(p.scalars == [2.5, 4.5, 10.5, 12.5])
        #expect(Tensor((0..<25).map(Float.init), shape: [1, 1, 5, 5]).avgPooled(kernel: 3, stride: 2).scalars == [6, 8, 16, 18])
        checkGradients([random([1, 2, 3, 2], seed: 9)], "upsample") { $0[0].upsampledNearest(scale: 2) }
        checkGradients([random([1, 2, 4, 6], seed: 10)], "avgPool") { $0[0].avgPooled(kernel: 2) }
    }
}
