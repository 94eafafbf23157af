import Diffusion
import Foundation
import ImageIO
import ModelIO
import Models
import Pipelines
import Testing
import Tensors

/// Text-to-image generation: a `TextToImageModel` pipeline folder, prompts, guidance against
/// the empty caption, and the refusals (a prompt longer than the context).
@Suite struct TextToImageTests {
    /// A small random model (8x8 grayscale, cross-attention at the coarse resolution and in
    /// the mid block) saved as a pipeline folder with a DDIM scheduler config, once.
    static let folder: String = {
        let tokenizer = try! WordTokenizer.build(from: ["a red circle", "a blue square", "the green line"], contextLength: 8)
        var u = UNet2DConfig()
        u.sampleSize = 8
        (u.inChannels, u.outChannels) = (1, 1)
        u.blockOutChannels = [8, 16]
        u.downBlockTypes = ["DownBlock2D", "AttnDownBlock2D"]
        u.upBlockTypes = ["AttnUpBlock2D", "UpBlock2D"]
        u.layersPerBlock = 1
        u.normNumGroups = 4
        u.attentionHeadDim = 8
        let model = try! TextToImageModel(tokenizer: tokenizer,
                                          textEncoder: TextEncoderConfig(vocabSize: tokenizer.vocabulary.count, contextLength: 8,
                                                                         hiddenSize: 16, numLayers: 1, numHeads: 2),
                                          unet: UNet2DConditionConfig(crossAttentionVersionOf: u, crossAttentionDim: 16),
                                          generator: PhiloxGenerator(seed: 1))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("diffuse-t2i-\(UUID().uuidString)").path
        try! model.save(folder: path, scheduler: SchedulerConfig(className: "DDIMScheduler"))
        return path
    }()

    /// The prompts, 2 samples each, 4 steps.
    func request(_ prompts: [String], guidance: Float = 3) -> SamplingRequest {
        var r = SamplingRequest(model: Self.folder, steps: 4)
        r.prompts = prompts
        r.batch = 2
        r.guidance = guidance
        return r
    }

    func prepare(_ prompts: [String], guidance: Float = 3) throws -> (run: PreparedRun, pipeline: any PreparingPipeline) {
        let run = try request(prompts, guidance: guidance).prepare(in: ModelStore())
        guard case .textToImage(let model) = run.model.network else { throw PipelineError("not a text-to-image model") }
        return (run, GenerationPipeline(model: model, schedulerConfig: run.schedulerConfig))
    }

    /// The folder round-trips, the request builds one row of tokens per sample (prompt-major)
    /// and the empty caption as the unconditional input; different prompts give different
    /// images.
    @Test func promptsConditionTheSamples() throws {
        let prepared = try prepare(["a red circle", "the blue line"]).run
        let tokens = try #require(prepared.request.conditioning?.tokens)
        #expect(tokens.shape == [4, 8])
        #expect(Array(tokens.integers.prefix(8)) == Array(tokens.integers[8..<16]), "each prompt twice, in turn")
        #expect(prepared.request.unconditional?.tokens?.integers.prefix(8) == [2, 3, 0, 0, 0, 0, 0, 0][...])
        #expect(prepared.samplesPerPrompt == 2)
        let samples = try prepared.run()
        #expect(samples.shape == [4, 1, 8, 8])
        // The same seed (so the same noise) with other prompts: other images.
        #expect(try prepare(["a blue square", "a red circle"]).run.run().scalars != samples.scalars)
    }

    /// Guidance 1 with the empty caption as the unconditional input is the conditional model
    /// alone; guidance 3 changes the samples.
    @Test func guidanceScaleOneIsTheConditionalModel() throws {
        let (prepared, pipeline) = try prepare(["a red circle"], guidance: 1)
        var request = prepared.request
        request.unconditional = nil
        // Bit for bit: convolutions pinned to oneDNN, whatever timing would choose.
        let plain = try ConvolutionAlgorithm.with(.onednn) { () throws -> [Float] in
            let plain = try pipeline.generate(pipeline.prepare(request), onStep: nil, isCancelled: nil).scalars
            #expect(try prepared.run().scalars == plain)
            return plain
        }
        request.unconditional = prepared.request.unconditional
        request.guidanceScale = 3
        #expect(try pipeline.generate(pipeline.prepare(request), onStep: nil, isCancelled: nil).scalars != plain)
    }

    /// A prompt longer than the text encoder's context is refused with both lengths; unknown
    /// words are reported; a folder without a text encoder is refused by name.
    @Test func badPromptsAndFoldersAreRefused() throws {
        let long = "a red circle beside a blue square and a green line"
        #expect(message { _ = try prepare([long]) }.contains("has 11 tokens, but the text encoder's context holds 6"))
        #expect(message { _ = try prepare([]) }.contains("no prompt"))
        let notes = try prepare(["a purple circle"]).run.notes
        #expect(notes.contains { $0.contains("never saw") && $0.contains("purple") }, "\(notes)")
        var other = request(["a red circle"])
        other.model = fixturesFolder() + "/unet-class"
        #expect(message { _ = try other.prepare(in: ModelStore()) }.contains("not a text-to-image pipeline folder"))
    }

    /// `diffuse generate` through the binary: a grid with a row per prompt; a prompt too long
    /// for the context is an error that says so.
    @Test func generateCommandWritesAGrid() throws {
        let cli = CommandLineTests()
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = try cli.diffuse(["generate", "--model", Self.folder, "--prompt", "a red circle", "--prompt", "a blue square",
                                   "--batch", "3", "--steps", "3", "--out", dir + "/grid.png", "--threads", "1"])
        #expect(run.status == 0, "\(run.error)")
        #expect(run.output.contains("wrote \(dir)/grid.png: a grid of 6 samples"), "\(run.output)")
        let grid = try Image(contentsOf: dir + "/grid.png")
        #expect(grid.width == 3 * 10 + 2 && grid.height == 2 * 10 + 2, "3 columns (per prompt), 2 rows")
        let long = try cli.diffuse(["generate", "--model", Self.folder, "--prompt", "a red circle beside a blue square and a green line",
                                    "--out", dir + "/x.png"])
        #expect(long.status != 0)
        #expect(long.error.contains("context holds 6"), "\(long.error)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/x.png"))
    }

    private func message(_ body: () throws -> Void) -> String {
        do { try body(); return "no error" } catch { return "\(error)" }
    }
}
