import ArgumentParser
import Pipelines

/// `diffuse generate`: text-to-image with a pipeline folder that `diffuse train
/// --text-conditional` writes (text encoder + UNet2DConditionModel). Parses the options into
/// a `SamplingRequest` with prompts; the work is in Pipelines.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate images from text prompts with a text-to-image model folder.",
        discussion: """
            Encodes each --prompt with the model's tokenizer and text encoder (a prompt longer than the encoder's \
            context is refused, never cut) and generates --batch images per prompt with classifier-free guidance \
            against the empty caption (--guidance, default 3). The grid has one row per prompt. Without --model it uses \
            the bundled fashion-mnist-text (Fashion-MNIST's ten classes, e.g. "a sneaker", "a photo of a bag").
            """)

    @Option(name: .customLong("prompt"), help: "A prompt (repeat for several).")
    var prompts: [String] = []

    @OptionGroup var options: SamplingOptions

    func validate() throws {
        if prompts.isEmpty { throw ValidationError("give at least one --prompt") }
        if options.classLabels != nil || options.nullClass != nil {
            throw ValidationError("--class and --null-class are for class-conditional models; a text-to-image model takes --prompt")
        }
        if options.batchSize != nil { throw ValidationError("--batch-size does not apply to generate (--batch is the images per prompt)") }
    }

    func run() throws {
        var request = try options.request(defaultSteps: 20, defaultBatch: 4, defaultModel: "fashion-mnist-text")
        request.prompts = prompts
        request.guidance = options.guidance ?? 3
        try options.run(request, outputs: options.outputs(defaultOut: "generated.png"))
    }
}
