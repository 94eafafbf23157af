import NeuralNetworks
import Tensors

/// The activations of diffusers' `FeedForward` (its `activation_fn` names).
public enum FeedForwardActivation: String, Sendable, CaseIterable {
    /// GEGLU (Shazeer 2020): [h, g] = x W + b, out = h * gelu(g); W doubles the width.
    case geglu
    /// gelu(x W + b), exact.
    case gelu
    /// gelu(x W + b) with torch's tanh approximation (DiT).
    case geluApproximate = "gelu-approximate"
    /// diffusers' `ApproximateGELU`: y = x W + b, out = y sigmoid(1.702 y).
    case gegluApproximate = "geglu-approximate"
}

/// The first layer of a `FeedForward` (diffusers' `GEGLU`, `GELU`, `ApproximateGELU`): a
/// projection `proj` and the activation.
public final class FeedForwardProjection: Module, UnaryLayer {
    public let proj: Linear
    public let activation: FeedForwardActivation

    public init(_ inFeatures: Int, _ outFeatures: Int, activation: FeedForwardActivation, bias: Bool = true,
                generator: RandomGenerator? = nil) {
        proj = Linear(inFeatures, activation == .geglu ? 2 * outFeatures : outFeatures, bias: bias, generator: generator)
        self.activation = activation
        super.init()
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let y = proj(x)
        switch activation {
        case .geglu:
            let parts = y.chunked(2, axis: -1)
            return parts[0].timesGELU(of: parts[1])
        case .gelu: return y.gelu()
        case .geluApproximate: return y.gelu(approximate: true)
        case .gegluApproximate: return y * (y * 1.702).sigmoid()
        }
    }
}

/// diffusers' `FeedForward`: out = net.2(dropout(net.0(x))), net.0 the projection with its
/// activation to `mult` x the width, net.2 the linear layer back.
public final class FeedForward: Module, UnaryLayer {
    public let activation: FeedForwardProjection
    public let dropout: Dropout
    public let output: Linear

    public override class var keyOverrides: [String: String] {
        ["activation": "net.0", "dropout": "net.1", "output": "net.2"]
    }

    public init(_ dim: Int, mult: Int = 4, activation: FeedForwardActivation, dropout: Float = 0, bias: Bool = true,
                generator: RandomGenerator? = nil) {
        let inner = dim * mult
        self.activation = FeedForwardProjection(dim, inner, activation: activation, bias: bias, generator: generator)
        self.dropout = Dropout(dropout)
        output = Linear(inner, dim, bias: bias, generator: generator)
        super.init()
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { output(dropout(activation(x))) }
}
