import ArgumentParser
import ModelIO

/// `diffuse convert`: a PyTorch checkpoint (read without running any of its pickle) written
/// as safetensors. The reading is ModelIO's `TorchCheckpoint`.
struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a PyTorch checkpoint (.pt, .pth, .bin, .ckpt, TorchScript) to safetensors.",
        discussion: """
            Reads the zip archive torch.save or torch.jit.save writes with a restricted unpickler: tensors and their \
            names come out, any other Python global is refused by name and nothing is executed. Tensors are named by \
            their path (a Lightning or LDM checkpoint from inside its state_dict); float16 and float64 are written as \
            float32, bfloat16 as bfloat16. The output is written atomically.
            """)

    @Argument(help: "The PyTorch checkpoint.")
    var input: String

    @Argument(help: "The .safetensors file to write.")
    var output: String

    func run() throws {
        guard output.hasSuffix(".safetensors") else { throw ValidationError("\(output): the output is written as safetensors, so its name must end in .safetensors") }
        let checkpoint = try TorchCheckpoint.load(input)
        guard !checkpoint.tensors.isEmpty else { throw ValidationError("\(input) holds no tensors") }
        try Safetensors(tensors: checkpoint.tensors.mapValues { $0.contiguous() }, metadata: ["format": "pt"]).save(output)
        let values = checkpoint.values.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
        let shown = values.prefix(6).joined(separator: ", ") + (values.count > 6 ? ", and \(values.count - 6) more" : "")
        print("wrote \(output): \(checkpoint.tensors.count) tensors" + (values.isEmpty ? "" : "; other values in the file (not written): " + shown))
    }
}
