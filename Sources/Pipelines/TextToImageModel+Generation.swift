import Diffusion
import Models
import Tensors

extension TextToImageModel: ValidatingDenoiser {
    /// [out_channels, sample_size, sample_size] from the U-Net's config.json, when it gives a size.
    public var defaultSampleShape: [Int]? {
        guard case .one(let size)? = unet.config.sampleSize else { return nil }
        return [unet.config.outChannels, size, size]
    }

    /// Input channels beyond the sample's (conditioning images).
    public var conditioningChannels: Int { unet.config.inChannels - unet.config.outChannels }

    /// Checks the sample shape and conditioning images (`validateImages`) and the caption
    /// tokens (one row of the tokenizer's context per sample, ids inside the vocabulary) of
    /// both inputs.
    public func validate(_ request: GenerationRequest, schedulerConfig: SchedulerConfig) throws {
        try validateImages(request, modelName: "the text-to-image model", sampleChannels: unet.config.outChannels,
                           inChannels: unet.config.inChannels, downsamplings: Swift.max(unet.config.blockOutChannels.count - 1, 0),
                           shape: .init(blockChannels: unet.config.blockOutChannels,
                                        layersPerBlock: (0..<unet.config.blockCount).map { unet.config.layers(block: $0) },
                                        attention: (0..<unet.config.blockCount).map { unet.config.hasCrossAttention(downBlock: $0) }))
        for (name, conditioning) in [("conditioning", request.conditioning), ("unconditional conditioning", request.unconditional)] {
            guard let conditioning else { continue }
            guard conditioning.classLabels == nil, conditioning.context == nil else {
                throw PipelineError("the text-to-image model takes caption tokens, not class labels or a context; the \(name) has one")
            }
            if let tokens = conditioning.tokens {
                guard tokens.rank == 2, tokens.shape[1] == tokenizer.contextLength, tokens.dtype == .int32 || tokens.dtype == .int64 else {
                    throw PipelineError("the \(name)'s caption tokens must be integers [B, \(tokenizer.contextLength)]; got \(tokens.dtype) \(tokens.shape)")
                }
                if let bad = tokens.integers.first(where: { $0 < 0 || $0 >= tokenizer.vocabulary.count }) {
                    throw PipelineError("token id \(bad) in the \(name) is outside the vocabulary of \(tokenizer.vocabulary.count)")
                }
            }
        }
    }
}
