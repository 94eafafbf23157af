import Tensors

/// Updates parameters from their gradients, keeping per-parameter state keyed by path.
public protocol Optimizer: AnyObject {
    /// The learning rate of the next step (schedules set it before each step). Hyper-
    /// parameters are Double, as Python floats are in torch, and become Float where torch
    /// casts them, so that steps agree with torch.optim to the last bits.
    var learningRate: Double { get set }
    /// Steps taken.
    var step: Int { get }
    /// Applies one step to `parameters` (path, parameter) with `gradients` by path.
    /// Parameters without a gradient, and frozen ones, are left alone.
    func update(_ parameters: [(String, Parameter)], gradients: [String: Tensor])
    /// The state (moments, step) as tensors by name, for checkpoints.
    func stateDict() -> [String: Tensor]
    /// Restores `stateDict()`'s output.
    func load(stateDict: [String: Tensor]) throws
}

extension Optimizer {
    /// One step on every trainable parameter of `model`.
    public func update(_ model: Module, gradients: [String: Tensor]) {
        update(model.trainableParameters(), gradients: gradients)
    }
}

/// A gradient's values as a row-major float32 buffer.
@inline(__always)
func withGradient<R>(_ g: Tensor, _ body: (UnsafeBufferPointer<Float>) -> R) -> R {
    let f = g.dtype == .float32 ? g : g.to(.float32)
    return f.withUnsafeBytes { body($0.bindMemory(to: Float.self)) }
}

/// Why an optimizer state does not fit.
public struct OptimizerStateError: Error, CustomStringConvertible {
    public let description: String
}
