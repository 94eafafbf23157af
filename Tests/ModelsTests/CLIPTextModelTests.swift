import Foundation
import ModelIO
import Models
import NeuralNetworks
import Testing
import Tensors

@Suite struct CLIPTextModelTests {
    typealias F = ConditionalFixtures

    static func outputs(_ name: String, _ key: String) throws -> Tensor {
        try NPY.load(fixturesFolder() + "/clip-text-\(name)-outputs/\(key).npy")
    }

    /// Random-weight transformers CLIPTextModels give transformers' outputs within 1e-4 of
    /// their scale: an SD 1.x-like one (quick_gelu, float16 weights under `text_model.` with
    /// the position_ids buffer, pooled at the largest id) and an SD 2.x-like one (gelu, three
    /// layers, float32 without `text_model.`, padding with id 0, pooled at the first
    /// eos_token_id). Prompt embeddings with clip_skip 1 and 2 equal diffusers' encode_prompt.
    @Test(arguments: ["sd1", "sd2"])
    func matchesTransformers(name: String) throws {
        let model = try CLIPTextModel.load(folder: fixturesFolder() + "/clip-text-\(name)")
        let ids = try Self.outputs(name, "ids")
        #expect(ids.shape == [2, 77])
        let out = model.encode(ids)
        let last = try Self.outputs(name, "last_hidden_state"), pooled = try Self.outputs(name, "pooled")
        #expect(out.lastHiddenState.shape == [2, 77, 32] && out.pooled.shape == [2, 32])
        #expect(out.hiddenStates.count == model.config.numHiddenLayers + 1)
        expectClose(out.lastHiddenState.scalars, last.scalars, rtol: 1e-4, "\(name) last_hidden_state")
        expectClose(out.pooled.scalars, pooled.scalars, rtol: 1e-4, "\(name) pooled")
        var report = "\(name): last_hidden_state \(F.relativeError(out.lastHiddenState.scalars, last.scalars)), "
            + "pooled \(F.relativeError(out.pooled.scalars, pooled.scalars))"
        #expect(model.promptEmbeddings(ids).scalars == out.lastHiddenState.scalars)
        for skip in [1, 2] {
            let want = try Self.outputs(name, "clip_skip_\(skip)")
            let got = model.promptEmbeddings(ids, clipSkip: skip)
            expectClose(got.scalars, want.scalars, rtol: 1e-4, "\(name) clip_skip \(skip)")
            let fromHidden = model.textModel.finalLayerNorm(out.hiddenStates[out.hiddenStates.count - 1 - skip])
            #expect(fromHidden.scalars == got.scalars)
            report += ", clip_skip \(skip) \(F.relativeError(got.scalars, want.scalars))"
        }
        print("CLIPTextModel " + report + " (max |difference| / max |expected|)")
    }

    /// The tokenizer's ids feed the model end to end: a batch of prompts padded to 77.
    @Test func tokenizerFeedsTheModel() throws {
        let tokenizer = try CLIPTokenizer(folder: fixturesFolder() + "/clip-tokenizer-sd1")
        var config = CLIPTextConfig()
        (config.vocabSize, config.hiddenSize, config.intermediateSize, config.numHiddenLayers, config.numAttentionHeads) = (2514, 16, 32, 1, 2)
        config.eosTokenId = 2513
        let model = try CLIPTextModel(config, generator: PhiloxGenerator(seed: 3))
        let ids = tokenizer(["a photo of a cat", "", String(repeating: "long ", count: 100)])
        let out = model.encode(ids)
        #expect(out.lastHiddenState.shape == [3, 77, 16] && out.pooled.shape == [3, 16])
        // Pooled at the first end-of-text: position 6, 1 and 76 (the cut prompt's eos is last).
        let rows = out.lastHiddenState.scalars
        for (b, position) in [6, 1, 76].enumerated() {
            #expect(Array(out.pooled.scalars[(b * 16)..<((b + 1) * 16)]) == Array(rows[((b * 77 + position) * 16)..<((b * 77 + position + 1) * 16)]))
        }
    }

    /// Causality: changing a later token leaves the earlier positions' outputs unchanged.
    @Test func attentionIsCausal() throws {
        let model = try CLIPTextModel.load(folder: fixturesFolder() + "/clip-text-sd2")
        var ids = try Self.outputs("sd2", "ids").integers
        let a = model.encode(Tensor(integers: ids, shape: [2, 77])).lastHiddenState
        ids[5] = 17
        let b = model.encode(Tensor(integers: ids, shape: [2, 77])).lastHiddenState
        #expect(Array(a.scalars[0..<(5 * 32)]) == Array(b.scalars[0..<(5 * 32)]))
        #expect(Array(a.scalars[(5 * 32)..<(6 * 32)]) != Array(b.scalars[(5 * 32)..<(6 * 32)]))
    }

    /// save(folder:) writes transformers 4.x's layout, which loads back to the same outputs.
    @Test func saveRoundTrip() throws {
        let model = try CLIPTextModel.load(folder: fixturesFolder() + "/clip-text-sd2")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("diffuse-clip-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try model.save(folder: dir)
        let keys = try Safetensors.load(dir + "/model.safetensors").tensors.keys
        #expect(keys.contains("text_model.encoder.layers.2.self_attn.q_proj.weight"))
        #expect(keys.contains("text_model.final_layer_norm.bias"))
        let again = try CLIPTextModel.load(folder: dir)
        #expect(again.config == model.config)
        let ids = try Self.outputs("sd2", "ids")
        #expect(again.encode(ids).lastHiddenState.scalars == model.encode(ids).lastHiddenState.scalars)
    }

    /// Configs out of range are refused by field name before anything is built; checkpoints
    /// that do not fit by parameter name and shapes; NaN weights by name.
    @Test func badFoldersAreRefused() throws {
        let dir = try F.copy("clip-text-sd2")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let refusals: [(String, Any, String)] = [
            ("num_attention_heads", 5, "hidden_size 32 must be a multiple of num_attention_heads 5"),
            ("num_hidden_layers", 0, "num_hidden_layers must be at least 1, got 0"),
            ("hidden_size", -4, "hidden_size must be at least 1, got -4"),
            ("layer_norm_eps", 0, "layer_norm_eps must be a positive number"),
            ("attention_dropout", 1.5, "attention_dropout must be in [0, 1)"),
            ("hidden_act", "swish", "hidden_act"),
            ("eos_token_id", 9999, "eos_token_id 9999 is outside the vocabulary (vocab_size 256)"),
            ("model_type", "clip", "model_type: clip is not a CLIP text model"),
            ("architectures", ["CLIPTextModelWithProjection"], "architectures"),
            ("vocab_size", 300, "text_model.embeddings.token_embedding.weight: expected shape [300, 32], found [256, 32]"),
            ("max_position_embeddings", 1_000_000_000_000, "the model's"),
        ]
        let config = try String(contentsOfFile: dir + "/config.json", encoding: .utf8)
        for (field, value, message) in refusals {
            try F.editConfig(dir) { $0[field] = value }
            F.expectRefusal([message]) { _ = try CLIPTextModel.load(folder: dir) }
            try config.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        }
        let weights = dir + "/model.safetensors"
        let original = try Safetensors.load(weights, memoryMapped: false).tensors
        var state = original
        state["encoder.layers.1.mlp.fc1.weight"] = nil
        try Safetensors(tensors: state).save(weights)
        F.expectRefusal(["missing key text_model.encoder.layers.1.mlp.fc1.weight"]) { _ = try CLIPTextModel.load(folder: dir) }
        state = original
        var values = original["final_layer_norm.weight"]!.scalars
        values[3] = .nan
        state["final_layer_norm.weight"] = Tensor(values)
        try Safetensors(tensors: state).save(weights)
        F.expectRefusal(["text_model.final_layer_norm.weight holds 1 NaN or infinite value"]) { _ = try CLIPTextModel.load(folder: dir) }
        try FileManager.default.removeItem(atPath: weights)
        F.expectRefusal(["no model.safetensors"]) { _ = try CLIPTextModel.load(folder: dir) }
        try Safetensors(tensors: original).save(weights)
        _ = try CLIPTextModel.load(folder: dir)
    }
}
