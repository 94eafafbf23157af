import Diffusion
import Foundation
import Models
import NeuralNetworks
import Tensors

/// A text-to-image pipeline folder, laid out as diffusers lays out Stable Diffusion's:
///
///     model_index.json                         what each subfolder holds
///     unet/config.json, unet/diffusion_pytorch_model.safetensors      UNet2DConditionModel
///     text_encoder/config.json, text_encoder/model.safetensors        TextEncoder
///     tokenizer/tokenizer.json                 WordTokenizer
///     scheduler/scheduler_config.json          when a scheduler config is given
///
/// The unet folder is a diffusers UNet2DConditionModel folder (`from_pretrained` reads it);
/// the text encoder and tokenizer are Diffuse's own (no CLIP: they are trained with the U-Net).
public enum TextToImageFolder {
    public static let modelIndexFile = "model_index.json"
    public static let encoderWeightsFile = "model.safetensors"
    static let unetPrefix = "unet.", encoderPrefix = "text_encoder."

    /// Whether `folder` is such a pipeline (it has a text_encoder/ beside its unet/).
    public static func isTextToImage(_ folder: String) -> Bool {
        FileManager.default.fileExists(atPath: folder + "/text_encoder/config.json")
    }

    /// Writes the pipeline from a `TextToImageModel` state dict (keys `unet.*` and
    /// `text_encoder.*`), each file atomically.
    public static func write(_ folder: String, tokenizer: WordTokenizer, textEncoder: TextEncoderConfig, unet: UNet2DConditionConfig,
                             weights: [String: Tensor], scheduler: SchedulerConfig? = nil) throws {
        let fm = FileManager.default
        for sub in ["unet", "text_encoder", "tokenizer"] + (scheduler == nil ? [] : ["scheduler"]) {
            try fm.createDirectory(atPath: folder + "/" + sub, withIntermediateDirectories: true)
        }
        func part(_ prefix: String) -> [String: Tensor] {
            weights.reduce(into: [:]) { d, e in if e.key.hasPrefix(prefix) { d[String(e.key.dropFirst(prefix.count))] = e.value } }
        }
        try unet.save(folder + "/unet/config.json")
        try Safetensors(tensors: part(unetPrefix), metadata: ["format": "pt"]).save(folder + "/unet/" + DiffusersFolder.weightsFile)
        try writeJSON(textEncoder, to: folder + "/text_encoder/config.json")
        try Safetensors(tensors: part(encoderPrefix), metadata: ["format": "pt"]).save(folder + "/text_encoder/" + encoderWeightsFile)
        try writeJSON(tokenizer, to: folder + "/tokenizer/tokenizer.json")
        try scheduler?.save(folder + "/scheduler/scheduler_config.json")
        let index: [String: [String]] = [
            "unet": ["diffusers", "UNet2DConditionModel"], "text_encoder": ["diffuse", "TextEncoder"],
            "tokenizer": ["diffuse", "WordTokenizer"],
        ].merging(scheduler.map { ["scheduler": ["diffusers", $0.className]] } ?? [:]) { a, _ in a }
        var object: [String: Any] = index
        object["_class_name"] = "DiffuseTextToImagePipeline"
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        try writeData(data, to: folder + "/" + modelIndexFile)
    }

    /// The configs of a pipeline folder; errors name the file.
    public static func configs(_ folder: String) throws -> (tokenizer: WordTokenizer, textEncoder: TextEncoderConfig, unet: UNet2DConditionConfig) {
        for f in ["unet/config.json", "text_encoder/config.json", "tokenizer/tokenizer.json"]
        where !FileManager.default.fileExists(atPath: folder + "/" + f) {
            throw ModelError("\(folder)/\(f): missing; not a text-to-image pipeline folder (unet/, text_encoder/, tokenizer/)")
        }
        let tokenizer: WordTokenizer
        do { tokenizer = try WordTokenizer.load(folder + "/tokenizer/tokenizer.json") } catch { throw ModelError("\(error)") }
        let encoderPath = folder + "/text_encoder/config.json"
        let encoder: TextEncoderConfig
        do {
            encoder = try JSONDecoder().decode(TextEncoderConfig.self, from: Data(contentsOf: URL(fileURLWithPath: encoderPath)))
            try encoder.validate()
        } catch let e as ModelError {
            throw ModelError("\(encoderPath): \(e.message)")
        } catch {
            throw ModelError("\(encoderPath): not a valid text encoder config: \(ErrorText.describe(error))")
        }
        return (tokenizer, encoder, try UNet2DConditionConfig.load(folder + "/unet/config.json"))
    }

    /// The weights of a pipeline folder as one `TextToImageModel` state dict.
    public static func weights(_ folder: String) throws -> [String: Tensor] {
        let encoderPath = folder + "/text_encoder/" + encoderWeightsFile
        guard FileManager.default.fileExists(atPath: encoderPath) else { throw ModelError("\(encoderPath): missing") }
        var out = [String: Tensor]()
        for (k, v) in try DiffusersFolder.weights(folder + "/unet") { out[unetPrefix + k] = v }
        for (k, v) in try Safetensors.load(encoderPath).tensors { out[encoderPrefix + k] = v }
        return out
    }
}

extension TextToImageModel {
    /// Loads a pipeline folder written by `save(folder:)` (or by a text-to-image training run);
    /// weights that do not fit the configs are refused by name and shape.
    public static func load(folder: String) throws -> TextToImageModel {
        let (tokenizer, encoder, unet) = try TextToImageFolder.configs(folder)
        let model = try TextToImageModel(tokenizer: tokenizer, textEncoder: encoder, unet: unet, generator: PhiloxGenerator(seed: 0))
        do {
            try model.load(stateDict: TextToImageFolder.weights(folder))
        } catch let e as StateDictError {
            throw ModelError("\(folder): " + (e.onlyValuesRefused ? "" : "the weights do not fit the configs: ") + "\(e)")
        }
        return model
    }

    /// Writes the pipeline folder (and `scheduler/scheduler_config.json` when given).
    public func save(folder: String, scheduler: SchedulerConfig? = nil) throws {
        try TextToImageFolder.write(folder, tokenizer: tokenizer, textEncoder: textEncoder.config, unet: unet.config,
                                    weights: stateDict(), scheduler: scheduler)
    }
}

private func writeJSON<T: Encodable>(_ value: T, to path: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    try writeData(try encoder.encode(value), to: path)
}

private func writeData(_ data: Data, to path: String) throws {
    do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
        throw ModelError("\(path): cannot write: \(ErrorText.describe(error))")
    }
}
