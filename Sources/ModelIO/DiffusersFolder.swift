import Diffusion
import Foundation
import Models
import NeuralNetworks
import Tensors

/// A diffusers model folder: `config.json`, `diffusion_pytorch_model.safetensors` and, for
/// pipelines, `scheduler_config.json` beside it (or in `../scheduler/`).
public enum DiffusersFolder {
    public static let weightsFile = "diffusion_pytorch_model.safetensors"

    /// The weights of a folder as a state dict, old attention names converted.
    public static func weights(_ folder: String) throws -> [String: Tensor] {
        let path = folder + "/" + weightsFile
        guard FileManager.default.fileExists(atPath: path) else {
            if FileManager.default.fileExists(atPath: folder + "/diffusion_pytorch_model.bin") {
                throw ModelError("\(folder) holds diffusion_pytorch_model.bin, a PyTorch pickle; save it as safetensors first (save_pretrained(..., safe_serialization=True))")
            }
            throw ModelError("\(folder): no \(weightsFile)")
        }
        return convertDeprecatedAttentionKeys(try Safetensors.load(path).tensors)
    }

    /// diffusers' renaming of pre-0.14 attention blocks: query/key/value/proj_attn ->
    /// to_q/to_k/to_v/to_out.0 (as `_convert_deprecated_attention_blocks`).
    public static func convertDeprecatedAttentionKeys(_ state: [String: Tensor]) -> [String: Tensor] {
        let renames = [".query.": ".to_q.", ".key.": ".to_k.", ".value.": ".to_v.", ".proj_attn.": ".to_out.0."]
        var out: [String: Tensor] = [:]
        for (key, value) in state {
            var k = key
            if k.contains(".attentions.") {
                for (old, new) in renames where k.contains(old) { k = k.replacingOccurrences(of: old, with: new) }
            }
            out[k] = value
        }
        return out
    }

    /// The scheduler config of a model folder: its own `scheduler_config.json`, or the
    /// pipeline's `../scheduler/scheduler_config.json`.
    public static func schedulerConfig(_ folder: String) throws -> SchedulerConfig? {
        for candidate in [folder + "/scheduler_config.json", folder + "/../scheduler/scheduler_config.json"]
        where FileManager.default.fileExists(atPath: candidate) {
            return try SchedulerConfig.load(candidate)
        }
        return nil
    }
}

extension UNet2DModel {
    /// Loads a diffusers UNet2DModel folder (or a pipeline folder with a `unet/` inside).
    /// A checkpoint that does not fit the config is refused with the offending names and
    /// shapes.
    public static func load(folder: String) throws -> UNet2DModel {
        var dir = folder
        if !FileManager.default.fileExists(atPath: dir + "/config.json"), FileManager.default.fileExists(atPath: dir + "/unet/config.json") {
            dir += "/unet"
        }
        let config = try UNet2DConfig.load(dir + "/config.json")
        let model = try UNet2DModel(config, generator: PhiloxGenerator(seed: 0))
        try DiffusersFolder.loadWeights(model, from: dir)
        return model
    }

    /// Writes `config.json` and `diffusion_pytorch_model.safetensors` (atomically each).
    public func save(folder: String) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try config.save(folder + "/config.json")
        try Safetensors(tensors: stateDict(), metadata: ["format": "pt"]).save(folder + "/" + DiffusersFolder.weightsFile)
    }
}
