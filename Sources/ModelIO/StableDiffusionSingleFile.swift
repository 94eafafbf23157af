import Diffusion
import Foundation
import Models
import NeuralNetworks
import Tensors

/// A Stable Diffusion 1.x / 2.x checkpoint in one `.safetensors` file, in the original
/// CompVis/LDM key layout (`v1-5-pruned-emaonly.safetensors`, `v2-1_768-ema-pruned.safetensors`
/// and the fine-tunes shared in that form):
///
///     model.diffusion_model.*        the U-Net (openaimodel.py's input_blocks/middle_block/output_blocks)
///     first_stage_model.*            the VAE (encoder.down.i.block.j, mid.attn_1 as 1x1 convolutions)
///     cond_stage_model.transformer.* SD 1.x: transformers' CLIPTextModel
///     cond_stage_model.model.*       SD 2.x: open_clip's text tower (fused q/k/v in in_proj_weight)
///
/// Keys are converted on load into the diffusers names the modules use (`LDMKeys`), walking
/// the parameters of the networks the architecture builds, so that every parameter's source
/// is known: a key that is missing, left over, or of the wrong shape is refused by name. Left
/// over and ignored are only what SD never runs: the DDPM schedule buffers, EMA copies
/// (`model_ema.*`) beside the weights, the position_ids buffer, open_clip's text_projection and
/// logit_scale, and SD 2.x's last open_clip block (SD 2.x conditions on the penultimate one,
/// diffusers' text encoder has one layer fewer). SDXL and EMA-only files are refused with what
/// to do. The original `.ckpt` pickles load through `TorchCheckpoint` (read, never run).
///
/// The architecture comes from a diffusers SD pipeline folder (`config:`, as diffusers'
/// `from_single_file(path, config=folder)`), or is inferred: SD 1.x or 2.x from the text
/// encoder's layout, inpainting from the U-Net's 9 input channels, then the built-in configs of
/// the full-size pipelines (`StableDiffusionArchitecture.builtIn`). Whether an SD 2.x file
/// predicts v (2.x at 768) or epsilon (2.x-base at 512) cannot be read from its weights: the
/// built-in config takes v-prediction, as diffusers does; give a config folder for the others.
public enum StableDiffusionSingleFile {
    /// What `load` returns: the networks, the scheduler config, and notes for the user.
    public struct Loaded: @unchecked Sendable {
        public let model: StableDiffusionModel
        public let schedulerConfig: SchedulerConfig
        public let version: StableDiffusionVersion
        public let architecture: StableDiffusionArchitecture
        /// What was inferred or ignored, in words.
        public let notes: [String]
    }

    /// File name extensions of PyTorch checkpoints, read by `TorchCheckpoint`.
    static let pickleExtensions: Set<String> = ["ckpt", "pt", "pth", "bin", "pkl"]

    /// Whether `path` is a file a single-file load is meant for: an existing regular file
    /// (not a folder) named `.safetensors`, or a PyTorch checkpoint (`.ckpt`, `.pt`, ...).
    public static func isSingleFile(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else { return false }
        let ext = URL(fileURLWithPath: path).pathExtension.lowercased()
        return ext == "safetensors" || pickleExtensions.contains(ext)
    }

    /// Loads the checkpoint `file` with the architecture of the pipeline folder `config`, or
    /// the built-in one of the version the file holds. `openAIBPE` gives CLIP's BPE merges text
    /// (open_clip's `bpe_simple_vocab_16e6.txt`) when the tokenizer is not in a config folder.
    public static func load(_ file: String, config: String? = nil,
                            openAIBPE: (() throws -> String)? = nil) throws -> Loaded {
        let ext = URL(fileURLWithPath: file).pathExtension.lowercased()
        let tensors: [String: Tensor]
        if pickleExtensions.contains(ext) {
            // The original .ckpt: read by the restricted unpickler, nothing in it runs.
            do { tensors = try TorchCheckpoint.load(file).tensors } catch let e as TorchCheckpointError {
                throw ModelError("\(e.description) (a PyTorch checkpoint is read without running it; "
                                 + "diffuse convert writes it as safetensors)")
            }
        } else {
            guard ext == "safetensors" else {
                throw ModelError("\(file): not a .safetensors file (a single-file Stable Diffusion checkpoint in the CompVis/LDM layout)")
            }
            tensors = try Safetensors.load(file).tensors
        }
        let (version, inChannels) = try inspect(tensors, file: file)
        if config == nil, inChannels != 4, inChannels != 9 {
            throw ModelError("\(file): the U-Net takes \(inChannels) input channels (\(LDMKeys.unetPrefix)input_blocks.0.0.weight), "
                             + "neither text-to-image's 4 nor inpainting's 9: give a config folder describing it")
        }
        let architecture: StableDiffusionArchitecture
        do {
            architecture = try config.map { try StableDiffusionArchitecture.load(folder: $0) } ?? .builtIn(version, inChannels: inChannels)
        } catch let e as ModelError {
            throw ModelError("\(file): \(e.message)")
        }
        var notes = ["\(file): an SD \(version.rawValue) checkpoint in the LDM layout, with \(architecture.origin)"]
        if config == nil, version == .v2, inChannels == 4 {
            notes.append("v-prediction assumed (SD 2.x at 768x768, as diffusers infers it); an SD 2.x-base file (512x512, epsilon) "
                         + "needs a config folder")
        }
        let model = try build(tensors, file: file, version: version, architecture: architecture, builtIn: config == nil, openAIBPE: openAIBPE, notes: &notes)
        return Loaded(model: model, schedulerConfig: architecture.scheduler, version: version, architecture: architecture, notes: notes)
    }

    /// The version and the U-Net's input channels the file's keys show; SDXL, EMA-only,
    /// diffusers-layout and incomplete files are refused, naming keys.
    static func inspect(_ tensors: [String: Tensor], file: String) throws -> (StableDiffusionVersion, Int) {
        let keys = tensors.keys
        func count(_ prefix: String) -> Int { keys.reduce(0) { $0 + ($1.hasPrefix(prefix) ? 1 : 0) } }
        func example(_ prefix: String) -> String { keys.filter { $0.hasPrefix(prefix) }.min() ?? prefix }
        if count("conditioner.embedders.") > 0 {
            throw ModelError("\(file) is an SDXL checkpoint (\(count("conditioner.embedders.")) keys under conditioner.embedders., e.g. "
                             + "\(example("conditioner.embedders.")), its two text encoders): only Stable Diffusion 1.x and 2.x "
                             + "single files load here")
        }
        let unet = count(LDMKeys.unetPrefix)
        if unet == 0 {
            let ema = keys.filter { $0.hasPrefix("model_ema.") && $0 != "model_ema.decay" && $0 != "model_ema.num_updates" }
            if !ema.isEmpty {
                throw ModelError("\(file) holds the U-Net only as EMA weights (\(ema.count) keys like \(ema.min()!), none under "
                                 + "\(LDMKeys.unetPrefix)): EMA-only files are not read here; save the EMA weights under "
                                 + "\(LDMKeys.unetPrefix) (as the *-emaonly releases do)")
            }
            if keys.contains(where: { $0.hasPrefix("down_blocks.") || $0.hasPrefix("unet.") || $0.hasPrefix("conv_in.") }) {
                throw ModelError("\(file) is in diffusers' layout (keys like \(keys.filter { !$0.contains("model.") }.min() ?? "")), "
                                 + "not the CompVis/LDM one: load its pipeline folder instead")
            }
            throw ModelError("\(file): no key under \(LDMKeys.unetPrefix) (the U-Net): not a CompVis/LDM Stable Diffusion checkpoint "
                             + "(its first keys: \(keys.sorted().prefix(3).joined(separator: ", ")))")
        }
        guard count(LDMKeys.vaePrefix) > 0 else {
            throw ModelError("\(file): no key under \(LDMKeys.vaePrefix) (the VAE): a single file must hold the U-Net, the VAE and "
                             + "the text encoder")
        }
        let version: StableDiffusionVersion
        if count(LDMKeys.openCLIPPrefix) > 0 {
            version = .v2
        } else if count(LDMKeys.clipPrefix) > 0 {
            version = .v1
        } else {
            throw ModelError("\(file): no text encoder: neither \(LDMKeys.clipPrefix)* (SD 1.x's CLIP) nor \(LDMKeys.openCLIPPrefix)* "
                             + "(SD 2.x's open_clip)")
        }
        let convIn = LDMKeys.unetPrefix + "input_blocks.0.0.weight"
        guard let weight = tensors[convIn], weight.rank == 4 else {
            throw ModelError("\(file): no \(convIn) of rank 4 (the U-Net's input convolution)")
        }
        return (version, weight.shape[1])
    }

    /// The DDPM buffers ldm's LatentDiffusion registers (register_schedule): training state,
    /// not read (the scheduler config gives the schedule).
    static let scheduleBuffers: Set<String> = [
        "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
        "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod", "posterior_variance",
        "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2", "logvar", "lvlb_weights",
    ]

    /// Why `key`, which no parameter reads, is ignored; nil when it must not be left over.
    public static func ignoredReason(_ key: String, version: StableDiffusionVersion, textLayers: Int) -> String? {
        if scheduleBuffers.contains(key) { return "the DDPM schedule's buffers" }
        if key.hasPrefix("model_ema.") { return "EMA weights beside the weights used (model_ema.*, as diffusers by default)" }
        switch version {
        case .v1:
            if key == LDMKeys.clipPrefix + "text_model.embeddings.position_ids" { return "CLIP's position_ids buffer" }
        case .v2:
            if key == LDMKeys.openCLIPPrefix + "text_projection" || key == LDMKeys.openCLIPPrefix + "logit_scale" {
                return "open_clip's text_projection and logit_scale (not used by SD)"
            }
            if key.hasPrefix(LDMKeys.openCLIPPrefix + "transformer.resblocks.\(textLayers).") {
                return "open_clip's last block (SD 2.x conditions on the penultimate)"
            }
        }
        return nil
    }

    /// One network, its parameters and where each comes from.
    struct Component {
        let name: String
        let module: Module
        let source: (String) -> LDMSource?
    }

    /// Builds the networks, converts the file's tensors into their parameters and loads them;
    /// refuses missing, left-over and mis-shaped keys (LDM and diffusers names both) before
    /// anything is replaced.
    static func build(_ tensors: [String: Tensor], file: String, version: StableDiffusionVersion,
                      architecture a: StableDiffusionArchitecture, builtIn: Bool, openAIBPE: (() throws -> String)?,
                      notes: inout [String]) throws -> StableDiffusionModel {
        let tokenizer: CLIPTokenizer
        switch a.tokenizer {
        case .folder(let folder): tokenizer = try CLIPTokenizer(folder: folder)
        case .openAIBPE(let pad):
            guard let openAIBPE else {
                throw ModelError("\(file): the tokenizer needs CLIP's BPE vocabulary (open_clip's bpe_simple_vocab_16e6.txt.gz) "
                                 + "or a config folder with tokenizer/")
            }
            tokenizer = try CLIPTokenizer(openAIBPE: try openAIBPE(), padToken: pad)
        }
        // Every parameter is replaced below (or nothing is used): no initial weights are drawn.
        let g = PlaceholderWeights()
        let unet = try UNet2DConditionModel(a.unet, generator: g)
        let vae = try AutoencoderKL(a.vae, generator: g)
        let text = try CLIPTextModel(a.textEncoder, generator: g)
        let levels = a.vae.blockOutChannels.count
        let components = [
            Component(name: "U-Net", module: unet) { LDMKeys.unet($0, config: a.unet) },
            Component(name: "VAE", module: vae) { LDMKeys.vae($0, levels: levels) },
            Component(name: "text encoder", module: text) { version == .v1 ? LDMKeys.clip($0) : LDMKeys.openCLIP($0) },
        ]
        var problems = [String](), homeless = [String](), missing = [String](), misfits = [String]()
        var consumed = Set<String>()
        var states = [[String: Tensor]](), sources = [String: String]()
        for component in components {
            var state = [String: Tensor]()
            for (name, parameter) in component.module.namedParameters() {
                guard let source = component.source(name) else {
                    homeless.append("\(component.name) \(name)")
                    continue
                }
                sources[name] = source.key
                guard let tensor = tensors[source.key] else {
                    missing.append("\(source.key) (\(component.name) \(name))")
                    continue
                }
                consumed.insert(source.key)
                guard source.accepts(tensor.shape, for: parameter.shape) else {
                    misfits.append("\(source.key): shape \(tensor.shape), the \(component.name)'s \(name) needs "
                                   + "\(source.ldmShape(for: parameter.shape))")
                    continue
                }
                state[name] = source.apply(tensor, shape: parameter.shape)
            }
            states.append(state)
        }
        var ignored = [String: Int]()
        var extra = [String]()
        for key in tensors.keys.sorted() where !consumed.contains(key) {
            if let reason = ignoredReason(key, version: version, textLayers: a.textEncoder.numHiddenLayers) {
                ignored[reason, default: 0] += 1
            } else {
                extra.append(key)
            }
        }
        // The first few of each kind, the most telling first (a shape says which architecture the file has).
        func listed(_ items: [String], _ what: String) -> String {
            "\(items.count) \(what): " + items.prefix(4).joined(separator: "; ") + (items.count > 4 ? "; ..." : "")
        }
        if !homeless.isEmpty { problems.append(listed(homeless, "parameter\(homeless.count == 1 ? "" : "s") with no place in the LDM layout")) }
        if !misfits.isEmpty { problems.append(listed(misfits, "key\(misfits.count == 1 ? "" : "s") of the wrong shape")) }
        if !missing.isEmpty { problems.append(listed(missing, "missing key\(missing.count == 1 ? "" : "s")")) }
        if !extra.isEmpty { problems.append(listed(extra, "unexpected key\(extra.count == 1 ? "" : "s") (nothing reads them)")) }
        if !problems.isEmpty {
            let hint = builtIn && (!missing.isEmpty || !misfits.isEmpty) ? " (another architecture needs a config folder describing it)" : ""
            throw ModelError("\(file) does not fit \(a.origin): " + problems.joined(separator: "; ") + hint)
        }
        for (component, state) in zip(components, states) {
            do {
                try component.module.load(stateDict: state)
            } catch let e as StateDictError {
                // Only values can be refused here (names and shapes were checked): say which LDM key holds them.
                let named = e.problems.map { p -> String in
                    if case .nonFinite(let key, let n, let i) = p {
                        return "\(sources[key] ?? key) (the \(component.name)'s \(key)) holds \(n) NaN or infinite value\(n == 1 ? "" : "s") "
                            + "(the first at element \(i))"
                    }
                    return "\(p)"
                }
                throw ModelError("\(file): " + named.prefix(10).joined(separator: "; "))
            }
            component.module.eval()
        }
        for (reason, n) in ignored.sorted(by: { $0.key < $1.key }) { notes.append("ignored \(n) tensor\(n == 1 ? "" : "s"): \(reason)") }
        do {
            return try StableDiffusionModel(unet: unet, vae: vae, textEncoder: text, tokenizer: tokenizer, pipelineClass: a.pipelineClass)
        } catch let e as ModelError {
            throw ModelError("\(file) with \(a.origin): \(e.message)")
        }
    }
}
