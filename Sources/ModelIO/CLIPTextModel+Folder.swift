import Foundation
import Models
import NeuralNetworks
import Tensors

extension CLIPTextModel {
    /// The weights file of a transformers model folder.
    public static let weightsFile = "model.safetensors"

    /// Loads a transformers `CLIPTextModel` folder (`config.json` + `model.safetensors`, or
    /// shards listed in `model.safetensors.index.json`), or a Stable Diffusion pipeline
    /// folder with a `text_encoder/` inside. Weights are memory-mapped (float16 and float64
    /// ones are converted to float32). Both key layouts load: transformers 4.x's
    /// (`text_model.` ..., with or without the `position_ids` buffer) and transformers 5's
    /// (no `text_model.`). The config is refused by field name; a checkpoint that does not fit
    /// it, or holds NaN or infinite values, by parameter name and shapes.
    public static func load(folder: String) throws -> CLIPTextModel {
        let dir = DiffusersFolder.modelDirectory(folder, subfolder: "text_encoder")
        let config = try CLIPTextConfig.load(dir + "/config.json")
        let model = try CLIPTextModel(config, generator: PhiloxGenerator(seed: 0))
        let (state, file) = try weights(dir)
        do {
            try model.load(stateDict: normalizedKeys(state))
        } catch let e as StateDictError {
            throw ModelError("\(file)" + (e.onlyValuesRefused ? ": " : " does not fit config.json: ") + "\(e)")
        }
        model.eval()
        return model
    }

    /// Writes `config.json` and `model.safetensors` in transformers 4.x's layout, which
    /// transformers 4 and 5 both load (`CLIPTextModel.from_pretrained`).
    public func save(folder: String) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try config.save(folder + "/config.json")
        try Safetensors(tensors: stateDict(), metadata: ["format": "pt"]).save(folder + "/" + Self.weightsFile)
    }

    /// The folder's tensors and the file to name in errors.
    static func weights(_ dir: String) throws -> ([String: Tensor], String) {
        let fm = FileManager.default
        let single = dir + "/" + weightsFile, index = single + ".index.json"
        if fm.fileExists(atPath: single) { return (try Safetensors.load(single).tensors, single) }
        if fm.fileExists(atPath: index) {
            let map: [String: String]
            do {
                let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: index))) as? [String: Any]
                guard let m = object?["weight_map"] as? [String: String] else { throw ModelError("no weight_map of names to files") }
                map = m
            } catch {
                throw ModelError("\(index): not a safetensors index: \(ErrorText.describe(error))")
            }
            var state = [String: Tensor]()
            for shard in Set(map.values).sorted() {
                guard !shard.contains("/") else { throw ModelError("\(index): shard \(shard) is not a file name in the folder") }
                for (key, tensor) in try Safetensors.load(dir + "/" + shard).tensors { state[key] = tensor }
            }
            return (state, index)
        }
        if fm.fileExists(atPath: dir + "/pytorch_model.bin") {
            throw ModelError("\(dir) holds pytorch_model.bin, a PyTorch pickle; save it as safetensors first "
                             + "(save_pretrained(..., safe_serialization=True))")
        }
        throw ModelError("\(dir): no \(weightsFile)")
    }

    /// Keys in transformers 4.x's layout: `text_model.` added where transformers 5 drops it,
    /// the non-persistent `position_ids` buffer (older files hold it) dropped.
    static func normalizedKeys(_ state: [String: Tensor]) -> [String: Tensor] {
        var out = [String: Tensor]()
        for (key, tensor) in state {
            let full = key.hasPrefix("text_model.") || key == "text_projection.weight" ? key : "text_model." + key
            if full == "text_model.embeddings.position_ids" { continue }
            out[full] = tensor
        }
        return out
    }
}
