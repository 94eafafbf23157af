import Foundation
import ModelIO
import Models
import NeuralNetworks
import Testing
import Tensors

/// Diffuse's AutoencoderKL against diffusers 0.42 on the random-weight models of
/// scripts/fixtures/diffusers_vae.py (Tests/ModelsTests/Fixtures/vae-*).
@Suite struct AutoencoderKLTests {
    struct Case: Decodable {
        let seed: UInt64
        let tile_sample_size: Int
        let tile_latent_size: Int
        let cpu_capability: String
    }

    static let names = ["sd", "shift", "old-names"]

    static func folder(_ name: String) -> String { fixturesFolder() + "/vae-" + name }
    static func array(_ name: String, _ file: String) throws -> Tensor { try NPY.load(folder(name) + "/\(file).npy") }
    static func testCase(_ name: String) throws -> Case {
        try JSONDecoder().decode(Case.self, from: Data(contentsOf: URL(fileURLWithPath: folder(name) + "/case.json")))
    }

    /// max |a - b| / max |b|, printed (the README quotes these), and checked against `rtol`.
    static func expectRelative(_ a: Tensor, _ b: Tensor, rtol: Float, _ what: String,
                               sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(a.shape == b.shape, "\(what): shape \(a.shape) vs \(b.shape)", sourceLocation: sourceLocation)
        guard a.shape == b.shape else { return }
        let (x, y) = (a.scalars, b.scalars)
        let scale = y.map(abs).max() ?? 1
        let worst = zip(x, y).map { abs($0 - $1) }.max() ?? 0
        print("AutoencoderKL \(what): max relative error \(worst / scale)")
        #expect(worst <= rtol * scale, "\(what): max difference \(worst), scale \(scale)", sourceLocation: sourceLocation)
    }

    /// Encoder moments (mean, clamped logvar) and the decoder within 1e-4 of diffusers.
    @Test(arguments: names) func encodeAndDecodeMatchDiffusers(name: String) throws {
        let vae = try AutoencoderKL.load(folder: Self.folder(name))
        let posterior = try vae.encode(Self.array(name, "image"))
        Self.expectRelative(posterior.mean, try Self.array(name, "mean"), rtol: 1e-4, "\(name) encode mean")
        Self.expectRelative(posterior.logvar, try Self.array(name, "logvar"), rtol: 1e-4, "\(name) encode logvar")
        Self.expectRelative(try vae.decode(Self.array(name, "latents")), try Self.array(name, "decoded"), rtol: 1e-4, "\(name) decode")
    }

    /// `sample(generator:)` with torch's generator seeded as the fixture's
    /// torch.Generator().manual_seed(k) gives diffusers' `latent_dist.sample(generator)`
    /// (drawn with the randn kernel of the CPU the fixture was made on).
    @Test(arguments: names) func seededSampleMatchesDiffusers(name: String) throws {
        let vae = try AutoencoderKL.load(folder: Self.folder(name))
        let c = try Self.testCase(name)
        let posterior = try vae.encode(Self.array(name, "image"))
        let generator = TorchGenerator(seed: c.seed, kernel: TorchGenerator.Kernel(torchCapability: c.cpu_capability))
        Self.expectRelative(posterior.sample(generator: generator), try Self.array(name, "sample"), rtol: 1e-4, "\(name) seeded sample")
        // The scaled latents of the image-to-image pipelines: (sample - shift) * scaling.
        let again = TorchGenerator(seed: c.seed, kernel: TorchGenerator.Kernel(torchCapability: c.cpu_capability))
        let latents = try vae.latents(of: Self.array(name, "image"), generator: again)
        let shift = Float(vae.config.shiftFactor ?? 0), scale = Float(vae.config.scalingFactor)
        Self.expectRelative(latents, (try Self.array(name, "sample") - shift) * scale, rtol: 1e-4, "\(name) scaled latents")
        // Without a generator: the mode.
        Self.expectRelative(try vae.latents(of: Self.array(name, "image"), generator: nil),
                            (try Self.array(name, "mean") - shift) * scale, rtol: 1e-4, "\(name) scaled mode")
    }

    /// `images(fromLatents:)` decodes latents / scaling + shift, as the pipelines do.
    @Test func imagesFromLatentsUnscaleFirst() throws {
        let vae = try AutoencoderKL.load(folder: Self.folder("shift"))
        let z = try Self.array("shift", "latents")
        let scaled = (z - Float(vae.config.shiftFactor!)) * Float(vae.config.scalingFactor)
        Self.expectRelative(try vae.images(fromLatents: scaled), try Self.array("shift", "decoded"), rtol: 1e-4, "shift images(fromLatents:)")
    }

    /// Tiled decoding and encoding (diffusers' enable_tiling with the fixture's small tiles:
    /// inputs 1 3/4 tiles high, so tiles overlap, blend and end short) match diffusers'.
    @Test(arguments: names) func tiledMatchesDiffusers(name: String) throws {
        let vae = try AutoencoderKL.load(folder: Self.folder(name))
        let c = try Self.testCase(name)
        vae.enableTiling()
        #expect(vae.tiling == VAETiling(sampleTileSize: c.tile_sample_size, latentTileSize: c.tile_latent_size))
        Self.expectRelative(try vae.decode(Self.array(name, "tiled-latents")), try Self.array(name, "tiled-decoded"),
                            rtol: 1e-4, "\(name) tiled decode")
        Self.expectRelative(try vae.encode(Self.array(name, "tiled-image")).mean, try Self.array(name, "tiled-mean"),
                            rtol: 1e-4, "\(name) tiled encode mean")
        // Inputs within one tile are not tiled.
        Self.expectRelative(try vae.decode(Self.array(name, "latents")), try Self.array(name, "decoded"), rtol: 1e-4,
                            "\(name) decode under tiling")
    }

    /// Every convolution by Winograd where it applies (its rounding is the largest): still
    /// within 1e-4.
    @Test func decodeWithWinograd() throws {
        let vae = try AutoencoderKL.load(folder: Self.folder("sd"))
        for winograd in [ConvolutionAlgorithm.winograd, .winogradStreamed] {
            let y = try ConvolutionAlgorithm.with(order: [winograd, .onednn]) { try vae.decode(Self.array("sd", "latents")) }
            Self.expectRelative(y, try Self.array("sd", "decoded"), rtol: 1e-4, "sd decode (\(winograd.rawValue))")
        }
    }

    /// A model built from a config has exactly diffusers' parameter names and shapes; the
    /// old-names fixture really holds the pre-0.14 names.
    @Test func parameterNamesAreDiffusers() throws {
        for name in ["sd", "shift"] {
            let config = try AutoencoderKLConfig.load(Self.folder(name) + "/config.json")
            let ours = try AutoencoderKL(config).stateDict().mapValues(\.shape)
            let theirs = try Safetensors.load(Self.folder(name) + "/diffusion_pytorch_model.safetensors").tensors.mapValues(\.shape)
            #expect(ours == theirs, "\(name): \(Set(ours.keys).symmetricDifference(theirs.keys).sorted())")
        }
        let sd = try AutoencoderKL(AutoencoderKLConfig.stableDiffusion).stateDict()
        for key in ["encoder.down_blocks.0.resnets.0.norm1.weight", "encoder.mid_block.attentions.0.to_q.weight",
                    "decoder.up_blocks.0.upsamplers.0.conv.weight", "quant_conv.weight", "post_quant_conv.bias",
                    "encoder.down_blocks.0.downsamplers.0.conv.weight", "decoder.up_blocks.3.resnets.2.conv2.weight",
                    "encoder.mid_block.attentions.0.group_norm.weight", "decoder.mid_block.attentions.0.to_out.0.bias",
                    "encoder.down_blocks.1.resnets.0.conv_shortcut.weight", "decoder.conv_norm_out.weight"] {
            #expect(sd[key] != nil, "no \(key)")
        }
        #expect(sd["decoder.up_blocks.3.upsamplers.0.conv.weight"] == nil)
        #expect(sd["encoder.down_blocks.3.downsamplers.0.conv.weight"] == nil)
        #expect(sd.values.reduce(0) { $0 + $1.count } == 83_653_863)  // diffusers' count for SD 1.5's VAE
        let old = try Safetensors.load(Self.folder("old-names") + "/diffusion_pytorch_model.safetensors").tensors
        #expect(old["encoder.mid_block.attentions.0.query.weight"] != nil && old["decoder.mid_block.attentions.0.proj_attn.bias"] != nil)
    }

    /// Configs the model cannot build are refused by field name.
    @Test func badConfigsAreRefused() throws {
        let dir = try Self.scratchCopy("sd")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let original = try String(contentsOfFile: dir + "/config.json", encoding: .utf8)
        func check(_ edit: (inout [String: Any]) -> Void, _ expected: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            var object = try JSONSerialization.jsonObject(with: Data(original.utf8)) as! [String: Any]
            edit(&object)
            try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: dir + "/config.json"))
            do {
                _ = try AutoencoderKL.load(folder: dir)
                Issue.record("accepted a bad config; expected \(expected)", sourceLocation: sourceLocation)
            } catch {
                #expect("\(error)".contains(expected), "\(error)", sourceLocation: sourceLocation)
            }
        }
        try check({ $0["norm_num_groups"] = 3 }, "norm_num_groups 3 does not divide block_out_channels entry 8")
        try check({ $0["down_block_types"] = ["DownEncoderBlock2D", "DownBlock2D", "DownEncoderBlock2D"] },
                  "down_block_types[1]: DownBlock2D is not supported (DownEncoderBlock2D)")
        try check({ $0["up_block_types"] = ["UpDecoderBlock2D"] }, "up_block_types (1)")
        try check({ $0["act_fn"] = "gelu" }, "act_fn: gelu is not supported (silu, swish)")
        try check({ $0["latent_channels"] = 0 }, "latent_channels must be at least 1, got 0")
        try check({ $0["layers_per_block"] = -1 }, "layers_per_block must be at least 1")
        try check({ $0["scaling_factor"] = 0 }, "scaling_factor must be a positive number")
        try check({ $0["block_out_channels"] = [Int]() }, "block_out_channels is empty")
        try check({ $0["latents_mean"] = [0.1, 0.2] }, "latents_mean has 2 entries for 4 latent channels")
        try check({ $0["_class_name"] = "UNet2DModel" }, "_class_name is UNet2DModel, not AutoencoderKL")
        try check({ $0["block_out_channels"] = [8, 8, 1 << 40] }, "memory")
        // diffusers' defaults fill what a config leaves out.
        try JSONSerialization.data(withJSONObject: ["_class_name": "AutoencoderKL"]).write(to: URL(fileURLWithPath: dir + "/config.json"))
        let defaults = try AutoencoderKLConfig.load(dir + "/config.json")
        #expect(defaults == AutoencoderKLConfig())
        #expect(defaults.blockOutChannels == [64] && defaults.layersPerBlock == 1 && defaults.normNumGroups == 32
                && defaults.sampleSize == .one(32) && defaults.scalingFactor == 0.18215 && defaults.shiftFactor == nil
                && defaults.useQuantConv && defaults.usePostQuantConv && defaults.midBlockAddAttention && defaults.forceUpcast)
        // An [h, w] sample_size (as some configs write it) gives the tile size; a round trip
        // keeps null and list fields as they were.
        try JSONSerialization.data(withJSONObject: ["_class_name": "AutoencoderKL", "sample_size": [64, 64], "shift_factor": 0.5,
                                                    "block_out_channels": [32, 64], "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
                                                    "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"]] as [String: Any])
            .write(to: URL(fileURLWithPath: dir + "/config.json"))
        let pair = try AutoencoderKLConfig.load(dir + "/config.json")
        #expect(pair.tileSampleSize == 64 && pair.tileLatentSize == 32 && pair.shiftFactor == 0.5)
        #expect(VAETiling(pair) == VAETiling(sampleTileSize: 64, latentTileSize: 32, overlapFactor: 0.25))
        try pair.save(dir + "/config.json")
        #expect(try AutoencoderKLConfig.load(dir + "/config.json") == pair)
        try defaults.save(dir + "/config.json")
        let written = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/config.json"))) as! [String: Any]
        #expect(written["shift_factor"] is NSNull && written["_class_name"] as? String == "AutoencoderKL")
    }

    /// Checkpoints that do not fit are refused naming the parameter path (and both shapes),
    /// as are NaN weights.
    @Test func badWeightsAreRefused() throws {
        let dir = try Self.scratchCopy("sd")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/diffusion_pytorch_model.safetensors"
        let original = try Safetensors.load(file).tensors
        func check(_ state: [String: Tensor], _ expected: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            try Safetensors(tensors: state).save(file)
            do {
                _ = try AutoencoderKL.load(folder: dir)
                Issue.record("accepted a bad checkpoint; expected \(expected)", sourceLocation: sourceLocation)
            } catch {
                #expect("\(error)".contains(expected), "\(error)", sourceLocation: sourceLocation)
            }
        }
        var state = original
        state["decoder.mid_block.attentions.0.to_k.weight"] = nil
        try check(state, "missing key decoder.mid_block.attentions.0.to_k.weight")
        state = original
        state["quant_conv.weight"] = Tensor.zeros([8, 8, 3, 3])
        try check(state, "quant_conv.weight: expected shape [8, 8, 1, 1], found [8, 8, 3, 3]")
        state = original
        state["encoder.extra.weight"] = Tensor.zeros([2])
        try check(state, "unexpected key encoder.extra.weight")
        state = original
        var bad = state["decoder.conv_out.bias"]!.scalars
        bad[1] = .nan
        state["decoder.conv_out.bias"] = Tensor(bad)
        try check(state, "decoder.conv_out.bias holds 1 NaN or infinite value")
        try FileManager.default.removeItem(atPath: file)
        #expect(throws: ModelError("\(dir): no diffusion_pytorch_model.safetensors")) { _ = try AutoencoderKL.load(folder: dir) }
    }

    /// Inputs that do not fit are refused with the reason, before the network runs.
    @Test func badInputsAreRefused() throws {
        let vae = try AutoencoderKL.load(folder: Self.folder("sd"))
        #expect(throws: ModelError("AutoencoderKL: images must be [N, 3, H, W], got [1, 4, 16, 16]")) {
            _ = try vae.encode(Tensor.zeros([1, 4, 16, 16]))
        }
        #expect(throws: ModelError("AutoencoderKL.encode: images of 18x16 pixels: height and width must be multiples of 4 (the VAE's downsampling factor)")) {
            _ = try vae.encode(Tensor.zeros([1, 3, 18, 16]))
        }
        #expect(throws: ModelError("AutoencoderKL: latents must be [N, 4, H, W], got [4, 4, 4]")) {
            _ = try vae.decode(Tensor.zeros([4, 4, 4]))
        }
        var values = [Float](repeating: 0, count: 64)
        values[3] = .infinity
        #expect(throws: ModelError("AutoencoderKL: latents hold 1 NaN or infinite value")) {
            _ = try vae.decode(Tensor(values, shape: [1, 4, 4, 4]))
        }
        vae.tiling = VAETiling(sampleTileSize: 30, latentTileSize: 8)
        #expect(throws: ModelError.self) { _ = try vae.encode(Tensor.zeros([1, 3, 64, 64])) }
    }

    /// save(folder:) writes what load(folder:) reads back bit for bit, and a pipeline folder
    /// is found through its vae/ subfolder.
    @Test func saveAndReloadThroughAPipelineFolder() throws {
        let vae = try AutoencoderKL.load(folder: Self.folder("shift"))
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("diffuse-vae-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try vae.save(folder: root + "/vae")
        let back = try AutoencoderKL.load(folder: root)
        #expect(back.config == vae.config)
        let z = try Self.array("shift", "latents")
        let (a, b) = try ConvolutionAlgorithm.with(.onednn) { (try back.decode(z), try vae.decode(z)) }
        #expect(a.scalars == b.scalars)
    }

    static func scratchCopy(_ name: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("diffuse-vae-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for file in ["config.json", "diffusion_pytorch_model.safetensors"] {
            try FileManager.default.copyItem(atPath: folder(name) + "/" + file, toPath: dir + "/" + file)
        }
        return dir
    }
}
