import Foundation
import Synchronization

/// The ways a convolution pass can be computed (see `conv2d`).
public enum ConvolutionAlgorithm: String, CaseIterable, Sendable {
    /// oneDNN's kernel for the pass.
    case onednn
    /// Forward as oneDNN's backward-data pass of the dual convolution, and backward-data as
    /// its forward pass (stride 1 only).
    case onednnDual = "onednn-dual"
    /// LIBXSMM batch-reduce GEMMs (groups = 1, float32).
    case brgemm
    /// Winograd F(4x4, 3x3) with LIBXSMM GEMMs (3x3, stride 1; every pass, the weight
    /// gradient by the adjoint of the forward's transforms; computed in float32, bf16
    /// operands widened and the output rounded): 4x fewer multiply-adds, rounding about 4e-6
    /// of the output's scale.
    case winograd
    /// Winograd F(4x4, 3x3) with the filters transformed at each call, a block of output
    /// channels at a time (`WinogradConvolution.forwardStreamed`): for layers whose transformed
    /// weights are too large to keep (Stable Diffusion's 640-2560 channels). Same rounding.
    case winogradStreamed = "winograd-streamed"
    /// Winograd F(4x4, 3x3) with bfloat16 GEMMs (WinogradConvolution+BFloat16.swift), for
    /// bf16 forward and backward-data passes where the CPU has AVX-512 BF16, the weights'
    /// transformed form is kept and there are 16 or more input channels: 2x fewer
    /// multiply-adds than `winograd` at twice the rate, for rounding of about 2% of an output
    /// (a bf16 direct convolution's, or `winograd`'s on bf16 operands: 0.3%). Timing considers
    /// it only where `allowsLowPrecisionWinograd`; forcing it (`with`, `preferredOrder`)
    /// always may.
    case winogradBF16 = "winograd-bf16"
    /// The weight gradient as one oneDNN matrix product per kernel tap over the zero-padded
    /// grid (`TapGEMMConvolution`; stride 1, one group): where oneDNN's backward-weights
    /// kernel is slow (small images, 1x1 layers), its matmul is not.
    case tapGEMM = "tap-gemm"
    /// The same tap products on AMX tiles by Diffuse's own kernel (`backwardWeightsAMX`; bf16,
    /// stride 1, channels in blocks of 32, CPUs with AMX): both operands packed once per call
    /// into the tiles' forms, where oneDNN 2.6's backward-weights kernel and its matmul
    /// transpose or repack them per call or per tap.
    case amxTaps = "amx-taps"
    /// Each pass as one matrix product over the unfolded input
    /// (`Im2colConvolution`; groups 1): small images, where the direct kernels block over a
    /// width the image does not have, and 1x1 layers as plain products.
    case im2col

    /// Whether timing may choose `winogradBF16` for bf16 passes: off unless
    /// `DIFFUSE_BF16_WINOGRAD=1`. Its rounding doubles to triples how far Stable Diffusion's
    /// bf16 images land from float32 (sd21-txt2img-clip-skip: max 0.218 of the largest value
    /// against diffusers' bf16 0.061), for a few percent of a U-Net step: `winograd` computing
    /// in float32 on the bf16 operands takes most of the gain at bf16's usual rounding.
    public static var allowsLowPrecisionWinograd: Bool {
        get { lowPrecisionWinograd.load(ordering: .relaxed) }
        set { lowPrecisionWinograd.store(newValue, ordering: .relaxed) }
    }
    private static let lowPrecisionWinograd = Atomic<Bool>(ProcessInfo.processInfo.environment["DIFFUSE_BF16_WINOGRAD"] == "1")

    /// The algorithm every convolution pass must use; nil (the default) times the candidates
    /// per shape and keeps the fastest. A pass it cannot compute stops with an error naming
    /// the pass, the shape and what can compute it: force a list (`preferredOrder`) to fall
    /// back. Setting it replaces `DIFFUSE_CONV_ALGORITHM`.
    public static var preferred: ConvolutionAlgorithm? {
        get { ConvolutionKernel.preference.withLock { $0.first } }
        set { ConvolutionKernel.preference.withLock { $0 = newValue.map { [$0] } ?? [] } }
    }

    /// Forced algorithms in order of preference: each pass takes the first that can compute
    /// it (an error when none can); empty times the candidates. `DIFFUSE_CONV_ALGORITHM`
    /// sets it at start (`winograd,brgemm,onednn`).
    public static var preferredOrder: [ConvolutionAlgorithm] {
        get { ConvolutionKernel.preference.withLock { $0 } }
        set { ConvolutionKernel.preference.withLock { $0 = newValue } }
    }

    /// The algorithms forced inside `with(_:_:)`, for the current task only.
    @TaskLocal static var scoped: [ConvolutionAlgorithm]?

    /// Runs `body` with `algorithm` forced (nil: timed) for the convolutions this task runs,
    /// leaving other tasks and threads alone (tests run in parallel). A pass `algorithm`
    /// cannot compute stops with an error; use `with(order:_:)` to fall back.
    public static func with<R>(_ algorithm: ConvolutionAlgorithm?, _ body: () throws -> R) rethrows -> R {
        try $scoped.withValue(algorithm.map { [$0] } ?? [], operation: body)
    }

    /// Runs `body` with each pass taking the first of `order` that can compute it.
    public static func with<R>(order: [ConvolutionAlgorithm], _ body: () throws -> R) rethrows -> R {
        try $scoped.withValue(order, operation: body)
    }

    /// The algorithms that can compute `pass` of `conv2d(input, weight, ...)` in `dtype`
    /// (float32, or bfloat16 where the CPU has it), oneDNN's first: what timing chooses from
    /// and what may be forced.
    public static func candidates(_ pass: ConvolutionPass, input: [Int], weight: [Int], stride: Int2 = 1, padding: Int2 = 0,
                                  dilation: Int2 = 1, groups: Int = 1, dtype: DType = .float32) -> [ConvolutionAlgorithm] {
        let g = ConvGeometry(batch: input[0], inChannels: input[1], height: input[2], width: input[3],
                             outChannels: weight[0], kernelH: weight[2], kernelW: weight[3],
                             strideH: stride.h, strideW: stride.w, padH: padding.h, padW: padding.w,
                             dilationH: dilation.h, dilationW: dilation.w, groups: groups)
        let type: DType = dtype == .bfloat16 && ConvolutionKernel.bf16Supported ? .bfloat16 : .float32
        return ConvolutionKernel.candidateAlgorithms(pass, g, type)
    }

    /// Runs `body` and returns, beside its result, every convolution pass it ran (in order)
    /// with the algorithm that computed it, for this task only.
    public static func recording<R>(_ body: () throws -> R) rethrows -> (R, [ConvolutionRun]) {
        let recorder = ConvolutionRecorder()
        let result = try $recorder.withValue(recorder, operation: body)
        return (result, recorder.runs)
    }

    @TaskLocal static var recorder: ConvolutionRecorder?

    /// "winograd,onednn" as algorithms; unknown names stop with the list of known ones.
    static func parseList(_ text: String) -> [ConvolutionAlgorithm] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.map { name in
            guard let a = ConvolutionAlgorithm(rawValue: name) else {
                fatalError("DIFFUSE_CONV_ALGORITHM: \(name) is not an algorithm (\(allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return a
        }
    }
}

/// The three passes of a convolution.
public enum ConvolutionPass: String, CaseIterable, Sendable {
    case forward
    case backwardData = "backward-data"
    case backwardWeights = "backward-weights"
}

/// One convolution pass that ran: which, its shape (`NxCxHxW->O kKxK s p d g`), the dtype it
/// computed in, the algorithm that computed it and the ones that could have.
public struct ConvolutionRun: Hashable, Sendable, CustomStringConvertible {
    public let pass: ConvolutionPass
    public let shape: String
    public let dtype: DType
    public let algorithm: ConvolutionAlgorithm
    public let candidates: [ConvolutionAlgorithm]
    public var description: String { "\(pass.rawValue) \(shape) \(dtype): \(algorithm.rawValue)" }
}

/// Collects the passes a `recording` body runs (from any thread of its task).
final class ConvolutionRecorder: @unchecked Sendable {
    private let lock = Mutex<[ConvolutionRun]>([])
    func append(_ run: ConvolutionRun) { lock.withLock { $0.append(run) } }
    var runs: [ConvolutionRun] { lock.withLock { $0 } }
}
