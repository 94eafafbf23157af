import ArgumentParser
import Pipelines

/// `diffuse upscale`: super-resolution with an SR3 model (one trained with `diffuse train
/// --task super-resolution`). Parses the options into a `SampleJob`; the work is in Pipelines.
struct UpscaleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upscale",
        abstract: "Upscale an image with an SR3 super-resolution model.",
        discussion: """
            The model generates an image of its own size conditioned on --image upsampled --scale times (SR3, \
            Saharia et al. 2021): the image's sides times the scale must be the model's sample size. --batch N draws \
            N different upscalings.
            """)

    @OptionGroup var options: SamplingOptions

    @Option(help: "The low-resolution PNG.")
    var image: String

    @Option(help: "The upscaling factor (the model's training factor).")
    var scale: Int = 4

    func run() throws {
        guard options.model != nil || options.bundled != nil else {
            throw ValidationError("give the SR3 model with --model DIR (one trained with diffuse train --task super-resolution)")
        }
        var job = try options.job(defaultSteps: 50, defaultBatch: 1, defaultOut: "upscaled.png")
        job.lowResolutionFile = image
        job.upscaleFactor = scale
        try options.run(job)
    }
}
