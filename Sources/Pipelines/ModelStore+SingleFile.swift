import Datasets
import Foundation
import ModelIO
import Models

extension ModelStore {
    /// Loads a single-file Stable Diffusion checkpoint (CompVis/LDM layout) with the
    /// architecture of the pipeline folder `config`, or the one inferred from the file (SD 1.x
    /// or 2.x, the built-in full-size configs, CLIP's vocabulary from open_clip's BPE file).
    static func load(file: String, config: String?) throws -> StoredModel {
        let loaded: StableDiffusionSingleFile.Loaded
        do {
            loaded = try StableDiffusionSingleFile.load(file, config: config, openAIBPE: { try CLIPVocabulary.openAIBPEText() })
        } catch {
            throw PipelineError("\(error)")
        }
        let model = loaded.model
        let counts = model.parameterCounts
        let note = (["model \(file): \(model.pipelineClass) from one file, U-Net \(counts.unet) + VAE \(counts.vae) + CLIP text encoder "
                     + "\(counts.textEncoder) parameters" + (model.inpaintsByItself ? ", an inpainting U-Net" : "")] + loaded.notes)
            .joined(separator: "\n")
        return StoredModel(folder: file, unetFolder: file, network: .stableDiffusion(model), schedulerConfig: loaded.schedulerConfig,
                           note: note)
    }
}
