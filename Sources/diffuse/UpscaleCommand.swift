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
            N different upscalings. Without --model it uses the bundled fashion-mnist-sr (x4 from 7x7 Fashion-MNIST).
            """)

    @OptionGroup var options: SamplingOptions

    @Option(help: "The low-resolution PNG.")
    var image: String

    @Option(help: "The upscaling factor (the model's training factor).")
    var scale: Int = 4

    func run() throws {
        var job = try options.job(defaultSteps: 20, defaultBatch: 1, defaultOut: "upscaled.png", defaultModel: "fashion-mnist-sr")
        job.lowResolutionFile = image
        job.upscaleFactor = scale
        try options.run(job)
    }
}
