import CDNNL
import Foundation
import Synchronization

/// The shape of a 2-d convolution (PyTorch conventions: symmetric padding, dilation 1 =
/// none, weights [out, in / groups, kh, kw]).
struct ConvGeometry: Hashable, CustomStringConvertible {
    var batch, inChannels, height, width: Int
    var outChannels, kernelH, kernelW: Int
    var strideH, strideW, padH, padW, dilationH, dilationW, groups: Int

    var outH: Int { (height + 2 * padH - dilationH * (kernelH - 1) - 1) / strideH + 1 }
    var outW: Int { (width + 2 * padW - dilationW * (kernelW - 1) - 1) / strideW + 1 }
    /// oneDNN's right/bottom padding that makes its output size equal PyTorch's.
    var padBottom: Int { (outH - 1) * strideH + dilationH * (kernelH - 1) + 1 - height - padH }
    var padRight: Int { (outW - 1) * strideW + dilationW * (kernelW - 1) + 1 - width - padW }

    var inputShape: [Int] { [batch, inChannels, height, width] }
    var outputShape: [Int] { [batch, outChannels, outH, outW] }
    var weightShape: [Int] { [outChannels, inChannels / groups, kernelH, kernelW] }
    var flops: Double {
        2.0 * Double(batch * outChannels * outH * outW) * Double(inChannels / groups * kernelH * kernelW)
    }
    /// The convolution whose backward-data pass computes this forward pass: stride 1,
    /// no dilation, channels swapped, padding k-1-p (nil when that does not exist).
    var dual: ConvGeometry? {
        guard strideH == 1, strideW == 1, dilationH == 1, dilationW == 1,
              padH <= kernelH - 1, padW <= kernelW - 1 else { return nil }
        return ConvGeometry(batch: batch, inChannels: outChannels, height: outH, width: outW,
                            outChannels: inChannels, kernelH: kernelH, kernelW: kernelW, strideH: 1, strideW: 1,
                            padH: kernelH - 1 - padH, padW: kernelW - 1 - padW, dilationH: 1, dilationW: 1, groups: groups)
    }

    /// What a pass of this geometry is timed on when it is large (above 2 GFLOP): as many of
    /// its images as take about that many FLOPs, or, where one image takes more, a crop of it
    /// of about that many, at least 24 pixels a side. Not batch 1 of small images: Winograd's
    /// GEMMs run over the 4x4 tiles of the whole batch, and a single 16x16 image's 16 tiles
    /// timed it slower than direct convolution where 64 images' 1024 tiles run it 2x faster.
    /// nil for a pass small enough to time as it is.
    var timingProxy: ConvGeometry? {
        let budget = 2e9
        guard flops > budget else { return nil }
        var p = self
        p.batch = Swift.max(1, Swift.min(batch, Int(budget / (flops / Double(batch)))))
        let scale = Swift.min(1, (budget / p.flops).squareRoot())
        p.height = Swift.min(height, Swift.max(24, Int(Double(height) * scale)))
        p.width = Swift.min(width, Swift.max(24, Int(Double(width) * scale)))
        return p.flops < flops && p.outH >= 1 && p.outW >= 1 ? p : nil
    }

    var description: String {
        "\(batch)x\(inChannels)x\(height)x\(width)->\(outChannels) k\(kernelH)x\(kernelW) s\(strideH),\(strideW) p\(padH),\(padW) d\(dilationH),\(dilationW) g\(groups)"
    }
}

/// What a forward convolution folds into its output.
struct ConvPostOps: Hashable {
    /// Adds the destination's previous contents (a residual) before the activation.
    var sum = false
    /// Applies SiLU (swish) last.
    var silu = false
    var key: String { "\(sum ? "+sum" : "")\(silu ? "+silu" : "")" }
}

/// Convolutions on channels-last activations through oneDNN, with weights reordered once
/// per weight version into the layout each pass wants.
enum ConvolutionKernel {
    /// Whether oneDNN has native bf16 convolutions on this CPU.
    static let bf16Supported: Bool = {
        if BFloat16Support.disabledByEnvironment { return false }
        let g = ConvGeometry(batch: 1, inChannels: 16, height: 8, width: 8, outChannels: 16, kernelH: 3, kernelW: 3,
                             strideH: 1, strideW: 1, padH: 1, padW: 1, dilationH: 1, dilationW: 1, groups: 1)
        return forwardPrimitive(g, .bfloat16, bias: false, post: ConvPostOps()) != nil
    }()

    static func activationDesc(_ shape: [Int], _ type: DType) throws -> dnnl_memory_desc_t {
        try OneDNN.desc(shape, Shape.channelsLastStrides(shape), type)
    }

    /// Weights as oneDNN sees them: grouped convolutions get a leading groups dimension.
    static func weightDims(_ g: ConvGeometry) -> [Int] {
        g.groups == 1 ? g.weightShape
            : [g.groups, g.outChannels / g.groups, g.inChannels / g.groups, g.kernelH, g.kernelW]
    }

    static func plainWeightDesc(_ g: ConvGeometry, strides s: [Int], _ type: DType) throws -> dnnl_memory_desc_t {
        if g.groups == 1 { return try OneDNN.desc(g.weightShape, s, type) }
        return try OneDNN.desc(weightDims(g), [s[0] * g.outChannels / g.groups, s[0], s[1], s[2], s[3]], type)
    }

    /// Strides, dilations (oneDNN counts from 0) and the two paddings, as oneDNN takes them.
    private static func convArgs(_ g: ConvGeometry) -> ([dnnl_dim_t], [dnnl_dim_t], [dnnl_dim_t], [dnnl_dim_t]) {
        ([g.strideH, g.strideW].map { dnnl_dim_t($0) }, [g.dilationH - 1, g.dilationW - 1].map { dnnl_dim_t($0) },
         [g.padH, g.padW].map { dnnl_dim_t($0) }, [g.padBottom, g.padRight].map { dnnl_dim_t($0) })
    }

    /// Calls `body` with a pointer to `md`, or nil when `present` is false.
    private static func optional<R>(_ md: inout dnnl_memory_desc_t, _ present: Bool,
                                    _ body: (UnsafeMutablePointer<dnnl_memory_desc_t>?) throws -> R) rethrows -> R {
        try withUnsafeMutablePointer(to: &md) { try body(present ? $0 : nil) }
    }

    private static func key(_ pass: String, _ g: ConvGeometry, _ type: DType, bias: Bool, post: ConvPostOps = ConvPostOps()) -> String {
        "conv-\(pass)|\(type)|\(g)|\(bias)|\(post.key)"
    }

    /// The forward primitive computing in `type` and writing `dst` (float32, or bfloat16
    /// for a bf16 pass whose output stays bf16).
    static func forwardPrimitive(_ g: ConvGeometry, _ type: DType, bias: Bool, post: ConvPostOps,
                                 dst dstType: DType = .float32) -> OneDNN.Primitive? {
        OneDNN.primitive(key("fwd", g, type, bias: bias, post: post) + "|dst \(dstType)") {
            var desc = dnnl_convolution_desc_t()
            var src = try activationDesc(g.inputShape, type)
            var dst = try activationDesc(g.outputShape, dstType)
            var wei = try OneDNN.anyDesc(weightDims(g), type)
            var b = try OneDNN.desc([g.outChannels], [1], .float32)
            let (s, d, l, r) = convArgs(g)
            try optional(&b, bias) { bp in
                try OneDNN.check(dnnl_dilated_convolution_forward_desc_init(
                    &desc, dnnl_forward_training, dnnl_convolution_direct, &src, &wei, bp, &dst, s, d, l, r),
                                 "convolution descriptor \(g)")
            }
            var attr: dnnl_primitive_attr_t?
            try OneDNN.check(dnnl_primitive_attr_create(&attr), "attributes")
            defer { dnnl_primitive_attr_destroy(attr) }
            if post.sum || post.silu {
                var po: dnnl_post_ops_t?
                try OneDNN.check(dnnl_post_ops_create(&po), "post-ops")
                defer { dnnl_post_ops_destroy(po) }
                if post.sum { try OneDNN.check(dnnl_post_ops_append_sum(po, 1), "sum post-op") }
                if post.silu { try OneDNN.check(dnnl_post_ops_append_eltwise(po, 1, dnnl_eltwise_swish, 1, 0), "swish post-op") }
                try OneDNN.check(dnnl_primitive_attr_set_post_ops(attr, po), "set post-ops")
            }
            var pd: dnnl_primitive_desc_t?
            try OneDNN.check(dnnl_primitive_desc_create(&pd, &desc, attr, OneDNN.engine, nil), "convolution \(g)")
            return pd!
        }
    }

    /// The weights of `w` (OIHW, any strides) in the layout `target`, cached on the
    /// weight's storage until the weight changes.
    /// With `source`, the weights reordered are `source()` (made only when the cache misses;
    /// a contiguous tensor of g's weight shape, or a matrix of the weights in another shape,
    /// read by its own strides: im2col's), cached on `w`'s storage all the same.
    /// `converting` to another type than w's (float32 masters for a bf16 pass) reorders the
    /// master's cached cast (`toCached`): one conversion per weight version for all passes,
    /// and none where the optimizer's update wrote the new version's bf16 form itself.
    static func reorderedWeights(_ w: Tensor, _ g: ConvGeometry, target: dnnl_memory_desc_t, purpose: String,
                                 converting type: DType) -> Storage {
        reorderedWeights(w, g, target: target, purpose: purpose, source: w.dtype == type ? nil : { w.toCached(type) })
    }

    static func reorderedWeights(_ w: Tensor, _ g: ConvGeometry, target: dnnl_memory_desc_t, purpose: String,
                                 source: (() -> Tensor)? = nil) -> Storage {
        let wType: DType = w.dtype
        var fingerprint = Hasher()
        withUnsafeBytes(of: target) { fingerprint.combine(bytes: $0) }
        let tag = "\(purpose)|\(fingerprint.finalize())|\(w.offset)|\(w.strides)|\(wType)|\(g.groups)"
        return w.storage.derivedBuffer(tag) {
            do {
                let plain = source?() ?? w
                let from = plain.shape == g.weightShape ? try plainWeightDesc(g, strides: plain.strides, plain.dtype)
                    : try OneDNN.desc(plain.shape, plain.strides, plain.dtype)
                return try OpProfiler.measure("weights reorder") {
                    try withExtendedLifetime(plain) { try OneDNN.reorder(plain.baseAddress, from: from, to: target, key: tag) }
                }
            } catch {
                fatalError("Tensors.conv2d: cannot reorder weights \(w.shape): \(error)")
            }
        }
    }

    /// y = conv(x, w) + bias (+ residual), then SiLU if asked; x channels-last (type
    /// `type`), y channels-last of `outType` (float32, or bfloat16 written by the kernel
    /// or its epilogue, never by a separate pass). `residual` is channels-last, either type.
    ///
    /// Up to five ways compute it, and the fastest for the shape is kept (timed on first use):
    /// oneDNN's forward kernel; oneDNN's backward-data kernel of the dual convolution
    /// (stride 1: weights transposed and flipped, padding k-1-p), faster than 2.6's AVX2
    /// forward kernels by up to 1.7x (measured); LIBXSMM batch-reduce GEMMs; and, for 3x3
    /// stride 1, Winograd with its transformed weights kept or streamed.
    static func forward(_ x: Tensor, _ w: Tensor, _ bias: Tensor?, _ g: ConvGeometry, _ type: DType,
                        residual: Tensor? = nil, silu: Bool = false, outType: DType = .float32,
                        freshWeights: Bool = false) -> Tensor {
        let candidates = forwardCandidates(x, w, g, type)
        let choice = choose(.forward, g, type, candidates, weights: w, freshWeights: freshWeights, proxy: g.timingProxy.map { p in
            { forwardCandidates(Tensor.zeros(p.inputShape).to(type).channelsLast(), w, p, type) }
        })
        return OpProfiler.measure(profileLabel("fwd", g, choice)) {
        switch choice {
        case .brgemm:
            return BRGEMMConvolution.forward(x, w, bias, g, residual: residual?.asFloat32(), silu: silu).converted(to: outType)
        case .winograd:
            return WinogradConvolution.forward(x, transformed: WinogradConvolution.transformedWeights(w, g), bias, g,
                                               residual: residual, silu: silu, outType: outType)
        case .winogradBF16:
            return WinogradConvolution.forwardBF16(x, transformed: WinogradConvolution.transformedWeightsBF16(w, g, dual: false), bias, g,
                                                   residual: residual, silu: silu, outType: outType)
        case .winogradStreamed:
            return WinogradConvolution.forwardStreamed(x.asFloat32(), weights: w, bias, g, residual: residual?.asFloat32(), silu: silu)
                .converted(to: outType)
        case .onednnDual:
            return epilogue(forwardByDual(x, w, g, type), bias, residual, silu: silu, outType: outType)
        case .im2col:
            return Im2colConvolution.forward(x, w, bias, g, type, residual: residual, silu: silu, outType: outType)
        default:
            return direct(x, w, bias, g, type, residual: residual, silu: silu, outType: outType)
        }
        }
    }

    /// The forward candidates for (x, g), each without bias or post-ops (what timing runs).
    private static func forwardCandidates(_ x: Tensor, _ w: Tensor, _ g: ConvGeometry, _ type: DType) -> [(Algorithm, () -> Tensor)] {
        candidateAlgorithms(.forward, g, type).map { algorithm in
            switch algorithm {
            case .onednn: return (algorithm, { direct(x, w, nil, g, type) })
            case .onednnDual: return (algorithm, { forwardByDual(x, w, g, type) })
            case .brgemm: return (algorithm, { BRGEMMConvolution.forward(x, w, nil, g) })
            case .winograd:
                return (algorithm, { WinogradConvolution.forward(x, transformed: WinogradConvolution.transformedWeights(w, g), nil, g) })
            case .winogradBF16:
                return (algorithm, { WinogradConvolution.forwardBF16(x, transformed: WinogradConvolution.transformedWeightsBF16(w, g, dual: false), nil, g) })
            case .winogradStreamed: return (algorithm, { WinogradConvolution.forwardStreamed(x.asFloat32(), weights: w, nil, g) })
            case .im2col: return (algorithm, { Im2colConvolution.forward(x, w, nil, g, type) })
            case .tapGEMM, .amxTaps: preconditionFailure("tap products compute weight gradients only")
            }
        }
    }

    /// dL/dx for dL/dy `gy` (channels-last, `type`): channels-last, float32, or bfloat16
    /// for `outType` bfloat16 (oneDNN writes it; the others convert). oneDNN's
    /// backward-data kernel, or (stride 1) the LIBXSMM or (3x3) Winograd forward of the dual
    /// convolution.
    static func backwardData(_ gy: Tensor, _ w: Tensor, _ g: ConvGeometry, _ type: DType, outType: DType = .float32,
                             freshWeights: Bool = false) -> Tensor {
        let candidates: [(Algorithm, () -> Tensor)] = candidateAlgorithms(.backwardData, g, type).map { algorithm in
            switch algorithm {
            case .brgemm:
                return (algorithm, { BRGEMMConvolution.forward(gy, blocked: BRGEMMConvolution.blockedForDual(w, g), nil, g.dual!) })
            case .winograd:
                return (algorithm, { WinogradConvolution.forward(gy, transformed: WinogradConvolution.transformedDualWeights(w, g), nil, g.dual!,
                                                                 outType: outType) })
            case .winogradBF16:
                return (algorithm, { WinogradConvolution.forwardBF16(gy, transformed: WinogradConvolution.transformedWeightsBF16(w, g, dual: true),
                                                                     nil, g.dual!, outType: outType) })
            case .winogradStreamed: return (algorithm, { WinogradConvolution.backwardDataStreamed(gy.asFloat32(), weights: w, g) })
            case .onednn: return (algorithm, { backwardDataOneDNN(gy, w, g, type, outType: outType) })
            case .onednnDual: return (algorithm, { backwardDataByDual(gy, w, g, type, outType: outType) })
            case .im2col: return (algorithm, { Im2colConvolution.backwardData(gy, w, g, type, outType: outType) })
            case .tapGEMM, .amxTaps: preconditionFailure("tap products compute weight gradients only")
            }
        }
        let choice = choose(.backwardData, g, type, candidates, weights: w, freshWeights: freshWeights)
        return OpProfiler.measure(profileLabel("bwd-data", g, choice)) {
            candidates.first { $0.0 == choice }!.1().converted(to: outType)
        }
    }

    /// dL/dw (float32, OIHW row-major) and dL/dbias for input x and dL/dy `gy`: oneDNN's
    /// backward-weights kernel, LIBXSMM batch-reduce GEMMs over output rows, (3x3 stride 1)
    /// Winograd's adjoint transforms, (stride 1) a product per kernel tap (oneDNN matmuls, or
    /// bf16 on AMX tiles), or one product over the unfolded input (im2col).
    static func backwardWeights(_ x: Tensor, _ gy: Tensor, _ g: ConvGeometry, _ type: DType, bias: Bool) -> (Tensor, Tensor?) {
        let candidates: [(Algorithm, () -> (Tensor, Tensor?))] = candidateAlgorithms(.backwardWeights, g, type).map { algorithm in
            switch algorithm {
            case .brgemm: return (algorithm, { BRGEMMConvolution.backwardWeights(x, gy, g, bias: bias) })
            case .winograd: return (algorithm, { WinogradConvolution.backwardWeights(x, gy.converted(to: x.dtype), g, bias: bias) })
            case .tapGEMM: return (algorithm, { TapGEMMConvolution.backwardWeights(x, gy, g, bias: bias) })
            case .amxTaps: return (algorithm, { TapGEMMConvolution.backwardWeightsAMX(x, gy, g, bias: bias) })
            case .im2col: return (algorithm, { Im2colConvolution.backwardWeights(x, gy, g, bias: bias) })
            default: return (algorithm, { backwardWeightsOneDNN(x, gy, g, type, bias: bias) })
            }
        }
        let choice = choose(.backwardWeights, g, type, candidates)
        return OpProfiler.measure(profileLabel("bwd-weights", g, choice)) {
            candidates.first { $0.0 == choice }!.1()
        }
    }

    typealias Algorithm = ConvolutionAlgorithm

    /// A pass's row in `OpProfiler`'s report: "conv fwd 3x3 128->128@32 winograd".
    private static func profileLabel(_ pass: String, _ g: ConvGeometry, _ choice: Algorithm) -> String {
        "conv \(pass) \(g.kernelH)x\(g.kernelW) \(g.inChannels)->\(g.outChannels)@\(g.height) \(choice.rawValue)"
    }
    private static let algorithms = Mutex<[String: Algorithm]>([:])
    /// The forced algorithms, in order: `DIFFUSE_CONV_ALGORITHM` (one name, or a comma-
    /// separated list) until `ConvolutionAlgorithm.preferredOrder` is set.
    static let preference = Mutex<[Algorithm]>(ConvolutionAlgorithm.parseList(ProcessInfo.processInfo.environment["DIFFUSE_CONV_ALGORITHM"] ?? ""))

    /// The algorithms that can compute `pass` of (g, type), oneDNN's first: the one list
    /// the passes, the timing and `ConvolutionAlgorithm.candidates` share.
    /// Winograd computes in float32 for bf16 passes too (their bf16 operands widened, the
    /// output rounded): with 4x fewer multiply-adds it can beat oneDNN's bf16 kernels.
    static func candidateAlgorithms(_ pass: ConvolutionPass, _ g: ConvGeometry, _ type: DType) -> [Algorithm] {
        var list: [Algorithm] = [.onednn]
        let fp32 = type == .float32
        switch pass {
        case .forward:
            if g.dual != nil { list.append(.onednnDual) }
            if fp32 && BRGEMMConvolution.supports(g) { list.append(.brgemm) }
            if WinogradConvolution.supports(g) {
                if WinogradConvolution.keepsTransformedWeights(g) { list.append(.winograd) }
                list.append(.winogradStreamed)
                if lowPrecisionWinograd(g, type) { list.append(.winogradBF16) }
            }
            if Im2colConvolution.supports(g) { list.append(.im2col) }
        case .backwardData:
            if g.dual != nil { list.append(.onednnDual) }
            if fp32, let dual = g.dual, BRGEMMConvolution.supports(dual) { list.append(.brgemm) }
            if let dual = g.dual, WinogradConvolution.supports(dual) {
                if WinogradConvolution.keepsTransformedWeights(dual) { list.append(.winograd) }
                list.append(.winogradStreamed)
                if lowPrecisionWinograd(dual, type) { list.append(.winogradBF16) }
            }
            if Im2colConvolution.supports(g) { list.append(.im2col) }
        case .backwardWeights:
            if fp32 && BRGEMMConvolution.supports(g) { list.append(.brgemm) }
            if WinogradConvolution.supports(g) { list.append(.winograd) }
            if TapGEMMConvolution.supports(g) { list.append(.tapGEMM) }
            if type == .bfloat16 && TapGEMMConvolution.supportsAMX(g) { list.append(.amxTaps) }
            if Im2colConvolution.supports(g) { list.append(.im2col) }
        }
        return list
    }

    /// Whether `winogradBF16` is a candidate for a bf16 pass computed as the forward pass of g:
    /// allowed (`allowsLowPrecisionWinograd`, or forced), bf16 GEMMs for g, and its transformed
    /// weights kept (the rule of `winograd`).
    private static func lowPrecisionWinograd(_ g: ConvGeometry, _ type: DType) -> Bool {
        type == .bfloat16 && WinogradConvolution.supportsBF16(g) && WinogradConvolution.keepsTransformedWeights(g)
            && (ConvolutionAlgorithm.allowsLowPrecisionWinograd || forcedAlgorithms.contains(.winogradBF16))
    }

    /// The algorithms forced for this task: a scoped `ConvolutionAlgorithm.with`, else
    /// `preferredOrder`.
    private static var forcedAlgorithms: [Algorithm] { ConvolutionAlgorithm.scoped ?? preference.withLock { $0 } }

    /// The algorithm for one pass of (g, type): the first of the forced ones (a scoped
    /// `ConvolutionAlgorithm.with`, else `preferredOrder`) that can compute it, an error
    /// when none can; without a preference each candidate is timed (best of three after a
    /// warm-up) on first use and the fastest kept. The choice is reported to any
    /// `ConvolutionAlgorithm.recording` in progress.
    ///
    /// `freshWeights`: w changes before the next call (a training step's weights, updated after
    /// it), so every form a kernel derives from w (oneDNN's reordered weights, Winograd's
    /// transformed ones) is made again at each call. Each timed run then makes its own, and
    /// the choice is kept apart from the one for fixed weights (sampling).
    private static func choose<R>(_ pass: ConvolutionPass, _ g: ConvGeometry, _ type: DType,
                                  _ candidates: [(Algorithm, () -> R)], weights: Tensor? = nil, freshWeights: Bool = false,
                                  proxy: (() -> [(Algorithm, () -> R)])? = nil) -> Algorithm {
        let choice = timedOrForced(pass, g, type, candidates, weights: weights, freshWeights: freshWeights, proxy: proxy)
        ConvolutionAlgorithm.recorder?.append(ConvolutionRun(pass: pass, shape: g.description, dtype: type, algorithm: choice,
                                                             candidates: candidates.map(\.0)))
        return choice
    }

    private static func timedOrForced<R>(_ pass: ConvolutionPass, _ g: ConvGeometry, _ type: DType,
                                         _ candidates: [(Algorithm, () -> R)], weights: Tensor?, freshWeights: Bool,
                                         proxy: (() -> [(Algorithm, () -> R)])? = nil) -> Algorithm {
        let forced = forcedAlgorithms
        if !forced.isEmpty {
            guard let first = forced.first(where: { f in candidates.contains { $0.0 == f } }) else {
                fatalError("Tensors.conv2d: \(forced.map(\.rawValue).joined(separator: ",")) was forced, but cannot compute the "
                           + "\(pass.rawValue) pass of \(g) in \(type) (it can: \(candidates.map(\.0.rawValue).joined(separator: ", "))); "
                           + "force a list such as \(forced[0].rawValue),onednn to fall back where it does not apply")
            }
            return first
        }
        if candidates.count == 1 { return candidates[0].0 }
        // The candidates are part of the key: allowing `winogradBF16` adds one.
        let fresh = freshWeights && weights != nil
        let key = "\(pass.rawValue) \(g) \(type) \(candidates.map(\.0.rawValue).joined(separator: ","))\(fresh ? " fresh" : "")"
        if let known = algorithms.withLock({ $0[key] }) { return known }
        // A large pass is timed on its proxy (batch 1, a crop of the image) when the same
        // algorithms can compute it: the timing costs seconds, not minutes.
        var candidates = candidates
        if let proxy {
            let shared = proxy().filter { p in candidates.contains { $0.0 == p.0 } }
            if shared.count >= 2 { candidates = shared }
        }
        // A warm-up each, then three rounds taking the candidates in turn (machine noise
        // then hits all alike); the best time of each counts.
        for (_, run) in candidates { _ = run() }
        var best = [Double](repeating: .infinity, count: candidates.count)
        for _ in 0..<3 {
            for (i, (_, run)) in candidates.enumerated() {
                if fresh { weights?.storage.expireDerived() }
                let start = DispatchTime.now().uptimeNanoseconds
                _ = run()
                best[i] = Swift.min(best[i], Double(DispatchTime.now().uptimeNanoseconds - start))
            }
        }
        let fastest = candidates[best.indices.min { best[$0] < best[$1] }!].0
        // Two tasks timing the same new shape at once may disagree: the first stored choice
        // stands, so every later call of the shape (in either task) computes the same way.
        let choice = algorithms.withLock { known in
            if let first = known[key] { return first }
            known[key] = fastest
            return fastest
        }
        // Each candidate cached its own form of the weights (Winograd's is 4x their size);
        // free them all, the chosen one rebuilds its own on the next call.
        weights?.storage.clearDerived()
        return choice
    }

    /// The algorithm chosen per pass and shape so far (for reports).
    static var chosenAlgorithms: [String: String] { algorithms.withLock { $0.mapValues(\.rawValue) } }

    /// y + bias[c] (+ residual), then SiLU, on a fresh channels-last float32 y: in place,
    /// or, for a bfloat16 `outType`, into a new bf16 tensor, each row converted while it is
    /// in cache (no separate conversion pass).
    static func epilogue(_ y: Tensor, _ bias: Tensor?, _ residual: Tensor?, silu: Bool, outType: DType) -> Tensor {
        let toBF16 = outType == .bfloat16
        guard bias != nil || residual != nil || silu || toBF16 else { return y }
        let out = toBF16 ? Tensor(uninitializedShape: y.shape, strides: y.strides, dtype: .bfloat16) : y
        let c = y.shape[1]
        let rows = y.count / max(c, 1)
        let yp = SendablePointer(y.pointer(as: Float.self))
        let op = SendablePointer(out.baseAddress.assumingMemoryBound(to: UInt16.self))
        let bp = bias.map { SendablePointer($0.pointer(as: Float.self)) }
        let residual32 = residual?.asFloat32()
        let rp = residual32.map { SendablePointer($0.pointer(as: Float.self)) }
        Parallel.forEach(rows, cost: c * 4) { r in
            let row = yp.p + r * c
            var ch = 0
            while ch < c {
                let m = Swift.min(8, c - ch)
                var v = Lanes.load(row + ch, 1, m)
                if let bp { v += Lanes.load(bp.p + ch, 1, m) }
                if let rp { v += Lanes.load(rp.p + r * c + ch, 1, m) }
                if silu { v = v * VectorMath.sigmoid(v) }
                Lanes.store(v, row + ch, 1, m)
                ch += m
            }
            if toBF16 { BFloat16Runs.narrow(row, 1, op.p + r * c, 1, c) }
        }
        withExtendedLifetime(residual32) {}
        return out
    }

    /// oneDNN's forward primitive, bias, residual (sum) and SiLU fused.
    static func direct(_ x: Tensor, _ w: Tensor, _ bias: Tensor?, _ g: ConvGeometry, _ type: DType,
                       residual: Tensor? = nil, silu: Bool = false, outType: DType = .float32) -> Tensor {
        let post = ConvPostOps(sum: residual != nil, silu: silu)
        // A bf16 output comes from a bf16 pass; a float32 pass (no bf16 on this CPU) converts after.
        let dstType: DType = type == .bfloat16 ? outType : .float32
        guard let p = forwardPrimitive(g, type, bias: bias != nil, post: post, dst: dstType) else {
            fatalError("Tensors.conv2d: oneDNN has no fast kernel for \(g) (\(type))")
        }
        let y = Tensor(uninitializedShape: g.outputShape, strides: Shape.channelsLastStrides(g.outputShape), dtype: dstType)
        if let residual { y.assign(residual) }
        let wt = reorderedWeights(w, g, target: p.md(dnnl_query_weights_md), purpose: "fwd", converting: type)
        var args: [(Int32, dnnl_memory_desc_t, UnsafeMutableRawPointer)] = [
            (DNNL_ARG_SRC, p.md(dnnl_query_src_md), x.baseAddress),
            (DNNL_ARG_WEIGHTS, p.md(dnnl_query_weights_md), wt.base),
            (DNNL_ARG_DST, p.md(dnnl_query_dst_md), y.baseAddress),
        ]
        if let bias { args.append((DNNL_ARG_BIAS, p.md(dnnl_query_weights_md, 1), bias.baseAddress)) }
        do { try p.execute(args) } catch { fatalError("Tensors.conv2d: \(error)") }
        withExtendedLifetime(wt) {}
        return y.converted(to: outType)
    }

    /// oneDNN's backward-data pass with weights `w`; or, given `dualOf` (weights w0 of the
    /// convolution g0 whose dual `g` is), with the flipped and transposed w0, reordered once
    /// and cached on w0's storage.
    /// `outType` bfloat16 (with a bf16 `type`) makes oneDNN write dL/dx in bf16.
    static func backwardDataOneDNN(_ gy: Tensor, _ w: Tensor?, _ g: ConvGeometry, _ type: DType,
                                   dualOf: (Tensor, ConvGeometry)? = nil, outType: DType = .float32) -> Tensor {
        let dsrcType: DType = type == .bfloat16 ? outType : .float32
        guard let fwd = forwardPrimitive(g, type, bias: false, post: ConvPostOps()),
              let p = OneDNN.primitive(key("bwd-data", g, type, bias: false) + "|diff-src \(dsrcType)", make: {
                  var desc = dnnl_convolution_desc_t()
                  var dsrc = try activationDesc(g.inputShape, dsrcType)
                  var ddst = try activationDesc(g.outputShape, type)
                  var wei = try OneDNN.anyDesc(weightDims(g), type)
                  let (s, d, l, r) = convArgs(g)
                  try OneDNN.check(dnnl_dilated_convolution_backward_data_desc_init(
                      &desc, dnnl_convolution_direct, &dsrc, &wei, &ddst, s, d, l, r), "backward-data descriptor")
                  var pd: dnnl_primitive_desc_t?
                  try OneDNN.check(dnnl_primitive_desc_create(&pd, &desc, nil, OneDNN.engine, fwd.pd), "backward-data \(g)")
                  return pd!
              }) else { fatalError("Tensors.conv2d: oneDNN has no backward-data kernel for \(g) (\(type))") }
        let gx = Tensor(uninitializedShape: g.inputShape, strides: Shape.channelsLastStrides(g.inputShape), dtype: dsrcType)
        let wt: Storage
        if let (w0, g0) = dualOf {
            wt = reorderedDualWeights(w0, g0, target: p.md(dnnl_query_weights_md), purpose: "dual-bwd-data", type)
        } else {
            wt = reorderedWeights(w!, g, target: p.md(dnnl_query_weights_md), purpose: "bwd-data", converting: type)
        }
        do {
            try p.execute([
                (DNNL_ARG_DIFF_DST, p.md(dnnl_query_diff_dst_md), gy.baseAddress),
                (DNNL_ARG_WEIGHTS, p.md(dnnl_query_weights_md), wt.base),
                (DNNL_ARG_DIFF_SRC, p.md(dnnl_query_diff_src_md), gx.baseAddress),
            ])
        } catch { fatalError("Tensors.conv2d backward: \(error)") }
        withExtendedLifetime(wt) {}
        return gx
    }

    /// oneDNN's backward-weights pass.
    static func backwardWeightsOneDNN(_ x: Tensor, _ gy: Tensor, _ g: ConvGeometry, _ type: DType, bias: Bool) -> (Tensor, Tensor?) {
        guard let fwd = forwardPrimitive(g, type, bias: bias, post: ConvPostOps()),
              let p = OneDNN.primitive(key("bwd-weights", g, type, bias: bias), make: {
                  var desc = dnnl_convolution_desc_t()
                  var src = try activationDesc(g.inputShape, type)
                  var ddst = try activationDesc(g.outputShape, type)
                  var dwei = try OneDNN.anyDesc(weightDims(g), .float32)
                  var db = try OneDNN.desc([g.outChannels], [1], .float32)
                  let (s, d, l, r) = convArgs(g)
                  try optional(&db, bias) { dbp in
                      try OneDNN.check(dnnl_dilated_convolution_backward_weights_desc_init(
                          &desc, dnnl_convolution_direct, &src, &dwei, dbp, &ddst, s, d, l, r),
                                       "backward-weights descriptor")
                  }
                  var pd: dnnl_primitive_desc_t?
                  try OneDNN.check(dnnl_primitive_desc_create(&pd, &desc, nil, OneDNN.engine, fwd.pd), "backward-weights \(g)")
                  return pd!
              }) else { fatalError("Tensors.conv2d: oneDNN has no backward-weights kernel for \(g) (\(type))") }
        let dwMD = p.md(dnnl_query_diff_weights_md)
        let gb = bias ? Tensor(uninitializedShape: [g.outChannels], dtype: .float32) : nil
        let gw = Tensor(uninitializedShape: g.weightShape, dtype: .float32)
        do {
            // oneDNN writes dL/dw in its own layout (blocked for its AMX and AVX-512 kernels),
            // reordered from a scratch buffer straight into gw; a plain layout lands in gw.
            let plain = try plainWeightDesc(g, strides: gw.strides, .float32)
            let direct = OneDNN.equal(plain, dwMD)
            let raw = direct ? nil : Storage(byteCount: OneDNN.size(dwMD))
            var args: [(Int32, dnnl_memory_desc_t, UnsafeMutableRawPointer)] = [
                (DNNL_ARG_SRC, p.md(dnnl_query_src_md), x.baseAddress),
                (DNNL_ARG_DIFF_DST, p.md(dnnl_query_diff_dst_md), gy.baseAddress),
                (DNNL_ARG_DIFF_WEIGHTS, dwMD, raw?.base ?? gw.baseAddress),
            ]
            if let gb { args.append((DNNL_ARG_DIFF_BIAS, p.md(dnnl_query_diff_weights_md, 1), gb.baseAddress)) }
            try p.execute(args)
            if let raw {
                var fp = Hasher()
                withUnsafeBytes(of: dwMD) { fp.combine(bytes: $0) }
                try OneDNN.reorder(raw.base, from: dwMD, to: plain, into: gw.baseAddress, key: "dw|\(g)|\(fp.finalize())")
            }
        } catch { fatalError("Tensors.conv2d backward: \(error)") }
        return (gw, gb)
    }
}
