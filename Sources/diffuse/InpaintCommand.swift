import ArgumentParser
import Pipelines

/// `diffuse inpaint`: fills the masked region of an image with a model that never saw a
/// mask (RePaint). Translates the options into a `SamplingRequest`; the work is in Pipelines.
struct InpaintCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inpaint",
        abstract: "Fill the white region of a mask in an image, with any unconditional (or class-conditional) model.",
        discussion: """
            RePaint (Lugmayr et al. 2022): at every step the kept region is the image noised to that step, the \
            masked region the model's DDIM (or, with --sampler ddpm, DDPM) step, and every --jump-length steps the \
            walk goes back up that many steps (--resample times in all) so that the two agree. The image and the \
            mask are PNGs of the model's size; the mask is white (>= 128) where to generate and black where to keep \
            the image. The kept pixels of the output are the input's.
            """)

    @OptionGroup var options: SamplingOptions

    @Option(help: "The PNG to inpaint (the model's size).")
    var image: String

    @Option(help: "A PNG of the image's size: white where to generate, black where to keep.")
    var mask: String

    @Option(help: "RePaint: steps down before each jump back up.")
    var jumpLength: Int = 10

    @Option(help: "RePaint: times each stretch of steps is walked (1: no resampling).")
    var resample: Int = 5

    func run() throws {
        var request = try options.request(defaultSteps: 50, defaultBatch: 1)
        request.sampler = request.sampler ?? .ddim
        request.images = .inpaint(image: EncodedImage(file: image), mask: EncodedImage(file: mask),
                                  resampling: GenerationRequest.Resampling(jumpLength: jumpLength, samples: resample))
        try options.run(request, outputs: options.outputs(defaultOut: "inpainted.png"))
    }
}
