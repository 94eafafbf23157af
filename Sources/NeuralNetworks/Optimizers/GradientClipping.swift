import Tensors

/// The 2-norm of all the gradients together, summed in sorted path order (the same on every
/// process that has the same gradients).
public func gradientNorm(_ gradients: [String: Tensor]) -> Float {
    var squares = 0.0
    for key in gradients.keys.sorted() {
        withGradient(gradients[key]!) { b in
            var s = 0.0
            for v in b { s += Double(v) * Double(v) }
            squares += s
        }
    }
    return Float(squares.squareRoot())
}

/// Scales all gradients by min(1, maxNorm / (norm + 1e-6)), norm being the 2-norm of all of
/// them together (torch.nn.utils.clip_grad_norm_). Returns that norm. The squares are summed
/// in sorted path order, so processes with the same gradients clip them identically (a
/// dictionary's order differs between processes).
@discardableResult
public func clipGradientNorm(_ gradients: inout [String: Tensor], maxNorm: Double) -> Float {
    let norm = gradientNorm(gradients)
    let coefficient = Swift.min(Float(maxNorm) / (norm + 1e-6), 1)
    for key in Array(gradients.keys) {
        var g = gradients[key]!.to(.float32)
        g.withUnsafeMutableFloats { b in for i in b.indices { b[i] *= coefficient } }
        gradients[key] = g
    }
    return norm
}
