import ArgumentParser
import Datasets
import Diffusion
import Foundation
import Pipelines
import Tensors

/// `diffuse eval-upscale`: PSNR and SSIM of an SR3 model's upscalings of held-out test images,
/// beside bicubic's. The work is `UpscaleEvaluation` in Pipelines.
struct EvalUpscaleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval-upscale",
        abstract: "Score an SR3 model against bicubic upscaling on held-out test images (PSNR, SSIM).",
        discussion: """
            Takes the first --images test images of --data at the model's size, average-pools them by --scale and \
            saves them as 8-bit images, then upscales each with the model and with bicubic interpolation, and prints \
            mean PSNR and SSIM against the originals, and how far the model's output pooled back down is from its input.
            """)

    @Option(help: "The SR3 model folder (trained with diffuse train --task super-resolution).")
    var model: String

    @Option(help: "The data set whose test split is upscaled.")
    var data: String = "fashion-mnist"

    @Option(help: "How many test images.")
    var images: Int = 200

    @Option(help: "The upscaling factor (the model's training factor).")
    var scale: Int = 4

    @Option(help: "The sampler (default: the scheduler config's).")
    var sampler: SamplerKind?

    @Option(help: "Sampling steps.")
    var steps: Int = 50

    @Option(help: "Images per generation batch.")
    var batchSize: Int = 100

    @Option(help: "Seed: batch i uses seed + i.")
    var seed: UInt64 = 0

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Option(help: "Threads (default: all cores).")
    var threads: Int?

    func run() throws {
        try applyThreadsOption(threads)
        guard images >= 1, batchSize >= 1 else { throw ValidationError("--images and --batch-size must be at least 1") }
        let stored = try ModelStore().model(model)
        let (config, kind, _) = try stored.scheduler(sampler)
        guard case .unet(let unet) = stored.network else { throw ValidationError("\(model) is a text-to-image pipeline, not an SR3 model") }
        guard unet.conditioningChannels == unet.sampleChannels, let shape = unet.defaultSampleShape else {
            throw ValidationError("\(model) is not an SR3 model: it takes \(unet.conditioningChannels) conditioning channels beside "
                                  + "\(unet.sampleChannels)-channel samples (and needs a sample_size)")
        }
        let test = try Datasets.load(name: data, size: shape[1], channels: shape[0], split: .test)
        let originals = test.images.sliced(axis: 0, start: 0, end: Swift.min(images, test.count))
        var request = GenerationRequest(sampler: kind, steps: steps, sampleShape: shape)
        request.seed = seed
        let report = try UpscaleEvaluation.evaluate(GenerationPipeline(model: unet, schedulerConfig: config), originals: originals,
                                                    scale: scale, request: request, batchSize: batchSize) { done in
            if !json { print("upscaled \(done)/\(originals.shape[0])"); fflush(nil) }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
            return
        }
        print("\(report.images) \(data) test images, x\(scale) from \(shape[2] / scale)x\(shape[1] / scale):")
        print(String(format: "  model (%@, %d steps)  PSNR %.2f dB  SSIM %.4f", kind.rawValue, steps, report.model.psnr, report.model.ssim))
        print(String(format: "  bicubic               PSNR %.2f dB  SSIM %.4f", report.bicubic.psnr, report.bicubic.ssim))
        print(String(format: "  consistency: the model's output pooled back down is %.4f from its input (mean |difference|, [0, 1] units)",
                     report.consistency))
    }
}
