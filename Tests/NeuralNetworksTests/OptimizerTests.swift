import Foundation
import Testing
import Tensors
import NeuralNetworks

@Suite struct OptimizerTests {
    struct Run: Decodable {
        let params: [[String: [Float]]]
        let lrs: [Double]
        let clip_norms: [Float]?
        let ema_warmup: [[String: [Float]]]?
        let ema_plain: [[String: [Float]]]?
    }
    struct Fixture: Decodable {
        let `init`: [String: [Float]]
        let shapes: [String: [Int]]
        let grads: [[String: [Float]]]
        let runs: [String: Run]
    }

    static let fixture: Fixture = try! JSONDecoder().decode(Fixture.self, from: fixtureData("optimizers.json"))

    final class Params: Module {
        let p1: Parameter, p2: Parameter
        init(_ f: Fixture) {
            p1 = Parameter(Tensor(f.`init`["p1"]!, shape: f.shapes["p1"]!))
            p2 = Parameter(Tensor(f.`init`["p2"]!, shape: f.shapes["p2"]!))
            super.init()
        }
    }

    /// Twelve steps on a fixed gradient sequence agree with torch.optim to 1e-6 relative.
    @Test(arguments: ["sgd", "sgd_momentum", "sgd_nesterov", "adam", "adamw", "adamw_amsgrad", "adamw_clip_cosine"])
    func matchesTorchOptim(name: String) throws {
        let f = Self.fixture, run = f.runs[name]!
        let model = Params(f)
        let optimizer: Optimizer
        switch name {
        case "sgd": optimizer = SGD(learningRate: 0.1)
        case "sgd_momentum": optimizer = SGD(learningRate: 0.05, momentum: 0.9, dampening: 0.1, weightDecay: 0.01)
        case "sgd_nesterov": optimizer = SGD(learningRate: 0.05, momentum: 0.9, weightDecay: 0.001, nesterov: true)
        case "adam": optimizer = Adam(learningRate: 1e-2, weightDecay: 0.01)
        case "adamw": optimizer = Adam.adamW(learningRate: 1e-2, weightDecay: 0.05)
        case "adamw_amsgrad": optimizer = Adam.adamW(learningRate: 1e-2, amsgrad: true)
        default: optimizer = Adam.adamW(learningRate: 1e-2)
        }
        let schedule: LearningRateSchedule? = name == "adamw_clip_cosine" ? .cosine(warmupSteps: 3, totalSteps: 12) : nil
        let ema = name == "adamw" ? ExponentialMovingAverage(model: model, decay: 0.99, updateAfterStep: 2, useWarmup: true, power: 0.75) : nil
        let emaPlain = name == "adamw" ? ExponentialMovingAverage(model: model, decay: 0.9) : nil
        for (step, g) in f.grads.enumerated() {
            var grads = ["p1": Tensor(g["p1"]!, shape: f.shapes["p1"]!), "p2": Tensor(g["p2"]!, shape: f.shapes["p2"]!)]
            if let norms = run.clip_norms {
                let norm = clipGradientNorm(&grads, maxNorm: 1.0)
                #expect(abs(norm - norms[step]) <= 1e-6 * norms[step], "clip norm at step \(step)")
            }
            if let schedule { optimizer.learningRate = schedule.learningRate(base: 1e-2, step: step) }
            #expect(abs(optimizer.learningRate - run.lrs[step]) <= 1e-12, "lr at step \(step)")
            optimizer.update(model, gradients: grads)
            for key in ["p1", "p2"] {
                let got = model.stateDict()[key]!.scalars
                expectClose(got, run.params[step][key]!, atol: 1e-7, rtol: 1e-6, "\(name) step \(step + 1) \(key)")
            }
            if let ema, let emaPlain {
                ema.step(model)
                emaPlain.step(model)
                for key in ["p1", "p2"] {
                    expectClose(ema.shadow[key]!.scalars, run.ema_warmup![step][key]!, atol: 1e-7, rtol: 1e-6, "EMA warm-up step \(step + 1) \(key)")
                    expectClose(emaPlain.shadow[key]!.scalars, run.ema_plain![step][key]!, atol: 1e-7, rtol: 1e-6, "EMA step \(step + 1) \(key)")
                }
            }
        }
    }

    @Test func emaDecaySchedule() {
        let ema = ExponentialMovingAverage(model: Linear(1, 1), decay: 0.999, updateAfterStep: 10, useWarmup: true, invGamma: 1, power: 2.0 / 3)
        #expect(ema.decay(at: 11) == 0)
        #expect(abs(ema.decay(at: 12) - (1 - pow(2.0, -2.0 / 3))) < 1e-15)
        #expect(ema.decay(at: 1_000_000) == 0.999)
        let plain = ExponentialMovingAverage(model: Linear(1, 1), decay: 0.5)
        #expect(plain.decay(at: 2) == 2.0 / 11.0)  // (1 + 1) / (10 + 1), below the 0.5 cap
        #expect(plain.decay(at: 100) == 0.5)
    }

    @Test func optimizerStateRoundTrip() throws {
        let model = Linear(3, 2)
        let adam = Adam.adamW(learningRate: 1e-2)
        let g = ["weight": Tensor.ones([2, 3]), "bias": Tensor.ones([2])]
        adam.update(model, gradients: g)
        let copy = Adam.adamW(learningRate: 1e-2)
        try copy.load(stateDict: adam.stateDict())
        let twin = Linear(3, 2)
        try twin.load(stateDict: model.stateDict())
        adam.update(model, gradients: g)
        copy.update(twin, gradients: g)
        #expect(model.stateDict()["weight"]!.scalars == twin.stateDict()["weight"]!.scalars)
        #expect(copy.step == 2)
    }
}
