import Diffusion
import Foundation
import ModelIO
import Models
import NeuralNetworks
import Testing
import Tensors

/// One fixture case of expected_conditional.json (scripts/fixtures/diffusers_conditional.py).
struct ConditionalCase: Decodable {
    let folder: String
    let input: [Float], shape: [Int], timesteps: [Float], output: [Float]
    let context: [Float]?, context_shape: [Int]?
    let class_labels: [Int]?
    let encoder_attention_mask: [Int]?
    let ddim_noise: [Float]?, ddim10: [Float]?

    var sample: Tensor { Tensor(input, shape: shape) }
    var contextTensor: Tensor? { context.map { Tensor($0, shape: context_shape!) } }
    var labels: Tensor? { class_labels.map { Tensor(integers: $0) } }
    var mask: Tensor? { encoder_attention_mask.map { Tensor(integers: $0, shape: [shape[0], $0.count / shape[0]]) } }
}

enum ConditionalFixtures {
    static let cases: [String: ConditionalCase] = try! JSONDecoder().decode(
        [String: ConditionalCase].self,
        from: Data(contentsOf: URL(fileURLWithPath: fixturesFolder() + "/expected_conditional.json")))

    /// The largest difference relative to max |expected|, as `expectClose` measures it.
    static func relativeError(_ a: [Float], _ b: [Float]) -> Float {
        let scale = b.map { abs($0) }.max() ?? 1
        return zip(a, b).map { abs($0 - $1) }.max().map { $0 / scale } ?? 0
    }

    /// A 10-step DDIM sample (DDIMScheduler's defaults) from the case's noise.
    static func ddim10(_ c: ConditionalCase, _ model: (Tensor, Tensor) -> Tensor) throws -> Tensor {
        let sampler = try DDIMSampler(SchedulerConfig(className: "DDIMScheduler"), steps: 10)
        return sampler.sample(from: Tensor(c.ddim_noise!, shape: c.shape), generator: PhiloxGenerator(seed: 0), model: model)
    }

    /// A temporary copy of a fixture folder, removed by the caller.
    static func copy(_ name: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("diffuse-\(name)-\(UUID().uuidString)").path
        try FileManager.default.copyItem(atPath: fixturesFolder() + "/" + name, toPath: dir)
        return dir
    }

    /// Rewrites fields of a folder's config.json.
    static func editConfig(_ dir: String, _ edit: (inout [String: Any]) -> Void) throws {
        let path = dir + "/config.json"
        var object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        edit(&object)
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: path))
    }

    /// Expects `load` to fail with an error containing every one of `fragments`.
    static func expectRefusal(_ fragments: [String], sourceLocation: SourceLocation = #_sourceLocation, _ load: () throws -> Void) {
        do {
            try load()
            Issue.record("accepted; expected an error with \(fragments)", sourceLocation: sourceLocation)
        } catch {
            for f in fragments {
                #expect("\(error)".contains(f), "\(error) does not mention \(f)", sourceLocation: sourceLocation)
            }
        }
    }

    /// eps-MSE on a fixed batch before and after `steps` AdamW steps (lr 1e-3, no decay):
    /// x_t = sqrt(abar) x0 + sqrt(1 - abar) eps under diffusers' default linear schedule.
    static func trainingLosses<M: Module>(_ model: M, shape: [Int], steps: Int,
                                          forward: (M, Tensor, Tensor) -> Tensor) throws -> (first: Float, last: Float) {
        let schedule = try NoiseSchedule(SchedulerConfig(className: "DDPMScheduler"))
        let objective = DiffusionObjective(schedule: schedule, prediction: .epsilon)
        let x0 = PhiloxGenerator(seed: 21).normal(shape).clamped(min: -1, max: 1)
        let noise = PhiloxGenerator(seed: 22).normal(shape)
        let t = Tensor(integers: (0..<shape[0]).map { 100 + 250 * $0 })
        let xt = objective.process.noised(x0, noise: noise, timesteps: t)
        let optimizer = Adam.adamW(learningRate: 1e-3, weightDecay: 0)
        func loss(_ m: M) -> Tensor { objective.loss(output: forward(m, xt, t.to(.float32)), x0: x0, noise: noise, timesteps: t) }
        var first: Float = 0
        for step in 0..<steps {
            let (value, grads) = valueAndGradient(of: model, loss)
            #expect(grads.count == model.trainableParameters().count, "every trainable parameter gets a gradient")
            #expect(grads.values.allSatisfy { $0.scalars.allSatisfy(\.isFinite) })
            if step == 0 { first = value.item }
            optimizer.update(model, gradients: grads)
        }
        return (first, loss(model).item)
    }

    /// The derivative of `loss` along a uniform shift of the parameter `path`, by central
    /// differences, against the sum of its gradient entries.
    static func checkDirectionalGradient<M: Module>(_ model: M, path: String, loss: (M) -> Tensor,
                                                    sourceLocation: SourceLocation = #_sourceLocation) {
        let (_, grads) = valueAndGradient(of: model, loss)
        let p = model.namedParameters().first { $0.0 == path }!.1
        let original = p.value
        let h: Float = 1e-2
        p.value = original + h
        let up = loss(model).item
        p.value = original - h
        let down = loss(model).item
        p.value = original
        let numeric = (up - down) / (2 * h)
        let analytic = grads[path]!.sum().item
        #expect(abs(analytic - numeric) < 2e-3 * max(1, abs(numeric)), "\(path): gradient \(analytic), finite difference \(numeric)",
                sourceLocation: sourceLocation)
    }
}
