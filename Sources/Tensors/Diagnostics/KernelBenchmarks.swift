import Foundation
import TensorsAVX512

/// One hot-path kernel, ready to time: `prepare` allocates its inputs and returns the
/// closure that runs it once.
public struct KernelBenchmark: Sendable {
    /// Stable name, shared with the PyTorch peer script (`scripts/bench/torch_kernels.py`).
    public let name: String
    public let dtype: DType
    /// Floating-point operations per run (multiply-add = 2).
    public let flops: Double
    /// Bytes a run must at least read and write (for memory-bound kernels).
    public let bytes: Double
    /// How the work is computed on this machine (e.g. bf16 widened to fp32 without native support).
    /// For convolutions, what may run; `KernelBenchmarks.measure` reports what did.
    public let path: String
    /// The algorithm, for kernels that have one way to run (convolutions: "conv", resolved by
    /// `KernelBenchmarks.measure` from what ran).
    public let algorithm: String
    public let prepare: @Sendable () -> (() -> Void)

    init(name: String, dtype: DType, flops: Double, bytes: Double, path: String, algorithm: String,
         prepare: @escaping @Sendable () -> (() -> Void)) {
        (self.name, self.dtype, self.flops, self.bytes, self.path, self.algorithm, self.prepare)
            = (name, dtype, flops, bytes, path, algorithm, prepare)
    }
}

/// What one benchmark measured and what ran in it.
public struct KernelMeasurement: Sendable {
    /// Seconds of each timed run.
    public let seconds: [Double]
    /// The convolution passes one run computed (empty for other kernels).
    public let convolutionRuns: [ConvolutionRun]
    /// The algorithm that ran: the convolution algorithm(s) recorded, else the benchmark's own.
    public let algorithm: String
    /// The dtype the arithmetic ran in (bf16 data is computed in fp32 on CPUs without bf16).
    public let computeDType: DType
    /// Direct FLOPs per run (the benchmark's count).
    public let flops: Double
    /// FLOPs the algorithm really performs per run (Winograd: about 1/4 of `flops`; see
    /// `ConvolutionRun.algorithmFLOPs`).
    public let algorithmFLOPs: Double
    /// How the work was computed, in words.
    public let path: String
}

/// The kernels `diffuse bench kernels` times, and the timing itself.
public enum KernelBenchmarks {
    /// Takes a timed run's result, out of the optimizer's sight, so that the run is timed as a
    /// caller that uses its result runs it. A result dropped with `_ =` lets the optimizer
    /// drop work, and once dropped more: `Im2colConvolution.forward` inlined into such a run
    /// never released its output (Swift 6.3, release build), 2 MB a run at 8x128x32x32 bf16,
    /// each run faulting in fresh pages (18 ms against 5 ms).
    @inline(never)
    static func consume<T>(_ result: T) { withExtendedLifetime(result) {} }

    /// Seconds of `iterations` runs after two warm-up runs.
    public static func time(_ benchmark: KernelBenchmark, iterations: Int) -> [Double] {
        measure(benchmark, iterations: iterations).seconds
    }

    /// Times `iterations` runs after two warm-up runs, the second recorded with
    /// `ConvolutionAlgorithm.recording` (after the first has let autotuning choose), so the
    /// report names the algorithm and dtype that computed the timed runs.
    public static func measure(_ benchmark: KernelBenchmark, iterations: Int) -> KernelMeasurement {
        let run = benchmark.prepare()
        run()
        let (_, runs) = ConvolutionAlgorithm.recording { run() }
        let seconds = (0..<iterations).map { _ in
            let start = DispatchTime.now().uptimeNanoseconds
            run()
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        guard !runs.isEmpty else {
            return KernelMeasurement(seconds: seconds, convolutionRuns: [], algorithm: benchmark.algorithm,
                                     computeDType: benchmark.dtype, flops: benchmark.flops, algorithmFLOPs: benchmark.flops,
                                     path: benchmark.path)
        }
        var algorithms: [ConvolutionAlgorithm] = []
        for r in runs where !algorithms.contains(r.algorithm) { algorithms.append(r.algorithm) }
        let dtype = runs[0].dtype
        // The benchmark's FLOPs are the direct count of the passes it runs; scale by what the
        // recorded algorithms really do.
        let ratio = runs.directFLOPs > 0 ? runs.algorithmFLOPs / runs.directFLOPs : 1
        var path = algorithms.map(describe).joined(separator: " + ") + ", \(dtype == .bfloat16 ? "bf16" : "fp32"), NHWC"
        if benchmark.dtype == .bfloat16 && dtype != .bfloat16 { path += " (bf16 data computed in fp32: no native bf16 on this CPU)" }
        return KernelMeasurement(seconds: seconds, convolutionRuns: runs, algorithm: algorithms.map(\.rawValue).joined(separator: "+"),
                                 computeDType: dtype, flops: benchmark.flops, algorithmFLOPs: benchmark.flops * ratio, path: path)
    }

    /// A convolution algorithm in words.
    public static func describe(_ algorithm: ConvolutionAlgorithm) -> String {
        switch algorithm {
        case .onednn: return "oneDNN"
        case .onednnDual: return "oneDNN (dual: its backward-data kernel forward, its forward kernel backward)"
        case .brgemm: return "LIBXSMM BRGEMM"
        case .winograd: return "Winograd F(4x4,3x3), LIBXSMM GEMMs"
        case .winogradStreamed: return "Winograd F(4x4,3x3), filters transformed per call, LIBXSMM GEMMs"
        case .winogradBF16: return "Winograd F(4x4,3x3), bf16 LIBXSMM GEMMs"
        case .tapGEMM: return "a oneDNN matmul per kernel tap"
        case .amxTaps: return "a product per kernel tap on AMX tiles (Diffuse's kernel)"
        case .im2col: return "one oneDNN matmul over the unfolded input (im2col)"
        }
    }

    /// Peak fp32 multiply-add throughput of this machine on `threadCount` threads (GFLOP/s):
    /// ten independent FMA chains per thread, 8 lanes, and 16 where the CPU has AVX-512 (the
    /// better of the two: Intel Xeon's two 512-bit FMA ports double it, AMD EPYC's do not).
    public static func measuredPeakGFLOPs() -> Double {
        let iterations = 20_000_000
        var best = 0.0
        for lanes in CPUFeatures.avx512 ? [8, 16] : [8] {
            for _ in 0..<3 {
                let start = DispatchTime.now().uptimeNanoseconds
                var threads = 1
                Parallel.team { _, n in
                    threads = n
                    if (lanes == 16 ? AVX512Kernels.fmaChains(iterations: iterations) : fmaChains8(iterations: iterations)) == 12345 {
                        print("")  // keep the work
                    }
                }
                let s = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                best = Swift.max(best, Double(iterations) * 10 * 2 * Double(lanes) * Double(threads) / s / 1e9)
            }
        }
        return best
    }

    /// `AVX512Kernels.fmaChains` in 8 lanes.
    private static func fmaChains8(iterations: Int) -> Float {
        var acc = (0..<10).map { Vec8(repeating: Float($0) * 1e-3) }
        let b = Vec8(repeating: 0.999_999), c = Vec8(repeating: 1e-7)
        var a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3], a4 = acc[4]
        var a5 = acc[5], a6 = acc[6], a7 = acc[7], a8 = acc[8], a9 = acc[9]
        for _ in 0..<iterations {
            a0 = c.addingProduct(a0, b); a1 = c.addingProduct(a1, b); a2 = c.addingProduct(a2, b)
            a3 = c.addingProduct(a3, b); a4 = c.addingProduct(a4, b); a5 = c.addingProduct(a5, b)
            a6 = c.addingProduct(a6, b); a7 = c.addingProduct(a7, b); a8 = c.addingProduct(a8, b)
            a9 = c.addingProduct(a9, b)
        }
        acc = [a0, a1, a2, a3, a4, a5, a6, a7, a8, a9]
        return acc.reduce(Vec8(), +).sum()
    }

    /// The convolution forward algorithm picked for each shape timed so far.
    public static var convolutionAlgorithms: [String: String] { ConvolutionKernel.chosenAlgorithms }

    /// The suite named in the engine issue.
    public static var suite: [KernelBenchmark] {
        var list: [KernelBenchmark] = []
        for type in [DType.float32, .bfloat16] {
            list += convolution(batch: 64, channels: 64, size: 32, type: type)
        }
        list += convolution(batch: 64, channels: 128, size: 16, type: .float32)
        list += convolution(batch: 64, channels: 256, size: 8, type: .float32)
        list.append(matmul(name: "matmul 1024x1024x1024", a: [1024, 1024], b: [1024, 1024], transposeB: false))
        // Stable Diffusion 1.x's feed-forward projection at 64x64 latents (a Linear: weights read transposed).
        list.append(matmul(name: "linear 8192x320->2560", a: [8192, 320], b: [2560, 320], transposeB: true))
        list.append(matmul(name: "linear 8192x320->2560 +bias", a: [8192, 320], b: [2560, 320], transposeB: true, bias: true))
        list.append(matmul(name: "attention QK^T 128x256x256x64", a: [128, 256, 64], b: [128, 256, 64], transposeB: true))
        list.append(matmul(name: "attention PV 128x256x256x64", a: [128, 256, 256], b: [128, 256, 64], transposeB: false))
        // The bench U-Nets' attention: unet-small at 16x16 (64 channels, 2 heads) and 8x8 (128
        // channels, 4 heads), ddpm-cifar10-32 at 16x16 (256 channels, one head).
        let unetHeads = [(64, 2, 256, 32), (64, 4, 64, 32), (8, 1, 256, 256)]
        for (batch, heads, length, dim) in unetHeads {
            list += attention(batch: batch, heads: heads, length: length, dim: dim)
            if FusedAttention.bf16Available { list += attention(batch: batch, heads: heads, length: length, dim: dim, dtype: .bfloat16) }
        }
        // Stable Diffusion 1.x's self-attention at 64x64 latents (guided batch 2), sampling only.
        list += attention(batch: 2, heads: 8, length: 4096, dim: 40, training: false)
        if FusedAttention.bf16Available { list += attention(batch: 2, heads: 8, length: 4096, dim: 40, dtype: .bfloat16, training: false) }
        // unet-small's 64-channel layers at batch 64 (beyond L2), ddpm-cifar10-32's 32x32
        // resnets at batch 8 (2 MB in bf16).
        for (batch, channels) in [(64, 64), (8, 128)] {
            list += groupNormSiLU(batch: batch, channels: channels, size: 32, groups: 32)
            list += groupNormSiLU(batch: batch, channels: channels, size: 32, groups: 32, dtype: .bfloat16)
        }
        list += elementwise()
        list += optimizer(parameters: 35_746_307)
        return list
    }

    private static func convolution(batch: Int, channels: Int, size: Int, type: DType) -> [KernelBenchmark] {
        let g = ConvGeometry(batch: batch, inChannels: channels, height: size, width: size, outChannels: channels,
                             kernelH: 3, kernelW: 3, strideH: 1, strideW: 1, padH: 1, padW: 1,
                             dilationH: 1, dilationW: 1, groups: 1)
        let base = "conv3x3 \(channels)->\(channels) \(batch)x\(channels)x\(size)x\(size)"
        let native = type == .float32 || ConvolutionKernel.bf16Supported
        let compute: DType = native ? type : .float32
        let path = "\(ConvolutionKernel.candidateAlgorithms(.forward, g, compute).map(\.rawValue).joined(separator: "|")) "
            + (type == .float32 ? "fp32, NHWC" : native ? "bf16, NHWC" : "bf16 data, fp32 compute (no native bf16 on this CPU)")
        @Sendable func inputs() -> (Tensor, Tensor, Tensor) {
            let rng = PhiloxGenerator(seed: 1)
            let x = rng.normal(g.inputShape).channelsLast().to(type)
            let w = (rng.normal(g.weightShape) * 0.05).to(type)
            let gy = rng.normal(g.outputShape).channelsLast().to(type)
            return (x, w, gy)
        }
        return [
            KernelBenchmark(name: base + " fwd", dtype: type, flops: g.flops, bytes: 0, path: path, algorithm: "conv") {
                let (x, w, _) = inputs()
                return {
                    w.storage.markMutated()  // as in training: the weights changed since the last step
                    consume(ConvolutionKernel.forward(x.to(compute), w, nil, g, compute))
                }
            },
            KernelBenchmark(name: base + " bwd-data", dtype: type, flops: g.flops, bytes: 0, path: path, algorithm: "conv") {
                let (_, w, gy) = inputs()
                return {
                    w.storage.markMutated()
                    consume(ConvolutionKernel.backwardData(gy.to(compute), w, g, compute))
                }
            },
            KernelBenchmark(name: base + " bwd-weights", dtype: type, flops: g.flops, bytes: 0, path: path, algorithm: "conv") {
                let (x, _, gy) = inputs()
                return { consume(ConvolutionKernel.backwardWeights(x.to(compute), gy.to(compute), g, compute, bias: false)) }
            },
        ]
    }

    /// Scaled dot-product self-attention as the U-Net runs it (heads as strided views of
    /// [B, L, H, D]): forward, and forward + backward.
    private static func attention(batch: Int, heads: Int, length: Int, dim: Int, dtype: DType = .float32,
                                  training: Bool = true) -> [KernelBenchmark] {
        let name = "attention \(batch)x\(heads)x\(length)x\(dim)"
        let forward = 4.0 * Double(batch * heads * length * length * dim)
        @Sendable func inputs() -> [Tensor] {
            let rng = PhiloxGenerator(seed: 3)
            return (0..<3).map { _ in rng.normal([batch, length, heads, dim]).to(dtype).permuted(0, 2, 1, 3) }
        }
        let (path, algorithm) = dtype == .bfloat16 && AMXAttention.supports(lq: length, lk: length, d: dim, dv: dim)
            ? ("a head at a time, Diffuse's AMX kernel", "amx-heads")
            : dtype == .bfloat16 && ChunkedAttention.preferred
            ? ("scores per chunk, oneDNN matmuls (AMX)", "chunked-amx") : ("fused, LIBXSMM GEMMs", "fused-attention")
        let fwd = KernelBenchmark(name: name + " fwd", dtype: dtype, flops: forward, bytes: 0, path: path, algorithm: algorithm) {
            let x = inputs()
            return { consume(scaledDotProductAttention(query: x[0], key: x[1], value: x[2])) }
        }
        guard training else { return [fwd] }
        return [
            fwd,
            // The backward pass recomputes the scores: 5 products of the forward's size over 2.
            KernelBenchmark(name: name + " fwd+bwd", dtype: dtype, flops: forward * 3.5, bytes: 0, path: path, algorithm: algorithm) {
                let x = inputs()
                return { consume(valueAndGradient(at: x) { t in scaledDotProductAttention(query: t[0], key: t[1], value: t[2]).sum() }) }
            },
        ]
    }

    private static func matmul(name: String, a: [Int], b: [Int], transposeB: Bool, bias: Bool = false) -> KernelBenchmark {
        let m = a[a.count - 2], k = a[a.count - 1]
        let n = transposeB ? b[b.count - 2] : b[b.count - 1]
        let batch = a.dropLast(2).reduce(1, *)
        return KernelBenchmark(name: name, dtype: .float32, flops: 2.0 * Double(batch * m * n * k), bytes: 0,
                               path: "oneDNN matmul fp32" + (transposeB ? ", B read transposed in place" : "") + (bias ? ", bias in the epilogue" : ""),
                               algorithm: "onednn-matmul") {
            let rng = PhiloxGenerator(seed: 2)
            let x = rng.normal(a), y0 = rng.normal(b)
            let y = transposeB ? y0.transposed() : y0
            let c = bias ? rng.normal([n]) : nil
            return { consume(MatmulKernel.multiply(x, y, bias: c)) }
        }
    }

    /// The elementwise and row ops between convolutions, on U-Net activations (channels-last).
    private static func elementwise() -> [KernelBenchmark] {
        let shape = [64, 64, 32, 32]
        let n = Double(shape.reduce(1, *))
        func op(_ name: String, flops: Double, bytes: Double, _ make: @escaping @Sendable (PhiloxGenerator) -> () -> Void) -> KernelBenchmark {
            KernelBenchmark(name: name, dtype: .float32, flops: flops, bytes: bytes, path: "Swift SIMD", algorithm: "swift-simd", prepare: { make(PhiloxGenerator(seed: 4)) })
        }
        return [
            op("add 64x64x32x32", flops: n, bytes: 12 * n) { rng in
                let a = rng.normal(shape).channelsLast(), b = rng.normal(shape).channelsLast()
                return { consume(a + b) }
            },
            op("add bias[C] 64x64x32x32", flops: n, bytes: 8 * n) { rng in
                let a = rng.normal(shape).channelsLast(), b = rng.normal([1, 64, 1, 1])
                return { consume(a + b) }
            },
            op("silu 64x64x32x32", flops: 20 * n, bytes: 8 * n) { rng in
                let a = rng.normal(shape).channelsLast()
                return { consume(a.silu()) }
            },
            op("softmax 128x256x256", flops: 20 * 128 * 256 * 256, bytes: 8 * 128 * 256 * 256) { rng in
                let a = rng.normal([128, 256, 256])
                return { consume(a.softmax(axis: -1)) }
            },
            op("mean over HW 64x64x32x32", flops: n, bytes: 4 * n) { rng in
                let a = rng.normal(shape)
                return { consume(a.mean(axes: [2, 3])) }
            },
        ]
    }

    /// One AdamW step over ddpm-cifar10-32's parameter count (one tensor): memory-bound, 28
    /// bytes an element; with the bf16 form a mixed-precision step keeps, 30.
    private static func optimizer(parameters n: Int) -> [KernelBenchmark] {
        let name = "adamw step \(String(format: "%.1f", Double(n) / 1e6))M"
        let c = AdamUpdate.Coefficients(stepSize: 1e-4, correction2: 0.05, decay: 1 - 1e-6, oneMinusBeta1: 0.1, beta2: 0.999,
                                        oneMinusBeta2: 0.001, eps: 1e-8, weightDecay: 0.01, decoupled: true, amsgrad: false)
        func step(_ dtype: DType) -> KernelBenchmark {
            let bf16 = dtype == .bfloat16
            return KernelBenchmark(name: name, dtype: dtype, flops: 12 * Double(n), bytes: Double(bf16 ? 30 : 28) * Double(n),
                                   path: bf16 ? "Swift SIMD, float32 masters + bf16 form" : "Swift SIMD", algorithm: "swift-simd") {
                let rng = PhiloxGenerator(seed: 5)
                let w = rng.normal([n]), g = rng.normal([n]), m = Tensor.zeros([n]), v = Tensor.zeros([n])
                let form = Tensor(uninitializedShape: [bf16 ? n : 0], dtype: .bfloat16)
                return {
                    AdamUpdate.apply(c, count: n, weights: w.pointer(as: Float.self), gradient: g.pointer(as: Float.self),
                                     first: m.pointer(as: Float.self), second: v.pointer(as: Float.self), maxSecond: nil,
                                     bf16: bf16 ? form.pointer(as: UInt16.self) : nil)
                }
            }
        }
        return [step(.float32), step(.bfloat16)]
    }

    private static func groupNormSiLU(batch: Int, channels: Int, size: Int, groups: Int, dtype: DType = .float32) -> [KernelBenchmark] {
        let shape = [batch, channels, size, size]
        let elements = Double(shape.reduce(1, *))
        let bf16 = dtype == .bfloat16
        let kernel = {
            var k = GroupNormKernel(n: batch, c: channels, s: size * size, groups: groups, channelsLast: true, eps: 1e-5, silu: true)
            k.xBF16 = bf16
            return k
        }()
        let name = "groupnorm+silu \(batch)x\(channels)x\(size)x\(size) g\(groups)"
        let bytes = Double(dtype.byteSize)
        @Sendable func inputs() -> (Tensor, Tensor, Tensor, Tensor) {
            let rng = PhiloxGenerator(seed: 3)
            return (rng.normal(shape).to(dtype).channelsLast(), rng.normal(shape).to(dtype).channelsLast(),
                    rng.normal([channels]) + 1, rng.normal([channels]))
        }
        return [
            // Forward reads x twice (statistics, then normalise) and writes y.
            KernelBenchmark(name: name + " fwd", dtype: dtype, flops: 12 * elements, bytes: 3 * bytes * elements,
                            path: "Swift SIMD, NHWC, fused SiLU", algorithm: "swift-simd") {
                let (x, _, w, b) = inputs()
                let y = Tensor.zeros(shape, dtype: dtype)
                return {
                    consume(kernel.forward(x.baseAddress, y.baseAddress, yBF16: bf16,
                                           gamma: w.pointer(as: Float.self), beta: b.pointer(as: Float.self)))
                }
            },
            // Backward reads x and dy twice each and writes dx.
            KernelBenchmark(name: name + " bwd", dtype: dtype, flops: 30 * elements, bytes: 5 * bytes * elements,
                            path: "Swift SIMD, NHWC, fused SiLU", algorithm: "swift-simd") {
                let (x, gy, w, b) = inputs()
                let y = Tensor.zeros(shape, dtype: dtype), dx = Tensor.zeros(shape, dtype: dtype)
                let stats = kernel.forward(x.baseAddress, y.baseAddress, yBF16: bf16,
                                           gamma: w.pointer(as: Float.self), beta: b.pointer(as: Float.self))
                return {
                    consume(kernel.backward(x.baseAddress, gy.baseAddress, dyBF16: bf16, bf16 ? nil : dx.pointer(as: Float.self),
                                            dxBF16: bf16 ? dx.pointer(as: UInt16.self) : nil, mean: stats.mean, rstd: stats.rstd,
                                            gamma: w.pointer(as: Float.self), beta: b.pointer(as: Float.self)))
                }
            },
        ]
    }
}

extension KernelBenchmarks {
    /// Every convolution algorithm for each pass of a 3x3 same-padding convolution,
    /// interleaved run by run so that machine noise hits all alike; median ms of each. With
    /// `freshWeights` (training) each run has new weights, so every form derived from them is
    /// made again inside the timed run; without (sampling) they are made once.
    public static func compareConvolutionAlgorithms(batch: Int, channels: Int, size: Int, iterations: Int, passes: Set<String>? = nil,
                                                    algorithms: Set<String>? = nil, dtype: DType = .float32, freshWeights: Bool = true)
        -> [(pass: String, algorithm: String, ms: Double, gflops: Double)] {
        let g = ConvGeometry(batch: batch, inChannels: channels, height: size, width: size, outChannels: channels,
                             kernelH: 3, kernelW: 3, strideH: 1, strideW: 1, padH: 1, padW: 1,
                             dilationH: 1, dilationW: 1, groups: 1)
        let rng = PhiloxGenerator(seed: 1)
        // bf16: activations and weights bf16, every pass writing bf16 as in a bf16 step.
        let type: DType = dtype == .bfloat16 && ConvolutionKernel.bf16Supported ? .bfloat16 : .float32
        let x = rng.normal(g.inputShape).channelsLast().to(type)
        let w = (rng.normal(g.weightShape) * 0.05).to(type)
        let gy = rng.normal(g.outputShape).channelsLast().to(type)
        var runs: [(String, String, () -> Void)] = [
            ("forward", "onednn", { consume(ConvolutionKernel.direct(x, w, nil, g, type, outType: type)) }),
            ("forward", "onednn-dual", { consume(ConvolutionKernel.forwardByDual(x, w, g, type)) }),
            ("backward-data", "onednn", { consume(ConvolutionKernel.backwardDataOneDNN(gy, w, g, type, outType: type)) }),
            ("backward-data", "onednn-dual", { consume(ConvolutionKernel.backwardDataByDual(gy, w, g, type, outType: type)) }),
            ("backward-weights", "onednn", { consume(ConvolutionKernel.backwardWeightsOneDNN(x, gy, g, type, bias: false)) }),
        ]
        if type == .float32 && BRGEMMConvolution.supports(g) {
            runs += [
                ("forward", "brgemm", { consume(BRGEMMConvolution.forward(x, w, nil, g)) }),
                ("backward-data", "brgemm", { consume(BRGEMMConvolution.forward(gy, blocked: BRGEMMConvolution.blockedForDual(w, g), nil, g.dual!)) }),
                ("backward-weights", "brgemm", { consume(BRGEMMConvolution.backwardWeights(x, gy, g, bias: false)) }),
            ]
        }
        if Im2colConvolution.supports(g) {
            runs += [
                ("forward", "im2col", { consume(Im2colConvolution.forward(x, w, nil, g, type, outType: type)) }),
                ("backward-data", "im2col", { consume(Im2colConvolution.backwardData(gy, w, g, type, outType: type)) }),
                ("backward-weights", "im2col", { consume(Im2colConvolution.backwardWeights(x, gy, g, bias: false)) }),
            ]
        }
        if TapGEMMConvolution.supports(g) {
            runs.append(("backward-weights", "tap-gemm", { consume(TapGEMMConvolution.backwardWeights(x, gy, g, bias: false)) }))
        }
        if type == .bfloat16 && TapGEMMConvolution.supportsAMX(g) {
            runs.append(("backward-weights", "amx-taps", { consume(TapGEMMConvolution.backwardWeightsAMX(x, gy, g, bias: false)) }))
        }
        if WinogradConvolution.supports(g) {
            runs += [
                ("forward", "winograd", {
                    consume(WinogradConvolution.forward(x, transformed: WinogradConvolution.transformedWeights(w, g), nil, g, outType: type))
                }),
                ("backward-data", "winograd", {
                    consume(WinogradConvolution.forward(gy, transformed: WinogradConvolution.transformedDualWeights(w, g), nil, g.dual!, outType: type))
                }),
                ("backward-weights", "winograd", { consume(WinogradConvolution.backwardWeights(x, gy, g, bias: false)) }),
                ("forward", "winograd-streamed", {
                    consume(WinogradConvolution.forwardStreamed(x.asFloat32(), weights: w, nil, g).converted(to: type))
                }),
                ("backward-data", "winograd-streamed", {
                    consume(WinogradConvolution.backwardDataStreamed(gy.asFloat32(), weights: w, g).converted(to: type))
                }),
            ]
        }
        if type == .bfloat16 && WinogradConvolution.supportsBF16(g) {
            runs += [
                ("forward", "winograd-bf16", {
                    consume(WinogradConvolution.forwardBF16(x, transformed: WinogradConvolution.transformedWeightsBF16(w, g, dual: false), nil, g,
                                                            outType: type))
                }),
                ("backward-data", "winograd-bf16", {
                    consume(WinogradConvolution.forwardBF16(gy, transformed: WinogradConvolution.transformedWeightsBF16(w, g, dual: true), nil,
                                                            g.dual!, outType: type))
                }),
            ]
        }
        if let passes { runs = runs.filter { passes.contains($0.0) } }
        if let algorithms { runs = runs.filter { algorithms.contains($0.1) } }
        var times = [[Double]](repeating: [], count: runs.count)
        if freshWeights { runs = runs.map { r in (r.0, r.1, { w.storage.markMutated(); r.2() }) } }  // new weights each step, as in training
        for r in runs { r.2() }
        for _ in 0..<iterations {
            for (i, r) in runs.enumerated() {
                let start = DispatchTime.now().uptimeNanoseconds
                r.2()
                times[i].append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            }
        }
        return runs.enumerated().map { i, r in
            let ms = times[i].sorted()[times[i].count / 2]
            return (r.0, r.1, ms, g.flops / (ms / 1e3) / 1e9)
        }
    }
}
