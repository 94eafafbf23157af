import Diffusion
import Foundation
import ImageIO
import ModelIO
import Models
import Pipelines
import Testing
import Tensors

/// One diffusers run of sd/cases.json (scripts/fixtures/diffusers_stable_diffusion.py).
struct StableDiffusionCase: Decodable, CustomTestStringConvertible, Sendable {
    let name: String, pipeline: String, folder: String, sampler: String
    let prompts: [String]
    let negative_prompts: [String]?
    let batch: Int, steps: Int, seed: UInt64
    let guidance: Float
    let height: Int, width: Int
    let clip_skip: Int?
    let strength: Double?
    let mask: Bool?

    var testDescription: String { name }

    struct File: Decodable { let cpu_capability: String; let cases: [StableDiffusionCase] }
    static let file: File = try! JSONDecoder().decode(File.self, from: Data(contentsOf: URL(fileURLWithPath: root + "/cases.json")))
    static var all: [StableDiffusionCase] { file.cases }
    static var root: String { fixturesFolder() + "/sd" }

    /// The pipeline folder; "sd15+inpaint-unet" is sd15 with the inpainting U-Net, assembled
    /// once in a temporary folder (links to sd15's other parts).
    var modelFolder: String { folder == "sd15+inpaint-unet" ? Self.inpaintingFolder : Self.root + "/" + folder }

    static let inpaintingFolder: String = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("diffuse-sd-inpaint-\(UUID().uuidString)").path
        let fm = FileManager.default
        try! fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for part in ["model_index.json", "vae", "text_encoder", "tokenizer", "scheduler"] {
            try! fm.createSymbolicLink(atPath: dir + "/" + part, withDestinationPath: root + "/sd15/" + part)
        }
        try! fm.createSymbolicLink(atPath: dir + "/unet", withDestinationPath: root + "/sd15-inpaint-unet")
        return dir
    }()

    /// `diffuse generate` arguments that repeat the run (text-to-image cases).
    var generateArguments: [String] {
        ["generate", "--model", modelFolder] + prompts.flatMap { ["--prompt", $0] }
            + (negative_prompts ?? []).flatMap { ["--negative-prompt", $0] }
            + ["--steps", "\(steps)", "--guidance", "\(guidance)", "--seed", "\(seed)", "--rng", request.rng.rawValue,
               "--sampler", sampler, "--height", "\(height)", "--width", "\(width)"]
    }

    /// The request that repeats the run.
    var request: SamplingRequest {
        var r = SamplingRequest(model: modelFolder, steps: steps)
        r.prompts = prompts
        r.negativePrompts = negative_prompts
        r.batch = batch
        r.guidance = guidance
        r.seed = seed
        r.rng = .torch(capability: Self.file.cpu_capability)
        r.sampler = SamplerKind(rawValue: sampler)
        (r.height, r.width) = (height, width)
        r.clipSkip = clip_skip
        let image = EncodedImage(file: Self.root + "/inputs/image.png")
        if mask == true {
            r.images = .inpaint(image: image, mask: EncodedImage(file: Self.root + "/inputs/mask.png"), resampling: .init())
        } else if let strength {
            r.images = .imageToImage(image: image, strength: strength)
        }
        return r
    }
}

/// Stable Diffusion pipeline folders (small random-weight SD 1.5 and SD 2.1 architectures)
/// against what diffusers' StableDiffusionPipeline, StableDiffusionImg2ImgPipeline and
/// StableDiffusionInpaintPipeline generate with them for the same seeds.
@Suite struct StableDiffusionTests {
    static let store = ModelStore()

    /// Text-to-image with and without negative prompts (PNDM, Euler ancestral, DDIM with
    /// v-prediction, clip skip), image-to-image, inpainting by latent blending and with the
    /// inpainting U-Net, at 64x64 and 80x48: within 1e-3 of diffusers' decoded images.
    @Test(arguments: StableDiffusionCase.all)
    func matchesDiffusers(_ c: StableDiffusionCase) throws {
        let run = try c.request.prepare(in: Self.store)
        let images = try run.run()
        let expected = try NPY.load(StableDiffusionCase.root + "/\(c.name).npy")
        expectClose(images, expected, rtol: 1e-3, c.name)
        print("\(c.name): max difference \(relativeError(images, expected)) of the largest value")
        #expect(run.samplesPerPrompt == c.batch)
    }

    /// The store lists a Stable Diffusion folder as a text-to-image model of its pixel size.
    @Test func storeDescribesTheFolder() throws {
        let info = try Self.store.model(StableDiffusionCase.root + "/sd15").info
        #expect(info.kind == .textToImage && info.sampleShape == [3, 64, 64] && info.defaultSampler == .pndm)
        guard case .stableDiffusion(let sd) = try Self.store.model(StableDiffusionCase.root + "/sd21").network else {
            Issue.record("not loaded as Stable Diffusion"); return
        }
        #expect(sd.vaeScaleFactor == 8 && sd.latentChannels == 4 && !sd.inpaintsByItself)
        #expect(sd.tokenizer.padToken == "!")
    }

    /// What cannot run is refused before any model evaluation, naming the problem.
    @Test func badRequestsAreRefused() throws {
        let folder = StableDiffusionCase.root + "/sd15"
        func message(_ change: (inout SamplingRequest) -> Void) -> String {
            var r = SamplingRequest(model: folder, steps: 3)
            r.prompts = ["a cat"]
            change(&r)
            return errorMessage { _ = try r.prepare(in: Self.store) } ?? "no error"
        }
        #expect(message { $0.height = 60 }.contains("the height must be a multiple of 8 (the autoencoder's downsampling), got 60"))
        #expect(message { $0.prompts = nil }.contains("text-to-image pipeline"))
        #expect(message { $0.prompts = [] }.contains("no prompt"))
        #expect(message { $0.negativePrompts = ["a", "b"] }.contains("2 negative prompts for 1 prompts"))
        #expect(message { $0.clipSkip = 3 }.contains("clip_skip must be in 0...2"))
        #expect(message { $0.classLabels = [1] }.contains("class labels"))
        let image = EncodedImage(file: StableDiffusionCase.root + "/inputs/image.png")
        #expect(message { $0.width = 72; $0.images = .imageToImage(image: image, strength: 0.5) }.contains("the image is 64x64, but the request generates 72x64"))
        #expect(message { $0.images = .upscale(image: image, factor: 4) }.contains("SR3"))
        #expect(message { $0.images = .imageToImage(image: image, strength: 0.1) }.contains("leaves no step"))
        #expect(message { $0.images = .inpaint(image: image, mask: image, resampling: .init()); $0.height = 72 }.contains("72"))
        let inpainting = StableDiffusionCase.inpaintingFolder
        var plain = SamplingRequest(model: inpainting, steps: 3)
        plain.prompts = ["a cat"]
        #expect(errorMessage { _ = try plain.prepare(in: Self.store) }?.contains("inpaints (9 input channels)") == true)
        // A pipeline with a second text encoder (SDXL) is refused by name.
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for part in ["vae", "text_encoder", "tokenizer", "scheduler", "unet"] {
            try FileManager.default.createSymbolicLink(atPath: dir + "/" + part, withDestinationPath: folder + "/" + part)
        }
        var index = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/model_index.json"))) as! [String: Any]
        index["text_encoder_2"] = ["transformers", "CLIPTextModelWithProjection"]
        try JSONSerialization.data(withJSONObject: index).write(to: URL(fileURLWithPath: dir + "/model_index.json"))
        var xl = SamplingRequest(model: dir, steps: 3)
        xl.prompts = ["a cat"]
        #expect(errorMessage { _ = try xl.prepare(in: ModelStore()) }?.contains("text_encoder_2 (CLIPTextModelWithProjection)") == true)
    }

    /// A prompt longer than CLIP's 77 tokens is cut as diffusers cuts it, and the note says
    /// what was cut; chunks of one give the single runs with seed + i.
    @Test func longPromptsAreCutWithANoteAndChunksAreSeeded() throws {
        var r = SamplingRequest(model: StableDiffusionCase.root + "/sd15", steps: 2)
        r.prompts = [Array(repeating: "red", count: 90).joined(separator: " ")]
        r.batch = 2
        r.guidance = 3
        let run = try r.prepare(in: Self.store)
        #expect(run.notes.contains { $0.contains("cut (as diffusers does)") }, "\(run.notes)")
        let whole = try ConvolutionAlgorithm.with(.onednn) { () throws -> Tensor in
            var chunked = r
            chunked.chunkSize = 1
            return try chunked.prepare(in: Self.store).run()
        }
        var second = r
        (second.batch, second.seed) = (1, 1)
        let expected = try ConvolutionAlgorithm.with(.onednn) { () throws -> Tensor in try second.prepare(in: Self.store).run() }
        #expect(whole.sliced(axis: 0, start: 1, end: 2).contiguous().scalars == expected.scalars)
    }

    /// `diffuse generate` through the binary on a Stable Diffusion folder: a grid of the
    /// decoded images and the .npy of them, equal to the pipeline's.
    @Test func generateCommandWritesImages() throws {
        let cli = CommandLineTests()
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let c = try #require(StableDiffusionCase.all.first { $0.name == "sd15-txt2img-negative-euler-a" })
        let run = try cli.diffuse(c.generateArguments + ["--out", dir + "/grid.png", "--out-npy", dir + "/images.npy"])
        #expect(run.status == 0, "\(run.error)")
        expectClose(try NPY.load(dir + "/images.npy"), try NPY.load(StableDiffusionCase.root + "/\(c.name).npy"), rtol: 1e-3, "CLI")
        let grid = try Image(contentsOf: dir + "/grid.png")
        #expect(grid.channels == 3 && grid.width == 80 + 2 * 2 && grid.height == 2 * 48 + 3 * 2, "\(grid.width)x\(grid.height)")
    }
}
