import Diffusion
import Foundation
import Models
import NeuralNetworks
import Tensors

/// A diffusers Stable Diffusion pipeline folder, as `save_pretrained` writes it:
///
///     model_index.json                 the pipeline class and what each subfolder holds
///     unet/                            UNet2DConditionModel (4 input channels, or 9 for inpainting)
///     vae/                             AutoencoderKL
///     text_encoder/                    transformers' CLIPTextModel
///     tokenizer/                       CLIPTokenizer (vocab.json, merges.txt)
///     scheduler/scheduler_config.json  the sampler's config
///
/// `safety_checker/` and `feature_extractor/` are ignored (nothing here runs them). SD 1.x and
/// 2.x load; pipelines with a second text encoder (SDXL) or another denoiser (SD 3) are refused
/// by name.
public enum StableDiffusionFolder {
    /// Whether `folder` is such a pipeline: model_index.json beside vae/ and text_encoder/.
    public static func isStableDiffusion(_ folder: String) -> Bool {
        let fm = FileManager.default
        return fm.fileExists(atPath: folder + "/model_index.json") && fm.fileExists(atPath: folder + "/vae")
            && fm.fileExists(atPath: folder + "/text_encoder")
    }

    /// The components model_index.json must name, with the libraries and classes that load here.
    static let required: [(name: String, classes: Set<String>)] = [
        ("unet", ["UNet2DConditionModel"]), ("vae", ["AutoencoderKL"]), ("text_encoder", ["CLIPTextModel"]),
        ("tokenizer", ["CLIPTokenizer", "CLIPTokenizerFast"]),
    ]

    /// Loads the pipeline's networks; refuses a folder whose model_index.json names a component
    /// that does not load here, with the component and its class.
    public static func load(_ folder: String) throws -> StableDiffusionModel {
        let indexPath = folder + "/model_index.json"
        let index: [String: Any]
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: indexPath))
            guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw ModelError("\(indexPath): not a JSON object")
            }
            index = object
        } catch let error as ModelError {
            throw error
        } catch {
            throw ModelError("\(indexPath): cannot read: \(ErrorText.describe(error))")
        }
        let pipelineClass = index["_class_name"] as? String ?? "StableDiffusionPipeline"
        for extra in ["text_encoder_2", "transformer", "prior"] {
            if let entry = index[extra] as? [Any], entry.count == 2, let cls = entry[1] as? String {
                throw ModelError("\(indexPath): \(pipelineClass) has a \(extra) (\(cls)); only Stable Diffusion 1.x and 2.x "
                                 + "pipelines (one CLIP text encoder, a UNet2DConditionModel) load here")
            }
        }
        for (name, classes) in required {
            guard let entry = index[name] as? [Any], entry.count == 2, let cls = entry[1] as? String else {
                throw ModelError("\(indexPath): no \(name) component (expected [library, class] with class \(classes.sorted().joined(separator: " or ")))")
            }
            guard classes.contains(cls) else {
                throw ModelError("\(indexPath): \(name) is a \(cls); here it must be \(classes.sorted().joined(separator: " or "))")
            }
        }
        let unet = try UNet2DConditionModel.load(folder: folder + "/unet")
        let vae = try AutoencoderKL.load(folder: folder + "/vae")
        let textEncoder = try CLIPTextModel.load(folder: folder + "/text_encoder")
        let tokenizer = try CLIPTokenizer(folder: folder + "/tokenizer")
        for module in [unet, vae, textEncoder] as [Module] { module.eval() }
        do {
            return try StableDiffusionModel(unet: unet, vae: vae, textEncoder: textEncoder, tokenizer: tokenizer, pipelineClass: pipelineClass)
        } catch let error as ModelError {
            throw ModelError("\(folder): \(error.message)")
        }
    }

    /// The folder's scheduler config (scheduler/scheduler_config.json); nil without one.
    public static func schedulerConfig(_ folder: String) throws -> SchedulerConfig? {
        let path = folder + "/scheduler/scheduler_config.json"
        return FileManager.default.fileExists(atPath: path) ? try SchedulerConfig.load(path) : nil
    }
}
