import Diffusion
import Tensors

/// A denoiser that can tell, before a run, whether it can run a request: sample shape,
/// conditioning, and what it predicts against the sampler. Pipelines call `validate` first,
/// so that a mismatch is an error with the reason rather than a failed precondition midway.
public protocol ValidatingDenoiser: Denoiser {
    /// The shape of one sample the model was trained on, where it says (e.g. [C, H, W]).
    var defaultSampleShape: [Int]? { get }
    /// Input channels the model takes beyond the sample's (`Conditioning.image`): 0 for a
    /// plain denoiser, C for SR3 (the upsampled image), C + 1 for an inpainting model
    /// (mask + masked image).
    var conditioningChannels: Int { get }
    /// Throws `PipelineError` with the reason when the model cannot run `request`.
    func validate(_ request: GenerationRequest, schedulerConfig: SchedulerConfig) throws
}

extension ValidatingDenoiser {
    /// The checks every image denoiser shares: [C, H, W] samples of `sampleChannels`
    /// channels; conditioning images (of both inputs) with `conditioningChannels` channels,
    /// one per sample at the sample's height and width; height and width divisible by
    /// 2^`downsamplings` (each skip connection must meet a tensor of its size on the way up);
    /// and the memory a model evaluation of the U-Net `shape` takes at this batch
    /// (`ActivationMemory`), before anything is allocated.
    func validateImages(_ request: GenerationRequest, modelName: String, sampleChannels: Int, inChannels: Int,
                        downsamplings: Int, shape unet: ActivationMemory.UNetShape) throws {
        try validateImages(request, modelName: modelName, sampleChannels: sampleChannels, inChannels: inChannels,
                           downsamplings: downsamplings) { batch, height, width in
            ActivationMemory.evaluationBytes(batch: batch, height: height, width: width, unet: unet)
        }
    }

    /// `validateImages` with the memory of a model evaluation given as bytes for (batch,
    /// height, width).
    func validateImages(_ request: GenerationRequest, modelName: String, sampleChannels: Int, inChannels: Int,
                        downsamplings: Int, memory: (Int, Int, Int) -> Double) throws {
        let shape = request.sampleShape
        guard shape.count == 3 else {
            throw PipelineError("\(modelName) generates [C, H, W] samples (batch [B, C, H, W]), not samples of shape \(shape)")
        }
        guard shape[0] == sampleChannels else {
            throw PipelineError("the model takes \(sampleChannels)-channel samples [B, \(sampleChannels), H, W], "
                                + "not \(shape[0])-channel ones (batch shape \(request.batchShape))")
        }
        for (name, c) in [("conditioning", request.conditioning), ("unconditional conditioning", request.unconditional)]
        where name == "conditioning" || c != nil {
            let image = c?.image
            let given = image?.shape[1] ?? 0
            guard given == conditioningChannels else {
                throw PipelineError(conditioningChannels == 0
                    ? "the model takes no conditioning image, but the \(name) has one of \(given) channels"
                    : "the model takes \(conditioningChannels) conditioning channels beside the sample (in_channels \(inChannels)); "
                      + "the \(name) gives \(given)")
            }
            if let image {
                guard image.rank == 4, image.shape[0] == request.batchSize, Array(image.shape.suffix(2)) == Array(shape.suffix(2)) else {
                    throw PipelineError("the \(name)'s image has shape \(image.shape); [\(request.batchSize), \(given)] + \(Array(shape.suffix(2))) is needed")
                }
            }
        }
        let multiple = 1 << downsamplings
        guard shape[1] % multiple == 0 && shape[2] % multiple == 0 else {
            throw PipelineError("the model halves the resolution \(downsamplings) times, so height and width must be multiples of "
                                + "\(multiple); got \(shape[1])x\(shape[2])")
        }
        try ActivationMemory.check(request, evaluationBytes: memory)
    }
}
