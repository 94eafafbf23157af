import Tensors

/// The value of `loss(model)` and its gradient with respect to every trainable parameter,
/// keyed by parameter path. The parameters are swapped for tape-tracked copies while `loss`
/// runs and put back afterwards; frozen parameters get no gradient.
public func valueAndGradient<M: Module>(of model: M, _ loss: (M) -> Tensor) -> (value: Tensor, gradients: [String: Tensor]) {
    let params = model.trainableParameters()
    let originals = params.map { $0.1.value }
    let (value, grads) = valueAndGradient(at: originals) { leaves in
        for ((_, p), leaf) in zip(params, leaves) { p.value = leaf }
        defer { for ((_, p), original) in zip(params, originals) { p.value = original } }
        return loss(model)
    }
    return (value, Dictionary(uniqueKeysWithValues: zip(params.map(\.0), grads)))
}
