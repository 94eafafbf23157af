import Diffusion
import Foundation
import ModelIO
import Models
import NeuralNetworks
import Testing
import Tensors

struct UNetCase: Decodable {
    let input: [Float], shape: [Int], timesteps: [Float], output: [Float]
    let class_labels: [Int]?
    let ddim_noise: [Float]?, ddim10: [Float]?
}

func fixturesFolder() -> String {
    Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.path
}

func expectClose(_ a: [Float], _ b: [Float], rtol: Float, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(a.count == b.count, "\(what): \(a.count) vs \(b.count) values", sourceLocation: sourceLocation)
    // Relative to the output's scale: rtol x max |b| per element.
    let scale = b.map { abs($0) }.max() ?? 1
    var worst: Float = 0, at = 0
    for (i, (x, y)) in zip(a, b).enumerated() where abs(x - y) > worst { worst = abs(x - y); at = i }
    #expect(worst <= rtol * scale, "\(what): max difference \(worst) at \(at) (\(a.isEmpty ? 0 : a[at]) vs \(b.isEmpty ? 0 : b[at])), scale \(scale)",
            sourceLocation: sourceLocation)
}

@Suite struct UNet2DTests {
    static let expected: [String: UNetCase] = try! JSONDecoder().decode(
        [String: UNetCase].self, from: Data(contentsOf: URL(fileURLWithPath: fixturesFolder() + "/expected.json")))

    /// Random-initialised diffusers models load as they are (one with pre-0.14 attention
    /// names) and give diffusers' outputs within 1e-4; 10 DDIM steps from the same noise
    /// give diffusers' sample within 1e-3.
    @Test(arguments: ["small-1ch", "rgb-scale-shift", "class-cond", "fourier-resnet-resample"])
    func matchesDiffusers(name: String) throws {
        let model = try UNet2DModel.load(folder: fixturesFolder() + "/unet-" + name)
        model.eval()
        let c = Self.expected[name]!
        let labels = c.class_labels.map { Tensor(integers: $0) }
        let y = model(Tensor(c.input, shape: c.shape), timesteps: Tensor(c.timesteps), classLabels: labels)
        #expect(y.shape == c.shape)
        expectClose(y.scalars, c.output, rtol: 1e-4, "\(name) forward")
        if let noise = c.ddim_noise, let want = c.ddim10 {
            let sampler = try DDIMSampler(SchedulerConfig(className: "DDIMScheduler"), steps: 10)
            let out = sampler.sample(from: Tensor(noise, shape: c.shape), generator: PhiloxGenerator(seed: 0)) { x, t in model(x, timesteps: t, classLabels: labels) }
            expectClose(out.scalars, want, rtol: 1e-3, "\(name) DDIM 10 steps")
        }
    }

    /// Every convolution by Winograd F(4x4, 3x3) where it applies (its rounding is the
    /// largest of the algorithms): still diffusers' outputs within 1e-4.
    @Test(arguments: ["small-1ch", "rgb-scale-shift", "class-cond", "fourier-resnet-resample"])
    func matchesDiffusersWithWinograd(name: String) throws {
        let model = try UNet2DModel.load(folder: fixturesFolder() + "/unet-" + name)
        model.eval()
        let c = Self.expected[name]!
        let labels = c.class_labels.map { Tensor(integers: $0) }
        for winograd in [ConvolutionAlgorithm.winograd, .winogradStreamed] {
            let y = ConvolutionAlgorithm.with(order: [winograd, .onednn]) {
                model(Tensor(c.input, shape: c.shape), timesteps: Tensor(c.timesteps), classLabels: labels)
            }
            expectClose(y.scalars, c.output, rtol: 1e-4, "\(name) forward (\(winograd.rawValue))")
        }
    }

    /// A checkpoint that does not fit is refused with the offending names and both shapes.
    @Test func mismatchedCheckpointsAreRefused() throws {
        let source = fixturesFolder() + "/unet-class-cond"
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("diffuse-unet-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var state = try Safetensors.load(source + "/diffusion_pytorch_model.safetensors").tensors
        try FileManager.default.copyItem(atPath: source + "/config.json", toPath: dir + "/config.json")
        func check(_ expectedMessage: String) {
            do {
                try Safetensors(tensors: state).save(dir + "/diffusion_pytorch_model.safetensors")
                _ = try UNet2DModel.load(folder: dir)
                Issue.record("accepted a bad checkpoint; expected \(expectedMessage)")
            } catch {
                #expect("\(error)".contains(expectedMessage), "\(error)")
            }
        }
        let original = state
        state["conv_in.weight"] = nil
        check("missing key conv_in.weight")
        state = original
        state["extra.weight"] = Tensor.zeros([2])
        check("unexpected key extra.weight")
        state = original
        state["class_embedding.weight"] = Tensor.zeros([7, 64])
        check("class_embedding.weight: expected shape [10, 64], found [7, 64]")
        // A config that does not fit the weights.
        state = original
        var config = try UNet2DConfig.load(dir + "/config.json")
        config.blockOutChannels = [16, 16]
        try config.save(dir + "/config.json")
        check("does not fit config.json")
        #expect(throws: ModelError.self) { _ = try UNet2DModel.load(folder: dir + "/nowhere") }
    }

    @Test func saveAndReload() throws {
        let model = try UNet2DModel.load(folder: fixturesFolder() + "/unet-small-1ch")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("diffuse-unet-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try model.save(folder: dir)
        let back = try UNet2DModel.load(folder: dir)
        let x = PhiloxGenerator(seed: 1).normal([1, 1, 16, 16])
        // Bit for bit: convolutions pinned to oneDNN, whatever timing would choose.
        ConvolutionAlgorithm.with(.onednn) {
            #expect(back(x, timesteps: Tensor([5])).scalars == model(x, timesteps: Tensor([5])).scalars)
        }
    }

    /// Gradients of the training loss reach every trainable parameter (a finite-difference
    /// spot check on the output convolution's bias).
    @Test func trainingGradients() throws {
        let model = try UNet2DModel.load(folder: fixturesFolder() + "/unet-small-1ch")
        let x = PhiloxGenerator(seed: 2).normal([2, 1, 16, 16]), target = PhiloxGenerator(seed: 3).normal([2, 1, 16, 16])
        let t = Tensor([10, 500])
        let (loss, grads) = valueAndGradient(of: model) { ($0(x, timesteps: t) - target).square().mean() }
        #expect(grads.count == model.trainableParameters().count)
        #expect(grads.values.allSatisfy { $0.scalars.allSatisfy(\.isFinite) })
        let bias = model.convOut.bias!
        let original = bias.value
        let h: Float = 1e-2
        bias.value = original + h
        let up = (model(x, timesteps: t) - target).square().mean().item
        bias.value = original - h
        let down = (model(x, timesteps: t) - target).square().mean().item
        bias.value = original
        let numeric = (up - down) / (2 * h)
        #expect(abs(grads["conv_out.bias"]!.item - numeric) < 1e-3 * max(1, abs(numeric)), "\(grads["conv_out.bias"]!.item) vs \(numeric) (loss \(loss.item))")
    }
}
