import Tensors

/// The memory a generation takes, estimated from the request and the U-Net's widths, so that
/// a batch or a sample size that cannot fit is refused with the numbers before any tensor is
/// allocated (a 100000x100000 sample, a batch of a billion), not discovered by the kernel's
/// out-of-memory killer.
public enum ActivationMemory {
    /// What the estimate needs of a U-Net: channels and ResNet layers per resolution, and
    /// which resolutions have attention.
    public struct UNetShape: Sendable {
        public var blockChannels: [Int]
        public var layersPerBlock: [Int]
        public var attention: [Bool]
        public init(blockChannels: [Int], layersPerBlock: [Int], attention: [Bool]) {
            (self.blockChannels, self.layersPerBlock, self.attention) = (blockChannels, layersPerBlock, attention)
        }
    }

    /// Bytes of one model evaluation of `batch` samples of `height` x `width` (float32): the
    /// skip connections kept for the way up (layers + 1 per resolution), a working set of four
    /// activations of the widest resolution, and one attention map (HW)^2 per sample where a
    /// resolution attends. An estimate within a small factor: enough to refuse what cannot
    /// fit, not to promise what can.
    public static func evaluationBytes(batch: Int, height: Int, width: Int, unet: UNetShape) -> Double {
        var skips = 0.0, widest = 0.0, attention = 0.0
        for (level, c) in unet.blockChannels.enumerated() {
            let pixels = Double(height) * Double(width) / Double(1 << (2 * min(level, 30)))
            let layers = Double(level < unet.layersPerBlock.count ? unet.layersPerBlock[level] : 1)
            skips += Double(c) * pixels * (layers + 1)
            widest = max(widest, Double(c) * pixels)
            if level < unet.attention.count && unet.attention[level] { attention = max(attention, pixels * pixels) }
        }
        return Double(batch) * 4 * (skips + 4 * widest + attention)
    }

    /// Throws when the request's evaluations (twice the batch with guidance) and its sample
    /// tensors (sample, noise, prediction, sampler state) would not fit in the memory
    /// available.
    public static func check(_ request: GenerationRequest, unet: UNetShape) throws {
        try check(request) { batch, height, width in evaluationBytes(batch: batch, height: height, width: width, unet: unet) }
    }

    /// Bytes of one evaluation of a transformer on `tokens` tokens of `width` (DiT): a working
    /// set of eight token tensors (residual stream, normed input, q, k, v, attention output,
    /// and the 4x-wide feed-forward counted as two) and the attention maps of all heads.
    public static func transformerEvaluationBytes(batch: Int, tokens: Int, width: Int, heads: Int) -> Double {
        let l = Double(tokens)
        return Double(batch) * 4 * (8 * l * Double(width) + Double(heads) * l * l)
    }

    /// `check` with the bytes of a model evaluation given for (batch, height, width).
    public static func check(_ request: GenerationRequest, evaluationBytes: (Int, Int, Int) -> Double) throws {
        let shape = request.sampleShape
        guard shape.count == 3 else { return }
        let batch = request.guidanceScale != 1 ? request.batchSize.multipliedReportingOverflow(by: 2).partialValue : request.batchSize
        let samples = Double(request.batchSize) * shape.reduce(1.0) { $0 * Double($1) } * 4 * 4
        let bytes = samples + evaluationBytes(batch, shape[1], shape[2])
        let what = "generating a batch of \(request.batchSize) at \(shape[2])x\(shape[1])"
        if let problem = MemoryBudget.shortfall(bytes, for: what) {
            throw PipelineError(problem + "; generate fewer samples at a time (--batch-size) or smaller ones")
        }
    }
}
