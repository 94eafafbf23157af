import Diffusion
import Models
import NeuralNetworks
import Tensors

extension UNet2DModel: ValidatingDenoiser {
    /// [in_channels, sample_size, sample_size] from config.json, when it gives a sample size.
    public var defaultSampleShape: [Int]? {
        config.sampleSize.map { [sampleChannels, $0, $0] }
    }

    /// Input channels beyond the sample's: conditioning images the model expects (SR3: the
    /// upsampled low-resolution image; an inpainting model: mask + masked image).
    public var conditioningChannels: Int { config.inChannels - sampleChannels }

    /// How many times the model halves the resolution (one per down block but the last).
    var downsamplings: Int { Swift.max(config.downBlockTypes.count - 1, 0) }

    /// Checks the sample shape against the input channels and the downsamplings (each skip
    /// connection must meet a tensor of its size on the way up), the output channels against
    /// the sampler, and the class labels against the class embedding.
    public func validate(_ request: GenerationRequest, schedulerConfig: SchedulerConfig) throws {
        try validateImages(request, modelName: "UNet2DModel", sampleChannels: sampleChannels, inChannels: config.inChannels,
                           downsamplings: downsamplings,
                           shape: .init(blockChannels: config.blockOutChannels,
                                        layersPerBlock: Array(repeating: config.layersPerBlock, count: config.blockOutChannels.count),
                                        attention: config.downBlockTypes.map { $0.hasPrefix("Attn") }))
        let learned = schedulerConfig.varianceType == "learned" || schedulerConfig.varianceType == "learned_range"
        if config.outChannels != sampleChannels {
            guard config.outChannels == 2 * sampleChannels && learned && request.sampler == .ddpm else {
                throw PipelineError("the model predicts \(config.outChannels) channels for \(sampleChannels)-channel samples; "
                                    + "only the DDPM sampler with a learned variance_type uses twice the channels")
            }
        }
        for (name, c, required) in [("conditioning", request.conditioning, true),
                                    ("unconditional conditioning", request.unconditional, request.unconditional != nil)] {
            try validateLabels(c?.classLabels, name: name, required: required)
            if c?.context != nil {
                throw PipelineError("UNet2DModel takes no context (text embeddings); the \(name) has one")
            }
        }
    }

    /// Class labels: required (one per sample) by a model with a class embedding, refused by
    /// one without; table indices must be in range.
    private func validateLabels(_ labels: Tensor?, name: String, required: Bool) throws {
        guard let embedding = classEmbedding else {
            if labels != nil {
                throw PipelineError("the model has no class embedding (num_class_embeds and class_embed_type are unset), "
                                    + "so it takes no class labels")
            }
            return
        }
        guard let labels else {
            if required {
                throw PipelineError("the model is class-conditional (\(classDescription)): class labels are needed")
            }
            return
        }
        switch embedding {
        case is Embedding:
            guard labels.dtype == .int32 || labels.dtype == .int64, labels.rank == 1 else {
                throw PipelineError("class labels must be integers, one per sample; got \(labels.dtype) of shape \(labels.shape)")
            }
            let n = config.numClassEmbeds ?? 0
            if let bad = labels.integers.first(where: { $0 < 0 || $0 >= n }) {
                throw PipelineError("class label \(bad) in the \(name) is outside the model's \(n) classes [0, \(n - 1)]")
            }
        case is TimestepEmbedding:
            guard labels.rank == 1 else { throw PipelineError("class labels must be one number per sample; got shape \(labels.shape)") }
        default:
            guard labels.rank == 2, labels.shape[1] == config.timeEmbedDim else {
                throw PipelineError("class_embed_type identity takes class embeddings of shape [B, \(config.timeEmbedDim)]; "
                                    + "got \(labels.shape)")
            }
        }
    }

    private var classDescription: String {
        if let n = config.numClassEmbeds, config.classEmbedType == nil { return "\(n) classes" }
        return "class_embed_type \(config.classEmbedType ?? "?")"
    }
}
