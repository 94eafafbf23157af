import Foundation

/// FLOP accounting for the convolution passes `ConvolutionAlgorithm.recording` reports, for
/// benchmarks that must say what ran and how hard the machine worked.
///
/// Two counts per pass:
/// - direct FLOPs, 2 N O Ho Wo (C / groups) kh kw (a multiply-add = 2): what torch's
///   FlopCounterMode counts, the same for every algorithm and every pass. Divided by the time
///   they give *effective* GFLOP/s, which may exceed the machine's peak when the algorithm does
///   less arithmetic than direct convolution.
/// - algorithm FLOPs: the multiply-adds the algorithm really performs (x2). oneDNN, its dual
///   and LIBXSMM's batch-reduce GEMMs compute the direct sum, so theirs equal the direct
///   count. Winograd F(4x4, 3x3) (Lavin & Gray 2016) does 36 multiply-adds per 4x4 output tile
///   and channel pair, counted over whole tiles, ceil(Ho / 4) ceil(Wo / 4) per image:
///   36 / (16 x 9) = 1/4 of the direct count when Ho and Wo are multiples of 4 (more where
///   edge tiles are partial). Its input and output transforms (additions, O(C + O) per tile,
///   not O(C O)) are not counted. Divided by the time they give the GFLOP/s that can be
///   compared with the FMA peak.
public extension ConvolutionRun {
    /// The convolution's geometry, parsed back from `shape`
    /// (`NxCxHxW->O kKhxKw sSh,Sw pPh,Pw dDh,Dw gG`).
    internal var geometry: ConvGeometry? { ConvGeometry(parsing: shape) }

    /// Direct-convolution FLOPs of this pass (0 if the shape cannot be read).
    var directFLOPs: Double { geometry?.flops ?? 0 }

    /// FLOPs the algorithm that ran really performs (see the type's notes).
    var algorithmFLOPs: Double {
        guard let g = geometry else { return 0 }
        switch algorithm {
        case .onednn, .onednnDual, .brgemm, .im2col: return g.flops
        case .tapGEMM, .amxTaps: return TapGEMMConvolution.gridFLOPs(g)
        case .winograd, .winogradStreamed, .winogradBF16:
            // Backward-data runs as the forward pass of the dual convolution, whose output is
            // this convolution's input.
            let computed = pass == .backwardData ? (g.dual ?? g) : g
            return ConvolutionRun.winogradFLOPs(computed)
        }
    }

    /// The multiply-adds of Winograd F(4x4, 3x3) per direct multiply-add when the output is a
    /// multiple of 4 on each side: 36 / (16 x 9).
    static let winogradIdealRatio = 36.0 / (16.0 * 9.0)

    internal static func winogradFLOPs(_ g: ConvGeometry) -> Double {
        let tiles = Double(((g.outH + 3) / 4) * ((g.outW + 3) / 4))
        return 2 * Double(g.batch) * tiles * 36 * Double(g.inChannels / g.groups) * Double(g.outChannels)
    }
}

public extension Array where Element == ConvolutionRun {
    /// Direct-convolution FLOPs of all the passes.
    var directFLOPs: Double { reduce(0) { $0 + $1.directFLOPs } }
    /// FLOPs the algorithms that ran really performed.
    var algorithmFLOPs: Double { reduce(0) { $0 + $1.algorithmFLOPs } }
    /// How many passes each algorithm computed, e.g. "winograd 24, onednn 6", most first.
    var algorithmCounts: String {
        var counts: [ConvolutionAlgorithm: Int] = [:]
        for run in self { counts[run.algorithm, default: 0] += 1 }
        return counts.sorted { ($0.value, $1.key.rawValue) > ($1.value, $0.key.rawValue) }
            .map { "\($0.key.rawValue) \($0.value)" }.joined(separator: ", ")
    }
}

extension ConvGeometry {
    /// Reads `description` back.
    init?(parsing text: String) {
        let parts = text.split(separator: " ")
        guard parts.count == 6 else { return nil }
        let io = parts[0].split(separator: "->")
        guard io.count == 2, let outChannels = Int(io[1]) else { return nil }
        let input = io[0].split(separator: "x").compactMap { Int($0) }
        func pair(_ part: Substring, _ prefix: Character, _ separator: Character) -> (Int, Int)? {
            guard part.first == prefix else { return nil }
            let v = part.dropFirst().split(separator: separator).compactMap { Int($0) }
            return v.count == 2 ? (v[0], v[1]) : nil
        }
        guard input.count == 4, let k = pair(parts[1], "k", "x"), let s = pair(parts[2], "s", ","),
              let p = pair(parts[3], "p", ","), let d = pair(parts[4], "d", ","),
              parts[5].first == "g", let groups = Int(parts[5].dropFirst()) else { return nil }
        self.init(batch: input[0], inChannels: input[1], height: input[2], width: input[3], outChannels: outChannels,
                  kernelH: k.0, kernelW: k.1, strideH: s.0, strideW: s.1, padH: p.0, padW: p.1,
                  dilationH: d.0, dilationW: d.1, groups: groups)
    }
}

/// The machine's peak for a compute dtype, from the measured fp32 FMA peak.
public enum MachinePeak {
    /// Multiply-adds per fp32 lane per instruction for `dtype` as the kernels compute it:
    /// 2 for bfloat16 on a CPU with native bf16 dot products (`vdpbf16ps`: two bf16 products
    /// summed into each fp32 lane), else 1. An assumption about the instruction, not a
    /// measurement: the measured peak is fp32 FMAs only.
    public static func factor(for dtype: DType) -> Double {
        dtype == .bfloat16 && ConvolutionKernel.bf16Supported ? 2 : 1
    }

    /// Whether this CPU computes bfloat16 natively (oneDNN's bf16 kernels).
    public static var nativeBF16: Bool { ConvolutionKernel.bf16Supported }

    /// The peak a row computed in `dtype` is compared with, given the measured fp32 FMA peak:
    /// that times `factor`, and for bf16 where oneDNN runs on AMX tiles (which no per-lane
    /// count describes) oneDNN's own bf16 rate on a 2048^3 matmul where that is higher.
    public static func peak(for dtype: DType, fp32 peak: Double) -> Double {
        let base = peak * factor(for: dtype)
        return dtype == .bfloat16 && OneDNN.amx ? Swift.max(base, amxMatmulGFLOPs) : base
    }

    /// Whether `peak(for: .bfloat16, ...)` is oneDNN's AMX matmul rate rather than 2x fp32.
    public static var amxPeak: Bool { MatmulKernel.amxBF16 }

    /// oneDNN's bf16 2048^3 matmul on AMX (GFLOP/s, best of 5), measured once.
    private static let amxMatmulGFLOPs: Double = {
        guard amxPeak else { return 0 }
        let rng = PhiloxGenerator(seed: 0)
        let (a, b) = (rng.normal([2048, 2048]).to(.bfloat16), rng.normal([2048, 2048]).to(.bfloat16))
        var best = 0.0
        for _ in 0..<5 {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = MatmulKernel.product(a, b)
            best = Swift.max(best, 2 * 2048 * 2048 * 2048 / Double(DispatchTime.now().uptimeNanoseconds - start))
        }
        return best
    }()
}
