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
