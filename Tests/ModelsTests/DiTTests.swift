import Diffusion
import Foundation
import ModelIO
import Models
import NeuralNetworks
import Testing
import Tensors

@Suite struct DiTTests {
    typealias F = ConditionalFixtures

    /// Random-initialised diffusers DiTTransformer2DModels load as they are and give
    /// diffusers' outputs within 1e-4 (relative to max |output|): learned sigma with a class
    /// and the null class; patch size 2 with four layers, affine norm3, at the trained size
    /// and at a smaller one (recomputed positions). 10 DDIM steps on the eps half give
    /// diffusers' (DiTPipeline's) sample within 1e-3.
    @Test(arguments: ["dit-learned-sigma", "dit-patch2-layers", "dit-patch2-layers-12px"])
    func matchesDiffusers(name: String) throws {
        let c = F.cases[name]!
        let model = try DiTTransformer2DModel.load(folder: fixturesFolder() + "/" + c.folder)
        model.eval()
        let y = model(c.sample, timesteps: Tensor(c.timesteps), classLabels: c.labels!)
        #expect(y.shape == [c.shape[0], model.config.resolvedOutChannels, c.shape[2], c.shape[3]])
        expectClose(y.scalars, c.output, rtol: 1e-4, "\(name) forward")
        print("\(name): forward max relative error \(F.relativeError(y.scalars, c.output))")
        if let want = c.ddim10 {
            let conditioning = Conditioning(classLabels: c.labels)
            let out = try F.ddim10(c) { x, t in model(x, timesteps: t, conditioning: conditioning) }
            expectClose(out.scalars, want, rtol: 1e-3, "\(name) DDIM 10 steps")
            print("\(name): DDIM 10 steps max relative error \(F.relativeError(out.scalars, want))")
        }
    }

    /// The denoiser view: the eps half with learned sigma, the full output on request, and
    /// the null class when no labels are given (so classifier-free guidance needs only the
    /// null label as its unconditional conditioning).
    @Test func denoiserOutputs() throws {
        let c = F.cases["dit-learned-sigma"]!
        let model = try DiTTransformer2DModel.load(folder: fixturesFolder() + "/" + c.folder)
        model.eval()
        #expect(model.config.learnsSigma)
        #expect(model.nullClassLabel == 10)
        let t = Tensor(c.timesteps)
        let null = Tensor(integers: [10, 10])
        // Bit for bit: the patch embedding's convolution pinned to oneDNN, whatever timing would choose.
        let (eps, unconditional) = ConvolutionAlgorithm.with(.onednn) {
            let full = model(c.sample, timesteps: t, classLabels: c.labels!)
            let eps = model(c.sample, timesteps: t, conditioning: Conditioning(classLabels: c.labels))
            #expect(eps.shape == c.shape)
            #expect(eps.scalars == full.sliced(axis: 1, start: 0, end: 4).scalars)
            #expect(model.withLearnedVariance(c.sample, timesteps: t, conditioning: Conditioning(classLabels: c.labels)).scalars == full.scalars)
            let unconditional = model(c.sample, timesteps: t, conditioning: nil)
            #expect(unconditional.scalars == model(c.sample, timesteps: t, conditioning: Conditioning(classLabels: null)).scalars)
            return (eps, unconditional)
        }
        // Guidance scale w: u + w (c - u), u from the null class.
        let guided = ClassifierFreeGuidance(model, scale: 4, unconditional: Conditioning(classLabels: null))
        let g = guided(c.sample, timesteps: t, conditioning: Conditioning(classLabels: c.labels))
        expectClose(g.scalars, (unconditional + (eps - unconditional) * 4).scalars, rtol: 1e-5, "guided")
    }

    /// Checkpoints that do not fit are refused with the first offending name and both
    /// shapes; unsupported config values by field name.
    @Test func mismatchedCheckpointsAreRefused() throws {
        let dir = try F.copy("dit-learned-sigma")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let weights = dir + "/" + DiffusersFolder.weightsFile
        let original = try Safetensors.load(weights).tensors
        var state = original
        let table = "transformer_blocks.1.norm1.emb.class_embedder.embedding_table.weight"
        state[table] = nil
        try Safetensors(tensors: state).save(weights)
        F.expectRefusal(["missing key \(table)"]) { _ = try DiTTransformer2DModel.load(folder: dir) }
        state = original
        state[table] = Tensor.zeros([10, 16])  // no null-class row
        try Safetensors(tensors: state).save(weights)
        F.expectRefusal(["\(table): expected shape [11, 16], found [10, 16]"]) { _ = try DiTTransformer2DModel.load(folder: dir) }
        state = original
        state["proj_out_2.weight"] = Tensor.zeros([16, 16])
        try Safetensors(tensors: state).save(weights)
        F.expectRefusal(["proj_out_2.weight: expected shape [32, 16], found [16, 16]"]) { _ = try DiTTransformer2DModel.load(folder: dir) }
        try Safetensors(tensors: original).save(weights)
        _ = try DiTTransformer2DModel.load(folder: dir)

        let refusals: [(String, Any, String)] = [
            ("norm_type", "ada_norm_single", "norm_type: ada_norm_single is not supported"),
            ("activation_fn", "swiglu", "activation_fn: swiglu is not supported"),
            ("num_embeds_ada_norm", NSNull(), "num_embeds_ada_norm must be set"),
            ("num_layers", 0, "num_layers must be at least 1"),
            ("attention_head_dim", 7, "must be divisible by 4"),
            ("_class_name", "Transformer2DModel", "_class_name is Transformer2DModel, not DiTTransformer2DModel"),
            ("patch_size", "two", "patch_size"),
        ]
        let config = try String(contentsOfFile: dir + "/config.json", encoding: .utf8)
        for (field, value, message) in refusals {
            try F.editConfig(dir) { $0[field] = value }
            F.expectRefusal([message, "config.json"]) { _ = try DiTTransformer2DModel.load(folder: dir) }
            try config.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        }
    }

    @Test func saveAndReload() throws {
        let c = F.cases["dit-patch2-layers"]!
        let model = try DiTTransformer2DModel.load(folder: fixturesFolder() + "/" + c.folder)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("diffuse-dit-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try model.save(folder: dir)
        let back = try DiTTransformer2DModel.load(folder: dir)
        #expect(back.config == model.config)
        #expect(Set(back.stateDict().keys) == Set(try Safetensors.load(fixturesFolder() + "/" + c.folder + "/" + DiffusersFolder.weightsFile).tensors.keys))
        let t = Tensor(c.timesteps)
        ConvolutionAlgorithm.with(.onednn) {   // bit for bit: the patch embedding's convolution pinned
            #expect(back(c.sample, timesteps: t, classLabels: c.labels!).scalars == model(c.sample, timesteps: t, classLabels: c.labels!).scalars)
        }
    }

    /// The 2-d sin-cos positions: token (i, j) holds [sin, cos](x_j w_k) then [sin, cos](y_i w_k).
    @Test func sinCosPositions() {
        let e = sinCosPositionEmbedding2D(dim: 8, height: 2, width: 3, baseSize: 2)
        #expect(e.shape == [6, 8])
        let token = 1 * 3 + 2  // i = 1, j = 2; base 2: x_j = j / 1.5, y_i = i
        let x = Double(2) / 1.5, y = 1.0
        let w = [1.0, 1 / 100.0]  // 10000^(-k / 2)
        let want = [sin(x * w[0]), sin(x * w[1]), cos(x * w[0]), cos(x * w[1]),
                    sin(y * w[0]), sin(y * w[1]), cos(y * w[0]), cos(y * w[1])].map(Float.init)
        expectClose(Array(e.scalars[(token * 8)..<(token * 8 + 8)]), want, rtol: 1e-6, "position (1, 2)")
    }

    /// A few AdamW steps lower the eps-MSE on a fixed batch (eps half of a learned-sigma
    /// output, label dropout on); gradients agree with finite differences through adaLN.
    @Test func trainingLowersTheLoss() throws {
        let model = try DiTTransformer2DModel.load(folder: fixturesFolder() + "/dit-learned-sigma")
        let labels = Tensor(integers: [2, 7])
        let shape = [2, 4, 8, 8]
        model.eval()  // no label dropout in the finite differences
        F.checkDirectionalGradient(model, path: "transformer_blocks.1.norm1.linear.bias") { m in
            (m(PhiloxGenerator(seed: 5).normal(shape), timesteps: Tensor([50, 600]), classLabels: labels)
                - PhiloxGenerator(seed: 6).normal([2, 8, 8, 8])).square().mean()
        }
        model.train()
        let (first, last) = try F.trainingLosses(model, shape: shape, steps: 6) { m, x, t in
            m(x, timesteps: t, conditioning: Conditioning(classLabels: labels))
        }
        print("DiTTransformer2DModel: eps-MSE \(first) -> \(last) after 6 AdamW steps")
        #expect(last < 0.9 * first, "eps-MSE \(first) -> \(last)")
    }
}
