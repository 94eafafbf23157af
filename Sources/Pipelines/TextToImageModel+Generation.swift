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

    /// Checks the sample shape, the conditioning images and the caption tokens (one row of
    /// the tokenizer's context per sample, ids inside the vocabulary) of both inputs.
    public func validate(_ request: GenerationRequest, schedulerConfig: SchedulerConfig) throws {
        let shape = request.sampleShape, c = unet.config.outChannels
        guard shape.count == 3, shape[0] == c else {
            throw PipelineError("the model generates \(c)-channel samples [\(c), H, W], not samples of shape \(shape)")
        }
        let multiple = 1 << Swift.max(unet.config.blockOutChannels.count - 1, 0)
        guard shape[1] % multiple == 0 && shape[2] % multiple == 0 else {
            throw PipelineError("the model halves the resolution, so height and width must be multiples of \(multiple); got \(shape[1])x\(shape[2])")
        }
        for (name, conditioning) in [("conditioning", request.conditioning), ("unconditional conditioning", request.unconditional)] {
            guard let conditioning else { continue }
            let given = conditioning.image?.shape[1] ?? 0
            guard given == conditioningChannels else {
                throw PipelineError("the model takes \(conditioningChannels) conditioning channels beside the sample; the \(name) gives \(given)")
            }
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
