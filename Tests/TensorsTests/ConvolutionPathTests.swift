import Synchronization
import Testing
@testable import Tensors

/// A convolution of the kinds a U-Net runs: groups 1, dilation 1, padding 1 for 3x3 and 0 for
/// 1x1 (so 3x3 stride 1 keeps the size and stride 2 halves it, rounding up).
struct UNetConv: Hashable, Sendable, CustomTestStringConvertible {
    let batch, channels, height, width, out, kernel, stride: Int

    init(_ input: [Int], _ out: Int, k kernel: Int, s stride: Int = 1) {
        (batch, channels, height, width) = (input[0], input[1], input[2], input[3])
        (self.out, self.kernel, self.stride) = (out, kernel, stride)
    }

    var padding: Int { kernel / 2 }
    var outH: Int { (height + 2 * padding - kernel) / stride + 1 }
    var outW: Int { (width + 2 * padding - kernel) / stride + 1 }
    var input: [Int] { [batch, channels, height, width] }
    var weight: [Int] { [out, channels, kernel, kernel] }
    var output: [Int] { [batch, out, outH, outW] }
    var testDescription: String { "\(batch)x\(channels)x\(height)x\(width)->\(out) k\(kernel) s\(stride)" }

    /// The U-Net layer kind this convolution is, and its batch class (1, or a training batch).
    var shapeClass: ConvShapeClass {
        let kind: ConvShapeClass.Kind
        if kernel == 1 { kind = .shortcut }
        else if stride == 2 { kind = .downsample }
        else if channels <= 4 { kind = .convIn }
        else if out <= 4 { kind = .convOut }
        else if channels == out { kind = .same }
        else { kind = .change }
        return ConvShapeClass(kind: kind, batch: batch == 1 ? 1 : 64)
    }

    /// What can compute `pass` in `dtype` (the list timing chooses from).
    func candidates(_ pass: ConvolutionPass, _ dtype: DType) -> [ConvolutionAlgorithm] {
        ConvolutionAlgorithm.candidates(pass, input: input, weight: weight, stride: Int2(stride), padding: Int2(padding), dtype: dtype)
    }
}

/// A class of U-Net convolutions: the layer kind and the batch (1 when sampling one image,
/// 64 for training batches and batched sampling).
struct ConvShapeClass: Hashable, Sendable, CustomStringConvertible {
    enum Kind: String, CaseIterable, Sendable {
        case same = "3x3 C->C (resnet, mid, upsample)"
        case change = "3x3 C->C' (resnet entry, skip concat)"
        case downsample = "3x3 stride 2 (downsample)"
        case shortcut = "1x1 C->C' (resnet shortcut)"
        case convIn = "3x3 few->C (conv_in)"
        case convOut = "3x3 C->few (conv_out)"
    }
    let kind: Kind
    let batch: Int
    var description: String { "\(kind.rawValue), batch \(batch)" }
    static var all: [ConvShapeClass] { Kind.allCases.flatMap { k in [1, 64].map { ConvShapeClass(kind: k, batch: $0) } } }
}

/// One (pass, algorithm, dtype, shape class) that timing can choose.
struct ConvCombination: Hashable, Sendable, CustomStringConvertible {
    let pass: ConvolutionPass, algorithm: ConvolutionAlgorithm, dtype: DType, shapeClass: ConvShapeClass
    var description: String { "\(pass.rawValue) \(algorithm.rawValue) \(dtype) [\(shapeClass)]" }
}

/// The convolutions of diffusers' UNet2DModel (conv_in, resnets with 1x1 shortcuts where the
/// channels change, stride-2 downsamples, upsample convs after nearest 2x, conv_out).
enum UNetConvolutions {
    static func convs(blocks: [Int], inChannels: Int, outChannels: Int, layers: Int, size: Int, batch: Int) -> [UNetConv] {
        var list: [UNetConv] = []
        func resnet(_ c: Int, _ o: Int, _ s: Int) {
            list.append(UNetConv([batch, c, s, s], o, k: 3))
            list.append(UNetConv([batch, o, s, s], o, k: 3))
            if c != o { list.append(UNetConv([batch, c, s, s], o, k: 1)) }
        }
        var sizes = [size]
        list.append(UNetConv([batch, inChannels, size, size], blocks[0], k: 3))
        var skips = [blocks[0]]
        var prev = blocks[0]
        for (i, o) in blocks.enumerated() {
            for j in 0..<layers { resnet(j == 0 ? prev : o, o, sizes[i]); skips.append(o) }
            prev = o
            if i < blocks.count - 1 {
                list.append(UNetConv([batch, o, sizes[i], sizes[i]], o, k: 3, s: 2))
                sizes.append((sizes[i] + 1) / 2)
                skips.append(o)
            }
        }
        resnet(prev, prev, sizes.last!)
        resnet(prev, prev, sizes.last!)
        for (i, o) in blocks.reversed().enumerated() {
            let s = sizes[blocks.count - 1 - i]
            for _ in 0...layers { resnet(prev + skips.removeLast(), o, s); prev = o }
            if i < blocks.count - 1 { list.append(UNetConv([batch, o, 2 * s, 2 * s], o, k: 3)) }
        }
        list.append(UNetConv([batch, blocks[0], size, size], outChannels, k: 3))
        return list
    }

    /// Every convolution of the U-Nets Diffuse runs: shared/bench's unet-small-1ch (32-64-128,
    /// 1 channel; also at Fashion-MNIST's 28 px: 28, 14, 7, 4) and ddpm-cifar10-32
    /// (128-256-256-256, RGB), and a 512-channel latent U-Net (128-256-512-512, 4 channels),
    /// at 32 and 64 px, batch 1 and 64.
    static var all: [UNetConv] {
        var list: [UNetConv] = []
        for batch in [1, 64] {
            for size in [28, 32, 64] { list += convs(blocks: [32, 64, 128], inChannels: 1, outChannels: 1, layers: 2, size: size, batch: batch) }
            for size in [32, 64] {
                list += convs(blocks: [128, 256, 256, 256], inChannels: 3, outChannels: 3, layers: 2, size: size, batch: batch)
                list += convs(blocks: [128, 256, 512, 512], inChannels: 4, outChannels: 4, layers: 2, size: size, batch: batch)
            }
        }
        return list
    }
}

/// Every (pass, algorithm, dtype) that timing can choose, forced one at a time at the U-Net's
/// real shapes, against a float64 direct convolution sampled at a few hundred elements.
@Suite(.serialized) struct ConvolutionPathTests {
    /// The dtypes the CPU convolves in: bf16 only with AVX-512 BF16 (elsewhere bf16 inputs are
    /// widened and convolved in fp32, so no bf16 combination is reachable).
    static let dtypes: [DType] = ConvolutionKernel.bf16Supported ? [.float32, .bfloat16] : [.float32]

    /// Two to four shapes per class: 512 channels at 4-8 px, 32-64 channels at 32-64 px,
    /// batch 64 at 32-384 channels, odd sizes (7, 15, 31) for partial tiles and blocks, and
    /// 4-channel latents (even channel counts: bf16 Winograd's GEMMs reduce over pairs).
    static let cases: [UNetConv] = [
        // batch 1
        UNetConv([1, 512, 8, 8], 512, k: 3), UNetConv([1, 64, 64, 64], 64, k: 3), UNetConv([1, 32, 15, 15], 32, k: 3),
        UNetConv([1, 512, 4, 4], 256, k: 3), UNetConv([1, 32, 64, 64], 64, k: 3), UNetConv([1, 96, 31, 31], 32, k: 3),
        UNetConv([1, 64, 64, 64], 64, k: 3, s: 2), UNetConv([1, 256, 15, 15], 256, k: 3, s: 2),
        UNetConv([1, 512, 8, 8], 256, k: 1), UNetConv([1, 96, 31, 31], 32, k: 1),
        UNetConv([1, 1, 32, 32], 32, k: 3), UNetConv([1, 3, 15, 15], 128, k: 3),
        UNetConv([1, 32, 32, 32], 1, k: 3), UNetConv([1, 128, 15, 15], 3, k: 3),
        UNetConv([1, 4, 32, 32], 128, k: 3), UNetConv([1, 128, 32, 32], 4, k: 3),
        // batch 64
        UNetConv([64, 128, 8, 8], 128, k: 3), UNetConv([64, 32, 32, 32], 32, k: 3), UNetConv([64, 256, 4, 4], 256, k: 3),
        UNetConv([64, 64, 16, 16], 128, k: 3), UNetConv([64, 256, 7, 7], 128, k: 3),
        UNetConv([64, 64, 32, 32], 64, k: 3, s: 2), UNetConv([64, 128, 15, 15], 128, k: 3, s: 2),
        // unet-small's downsample at 28 px and its 8x8 resnet entry: small enough for im2col.
        UNetConv([64, 64, 14, 14], 64, k: 3, s: 2), UNetConv([64, 64, 8, 8], 128, k: 3),
        UNetConv([64, 128, 16, 16], 64, k: 1), UNetConv([64, 384, 8, 8], 256, k: 1),
        UNetConv([64, 3, 32, 32], 32, k: 3), UNetConv([64, 1, 28, 28], 32, k: 3),
        UNetConv([64, 32, 32, 32], 3, k: 3), UNetConv([64, 4, 16, 16], 128, k: 3), UNetConv([64, 128, 16, 16], 4, k: 3),
    ]

    /// The combinations the cases run (each asserted, by `recording`, to have run).
    static func combinations(of convs: [UNetConv]) -> Set<ConvCombination> {
        var set = Set<ConvCombination>()
        for c in convs {
            for dtype in dtypes {
                for pass in ConvolutionPass.allCases {
                    for a in c.candidates(pass, dtype) {
                        set.insert(ConvCombination(pass: pass, algorithm: a, dtype: dtype, shapeClass: c.shapeClass))
                    }
                }
            }
        }
        return set
    }

    /// The worst errors seen, per (pass, algorithm, dtype), for the report.
    static let measured = Mutex<[String: Double]>([:])

    // MARK: Sampled float64 references

    /// y[n, o, i, j] and the sum of the |products| it adds (the scale of its rounding).
    static func forward(_ x: [Float], _ w: [Float], _ c: UNetConv, _ e: Int) -> (Double, Double) {
        let j = e % c.outW, i = e / c.outW % c.outH, o = e / (c.outW * c.outH) % c.out, n = e / (c.outW * c.outH * c.out)
        var s = 0.0, a = 0.0
        for ci in 0..<c.channels {
            for u in 0..<c.kernel {
                let yy = i * c.stride + u - c.padding
                guard yy >= 0 && yy < c.height else { continue }
                for v in 0..<c.kernel {
                    let xx = j * c.stride + v - c.padding
                    guard xx >= 0 && xx < c.width else { continue }
                    let t = Double(x[((n * c.channels + ci) * c.height + yy) * c.width + xx]) * Double(w[((o * c.channels + ci) * c.kernel + u) * c.kernel + v])
                    s += t
                    a += abs(t)
                }
            }
        }
        return (s, a)
    }

    /// dL/dx[n, ci, yy, xx] for dL/dy = r.
    static func gradInput(_ r: [Float], _ w: [Float], _ c: UNetConv, _ e: Int) -> (Double, Double) {
        let xx = e % c.width, yy = e / c.width % c.height, ci = e / (c.width * c.height) % c.channels
        let n = e / (c.width * c.height * c.channels)
        var s = 0.0, a = 0.0
        for o in 0..<c.out {
            for u in 0..<c.kernel {
                let iy = yy + c.padding - u
                guard iy >= 0 && iy % c.stride == 0 && iy / c.stride < c.outH else { continue }
                for v in 0..<c.kernel {
                    let ix = xx + c.padding - v
                    guard ix >= 0 && ix % c.stride == 0 && ix / c.stride < c.outW else { continue }
                    let t = Double(r[((n * c.out + o) * c.outH + iy / c.stride) * c.outW + ix / c.stride])
                        * Double(w[((o * c.channels + ci) * c.kernel + u) * c.kernel + v])
                    s += t
                    a += abs(t)
                }
            }
        }
        return (s, a)
    }

    /// dL/dw[o, ci, u, v] for dL/dy = r.
    static func gradWeight(_ x: [Float], _ r: [Float], _ c: UNetConv, _ e: Int) -> (Double, Double) {
        let v = e % c.kernel, u = e / c.kernel % c.kernel, ci = e / (c.kernel * c.kernel) % c.channels
        let o = e / (c.kernel * c.kernel * c.channels)
        var s = 0.0, a = 0.0
        for n in 0..<c.batch {
            for i in 0..<c.outH {
                let yy = i * c.stride + u - c.padding
                guard yy >= 0 && yy < c.height else { continue }
                let xRow = ((n * c.channels + ci) * c.height + yy) * c.width, rRow = ((n * c.out + o) * c.outH + i) * c.outW
                for j in 0..<c.outW {
                    let xx = j * c.stride + v - c.padding
                    guard xx >= 0 && xx < c.width else { continue }
                    let t = Double(x[xRow + xx]) * Double(r[rRow + j])
                    s += t
                    a += abs(t)
                }
            }
        }
        return (s, a)
    }

    /// Checks `got` at `samples` random elements against `reference`:
    /// |got - ref| <= tolerance * sum|products| + rounding * |ref|. Returns the worst
    /// |got - ref| / sum|products| seen.
    static func check(_ got: [Float], samples: Int = 256, seed: UInt64, tolerance: Double, rounding: Double, _ what: String,
                      reference: (Int) -> (Double, Double)) -> Double {
        var data = TestData(seed: seed)
        var worst = 0.0, worstCloseness = 0.0, detail = ""
        for _ in 0..<samples {
            let e = Swift.min(got.count - 1, Int(data.next() * Float(got.count)))
            let (want, scale) = reference(e)
            let err = abs(Double(got[e]) - want)
            worst = Swift.max(worst, err / Swift.max(scale, 1e-30))
            let closeness = err / (tolerance * scale + rounding * abs(want) + 1e-30)
            if closeness > worstCloseness { worstCloseness = closeness; detail = "element \(e): \(got[e]) vs \(want) (scale \(scale))" }
        }
        #expect(worstCloseness <= 1, "\(what): \(detail)")
        return worst
    }

    /// Runs forward and backward of `c` (loss sum(y * r), so dL/dy = r) with `algorithm` forced
    /// (strictly where it computes every pass, else falling back to oneDNN), checks which
    /// algorithm ran each pass, and checks each pass against the sampled references.
    /// `weightType` float32 with a bf16 `dtype` is mixed precision as the layers run it: the
    /// weights are float32 masters (of bf16-representable values here, so that the reference
    /// is exact), converted inside the kernel, and their gradient stays float32.
    static func runAndCheck(_ c: UNetConv, dtype: DType, weightType: DType? = nil) {
        let seed = UInt64(((c.batch * 1031 + c.channels) * 1031 + c.height) * 1031 + c.out) &* 4 + UInt64(c.kernel + c.stride)
        // Inputs rounded to the dtype first: the reference convolves the same values.
        let weightType = weightType ?? dtype
        let x = random(c.input, seed: seed).to(dtype), w = random(c.weight, -0.5, 0.5, seed: seed + 1).to(dtype).to(weightType)
        let r = random(c.output, seed: seed + 2).to(dtype)
        let (xv, wv, rv) = (x.to(.float32).scalars, w.to(.float32).scalars, r.to(.float32).scalars)
        // Tolerances, relative to sum|products| of each element (the scale of fp32 rounding in a
        // dot product), measured on AMD EPYC (AVX-512 BF16) over every case: oneDNN, its dual and
        // LIBXSMM at most 2.5e-7 (allowed 2e-6), Winograd F(4x4, 3x3) 2.3e-6, kept or streamed (its transforms mix
        // a 6x6 tile; allowed 2e-5). bf16: inputs and dL/dy are bf16 values, oneDNN accumulates in
        // fp32 and each result is rounded once to bf16, so half a bf16 ulp (2^-8 of |value|) more;
        // measured worst 3.1e-3 of sum|products|, all within 2^-8 |value| + 2e-6 sum|products|.
        // Winograd with bf16 GEMMs rounds its transformed operands to bf16 too: worst 1.8e-2
        // (forward) and 2.0e-2 (backward-data) of sum|products| at 16+ channels; allowed 3e-2.
        let bf16 = dtype == .bfloat16
        let rounding = bf16 ? 1.0 / 256 : 0
        // Candidates as each algorithm's forced run sees them (forcing `winograd-bf16` allows it).
        func candidates(_ pass: ConvolutionPass, forcing a: ConvolutionAlgorithm) -> [ConvolutionAlgorithm] {
            ConvolutionAlgorithm.with(order: [a, .onednn]) { c.candidates(pass, dtype) }
        }
        let algorithms = ConvolutionAlgorithm.allCases.filter { a in ConvolutionPass.allCases.contains { candidates($0, forcing: a).contains(a) } }
        for algorithm in algorithms {
            let everywhere = ConvolutionPass.allCases.allSatisfy { candidates($0, forcing: algorithm).contains(algorithm) }
            var y: Tensor?
            let body: () -> [Tensor] = {
                valueAndGradient(at: [x, w]) { xs in
                    let out = conv2d(xs[0], xs[1], stride: Int2(c.stride), padding: Int2(c.padding))
                    y = out
                    return (out * r).sum()
                }.gradients
            }
            let (grads, runs) = ConvolutionAlgorithm.recording {
                everywhere ? ConvolutionAlgorithm.with(algorithm, body) : ConvolutionAlgorithm.with(order: [algorithm, .onednn], body)
            }
            let label = "\(c.testDescription) \(dtype) \(algorithm.rawValue)"
            #expect(runs.map(\.pass) == [.forward, .backwardData, .backwardWeights], "\(label): \(runs)")
            for run in runs {
                let expected: ConvolutionAlgorithm = candidates(run.pass, forcing: algorithm).contains(algorithm) ? algorithm : .onednn
                #expect(run.algorithm == expected && run.dtype == dtype, "\(label): \(run)")
                #expect(run.candidates == candidates(run.pass, forcing: algorithm), "\(label): \(run.candidates)")
            }
            guard let y else { Issue.record("\(label): no output"); continue }
            #expect(y.shape == c.output && y.dtype == dtype && grads[0].dtype == dtype && grads[1].dtype == weightType)
            for (pass, got, reference) in [
                (ConvolutionPass.forward, y, { forward(xv, wv, c, $0) }),
                (.backwardData, grads[0], { gradInput(rv, wv, c, $0) }),
                (.backwardWeights, grads[1], { gradWeight(xv, rv, c, $0) }),
            ] as [(ConvolutionPass, Tensor, (Int) -> (Double, Double))] {
                let ran = candidates(pass, forcing: algorithm).contains(algorithm) ? algorithm : .onednn
                let tolerance = ran == .winogradBF16 ? 3e-2 : ran == .winograd || ran == .winogradStreamed ? 2e-5 : 2e-6
                let worst = check(got.to(.float32).scalars, seed: seed + 7, tolerance: tolerance, rounding: rounding,
                                  "\(label) \(pass.rawValue)", reference: reference)
                measured.withLock { $0["\(pass.rawValue) \(ran.rawValue) \(dtype)", default: 0] = Swift.max($0["\(pass.rawValue) \(ran.rawValue) \(dtype)", default: 0], worst) }
            }
        }
    }

    @Test(arguments: cases)
    func float32PathsMatchReference(_ c: UNetConv) {
        Self.runAndCheck(c, dtype: .float32)
    }

    @Test(.enabled(if: ConvolutionKernel.bf16Supported, "this CPU has no native bf16 convolution (no avx512_bf16): bf16 inputs are widened to fp32"),
          arguments: cases)
    func bfloat16PathsMatchReference(_ c: UNetConv) {
        Self.runAndCheck(c, dtype: .bfloat16)
    }

    @Test(.enabled(if: ConvolutionKernel.bf16Supported, "this CPU has no native bf16 convolution (no avx512_bf16): bf16 inputs are widened to fp32"),
          arguments: cases)
    func mixedPrecisionPathsMatchReference(_ c: UNetConv) {
        Self.runAndCheck(c, dtype: .bfloat16, weightType: .float32)
    }

    /// Where the CPU has no bf16 convolution, bf16 inputs run the fp32 paths (tested above), so
    /// no bf16 combination is reachable; where it has one, bf16 runs in bf16.
    @Test func bfloat16Reachability() {
        let x = random([2, 16, 8, 8], seed: 5).to(.bfloat16), w = random([16, 16, 3, 3], seed: 6).to(.bfloat16)
        let (_, runs) = ConvolutionAlgorithm.recording { conv2d(x, w, padding: 1) }
        #expect(runs.count == 1 && runs.allSatisfy { $0.dtype == (ConvolutionKernel.bf16Supported ? .bfloat16 : .float32) }, "\(runs)")
        if !ConvolutionKernel.bf16Supported {
            print("ConvolutionPathTests: no bf16 convolution on this CPU; the bf16 combinations are not reachable and not run")
        }
    }

    /// Every combination timing can choose at a U-Net shape is one the cases run.
    @Test func casesCoverEveryCombinationOfTheUNets() {
        let tested = Self.combinations(of: Self.cases)
        let real = Self.combinations(of: UNetConvolutions.all)
        let missing = real.subtracting(tested)
        #expect(missing.isEmpty, "untested: \(missing.map(\.description).sorted().joined(separator: "; "))")
        #expect(Set(Self.cases.map(\.shapeClass)) == Set(ConvShapeClass.all), "a shape class without a case")
        #expect(Set(UNetConvolutions.all.map(\.shapeClass)) == Set(ConvShapeClass.all))
        // 173 fp32 combinations over the 12 classes, and 139 bf16 ones with AVX-512 BF16 (oneDNN for
        // each pass, the dual forward and backward-data and tap GEMMs at stride 1, Winograd kept and streamed in
        // float32 at 3x3 stride 1, im2col's three passes in every class but conv_out at
        // batch 64, whose unfolded rows are too large). Winograd with bf16 GEMMs is not timed unless allowed (its
        // forced runs are tested above: 12 more bf16 combinations). With AMX, tap products on
        // its tiles for the weight gradients of the 3x3 stride-1 and 1x1 classes: 6 more.
        let expected = (ConvolutionKernel.bf16Supported ? 312 : 173) + (TapGEMMConvolution.amxAvailable ? 6 : 0)
        #expect(tested.count == expected, "\(tested.count) combinations under test")
        print("ConvolutionPathTests: \(tested.count) (pass, algorithm, dtype, shape class) combinations under test, "
              + "\(real.count) reachable at the U-Nets' \(Set(UNetConvolutions.all).count) convolution shapes")
        for c in tested.map(\.description).sorted() { print("  \(c)") }
    }

    /// Small shapes on which each algorithm computes each pass it can: gradients against
    /// finite differences (fp32; bf16's 8-bit mantissa makes differences meaningless).
    static let small: [UNetConv] = [
        UNetConv([2, 3, 6, 7], 3, k: 3),          // every fp32 algorithm, Winograd for both passes
        UNetConv([1, 4, 7, 7], 5, k: 3, s: 2),
        UNetConv([2, 6, 5, 5], 4, k: 1),
    ]

    @Test(arguments: small)
    func gradientsOfEachAlgorithmMatchFiniteDifferences(_ c: UNetConv) {
        let x = random(c.input, seed: 21), w = random(c.weight, -0.5, 0.5, seed: 22)
        for algorithm in ConvolutionAlgorithm.allCases where ConvolutionPass.allCases.contains(where: { c.candidates($0, .float32).contains(algorithm) }) {
            let (_, runs) = ConvolutionAlgorithm.recording {
                ConvolutionAlgorithm.with(order: [algorithm, .onednn]) {
                    checkGradients([x, w], "\(c.testDescription) \(algorithm.rawValue)") {
                        conv2d($0[0], $0[1], stride: Int2(c.stride), padding: Int2(c.padding))
                    }
                }
            }
            for pass in ConvolutionPass.allCases {
                let expected: ConvolutionAlgorithm = c.candidates(pass, .float32).contains(algorithm) ? algorithm : .onednn
                #expect(runs.contains { $0.pass == pass } && runs.allSatisfy { $0.pass != pass || $0.algorithm == expected },
                        "\(c.testDescription) \(algorithm.rawValue) \(pass.rawValue): \(runs.filter { $0.pass == pass }.map(\.algorithm))")
            }
        }
    }

    /// The small shapes reach every fp32 (pass, algorithm) there is.
    @Test func smallShapesReachEveryAlgorithm() {
        var seen = Set<String>()
        for c in Self.small {
            for pass in ConvolutionPass.allCases { for a in c.candidates(pass, .float32) { seen.insert("\(pass.rawValue) \(a.rawValue)") } }
        }
        #expect(seen == ["forward onednn", "forward onednn-dual", "forward brgemm", "forward winograd", "forward winograd-streamed", "forward im2col",
                         "backward-data onednn", "backward-data onednn-dual", "backward-data brgemm", "backward-data winograd", "backward-data winograd-streamed",
                         "backward-data im2col",
                         "backward-weights onednn", "backward-weights brgemm", "backward-weights winograd", "backward-weights tap-gemm",
                         "backward-weights im2col"],
                "\(seen.sorted())")
    }

    /// The worst errors measured (run last in this serialized suite: printed for the record).
    @Test func zzReportMeasuredErrors() {
        for (k, v) in Self.measured.withLock({ $0 }).sorted(by: { $0.key < $1.key }) {
            print("ConvolutionPathTests measured: \(k): worst |error| / sum|products| = \(v)")
        }
    }
}
