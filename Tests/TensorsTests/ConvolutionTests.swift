import Testing
import Tensors

/// Direct convolution in Double (PyTorch's definition: cross-correlation, symmetric padding).
func referenceConv2d(_ x: Tensor, _ w: Tensor, bias: Tensor?, stride: Int2, padding: Int2, dilation: Int2, groups: Int) -> [Float] {
    let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (o, cg, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3])
    let oh = (h + 2 * padding.h - dilation.h * (kh - 1) - 1) / stride.h + 1
    let ow = (wd + 2 * padding.w - dilation.w * (kw - 1) - 1) / stride.w + 1
    let xv = x.scalars, wv = w.scalars, bv = bias?.scalars
    let og = o / groups
    var out = [Float](repeating: 0, count: n * o * oh * ow)
    for b in 0..<n {
        for oc in 0..<o {
            let g = oc / og
            for i in 0..<oh {
                for j in 0..<ow {
                    var s = Double(bv?[oc] ?? 0)
                    for ci in 0..<cg {
                        for u in 0..<kh {
                            for v in 0..<kw {
                                let y = i * stride.h + u * dilation.h - padding.h, xx = j * stride.w + v * dilation.w - padding.w
                                guard y >= 0 && y < h && xx >= 0 && xx < wd else { continue }
                                s += Double(xv[((b * c + g * cg + ci) * h + y) * wd + xx]) * Double(wv[((oc * cg + ci) * kh + u) * kw + v])
                            }
                        }
                    }
                    out[((b * o + oc) * oh + i) * ow + j] = Float(s)
                }
            }
        }
    }
    return out
}

/// Convolution algorithms are forced one at a time here (the preference is global).
@Suite(.serialized) struct ConvolutionTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let input: [Int], out: Int, kernel: Int2, stride: Int2, padding: Int2, dilation: Int2, groups: Int
        var testDescription: String { "\(input)->\(out) k\(kernel) s\(stride) p\(padding) d\(dilation) g\(groups)" }
    }

    static let cases: [Case] = [
        Case(input: [2, 8, 9, 7], out: 16, kernel: 3, stride: 1, padding: 1, dilation: 1, groups: 1),
        Case(input: [1, 16, 8, 8], out: 8, kernel: 3, stride: 2, padding: 1, dilation: 1, groups: 1),
        Case(input: [2, 3, 10, 10], out: 8, kernel: 3, stride: 1, padding: 0, dilation: 1, groups: 1),
        Case(input: [2, 8, 6, 6], out: 40, kernel: 1, stride: 1, padding: 0, dilation: 1, groups: 1),
        Case(input: [1, 8, 9, 9], out: 8, kernel: 3, stride: 1, padding: 2, dilation: 2, groups: 1),
        Case(input: [2, 8, 7, 5], out: 16, kernel: Int2(3, 1), stride: Int2(1, 2), padding: Int2(1, 0), dilation: 1, groups: 4),
        Case(input: [1, 40, 5, 5], out: 33, kernel: 3, stride: 1, padding: 1, dilation: 1, groups: 1),
        // Wide rows: LIBXSMM reads the input in place and computes border columns singly.
        Case(input: [1, 8, 6, 40], out: 16, kernel: 3, stride: 1, padding: 1, dilation: 1, groups: 1),
        Case(input: [1, 8, 5, 80], out: 8, kernel: 3, stride: 2, padding: 1, dilation: 1, groups: 1),
        // Every axis its own kernel, stride, padding and dilation (im2col's unfolding and folding).
        Case(input: [2, 6, 7, 9], out: 10, kernel: Int2(3, 2), stride: Int2(2, 1), padding: Int2(1, 2), dilation: Int2(1, 2), groups: 1),
    ]

    static func inputs(_ c: Case, seed: UInt64) -> (Tensor, Tensor, Tensor) {
        (random(c.input, seed: seed), random([c.out, c.input[1] / c.groups, c.kernel.h, c.kernel.w], -0.5, 0.5, seed: seed + 1),
         random([c.out], seed: seed + 2))
    }

    /// Every algorithm that applies gives the direct convolution's values.
    @Test(arguments: cases)
    func forwardMatchesDirectConvolution(c: Case) {
        let (x, w, b) = Self.inputs(c, seed: 1)
        let want = referenceConv2d(x, w, bias: b, stride: c.stride, padding: c.padding, dilation: c.dilation, groups: c.groups)
        for algorithm in [nil] + ConvolutionAlgorithm.allCases {
            let y = ConvolutionAlgorithm.with(order: algorithm.map { [$0, .onednn] } ?? []) {
                conv2d(x, w, bias: b, stride: c.stride, padding: c.padding, dilation: c.dilation, groups: c.groups)
            }
            #expect(y.isChannelsLast)
            expectClose(y, want, atol: 1e-4, rtol: 1e-4, "\(algorithm?.rawValue ?? "automatic")")
        }
    }

    /// Gradients of input, weight and bias against finite differences, for each algorithm.
    @Test(arguments: [cases[0], cases[1], cases[4], cases[5], cases[7], cases[9]])
    func gradients(c: Case) {
        let small = Case(input: [1, c.input[1], Swift.min(c.input[2], 6), Swift.min(c.input[3], 5)], out: Swift.min(c.out, 8),
                         kernel: c.kernel, stride: c.stride, padding: c.padding, dilation: c.dilation, groups: c.groups)
        let (x, w, b) = Self.inputs(small, seed: 7)
        for algorithm in [nil] + ConvolutionAlgorithm.allCases {
            ConvolutionAlgorithm.with(order: algorithm.map { [$0, .onednn] } ?? []) {
                checkGradients([x, w, b], "\(algorithm?.rawValue ?? "automatic")") {
                    conv2d($0[0], $0[1], bias: $0[2], stride: small.stride, padding: small.padding, dilation: small.dilation, groups: small.groups)
                }
            }
        }
    }

    /// Residual and SiLU fused into the kernel equal the separate ops, with and without a tape.
    @Test func fusedResidualAndActivation() {
        let x = random([2, 8, 6, 6], seed: 3), w = random([8, 8, 3, 3], -0.3, 0.3, seed: 4)
        let b = random([8], seed: 5), r = random([2, 8, 6, 6], seed: 6)
        let separate = (conv2d(x, w, bias: b, padding: 1) + r).silu()
        for algorithm in [nil] + ConvolutionAlgorithm.allCases {
            expectClose(ConvolutionAlgorithm.with(order: algorithm.map { [$0, .onednn] } ?? []) { conv2d(x, w, bias: b, padding: 1, residual: r, activation: .silu) },
                        separate, atol: 1e-5, rtol: 1e-5)
        }
        checkGradients([random([1, 8, 4, 4], seed: 8), random([1, 8, 4, 4], seed: 9)], "residual + silu") {
            conv2d($0[0], w, bias: b, padding: 1, residual: $0[1], activation: .silu)
        }
    }

    @Test func bfloat16() {
        let x = random([2, 8, 6, 6], seed: 3).to(.bfloat16), w = random([8, 8, 3, 3], -0.3, 0.3, seed: 4).to(.bfloat16)
        let y = conv2d(x, w, padding: 1)
        #expect(y.dtype == .bfloat16)
        // The sum of 72 products of bf16 values, accumulated in fp32 (error < 1e-5 here) and
        // rounded once to bf16: within half a bf16 ulp (2^-8 relative) of the exact value,
        // on AVX-512 BF16 (native) and AVX2 (widened to fp32) alike.
        let want = referenceConv2d(x.to(.float32), w.to(.float32), bias: nil, stride: 1, padding: 1, dilation: 1, groups: 1)
        expectClose(y.to(.float32), want, atol: 1e-5, rtol: 1.0 / 256)
        // The fp32 convolution of the same values, rounded to bf16: equal or one ulp (2^-7) apart.
        expectClose(y.to(.float32), conv2d(x.to(.float32), w.to(.float32), padding: 1).to(.bfloat16).to(.float32), atol: 1e-5, rtol: 1.0 / 128)
        // Every algorithm timing may choose gives the same bf16 output (im2col's product on a
        // CPU without bf16 once asked oneDNN for an fp32 matmul writing bf16: only a reference
        // kernel, refused, a crash when timing picked it).
        for algorithm in ConvolutionAlgorithm.allCases {
            let forced = ConvolutionAlgorithm.with(order: [algorithm, .onednn]) { conv2d(x, w, padding: 1) }
            #expect(forced.dtype == .bfloat16)
            expectClose(forced.to(.float32), want, atol: 1e-5, rtol: 1.0 / 256)
        }
    }
}
