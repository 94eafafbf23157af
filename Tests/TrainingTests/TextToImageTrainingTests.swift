import Datasets
import Diffusion
import Foundation
import ModelIO
import Models
import Testing
import Tensors
import Training

/// Text-to-image runs: a text encoder and the cross-attention U-Net trained jointly on
/// captions, checkpointed as a pipeline folder, resumed exactly.
@Suite struct TextToImageTrainingTests {
    /// The tiny model with attention at the coarse resolution and in the mid block (what the
    /// text is cross-attended in), on the synthetic ramps captioned by two templates.
    static func configuration(steps: Int, data: ImageDataset) throws -> TrainingConfiguration {
        var c = try tinyConfiguration(steps: steps)
        c.unet.downBlockTypes = ["DownBlock2D", "AttnDownBlock2D"]
        c.unet.upBlockTypes = ["AttnUpBlock2D", "UpBlock2D"]
        c.unet.addAttention = true
        c.unet.attentionHeadDim = 8
        c.text = try TextConditioning(captionsOf: data, hiddenSize: 16, layers: 1, heads: 2, captionDropout: 0.5,
                                      captionTemplate: "a {}|the {} image")
        return c
    }

    /// 6 steps straight vs 3, a checkpoint (a pipeline folder), a fresh Trainer from it, 3 more:
    /// the same losses, weights (text encoder included), EMA and moments, bit for bit.
    @Test func resumedTextRunMatchesUninterruptedRun() throws {
        try ConvolutionAlgorithm.with(.onednn) {
            let data = try syntheticDataset()
            let c = try Self.configuration(steps: 6, data: data)
            let straight = try Trainer(configuration: c, dataset: data)
            for _ in 0..<6 { straight.trainStep() }
            #expect(straight.model is TextToImageModel)
            #expect(straight.model.stateDict().keys.contains { $0.hasPrefix("text_encoder.") })

            let dir = try temporaryFolder()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let first = try Trainer(configuration: c, dataset: data)
            for _ in 0..<3 { first.trainStep() }
            try Checkpoint.save(first, runDirectory: dir)
            let resumed = try Trainer(checkpoint: try Checkpoint.locate(runDirectory: dir), dataset: data)
            for _ in 0..<3 { resumed.trainStep() }
            #expect(resumed.losses.map(\.bitPattern) == straight.losses.map(\.bitPattern), "\(resumed.losses) vs \(straight.losses)")
            #expect(bitIdentical(resumed.model.stateDict(), straight.model.stateDict()), "weights differ")
            #expect(bitIdentical(resumed.ema!.shadow, straight.ema!.shadow), "EMA weights differ")
            #expect(bitIdentical(resumed.optimizer.stateDict(), straight.optimizer.stateDict()), "optimizer moments differ")
        }
    }

    /// The checkpoint is a text-to-image pipeline folder that loads as a TextToImageModel and
    /// computes what the trainer's sampling model computes; its tokenizer knows the captions.
    @Test func checkpointIsAPipelineFolder() throws {
        let data = try syntheticDataset()
        let c = try Self.configuration(steps: 2, data: data)
        let trainer = try Trainer(configuration: c, dataset: data)
        for _ in 0..<2 { trainer.trainStep() }
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Checkpoint.save(trainer, runDirectory: dir)
        let folder = dir + "/" + Checkpoint.folderName
        #expect(TextToImageFolder.isTextToImage(folder))
        for f in ["model_index.json", "unet/config.json", "scheduler/scheduler_config.json", "tokenizer/tokenizer.json"] {
            #expect(FileManager.default.fileExists(atPath: folder + "/" + f), "\(f) missing")
        }
        let loaded = try TextToImageModel.load(folder: folder)
        loaded.eval()
        #expect(loaded.unet.config.downBlockTypes == ["DownBlock2D", "CrossAttnDownBlock2D"])
        #expect(loaded.unet.config.midBlockType == "UNetMidBlock2DCrossAttn")
        #expect(loaded.tokenizer.vocabulary.contains("diagonal") && loaded.tokenizer.vocabulary.contains("image"))
        #expect(loaded.tokenizer.contextLength == 16, "the longest caption or 16 tokens")
        let sampling = try #require(try trainer.samplingModel() as? TextToImageModel)
        let x = PhiloxGenerator(seed: 3).normal([2, 1, 8, 8], mean: 0, std: 1)
        let t = Tensor(integers: [5, 50])
        let tokens = try loaded.tokens(["a ramp-x", "the diagonal image"])
        // Bit for bit: convolutions pinned to oneDNN, whatever timing would choose.
        let expected = ConvolutionAlgorithm.with(.onednn) {
            let expected = sampling(x, timesteps: t, conditioning: Conditioning(tokens: tokens))
            #expect(loaded(x, timesteps: t, conditioning: Conditioning(tokens: tokens)).scalars == expected.scalars)
            return expected
        }
        // The text reaches the U-Net: another caption, another prediction.
        let other = loaded(x, timesteps: t, conditioning: Conditioning(tokens: try loaded.tokens(["a negative-x", "a ramp-y"])))
        #expect(other.scalars != expected.scalars)
    }

    /// Settings no text run can use are refused with the reason.
    @Test func invalidTextSettingsAreRefused() throws {
        let data = try syntheticDataset()
        var both = try Self.configuration(steps: 2, data: data)
        both.classConditional = true
        try both.resolveModel()
        #expect(message { try both.validate() }.contains("not both"))
        var noAttention = try tinyConfiguration(steps: 2)
        noAttention.text = try Self.configuration(steps: 2, data: data).text
        #expect(message { try noAttention.validate() }.contains("no attention blocks"))
        #expect(message { _ = try TextConditioning(captionsOf: data, captionTemplate: "a picture") }.contains("must contain {}"))
        let unlabeled = try ImageDataset(name: "plain", images: data.images)
        #expect(message { _ = try TextConditioning(captionsOf: unlabeled) }.contains("has no captions"))
    }

    private func message(_ body: () throws -> Void) -> String {
        do { try body(); return "no error" } catch { return "\(error)" }
    }
}
