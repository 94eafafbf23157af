import Foundation
import Models
import NeuralNetworks
import Tensors

extension DiffusersFolder {
    /// The folder holding `config.json`: `folder` itself, or its `subfolder` (a pipeline's
    /// `unet/` or `transformer/`).
    static func modelDirectory(_ folder: String, subfolder: String) -> String {
        let fm = FileManager.default
        if !fm.fileExists(atPath: folder + "/config.json"), fm.fileExists(atPath: folder + "/\(subfolder)/config.json") {
            return folder + "/" + subfolder
        }
        return folder
    }

    /// Loads the folder's weights into `model`, refusing a checkpoint that does not fit with
    /// the offending names and both shapes.
    static func loadWeights(_ model: Module, from dir: String) throws {
        do {
            try model.load(stateDict: weights(dir))
        } catch let e as StateDictError {
            throw ModelError("\(dir)/\(weightsFile)" + (e.onlyValuesRefused ? ": " : " does not fit config.json: ") + "\(e)")
        }
    }

    /// Writes `config.json` (by `writeConfig`) and the weights, each atomically.
    static func save(_ model: Module, to folder: String, writeConfig: (String) throws -> Void) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try writeConfig(folder + "/config.json")
        try Safetensors(tensors: model.stateDict(), metadata: ["format": "pt"]).save(folder + "/" + weightsFile)
    }
}

extension UNet2DConditionModel {
    /// Loads a diffusers UNet2DConditionModel folder (or a pipeline folder with `unet/`).
    /// Unsupported config values are refused by field name; a checkpoint that does not fit
    /// the config by the first offending parameter names and both shapes.
    public static func load(folder: String) throws -> UNet2DConditionModel {
        let dir = DiffusersFolder.modelDirectory(folder, subfolder: "unet")
        let model = try UNet2DConditionModel(UNet2DConditionConfig.load(dir + "/config.json"), generator: PhiloxGenerator(seed: 0))
        try DiffusersFolder.loadWeights(model, from: dir)
        return model
    }

    /// Writes `config.json` and `diffusion_pytorch_model.safetensors`, as diffusers'
    /// `save_pretrained` (loadable by `UNet2DConditionModel.from_pretrained`).
    public func save(folder: String) throws {
        try DiffusersFolder.save(self, to: folder) { try config.save($0) }
    }
}

extension DiTTransformer2DModel {
    /// Loads a diffusers DiTTransformer2DModel folder (or a pipeline folder with
    /// `transformer/`), refusing unsupported configs and checkpoints that do not fit.
    public static func load(folder: String) throws -> DiTTransformer2DModel {
        let dir = DiffusersFolder.modelDirectory(folder, subfolder: "transformer")
        let model = try DiTTransformer2DModel(DiTTransformer2DConfig.load(dir + "/config.json"), generator: PhiloxGenerator(seed: 0))
        try DiffusersFolder.loadWeights(model, from: dir)
        return model
    }

    /// Writes `config.json` and `diffusion_pytorch_model.safetensors`.
    public func save(folder: String) throws {
        try DiffusersFolder.save(self, to: folder) { try config.save($0) }
    }
}
