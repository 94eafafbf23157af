/// Reverse-mode differentiation of a scalar function of tensors.
///
/// `f` runs once, recording on a fresh tape; the gradient of its (single-element) result is
/// then propagated backwards through the recorded ops. Gradients come back keyed like the
/// inputs; an input the result does not depend on gets zeros. Nothing is stored on the
/// tensors themselves, so there is no `zero_grad` and no hidden state between calls.
public func valueAndGradient(at inputs: [Tensor], of f: ([Tensor]) -> Tensor) -> (value: Tensor, gradients: [Tensor]) {
    let tape = Tape()
    let marked = inputs.map { tape.leaf($0) }
    Tape.push(tape)
    let output: Tensor
    do {
        defer { Tape.pop() }
        output = f(marked)
    }
    check(output.count == 1, "valueAndGradient", "the function must return one element, got shape \(output.shape)")
    let grads = backpropagate(tape, from: output, seed: Tensor.ones(like: output, dtype: .float32))
    var value = output
    value.node = nil
    let result = inputs.enumerated().map { i, x -> Tensor in
        guard let g = grads[i] else { return Tensor.zeros(x.shape, dtype: x.dtype.isFloatingPoint ? x.dtype : .float32) }
        return g.dtype == x.dtype || !x.dtype.isFloatingPoint ? g : g.to(x.dtype)
    }
    return (value, result)
}

/// `valueAndGradient` for inputs keyed by name (parameter paths).
public func valueAndGradient<Key: Hashable>(at inputs: [Key: Tensor], of f: ([Key: Tensor]) -> Tensor)
    -> (value: Tensor, gradients: [Key: Tensor]) {
    let keys = Array(inputs.keys)
    let (value, grads) = valueAndGradient(at: keys.map { inputs[$0]! }) { xs in
        f(Dictionary(uniqueKeysWithValues: zip(keys, xs)))
    }
    return (value, Dictionary(uniqueKeysWithValues: zip(keys, grads)))
}

/// The gradient alone.
public func gradient(at inputs: [Tensor], of f: ([Tensor]) -> Tensor) -> [Tensor] {
    valueAndGradient(at: inputs, of: f).gradients
}

/// Vector-Jacobian product: the cotangent `seed` of `f(inputs)` pulled back to the inputs.
/// For a non-scalar function, `seed` weights its outputs.
public func pullback(at inputs: [Tensor], seed: Tensor, of f: ([Tensor]) -> Tensor) -> (value: Tensor, gradients: [Tensor]) {
    let tape = Tape()
    let marked = inputs.map { tape.leaf($0) }
    Tape.push(tape)
    let output: Tensor
    do {
        defer { Tape.pop() }
        output = f(marked)
    }
    check(seed.shape == output.shape, "pullback", "seed shape \(seed.shape) differs from the output shape \(output.shape)")
    let grads = backpropagate(tape, from: output, seed: seed)
    var value = output
    value.node = nil
    return (value, inputs.enumerated().map { i, x in grads[i] ?? Tensor.zeros(x.shape, dtype: .float32) })
}

/// Walks the tape backwards from `output`; returns the gradients of the leaves in order.
private func backpropagate(_ tape: Tape, from output: Tensor, seed: Tensor) -> [Tensor?] {
    var grads = [Tensor?](repeating: nil, count: tape.entries.count)
    guard let start = output.node, start.tape == tape.id else { return grads }
    grads[start.index] = seed
    for i in stride(from: start.index, through: 0, by: -1) {
        guard let backward = tape.entries[i].backward, let g = grads[i] else { continue }
        tape.entries[i].backward = nil  // frees what the rule saved
        grads[i] = nil
        let inputGrads = backward(g)
        for (k, input) in tape.entries[i].inputs.enumerated() where input >= 0 {
            guard k < inputGrads.count, let gk = inputGrads[k] else { continue }
            check(gk.shape == tape.entries[input].shape, "gradient",
                  "rule of \(tape.entries[i].op) gave a gradient of shape \(gk.shape) for an input of shape \(tape.entries[input].shape)")
            // Summed in place where the first gradient's buffer is not shared (no copy of
            // a full activation-sized tensor per extra consumer).
            if var sum = grads[input] {
                grads[input] = nil
                sum.accumulate(gk)
                grads[input] = sum
            } else {
                grads[input] = gk
            }
        }
    }
    return grads
}

extension Tensor {
    /// The same values, cut off from differentiation (`torch.Tensor.detach`).
    public func detached() -> Tensor {
        var t = self
        t.node = nil
        return t
    }
}
