import Datasets
import Diffusion
import Foundation
import ModelIO
import Models
import NeuralNetworks
import Pipelines
import Testing
import Tensors

/// Single-file Stable Diffusion checkpoints in the CompVis/LDM layout: sd/sd15-ldm.safetensors
/// and sd/sd21-ldm.safetensors hold the sd15 / sd21 fixture pipelines' weights in that layout
/// (scripts/fixtures/ldm_single_file.py, which checked that diffusers' `from_single_file`
/// reads them back to the folders' weights and images); sd/ldm-keys-sd{15,21}.json.gz list the
/// keys and shapes of the full-size SD 1.5 / 2.1 checkpoints.
@Suite struct StableDiffusionSingleFileTests {
    static let store = ModelStore()
    static var root: String { StableDiffusionCase.root }
    static func file(_ name: String) -> String { root + "/\(name)-ldm.safetensors" }

    /// Every weight of the single file, converted, equals the folder's (the file holds the same
    /// float16 values): U-Net, VAE (attention 1x1 convolutions as linear weights) and text
    /// encoder (SD 2.x: q, k, v cut out of open_clip's in_proj_weight).
    @Test(arguments: ["sd15", "sd21"])
    func weightsEqualTheFolders(_ name: String) throws {
        let loaded = try StableDiffusionSingleFile.load(Self.file(name), config: Self.root + "/" + name)
        let folder = try StableDiffusionFolder.load(Self.root + "/" + name)
        #expect(loaded.version == (name == "sd15" ? .v1 : .v2))
        let pairs: [(String, Module, Module)] = [("unet", loaded.model.unet, folder.unet), ("vae", loaded.model.vae, folder.vae),
                                                 ("text encoder", loaded.model.textEncoder, folder.textEncoder)]
        for (what, a, b) in pairs {
            let (x, y) = (a.stateDict(), b.stateDict())
            #expect(x.keys.sorted() == y.keys.sorted(), "\(name) \(what)")
            for (key, value) in y { #expect(x[key]?.scalars == value.scalars, "\(name) \(what) \(key)") }
        }
        #expect(loaded.schedulerConfig == (try StableDiffusionFolder.schedulerConfig(Self.root + "/" + name)))
        #expect(loaded.model.pipelineClass == folder.pipelineClass && loaded.model.tokenizer.padToken == folder.tokenizer.padToken)
        // What SD never runs was ignored, and said so: the DDPM buffers, and position_ids (1.x) or
        // open_clip's text_projection and logit_scale (2.x).
        #expect(loaded.notes.contains("ignored 12 tensors: the DDPM schedule's buffers"), "\(loaded.notes)")
        #expect(loaded.notes.contains(name == "sd15" ? "ignored 1 tensor: CLIP's position_ids buffer"
                                                     : "ignored 2 tensors: open_clip's text_projection and logit_scale (not used by SD)"))
    }

    /// The original .ckpt of the SD 1.5 file (torch.save of {"state_dict": ..., "global_step"})
    /// loads through the restricted unpickler to the same weights as the safetensors file.
    @Test func ckptLoadsAsTheSafetensorsFile() throws {
        let ckpt = try StableDiffusionSingleFile.load(Self.root + "/sd15-ldm.ckpt", config: Self.root + "/sd15")
        let file = try StableDiffusionSingleFile.load(Self.file("sd15"), config: Self.root + "/sd15")
        for (a, b) in [(ckpt.model.unet as Module, file.model.unet as Module), (ckpt.model.vae, file.model.vae),
                       (ckpt.model.textEncoder, file.model.textEncoder)] {
            let (x, y) = (a.stateDict(), b.stateDict())
            #expect(x.keys.sorted() == y.keys.sorted())
            for (key, value) in y { #expect(x[key]?.scalars == value.scalars, "\(key)") }
        }
    }

    /// The single file with its config folder generates the folder's images through the store
    /// (a request naming the file and `model_config`), bit for bit, for every sd15 / sd21 run
    /// of sd/cases.json (PNDM, Euler ancestral with negative prompts, DDIM v-prediction with
    /// clip skip, image-to-image, inpainting by blending); and so within 1e-3 of diffusers.
    @Test(arguments: StableDiffusionCase.all.filter { $0.folder == "sd15" || $0.folder == "sd21" })
    func generatesTheFoldersImages(_ c: StableDiffusionCase) throws {
        var request = c.request
        request.model = Self.file(c.folder)
        request.modelConfig = Self.root + "/" + c.folder
        let run = try request.prepare(in: Self.store)
        #expect(run.notes.contains { $0.contains("from one file") }, "\(run.notes)")
        let images = try run.run()
        let folderImages = try c.request.prepare(in: StableDiffusionTests.store).run()
        let difference = zip(images.scalars, folderImages.scalars).map { abs($0 - $1) }.max() ?? .infinity
        #expect(images.shape == folderImages.shape && difference <= 1e-5, "\(c.name): single file vs folder \(difference)")
        print("\(c.name): single file vs folder, max difference \(difference)")
        expectClose(images, try NPY.load(Self.root + "/\(c.name).npy"), rtol: 1e-3, c.name)
    }

    /// A request names the config folder as `model_config` in JSON; the store keeps the model
    /// per (file, config); a config for a folder model is refused.
    @Test func requestAndStore() throws {
        let json = #"{"model": "m.safetensors", "model_config": "sd15", "steps": 2}"#
        let r = try JSONDecoder().decode(SamplingRequest.self, from: Data(json.utf8))
        #expect(r.modelConfig == "sd15")
        let back = try JSONDecoder().decode(SamplingRequest.self, from: JSONEncoder().encode(r))
        #expect(back == r)
        let store = ModelStore()
        let a = try store.model(Self.file("sd15"), config: Self.root + "/sd15")
        #expect(try store.model(Self.file("sd15"), config: Self.root + "/sd15") === a)
        #expect(a.info.kind == .textToImage && a.info.sampleShape == [3, 64, 64] && a.info.defaultSampler == .pndm)
        #expect(errorMessage { _ = try store.model(Self.root + "/sd15", config: Self.root + "/sd15") }?
            .contains("a model config folder is for a single-file checkpoint") == true)
        var noPrompt = SamplingRequest(model: Self.file("sd15"), steps: 2)
        noPrompt.modelConfig = Self.root + "/sd15"
        #expect(errorMessage { _ = try noPrompt.prepare(in: store) }?.contains("is a text-to-image checkpoint") == true)
    }

    /// SD 2.x files hold open_clip's 24th block, which SD 2.x skips (diffusers' text encoder
    /// has 23 layers): one block past the config's layers is ignored with a note; two are not.
    @Test func openCLIPsLastBlockIsIgnored() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var tensors = try Safetensors.load(Self.file("sd21")).tensors
        let prefix = LDMKeys.openCLIPPrefix + "transformer.resblocks."
        for (key, value) in tensors where key.hasPrefix(prefix + "2.") {
            tensors[key.replacingOccurrences(of: prefix + "2.", with: prefix + "3.")] = value * 2
        }
        try Safetensors(tensors: tensors).save(dir + "/one.safetensors")
        let loaded = try StableDiffusionSingleFile.load(dir + "/one.safetensors", config: Self.root + "/sd21")
        #expect(loaded.notes.contains("ignored 12 tensors: open_clip's last block (SD 2.x conditions on the penultimate)"))
        for (key, value) in tensors where key.hasPrefix(prefix + "2.") {
            tensors[key.replacingOccurrences(of: prefix + "2.", with: prefix + "4.")] = value
        }
        try Safetensors(tensors: tensors).save(dir + "/two.safetensors")
        let message = errorMessage { _ = try StableDiffusionSingleFile.load(dir + "/two.safetensors", config: Self.root + "/sd21") }
        #expect(message?.contains("12 unexpected keys (nothing reads them): \(prefix)4.attn.in_proj_bias") == true, "\(message ?? "")")
    }

    /// Files that do not fit are refused before anything runs, naming keys (LDM and diffusers
    /// names) and what to do: missing, left over, mis-shaped, non-finite; SDXL, EMA-only,
    /// diffusers-layout, incomplete files; pickles; a config folder that is not one.
    @Test func badFilesAreRefused() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let good = try Safetensors.load(Self.file("sd15")).tensors
        let config = Self.root + "/sd15"
        func refusal(_ change: (inout [String: Tensor]) -> Void, name: String = "bad.safetensors", config: String? = config) -> String {
            var tensors = good
            change(&tensors)
            let path = dir + "/" + name
            do { try Safetensors(tensors: tensors).save(path) } catch { return "save failed: \(error)" }
            return errorMessage { _ = try StableDiffusionSingleFile.load(path, config: config, openAIBPE: { "#version: 0.2\n" }) } ?? "no error"
        }
        let u = LDMKeys.unetPrefix
        var m = refusal { $0[u + "input_blocks.1.0.in_layers.2.weight"] = nil }
        #expect(m.contains("does not fit the configs of \(config): 1 missing key: \(u)input_blocks.1.0.in_layers.2.weight "
                           + "(U-Net down_blocks.0.resnets.0.conv1.weight)"), "\(m)")
        m = refusal { $0[u + "input_blocks.1.0.extra.weight"] = Tensor.zeros([2]); $0["control_model.zero_convs.0.0.bias"] = Tensor.zeros([2]) }
        #expect(m.contains("2 unexpected keys (nothing reads them): control_model.zero_convs.0.0.bias; \(u)input_blocks.1.0.extra.weight"), "\(m)")
        m = refusal { $0[LDMKeys.vaePrefix + "decoder.mid.attn_1.q.weight"] = Tensor.zeros([16, 8, 1, 1]) }
        #expect(m.contains("1 key of the wrong shape: \(LDMKeys.vaePrefix)decoder.mid.attn_1.q.weight: shape [16, 8, 1, 1], "
                           + "the VAE's decoder.mid_block.attentions.0.to_q.weight needs [16, 16, 1, 1]"), "\(m)")
        m = refusal { $0[u + "out.2.bias"] = Tensor([1, .nan, 3, .infinity]) }
        #expect(m.contains("\(u)out.2.bias (the U-Net's conv_out.bias) holds 2 NaN or infinite values (the first at element 1)"), "\(m)")
        m = refusal { $0["conditioner.embedders.0.transformer.text_model.final_layer_norm.bias"] = Tensor.zeros([2]) }
        #expect(m.contains("is an SDXL checkpoint (1 keys under conditioner.embedders."), "\(m)")
        m = refusal { t in
            for key in Array(t.keys) where key.hasPrefix(u) {
                t["model_ema.diffusion_model" + key.dropFirst(u.count).replacingOccurrences(of: ".", with: "")] = t.removeValue(forKey: key)
            }
        }
        #expect(m.contains("holds the U-Net only as EMA weights (208 keys like model_ema.diffusion_modelinput_blocks00bias"), "\(m)")
        m = refusal { t in for key in Array(t.keys) where key.hasPrefix(LDMKeys.vaePrefix) { t[key] = nil } }
        #expect(m.contains("no key under first_stage_model. (the VAE)"), "\(m)")
        m = refusal { t in for key in Array(t.keys) where key.hasPrefix("cond_stage_model.") { t[key] = nil } }
        #expect(m.contains("no text encoder: neither cond_stage_model.transformer.* (SD 1.x's CLIP) nor cond_stage_model.model.*"), "\(m)")
        let diffusersLayout = Self.root + "/sd15/unet/diffusion_pytorch_model.safetensors"
        m = errorMessage { _ = try StableDiffusionSingleFile.load(diffusersLayout) } ?? "no error"
        #expect(m.contains("is in diffusers' layout (keys like conv_in.bias), not the CompVis/LDM one"), "\(m)")
        // Without a config: the built-in full-size SD 1.5 configs, which the tiny file does not fit.
        m = refusal({ _ in }, config: nil)
        #expect(m.contains("does not fit the built-in SD 1.5 configs: ") && m.contains("keys of the wrong shape: ")
                && m.contains("(another architecture needs a config folder describing it)"), "\(m)")
        m = refusal({ $0[u + "input_blocks.0.0.weight"] = Tensor.zeros([16, 5, 3, 3]) }, config: nil)
        #expect(m.contains("the U-Net takes 5 input channels"), "\(m)")
        m = refusal({ _ in }, config: dir)
        #expect(m.contains("no unet/config.json (the config of a single-file checkpoint is a diffusers Stable Diffusion pipeline folder"), "\(m)")
        // Pickles are named for what they are, with what to do.
        _ = FileManager.default.createFile(atPath: dir + "/model.ckpt", contents: Data("PK".utf8))
        m = errorMessage { _ = try StableDiffusionSingleFile.load(dir + "/model.ckpt") } ?? "no error"
        #expect(m.contains("model.ckpt: not a readable zip archive") && m.contains("read without running it"), "\(m)")
        #expect(StableDiffusionSingleFile.isSingleFile(dir + "/model.ckpt") && !StableDiffusionSingleFile.isSingleFile(dir))
        // Through the store, the same words.
        var r = SamplingRequest(model: dir + "/model.ckpt", steps: 2)
        r.prompts = ["a cat"]
        #expect(errorMessage { _ = try r.prepare(in: ModelStore()) }?.contains("not a readable zip archive") == true)
    }

    /// The built-in full-size configs ask for exactly the keys and shapes of the real SD 1.5 and
    /// SD 2.1 checkpoints (ldm-keys-*.json.gz, made by diffusers' own converters): every
    /// parameter's LDM source is in the list with its shape, and what is left over is what the
    /// loader ignores. The networks (1.07 and 1.29 billion parameters) are built without
    /// weights (`PlaceholderWeights`), as the loader builds them.
    @Test(arguments: [StableDiffusionVersion.v1, .v2])
    func builtInConfigsMatchTheFullSizeKeys(_ version: StableDiffusionVersion) throws {
        let name = version == .v1 ? "sd15" : "sd21"
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.root + "/ldm-keys-\(name).json.gz"))
        let text = try Gzip.decompress(Array(data), name: name)
        let keys = try JSONDecoder().decode([String: [Int]].self, from: Data(text))
        #expect(keys.count == (version == .v1 ? 1143 : 1240))
        let a = StableDiffusionArchitecture.builtIn(version)
        let started = Date()
        let g = PlaceholderWeights()
        let parts: [(Module, (String) -> LDMSource?)] = [
            (try UNet2DConditionModel(a.unet, generator: g), { LDMKeys.unet($0, config: a.unet) }),
            (try AutoencoderKL(a.vae, generator: g), { LDMKeys.vae($0, levels: a.vae.blockOutChannels.count) }),
            (try CLIPTextModel(a.textEncoder, generator: g), { version == .v1 ? LDMKeys.clip($0) : LDMKeys.openCLIP($0) }),
        ]
        print("\(name): built the full-size networks in \(Date().timeIntervalSince(started)) s")
        var used = Set<String>(), counts = [Int]()
        for (module, source) in parts {
            let parameters = module.namedParameters()
            counts.append(parameters.reduce(0) { $0 + $1.1.value.count })
            for (path, p) in parameters {
                guard let s = source(path) else { Issue.record("\(path): no LDM source"); continue }
                #expect(keys[s.key] == s.ldmShape(for: p.shape), "\(path) <- \(s.key): \(keys[s.key] ?? []) vs \(s.ldmShape(for: p.shape))")
                used.insert(s.key)
            }
        }
        // diffusers' parameter counts of the full-size networks.
        #expect(counts == (version == .v1 ? [859_520_964, 83_653_863, 123_060_480] : [865_910_724, 83_653_863, 340_387_840]))
        #expect(used.count == (version == .v1 ? 686 + 248 + 196 : 686 + 248 + 23 * 12 + 4))
        for key in keys.keys where !used.contains(key) {
            #expect(StableDiffusionSingleFile.ignoredReason(key, version: version, textLayers: a.textEncoder.numHiddenLayers) != nil,
                    "\(key) is neither read nor ignored")
        }
        #expect(a.scheduler.predictionType == (version == .v1 ? .epsilon : .vPrediction))
        #expect(a.unet.sampleSize?[0] == (version == .v1 ? 64 : 96))
    }

    /// `diffuse generate --model FILE.safetensors --config FOLDER` through the binary: the
    /// folder's images (so diffusers'); a config that is no folder is refused by name.
    @Test func generateCommandTakesASingleFile() throws {
        let cli = CommandLineTests()
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let c = try #require(StableDiffusionCase.all.first { $0.name == "sd15-txt2img-negative-euler-a" })
        func generate(config: String) throws -> CommandLineTests.Run {
            try cli.diffuse(["generate", "--model", Self.file("sd15"), "--config", config, "--prompt", c.prompts[0], "--prompt", c.prompts[1],
                             "--negative-prompt", c.negative_prompts![0], "--negative-prompt", c.negative_prompts![1],
                             "--steps", "\(c.steps)", "--guidance", "\(c.guidance)", "--seed", "\(c.seed)",
                             "--rng", c.request.rng.rawValue, "--sampler", c.sampler, "--height", "\(c.height)", "--width", "\(c.width)",
                             "--out-npy", dir + "/images.npy"])
        }
        let run = try generate(config: Self.root + "/sd15")
        #expect(run.status == 0, "\(run.error)")
        expectClose(try NPY.load(dir + "/images.npy"), try NPY.load(Self.root + "/\(c.name).npy"), rtol: 1e-3, "CLI")
        let bad = try generate(config: dir + "/none")
        #expect(bad.status != 0 && bad.error.contains("\(dir)/none: no such folder"), "\(bad.error)")
    }

    /// Without a config folder the tokenizer is CLIP's full vocabulary from open_clip's BPE
    /// file (where scripts/setup installed open_clip_torch), padding as SD 1.x / 2.x do.
    @Test(.enabled(if: (try? CLIPVocabulary.locate()) != nil, "open_clip's bpe_simple_vocab_16e6.txt.gz is not installed"))
    func builtInTokenizerFromOpenCLIP() throws {
        let text = try CLIPVocabulary.openAIBPEText()
        let t = try CLIPTokenizer(openAIBPE: text, padToken: "!")
        #expect(t.vocabulary.count == 49408 && t.padToken == "!")
        #expect(t(["a photo of an astronaut"]).shape == [1, 77])
    }
}
