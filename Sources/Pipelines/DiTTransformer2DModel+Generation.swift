import Diffusion
import Models
import Tensors

extension DiTTransformer2DModel: ValidatingDenoiser {
    /// [in_channels, sample_size, sample_size] from config.json.
    public var defaultSampleShape: [Int]? { [config.inChannels, config.sampleSize, config.sampleSize] }

    /// A DiT takes no conditioning image: only the sample, the timestep and a class label.
    public var conditioningChannels: Int { 0 }

    /// The class labels a request may give: 0..<num_embeds_ada_norm, and the null class
    /// (num_embeds_ada_norm, the table's last row) when the table has one.
    var labelRows: Int { transformerBlocks[0].norm1.emb.classEmbedder.embeddingTable.weight.value.shape[0] }

    /// Checks the sample shape (channels, height and width multiples of the patch size), the
    /// class labels against the class table, that no image or text conditioning is given,
    /// that the sampler does not expect a learned variance (the samplers get the prediction
    /// half only), and the memory of a model evaluation.
    public func validate(_ request: GenerationRequest, schedulerConfig: SchedulerConfig) throws {
        let p = config.patchSize
        try validateImages(request, modelName: "DiTTransformer2DModel", sampleChannels: config.inChannels, inChannels: config.inChannels,
                           downsamplings: 0, memory: { batch, height, width in
                               ActivationMemory.transformerEvaluationBytes(batch: batch, tokens: (height / p) * (width / p),
                                                                           width: config.innerDim, heads: config.numAttentionHeads)
                           })
        let shape = request.sampleShape
        guard shape[1] % p == 0 && shape[2] % p == 0 else {
            throw PipelineError("the model cuts the samples into \(p)x\(p) patches (patch_size \(p)), so height and width must be "
                                + "multiples of \(p); got \(shape[1])x\(shape[2])")
        }
        if schedulerConfig.varianceType == "learned" || schedulerConfig.varianceType == "learned_range" {
            throw PipelineError("the scheduler config's variance_type is \(schedulerConfig.varianceType ?? ""): the DiT gives the samplers "
                                + "its prediction only (as diffusers' DiTPipeline does); use a scheduler config with a fixed variance")
        }
        for (name, c) in [("conditioning", request.conditioning), ("unconditional conditioning", request.unconditional)] {
            if c?.context != nil || c?.tokens != nil {
                throw PipelineError("DiTTransformer2DModel conditions on class labels only; the \(name) has text")
            }
            guard let labels = c?.classLabels else { continue }
            guard labels.dtype == .int32 || labels.dtype == .int64, labels.rank == 1, labels.count == request.batchSize else {
                throw PipelineError("class labels must be integers, one per sample; got \(labels.dtype) of shape \(labels.shape)")
            }
            if let bad = labels.integers.first(where: { $0 < 0 || $0 >= labelRows }) {
                throw PipelineError("class label \(bad) in the \(name) is outside the model's class table [0, \(labelRows - 1)] "
                                    + "(num_embeds_ada_norm \(config.numEmbedsAdaNorm ?? 0)\(labelRows > (config.numEmbedsAdaNorm ?? 0) ? " + the null class" : ""))")
            }
        }
    }
}
