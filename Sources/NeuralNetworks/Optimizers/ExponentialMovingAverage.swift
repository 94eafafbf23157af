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
            guard var s = shadow.removeValue(forKey: path) else { continue }  // unshared while updated in place
            precondition(s.shape == p.shape, "EMA: the shadow of \(path) has shape \(s.shape), the parameter \(p.shape)")
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

    /// Restores `stateDict()`'s output: the step and a shadow of every averaged parameter, of
    /// its shape. Refuses a missing, mis-shaped or unexpected tensor by the parameter's path
    /// (an average of the wrong shape would be trained on and saved again).
    public func load(stateDict: [String: Tensor]) throws {
        func fail(_ text: String) -> OptimizerStateError { OptimizerStateError(description: text) }
        guard let s = stateDict["optimization_step"] else { throw fail("EMA state has no optimization_step") }
        guard s.shape.isEmpty || s.shape == [1], s.dtype == .int64 || s.dtype == .int32, let n = s.integers.first, n >= 0 else {
            throw fail("optimization_step must be one integer at least 0, found \(s.dtype) of shape \(s.shape)")
        }
        var loaded: [String: Tensor] = [:]
        for (path, current) in shadow.sorted(by: { $0.key < $1.key }) {
            guard let t = stateDict["shadow." + path] else { throw fail("tensor \(path) is missing") }
            guard t.shape == current.shape else { throw fail("tensor \(path) has shape \(t.shape), expected \(current.shape)") }
            loaded[path] = t.to(.float32).copy()
        }
        if let extra = stateDict.keys.filter({ $0 != "optimization_step" && !($0.hasPrefix("shadow.") && loaded[String($0.dropFirst(7))] != nil) }).sorted().first {
            throw fail("unexpected tensor \(extra.hasPrefix("shadow.") ? String(extra.dropFirst(7)) : extra) (the model has no such parameter)")
        }
        optimizationStep = n
        shadow = loaded
    }
}
