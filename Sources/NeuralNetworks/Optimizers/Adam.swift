import Tensors

/// Adam and AdamW (torch.optim.Adam / AdamW, single-tensor CPU path):
///   AdamW: p *= 1 - lr wd;  Adam: g += wd p
///   m = lerp(m, g, 1 - b1);  v = b2 v + (1 - b2) g^2   (amsgrad: vmax = max(vmax, v))
///   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
/// Bias corrections in Double, element math in Float, in torch's order of operations.
public final class Adam: Optimizer {
    public var learningRate: Double
    public let beta1: Double, beta2: Double, eps: Double, weightDecay: Double
    /// Weight decay decoupled from the gradient (AdamW, Loshchilov & Hutter 2019).
    public let decoupled: Bool
    public let amsgrad: Bool
    public private(set) var step = 0
    private var first: [String: Tensor] = [:], second: [String: Tensor] = [:], maxSecond: [String: Tensor] = [:]

    public init(learningRate: Double = 1e-3, beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8,
                weightDecay: Double = 0, decoupled: Bool = false, amsgrad: Bool = false) {
        (self.learningRate, self.beta1, self.beta2, self.eps, self.weightDecay, self.decoupled, self.amsgrad) =
            (learningRate, beta1, beta2, eps, weightDecay, decoupled, amsgrad)
    }

    /// torch.optim.AdamW's defaults (weight decay 0.01).
    public static func adamW(learningRate: Double = 1e-3, beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8,
                             weightDecay: Double = 0.01, amsgrad: Bool = false) -> Adam {
        Adam(learningRate: learningRate, beta1: beta1, beta2: beta2, eps: eps, weightDecay: weightDecay,
             decoupled: true, amsgrad: amsgrad)
    }

    public func update(_ parameters: [(String, Parameter)], gradients: [String: Tensor]) {
        step += 1
        let t = Double(step)
        let coefficients = AdamUpdate.Coefficients(
            stepSize: Float(learningRate / (1 - Foundation.pow(beta1, t))),
            correction2: Float((1 - Foundation.pow(beta2, t)).squareRoot()),
            decay: Float(1 - learningRate * weightDecay), oneMinusBeta1: Float(1 - beta1), beta2: Float(beta2),
            oneMinusBeta2: Float(1 - beta2), eps: Float(eps), weightDecay: Float(weightDecay), decoupled: decoupled, amsgrad: amsgrad)
        for (path, p) in parameters where p.isTrainable {
            guard let grad = gradients[path] else { continue }
            precondition(grad.shape == p.shape, "Adam: gradient of \(path) has shape \(grad.shape), the parameter \(p.shape)")
            // Taken out of the tables while updated in place: a second reference to their
            // storage would make every update copy them first (copy on write).
            var m = first.removeValue(forKey: path) ?? Tensor.zeros(p.shape)
            var v = second.removeValue(forKey: path) ?? Tensor.zeros(p.shape)
            var vmax = amsgrad ? (maxSecond.removeValue(forKey: path) ?? Tensor.zeros(p.shape)) : Tensor.zeros([])
            withGradient(grad) { g in
                // A bf16 model's weights are rounded for its next step in the same pass.
                p.value.withUnsafeMutableFloats(keepingBFloat16Form: { w, bf16 in
                    m.withUnsafeMutableFloats { mb in
                        v.withUnsafeMutableFloats { vb in
                            vmax.withUnsafeMutableFloats { xb in
                                AdamUpdate.apply(coefficients, count: w.count, weights: w.baseAddress!, gradient: g.baseAddress!,
                                                 first: mb.baseAddress!, second: vb.baseAddress!,
                                                 maxSecond: amsgrad ? xb.baseAddress! : nil, bf16: bf16)
                            }
                        }
                    }
                })
            }
            first[path] = m
            second[path] = v
            if amsgrad { maxSecond[path] = vmax }
        }
    }

    public func stateDict() -> [String: Tensor] {
        var d: [String: Tensor] = ["step": Tensor(integers: [step], shape: [])]
        for (k, v) in first { d["exp_avg." + k] = v }
        for (k, v) in second { d["exp_avg_sq." + k] = v }
        for (k, v) in maxSecond { d["max_exp_avg_sq." + k] = v }
        return d
    }

    public func load(stateDict: [String: Tensor]) throws {
        guard let s = stateDict["step"] else { throw OptimizerStateError(description: "Adam state has no step") }
        step = s.integers[0]
        (first, second, maxSecond) = ([:], [:], [:])
        for (k, v) in stateDict {
            if k.hasPrefix("exp_avg.") { first[String(k.dropFirst(8))] = v }
            if k.hasPrefix("exp_avg_sq.") { second[String(k.dropFirst(11))] = v }
            if k.hasPrefix("max_exp_avg_sq.") { maxSecond[String(k.dropFirst(15))] = v }
        }
    }
}

extension Adam {
    /// Restores `stateDict()`'s output as a run's optimizer over `parameters` (path,
    /// parameter) saved it: the step, and after the first step both moments (and with
    /// amsgrad the maximum) of every trainable parameter, float32, of its shape. Refuses a
    /// missing, mis-shaped or unexpected tensor by name, rather than starting it afresh.
    public func load(stateDict: [String: Tensor], parameters: [(String, Parameter)]) throws {
        func fail(_ text: String) -> OptimizerStateError { OptimizerStateError(description: text) }
        guard let s = stateDict["step"] else { throw fail("tensor step is missing") }
        guard s.shape.isEmpty || s.shape == [1], s.dtype == .int64 || s.dtype == .int32, let n = s.integers.first, n >= 0 else {
            throw fail("tensor step must be one integer at least 0, found \(s.dtype) of shape \(s.shape)")
        }
        var expected: [String: [Int]] = [:]
        if n > 0 {
            let kinds = ["exp_avg.", "exp_avg_sq."] + (amsgrad ? ["max_exp_avg_sq."] : [])
            for (path, p) in parameters where p.isTrainable {
                for kind in kinds { expected[kind + path] = p.shape }
            }
        }
        for key in expected.keys.sorted() {
            guard let t = stateDict[key] else { throw fail("tensor \(key) is missing (step \(n) has moments for every parameter)") }
            guard t.shape == expected[key]! else { throw fail("tensor \(key) has shape \(t.shape), expected \(expected[key]!)") }
            guard t.dtype == .float32 else { throw fail("tensor \(key) is \(t.dtype), expected float32") }
        }
        if let extra = stateDict.keys.filter({ $0 != "step" && expected[$0] == nil }).sorted().first {
            throw fail("unexpected tensor \(extra)" + (n == 0 ? " (no moments before the first step)" : " (the model has no such parameter)"))
        }
        try load(stateDict: stateDict)
    }
}

import Foundation
