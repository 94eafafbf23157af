import Foundation
import Models
import NeuralNetworks
import Tensors

extension AutoencoderKL {
    /// Loads a diffusers AutoencoderKL folder (or a pipeline folder with `vae/`): config.json
    /// validated by field name, then the weights, refused by parameter path when one is
    /// missing, unexpected, mis-shaped or not finite. Pre-0.14 attention names
    /// (query/key/value/proj_attn) are converted as diffusers converts them.
    public static func load(folder: String) throws -> AutoencoderKL {
        let dir = DiffusersFolder.modelDirectory(folder, subfolder: "vae")
        let model = try AutoencoderKL(AutoencoderKLConfig.load(dir + "/config.json"), generator: PhiloxGenerator(seed: 0))
        try DiffusersFolder.loadWeights(model, from: dir)
        return model
    }

    /// Writes `config.json` and `diffusion_pytorch_model.safetensors`, as diffusers'
    /// `save_pretrained` (loadable by `AutoencoderKL.from_pretrained`).
    public func save(folder: String) throws {
        try DiffusersFolder.save(self, to: folder) { try config.save($0) }
    }
}
