import ArgumentParser
import Pipelines

/// `diffuse sample`: generates samples with a diffusers UNet2DModel or DiTTransformer2DModel folder, from noise or,
/// with --init-image, from an image (SDEdit). Translates the options into a `SamplingRequest`
/// and prints its progress; the work is in Pipelines.
struct SampleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample",
        abstract: "Generate samples with a diffusers UNet2DModel or DiTTransformer2DModel folder and its scheduler config.",
        discussion: """
            Starts from noise (a .npy file, or drawn from --seed with --rng) and runs the sampler for --steps steps, \
            as diffusers' pipelines do: with --rng torch, a seed gives diffusers' results for \
            torch.Generator().manual_seed(seed). Writes a PNG grid, PNG images and/or the final samples \
            [B, C, H, W] as float32 .npy (model space, [-1, 1] for images).
            Image-to-image (SDEdit): --init-image PNG --strength S noises the image to the step where the last \
            S of the steps begin, and runs those; S 1 ignores the image.
            """)

    @OptionGroup var options: SamplingOptions

    @Option(help: "Image-to-image: a PNG of the model's size to start from (SDEdit).")
    var initImage: String?

    @Option(help: "With --init-image: the share of the steps to run on the noised image, in (0, 1]; lower keeps more of the image.")
    var strength: Double = 0.8

    func run() throws {
        var request = try options.request(defaultSteps: 20, defaultBatch: 64)
        if let initImage { request.images = .imageToImage(image: EncodedImage(file: initImage), strength: strength) }
        try options.run(request, outputs: options.outputs(defaultOut: "samples.png"))
    }
}
