import Diffusion
import Foundation
import ModelIO
import Models
import NeuralNetworks

/// The one place that opens model folders and keeps the loaded models, shared by the
/// command-line tool and the server: each folder is loaded once (under a lock, so two
/// threads asking for the same model wait for one load) and kept with what a front end
/// lists about it (`ModelInfo`).
public final class ModelStore: @unchecked Sendable {
    private let lock = NSLock()
    private var loaded: [String: StoredModel] = [:]

    public init() {}

    /// The folder a request's model names: an existing path, or a bundled model's name. A
    /// single-file checkpoint (`.safetensors`) is its own "folder".
    public func folder(for name: String) throws -> String {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: name, isDirectory: &isDirectory) {
            guard isDirectory.boolValue || StableDiffusionSingleFile.isSingleFile(name) else {
                throw PipelineError("\(name) is a file, not a diffusers model folder (nor a .safetensors Stable Diffusion checkpoint)")
            }
            return name
        }
        if !name.contains("/"), BundledModel.names.contains(name) { return try BundledModel.folder(name) }
        throw PipelineError("\(name): no such folder")
    }

    /// Whether the folder holds a text-to-image pipeline (text_encoder/ beside unet/).
    public static func isTextToImage(_ folder: String) -> Bool {
        FileManager.default.fileExists(atPath: folder + "/text_encoder")
    }

    /// Whether the path is a Stable Diffusion pipeline folder or single-file checkpoint.
    public static func isStableDiffusion(_ path: String) -> Bool {
        StableDiffusionFolder.isStableDiffusion(path) || StableDiffusionSingleFile.isSingleFile(path)
    }

    /// The model `name` names (`folder(for:)`), loaded on first use and kept. `config`: a
    /// single-file checkpoint's architecture, a diffusers SD pipeline folder (nil: inferred).
    /// `precision`: the type its networks compute in and hold their weights in; a folder
    /// asked for in float32 and in bfloat16 is two models, so that runs of either never
    /// change the other's networks. bfloat16 on a CPU without it is the
    /// float32 model (`ComputePrecision.effective`).
    public func model(_ name: String, config: String? = nil, precision: ComputePrecision = .float32) throws -> StoredModel {
        let folder = try self.folder(for: name)
        if config != nil && !StableDiffusionSingleFile.isSingleFile(folder) {
            throw PipelineError("a model config folder is for a single-file checkpoint (.safetensors); \(name) is a folder with its own configs")
        }
        let precision = precision.effective
        let key = URL(fileURLWithPath: folder).standardizedFileURL.path
            + (config.map { "\u{0}" + URL(fileURLWithPath: $0).standardizedFileURL.path } ?? "")
            + (precision == .float32 ? "" : "\u{0}" + precision.rawValue)
        lock.lock()
        defer { lock.unlock() }
        if let model = loaded[key] { return model }
        let model = try StableDiffusionSingleFile.isSingleFile(folder) ? Self.load(file: folder, config: config) : Self.load(folder: folder)
        model.setPrecision(precision)
        loaded[key] = model
        return model
    }

    /// The folder of a DiTTransformer2DModel's config.json: `folder` or its transformer/
    /// (a DiTPipeline folder); nil when neither describes a DiT.
    public static func ditFolder(_ folder: String) -> String? {
        [folder, folder + "/transformer"].first { DiTTransformer2DConfig.describesDiT(configFile: $0 + "/config.json") }
    }

    /// What the store knows of every bundled model (loading each), for a front end to list.
    public func bundledModels() throws -> [ModelInfo] {
        try BundledModel.names.map { try model($0).info }
    }

    /// Loads a UNet2DModel folder (or a pipeline folder with unet/), a DiTTransformer2DModel
    /// folder (or a pipeline folder with transformer/), a text-to-image or a Stable Diffusion
    /// pipeline folder, with its scheduler config.
    static func load(folder: String) throws -> StoredModel {
        if StableDiffusionFolder.isStableDiffusion(folder) {
            let model: StableDiffusionModel
            do { model = try StableDiffusionFolder.load(folder) } catch { throw PipelineError("\(error)") }
            let counts = model.parameterCounts
            let note = "model \(folder): \(model.pipelineClass), U-Net \(counts.unet) + VAE \(counts.vae) + CLIP text encoder "
                + "\(counts.textEncoder) parameters" + (model.inpaintsByItself ? ", an inpainting U-Net" : "")
            return StoredModel(folder: folder, unetFolder: folder + "/unet", network: .stableDiffusion(model),
                               schedulerConfig: try StableDiffusionFolder.schedulerConfig(folder), note: note)
        }
        if isTextToImage(folder) {
            guard TextToImageFolder.isTextToImage(folder) else {
                throw PipelineError("\(folder) has text_encoder/ but is not a text-to-image pipeline folder (no text_encoder/config.json)")
            }
            let model: TextToImageModel
            do { model = try TextToImageModel.load(folder: folder) } catch { throw PipelineError("\(error)") }
            model.eval()
            let note = "model \(folder): text encoder + UNet2DConditionModel, \(model.parameterCount()) parameters, "
                + "a vocabulary of \(model.tokenizer.vocabulary.count) words"
            return StoredModel(folder: folder, unetFolder: folder + "/unet", network: .textToImage(model),
                               schedulerConfig: try DiffusersFolder.schedulerConfig(folder + "/unet"), note: note)
        }
        if let ditFolder = Self.ditFolder(folder) {
            let model: DiTTransformer2DModel
            do { model = try DiTTransformer2DModel.load(folder: ditFolder) } catch { throw PipelineError("\(error)") }
            model.eval()
            let c = model.config
            let classes = c.numEmbedsAdaNorm.map { $0 == 1 ? "unconditional (one class)" : "\($0) classes" } ?? ""
            return StoredModel(folder: folder, unetFolder: ditFolder, network: .dit(model),
                               schedulerConfig: try DiffusersFolder.schedulerConfig(ditFolder),
                               note: "model \(ditFolder): DiTTransformer2DModel, \(model.parameterCount()) parameters, \(c.numLayers) blocks "
                                   + "of width \(c.innerDim), patches \(c.patchSize)x\(c.patchSize), \(classes)"
                                   + (c.learnsSigma ? ", learned sigma (unused by the samplers)" : ""))
        }
        let unetFolder = FileManager.default.fileExists(atPath: folder + "/config.json") ? folder : folder + "/unet"
        guard FileManager.default.fileExists(atPath: unetFolder + "/config.json") else {
            throw PipelineError("\(folder) has no config.json (nor unet/config.json): not a diffusers UNet2DModel folder")
        }
        let model = try UNet2DModel.load(folder: folder)
        model.eval()
        return StoredModel(folder: folder, unetFolder: unetFolder, network: .unet(model),
                           schedulerConfig: try DiffusersFolder.schedulerConfig(unetFolder),
                           note: "model \(unetFolder): UNet2DModel, \(model.parameterCount()) parameters")
    }
}

/// What a model does, as a front end lists it.
public enum ModelKind: String, Codable, Sendable {
    /// Generation from noise alone.
    case unconditional
    /// Class-conditional generation (class labels, guidance against the null class).
    case classConditional = "class"
    /// Text-to-image generation (prompts).
    case textToImage = "text"
    /// A model that inpaints by itself (mask + masked image beside the sample).
    case inpaint
    /// SR3 super-resolution (the upsampled low-resolution image beside the sample).
    case upscale
}

/// A model's description: what a front end lists.
public struct ModelInfo: Codable, Equatable, Sendable {
    /// The model's folder.
    public let folder: String
    public let kind: ModelKind
    /// One sample's shape [C, H, W], where the config gives a sample size.
    public let sampleShape: [Int]?
    /// The sampler its scheduler config names (nil: none it names has a sampler here).
    public let defaultSampler: SamplerKind?
    /// Classes a class-conditional model generates (labels 0..<classes): its class embedding's
    /// rows, less the null class's.
    public let classes: Int?
    /// Their names, where the model's config gives them (`id2label`).
    public let classNames: [String]?
    /// The label guidance contrasts with ("no class"): the embedding's last row, when the
    /// config names one class fewer than it has rows (what `diffuse train --class-conditional`
    /// trains); nil when unknown (a request then gives its own null class).
    public let nullClass: Int?
    /// Whether requests may give negative prompts (Stable Diffusion).
    public var negativePrompts = false
}

/// A loaded model with its scheduler config, as the store keeps it.
public final class StoredModel: @unchecked Sendable {
    /// The networks a store loads.
    public enum Network {
        case unet(UNet2DModel)
        /// A DiTTransformer2DModel (class-conditional, or unconditional with one class).
        case dit(DiTTransformer2DModel)
        case textToImage(TextToImageModel)
        /// A Stable Diffusion pipeline: CLIP text encoder, latent U-Net, autoencoder.
        case stableDiffusion(StableDiffusionModel)
    }

    public let folder: String
    /// The folder holding the denoiser's config.json (the folder itself, or its unet/ or transformer/).
    public let unetFolder: String
    public let network: Network
    /// The folder's scheduler_config.json; nil when it has none.
    public let schedulerConfig: SchedulerConfig?
    /// What was loaded, for the user.
    public private(set) var note: String
    /// The type the networks compute in.
    public private(set) var precision: ComputePrecision = .float32

    init(folder: String, unetFolder: String, network: Network, schedulerConfig: SchedulerConfig?, note: String) {
        (self.folder, self.unetFolder, self.network, self.schedulerConfig, self.note) = (folder, unetFolder, network, schedulerConfig, note)
    }

    /// The networks that compute (a Stable Diffusion pipeline's three).
    public var modules: [Module] {
        switch network {
        case .unet(let model): return [model]
        case .dit(let model): return [model]
        case .textToImage(let model): return [model]
        case .stableDiffusion(let sd): return [sd.textEncoder, sd.unet, sd.vae]
        }
    }

    /// Makes every network compute in `precision`, its weights held in that type (before the
    /// store hands the model out: a stored model is never trained).
    func setPrecision(_ precision: ComputePrecision) {
        guard precision != self.precision else { return }
        for module in modules {
            module.setComputeType(precision.dtype)
            module.castParameters(to: precision.dtype)
        }
        self.precision = precision
        note += ", computing in \(precision.rawValue) (its weights rounded to \(precision.rawValue) at load)"
    }

    /// The model's description.
    public var info: ModelInfo {
        let found = schedulerConfig.map { SamplerKind(schedulerConfig: $0) } ?? .ddpm
        switch network {
        case .textToImage(let model):
            return ModelInfo(folder: folder, kind: .textToImage, sampleShape: model.defaultSampleShape, defaultSampler: found,
                             classes: nil, classNames: nil, nullClass: nil)
        case .stableDiffusion(let model):
            var info = ModelInfo(folder: folder, kind: .textToImage, sampleShape: model.defaultImageSize.map { [3] + $0 },
                                 defaultSampler: found, classes: nil, classNames: nil, nullClass: nil)
            info.negativePrompts = true
            return info
        case .dit(let model):
            // An unconditional DiT run has one class and always gets the null class.
            let classes = model.config.numEmbedsAdaNorm.flatMap { $0 > 1 ? $0 : nil }
            return ModelInfo(folder: folder, kind: classes == nil ? .unconditional : .classConditional, sampleShape: model.defaultSampleShape,
                             defaultSampler: found, classes: classes, classNames: nil, nullClass: classes.map { _ in model.nullClassLabel })
        case .unet(let model):
            let kind: ModelKind
            if model.conditioningChannels == model.sampleChannels { kind = .upscale }
            else if model.conditioningChannels == model.sampleChannels + 1 { kind = .inpaint }
            else if model.classEmbedding != nil { kind = .classConditional }
            else { kind = .unconditional }
            let rows = model.config.classEmbedType == nil ? model.config.numClassEmbeds : nil
            let names = model.config.id2label.flatMap { Self.names($0, rows: rows) }
            let nullClass = rows.flatMap { rows in names.map(\.count) == rows - 1 ? rows - 1 : nil }
            return ModelInfo(folder: folder, kind: kind, sampleShape: model.defaultSampleShape, defaultSampler: found,
                             classes: nullClass ?? rows, classNames: names, nullClass: nullClass)
        }
    }

    /// The names of labels 0..<n from an `id2label` table, when it names each of them and no
    /// more than the embedding has rows; nil otherwise.
    static func names(_ table: [String: String], rows: Int?) -> [String]? {
        let names = (0..<table.count).compactMap { table[String($0)] }
        guard !names.isEmpty, names.count == table.count, names.count <= rows ?? 0 else { return nil }
        return names
    }

    /// The scheduler config and the sampler a run uses: `requested`, or the one the config
    /// names; diffusers' defaults for the sampler's class without a config. The note says which.
    public func scheduler(_ requested: SamplerKind?) throws -> (config: SchedulerConfig, sampler: SamplerKind, note: String) {
        guard let found = schedulerConfig else {
            let kind = requested ?? .ddpm
            let config = SchedulerConfig(className: kind.diffusersSchedulerClass)
            return (config, kind, "no scheduler_config.json in \(unetFolder): using diffusers' \(config.className) defaults"
                    + (requested == nil ? " and the DDPM sampler" : ""))
        }
        guard let kind = requested ?? SamplerKind(schedulerConfig: found) else {
            throw PipelineError("the scheduler config names \(found.className), which has no sampler here; choose one with the sampler option")
        }
        return (found, kind, "scheduler config: \(found.className)" + (requested == nil ? ", sampler \(kind.rawValue)" : ""))
    }
}
