import Diffusion
import Foundation
import Pipelines
import Testing
import Tensors

/// `UpscaleEvaluation` with a denoiser whose answer is known: it predicts the noise that makes
/// x0 the conditioning image itself (nearest upsampling), so DDIM ends exactly there.
@Suite struct UpscaleEvaluationTests {
    struct NearestDenoiser: ValidatingDenoiser {
        let schedule: NoiseSchedule
        var defaultSampleShape: [Int]? { [1, 8, 8] }
        var conditioningChannels: Int { 1 }
        func validate(_ request: GenerationRequest, schedulerConfig: SchedulerConfig) throws {}
        func callAsFunction(_ sample: Tensor, timesteps: Tensor, conditioning: Conditioning?) -> Tensor {
            let t = Int(timesteps.scalars[0])
            let abar = schedule.alphasCumprod[t]
            return (sample - conditioning!.image! * abar.squareRoot()) / (1 - abar).squareRoot()
        }
    }

    /// The output pooled back down is the 8-bit input (consistency below half a level), and
    /// its scores are finite and below a perfect upscaling's.
    @Test func exactModelIsConsistent() throws {
        let config = SchedulerConfig(className: "DDIMScheduler")
        let model = NearestDenoiser(schedule: try NoiseSchedule(config))
        let originals = PhiloxGenerator(seed: 3).uniform([3, 1, 8, 8], low: -1, high: 1)
        let request = GenerationRequest(sampler: .ddim, steps: 10, sampleShape: [1, 8, 8])
        let report = try UpscaleEvaluation.evaluate(GenerationPipeline(model: model, schedulerConfig: config), originals: originals,
                                                    scale: 2, request: request, batchSize: 2)
        #expect(report.images == 3 && report.scale == 2)
        #expect(report.consistency < 0.5 / 255, "\(report.consistency)")
        #expect(report.model.psnr > 5 && report.model.psnr < 40 && report.model.ssim > 0 && report.model.ssim < 1)
        #expect(report.bicubic.psnr > 5 && report.bicubic.psnr < 40)
    }
}
