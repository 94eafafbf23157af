import Foundation
import Tensors

/// An exponential moving average of a model's parameters, as diffusers' `EMAModel`:
/// after each optimizer step, shadow -= (1 - decay) (shadow - param) for trainable
/// parameters (frozen ones are copied), with
///   decay = 0 for the first `updateAfterStep` + 1 steps, then
///   warm-up: 1 - (1 + s / invGamma)^-power, or (1 + s) / (10 + s) without it,
/// clamped to [minDecay, maxDecay], s counting steps since the update began.
public final class ExponentialMovingAverage {
    public let maxDecay: Double, minDecay: Double
    public let updateAfterStep: Int
    public let useWarmup: Bool
    public let invGamma: Double, power: Double
    public private(set) var optimizationStep = 0
    /// The averaged parameters by path.
    public private(set) var shadow: [String: Tensor]
    /// The decay used by the last step.
    public private(set) var currentDecay = 0.0

    public init(model: Module, decay: Double = 0.9999, minDecay: Double = 0, updateAfterStep: Int = 0,
                useWarmup: Bool = false, invGamma: Double = 1, power: Double = 2.0 / 3.0) {
        (maxDecay, self.minDecay, self.updateAfterStep, self.useWarmup, self.invGamma, self.power) =
            (decay, minDecay, updateAfterStep, useWarmup, invGamma, power)
        shadow = Dictionary(uniqueKeysWithValues: model.namedParameters().map { ($0.0, $0.1.value.detached().to(.float32).copy()) })
    }

    /// `EMAModel.get_decay`.
    public func decay(at optimizationStep: Int) -> Double {
        let s = Swift.max(0, optimizationStep - updateAfterStep - 1)
        if s <= 0 { return 0 }
        var value = useWarmup ? 1 - Foundation.pow(1 + Double(s) / invGamma, -power) : Double(1 + s) / Double(10 + s)
        value = Swift.min(value, maxDecay)
        return Swift.max(value, minDecay)
    }

    /// One update from the model's current parameters.
    public func step(_ model: Module) {
        optimizationStep += 1
        currentDecay = decay(at: optimizationStep)
        let oneMinus = Float(1 - currentDecay)
        for (path, p) in model.namedParameters() {
            guard var s = shadow[path] else { continue }
            let current = p.value.to(.float32)
            if p.isTrainable {
                current.withUnsafeBytes { raw in
                    let v = raw.bindMemory(to: Float.self)
                    s.withUnsafeMutableFloats { b in
                        for i in b.indices { b[i] -= oneMinus * (b[i] - v[i]) }
                    }
                }
            } else {
                s = current.copy()
            }
            shadow[path] = s
        }
    }

    /// Writes the averaged parameters into `model` (diffusers' `copy_to`).
    public func copy(to model: Module) throws {
        try model.load(stateDict: shadow, strict: false)
    }

    /// State for checkpoints: the shadow parameters and the step.
    public func stateDict() -> [String: Tensor] {
        var d = shadow.reduce(into: [String: Tensor]()) { $0["shadow." + $1.key] = $1.value }
        d["optimization_step"] = Tensor(integers: [optimizationStep], shape: [])
        return d
    }

    public func load(stateDict: [String: Tensor]) throws {
        guard let s = stateDict["optimization_step"] else { throw OptimizerStateError(description: "EMA state has no optimization_step") }
        optimizationStep = s.integers[0]
        for (k, v) in stateDict where k.hasPrefix("shadow.") { shadow[String(k.dropFirst(7))] = v }
    }
}
