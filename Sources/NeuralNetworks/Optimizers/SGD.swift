import Tensors

/// Stochastic gradient descent with momentum (torch.optim.SGD):
/// g += wd p; b = g (first step) or mu b + (1 - dampening) g; g = nesterov ? g + mu b : b;
/// p -= lr g. Each "x + alpha y" is fused (torch's vectorised `add` with alpha is an fmadd).
public final class SGD: Optimizer {
    public var learningRate: Double
    public let momentum: Double, dampening: Double, weightDecay: Double
    public let nesterov: Bool
    public private(set) var step = 0
    private var buffers: [String: Tensor] = [:]

    public init(learningRate: Double, momentum: Double = 0, dampening: Double = 0, weightDecay: Double = 0, nesterov: Bool = false) {
        precondition(!nesterov || (momentum > 0 && dampening == 0), "SGD: Nesterov momentum needs momentum > 0 and no dampening")
        (self.learningRate, self.momentum, self.dampening, self.weightDecay, self.nesterov) =
            (learningRate, momentum, dampening, weightDecay, nesterov)
    }

    public func update(_ parameters: [(String, Parameter)], gradients: [String: Tensor]) {
        step += 1
        let (mu, wd) = (Float(momentum), Float(weightDecay))
        let keep = Float(1 - dampening), negativeLR = Float(-learningRate)
        for (path, p) in parameters where p.isTrainable {
            guard let grad = gradients[path] else { continue }
            precondition(grad.shape == p.shape, "SGD: gradient of \(path) has shape \(grad.shape), the parameter \(p.shape)")
            var buffer = buffers.removeValue(forKey: path)  // unshared while updated in place (no copy on write)
            let first = buffer == nil
            if mu != 0 && first { buffer = Tensor.zeros(p.shape) }
            withGradient(grad) { g in
                p.value.withUnsafeMutableFloats { w in
                    if mu != 0 {
                        buffer!.withUnsafeMutableFloats { b in
                            for i in 0..<w.count {
                                let gi = g[i].addingProduct(wd, w[i])
                                b[i] = first ? gi : (b[i] * mu).addingProduct(keep, gi)
                                w[i] = w[i].addingProduct(negativeLR, nesterov ? gi.addingProduct(mu, b[i]) : b[i])
                            }
                        }
                    } else {
                        for i in 0..<w.count { w[i] = w[i].addingProduct(negativeLR, g[i].addingProduct(wd, w[i])) }
                    }
                }
            }
            if mu != 0 { buffers[path] = buffer }
        }
    }

    public func stateDict() -> [String: Tensor] {
        var d = buffers.reduce(into: [String: Tensor]()) { $0["momentum_buffer." + $1.key] = $1.value }
        d["step"] = Tensor(integers: [step], shape: [])
        return d
    }

    public func load(stateDict: [String: Tensor]) throws {
        guard let s = stateDict["step"] else { throw OptimizerStateError(description: "SGD state has no step") }
        step = s.integers[0]
        buffers = [:]
        for (k, v) in stateDict where k.hasPrefix("momentum_buffer.") { buffers[String(k.dropFirst(16))] = v }
    }
}
