import ArgumentParser
import Pipelines

/// `diffuse upscale`: super-resolution with an SR3 model (one trained with `diffuse train
/// --task super-resolution`). Translates the options into a `SamplingRequest`; the work is in Pipelines.
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
        var request = try options.request(defaultSteps: 20, defaultBatch: 1, defaultModel: "fashion-mnist-sr")
        request.images = .upscale(image: EncodedImage(file: image), factor: scale)
        try options.run(request, outputs: options.outputs(defaultOut: "upscaled.png"))
    }
}
