import Testing
@testable import Tensors

/// The bias gradient of `TapGEMMConvolution.backwardWeightsAMX`, summed while dL/dy is packed
/// for the tiles (per group of 16 blocks of points, then the groups in order): against float64
/// sums of the same bf16 values, with several groups and a part-filled last block, and through
/// a layer's backward pass (`conv2d` with a bias, the algorithm forced).
@Suite(.enabled(if: TapGEMMConvolution.amxAvailable, "needs AMX")) struct AMXTapsTests {
    @Test func biasGradientIsTheSumOfDy() {
        // 4 x 42 x 42 padded points: 221 blocks of 32, fourteen groups, the last part-filled.
        let g = ConvGeometry(batch: 4, inChannels: 32, height: 40, width: 40, outChannels: 64, kernelH: 3, kernelW: 3,
                             strideH: 1, strideW: 1, padH: 1, padW: 1, dilationH: 1, dilationW: 1, groups: 1)
        let x = random(g.inputShape, seed: 3).to(.bfloat16).channelsLast()
        let gy = random(g.outputShape, seed: 4).to(.bfloat16).channelsLast()
        let (gw, bias) = TapGEMMConvolution.backwardWeightsAMX(x, gy, g, bias: true)
        let (gwAlone, none) = TapGEMMConvolution.backwardWeightsAMX(x, gy, g, bias: false)
        #expect(none == nil)
        #expect(gw.scalars.map(\.bitPattern) == gwAlone.scalars.map(\.bitPattern), "the sums change the weight gradient")
        let sums = try! #require(bias)
        #expect(sums.shape == [64] && sums.dtype == .float32)
        let dy = gy.to(.float32).contiguous().scalars, plane = 40 * 40
        for ch in 0..<64 {
            var want = 0.0, magnitude = 0.0
            for n in 0..<4 {
                for p in 0..<plane {
                    let v = Double(dy[(n * 64 + ch) * plane + p])
                    want += v
                    magnitude += Swift.abs(v)
                }
            }
            #expect(Swift.abs(Double(sums.scalars[ch]) - want) <= 1e-6 * magnitude, "channel \(ch): \(sums.scalars[ch]) vs \(want)")
        }
    }

    @Test func layerBackwardUsesIt() {
        let x = random([2, 32, 12, 12], seed: 5).to(.bfloat16)
        let w = random([32, 32, 3, 3], seed: 6).to(.bfloat16)
        let b = random([32], seed: 7)
        let r = random([2, 32, 12, 12], seed: 8)
        let (grads, runs) = ConvolutionAlgorithm.recording {
            ConvolutionAlgorithm.with(order: [.amxTaps, .onednn]) {
                valueAndGradient(at: [x, w, b]) { t in (conv2d(t[0], t[1], bias: t[2], padding: 1).to(.float32) * r).sum() }.gradients
            }
        }
        #expect(runs.contains { $0.pass == .backwardWeights && $0.algorithm == .amxTaps }, "\(runs)")
        let rb = r.to(.bfloat16).to(.float32).scalars
        for ch in 0..<32 {
            var want = 0.0
            for n in 0..<2 { for p in 0..<144 { want += Double(rb[(n * 32 + ch) * 144 + p]) } }
            #expect(Swift.abs(Double(grads[2].to(.float32).scalars[ch]) - want) <= 1e-3 * Swift.max(1, Swift.abs(want)), "channel \(ch)")
        }
    }
}
