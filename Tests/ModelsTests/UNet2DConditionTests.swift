import Diffusion
import Foundation
import ModelIO
import Models
import NeuralNetworks
import Testing
import Tensors

@Suite struct UNet2DConditionTests {
    typealias F = ConditionalFixtures

    /// Random-initialised diffusers UNet2DConditionModels load as they are and give
    /// diffusers' outputs within 1e-4 (relative to max |output|): linear projections with
    /// several heads, a projected context and a masked context; class labels with
    /// scale-shift resnets, only-cross-attention and non-2x upsampling; a timestep class
    /// embedding concatenated to the time embedding with a plain mid block. 10 DDIM steps
    /// from the same noise give diffusers' sample within 1e-3.
    @Test(arguments: ["cond-linear-heads", "cond-linear-heads-masked", "cond-class-scale-shift", "cond-timestep-class-concat"])
    func matchesDiffusers(name: String) throws {
        let c = F.cases[name]!
        let model = try UNet2DConditionModel.load(folder: fixturesFolder() + "/" + c.folder)
        model.eval()
        let y = model(c.sample, timesteps: Tensor(c.timesteps), encoderHiddenStates: c.contextTensor, classLabels: c.labels,
                      encoderAttentionMask: c.mask)
        #expect(y.shape == c.shape)
        expectClose(y.scalars, c.output, rtol: 1e-4, "\(name) forward")
        print("\(name): forward max relative error \(F.relativeError(y.scalars, c.output))")
        if let want = c.ddim10 {
            let conditioning = Conditioning(classLabels: c.labels, context: c.contextTensor)
            let out = try F.ddim10(c) { x, t in model(x, timesteps: t, conditioning: conditioning) }
            expectClose(out.scalars, want, rtol: 1e-3, "\(name) DDIM 10 steps")
            print("\(name): DDIM 10 steps max relative error \(F.relativeError(out.scalars, want))")
        }
    }

    /// Checkpoints that do not fit are refused with the first offending name and both
    /// shapes; unsupported config values by field name.
    @Test func mismatchedCheckpointsAreRefused() throws {
        let dir = try F.copy("cond-linear-heads")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let weights = dir + "/" + DiffusersFolder.weightsFile
        let original = try Safetensors.load(weights).tensors
        let key = "down_blocks.0.attentions.0.transformer_blocks.1.attn2.to_k.weight"
        #expect(original[key]?.shape == [16, 12])
        var state = original
        state[key] = nil
        try Safetensors(tensors: state).save(weights)
        F.expectRefusal(["missing key \(key)"]) { _ = try UNet2DConditionModel.load(folder: dir) }
        state = original
        state[key] = Tensor.zeros([16, 10])
        try Safetensors(tensors: state).save(weights)
        F.expectRefusal(["\(key): expected shape [16, 12], found [16, 10]", "does not fit config.json"]) {
            _ = try UNet2DConditionModel.load(folder: dir)
        }
        state = original
        state["encoder_hid_proj.weight"] = Tensor.zeros([12, 7])
        try Safetensors(tensors: state).save(weights)
        F.expectRefusal(["encoder_hid_proj.weight: expected shape [12, 20], found [12, 7]"]) {
            _ = try UNet2DConditionModel.load(folder: dir)
        }
        try Safetensors(tensors: original).save(weights)
        _ = try UNet2DConditionModel.load(folder: dir)

        let refusals: [(String, Any, String)] = [
            ("addition_embed_type", "text_time", "addition_embed_type: text_time is not supported"),
            ("num_attention_heads", 4, "num_attention_heads must be null"),
            ("down_block_types", ["SimpleCrossAttnDownBlock2D", "DownBlock2D"], "down_block_types: SimpleCrossAttnDownBlock2D"),
            ("mid_block_type", "UNetMidBlock2DSimpleCrossAttn", "mid_block_type: UNetMidBlock2DSimpleCrossAttn"),
            ("time_embedding_type", "fourier", "time_embedding_type: fourier"),
            ("attention_head_dim", 17, "attention_head_dim (the head count) 17 must be between 1 and block_out_channels[0] = 16"),
            ("layers_per_block", [1, 1, 1], "layers_per_block has 3 entries for 2 blocks"),
            ("dual_cross_attention", true, "dual_cross_attention"),
            ("_class_name", "UNet2DModel", "_class_name is UNet2DModel, not UNet2DConditionModel"),
        ]
        let config = try String(contentsOfFile: dir + "/config.json", encoding: .utf8)
        for (field, value, message) in refusals {
            try F.editConfig(dir) { $0[field] = value }
            F.expectRefusal([message, "config.json"]) { _ = try UNet2DConditionModel.load(folder: dir) }
            try config.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        }
        F.expectRefusal(["cannot read"]) { _ = try UNet2DConditionModel.load(folder: dir + "/nowhere") }
    }

    /// A saved model reloads with the same outputs, and its config survives a round trip,
    /// `null` fields included (no mid block is not the default mid block).
    @Test func saveAndReload() throws {
        let c = F.cases["cond-class-scale-shift"]!
        let model = try UNet2DConditionModel.load(folder: fixturesFolder() + "/" + c.folder)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("diffuse-cond-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try model.save(folder: dir)
        let back = try UNet2DConditionModel.load(folder: dir)
        #expect(back.config == model.config)
        let run = { (m: UNet2DConditionModel) in
            m(c.sample, timesteps: Tensor(c.timesteps), encoderHiddenStates: c.contextTensor, classLabels: c.labels).scalars
        }
        #expect(run(back) == run(model))

        var config = model.config
        config.midBlockType = nil
        config.transformerLayersPerBlock = .many([.one(1), .one(2), .one(1)])
        try config.save(dir + "/config.json")
        let reread = try UNet2DConditionConfig.load(dir + "/config.json")
        #expect(reread == config)
        #expect(reread.midBlockType == nil)
        let json = try String(contentsOfFile: dir + "/config.json", encoding: .utf8)
        #expect(json.contains("\"mid_block_type\" : null"))
        #expect(json.contains("\"_class_name\" : \"UNet2DConditionModel\""))
        let fresh = try UNet2DConditionModel(reread, generator: PhiloxGenerator(seed: 3))
        #expect(fresh.midBlock == nil)
        #expect(fresh.downBlocks[1].attentions[0].transformerBlocks.count == 2)
    }

    /// The parameter names are diffusers' (a few spot checks beyond the loaded fixtures).
    @Test func parameterNames() throws {
        let model = try UNet2DConditionModel.load(folder: fixturesFolder() + "/cond-linear-heads")
        let names = Set(model.stateDict().keys)
        for key in ["down_blocks.0.attentions.0.proj_in.weight", "down_blocks.0.attentions.0.transformer_blocks.1.ff.net.0.proj.weight",
                    "down_blocks.0.attentions.0.transformer_blocks.0.ff.net.2.bias", "mid_block.attentions.0.norm.weight",
                    "up_blocks.1.attentions.1.transformer_blocks.1.norm3.bias", "encoder_hid_proj.weight",
                    "down_blocks.0.downsamplers.0.conv.weight", "up_blocks.0.upsamplers.0.conv.bias"] {
            #expect(names.contains(key), "\(key)")
        }
    }

    /// A few AdamW steps lower the eps-MSE on a fixed batch; gradients reach every
    /// parameter and agree with finite differences through a spatial transformer.
    @Test func trainingLowersTheLoss() throws {
        let c = F.cases["cond-linear-heads"]!
        let model = try UNet2DConditionModel.load(folder: fixturesFolder() + "/" + c.folder)
        let context = c.contextTensor!
        let shape = [2, 2, 8, 8]
        F.checkDirectionalGradient(model, path: "down_blocks.0.attentions.0.transformer_blocks.1.attn2.to_out.0.bias") { m in
            (m(PhiloxGenerator(seed: 5).normal(shape), timesteps: Tensor([50, 600]), encoderHiddenStates: context)
                - PhiloxGenerator(seed: 6).normal(shape)).square().mean()
        }
        let (first, last) = try F.trainingLosses(model, shape: shape, steps: 6) { m, x, t in
            m(x, timesteps: t, encoderHiddenStates: context)
        }
        print("UNet2DConditionModel: eps-MSE \(first) -> \(last) after 6 AdamW steps")
        #expect(last < 0.9 * first, "eps-MSE \(first) -> \(last)")
    }
}
