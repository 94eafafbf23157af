import Foundation
import NeuralNetworks
import Tensors

/// Sinusoidal timestep features (Vaswani et al.; diffusers' `get_timestep_embedding`):
/// e_i = exp(-ln(10000) i / (half - shift)), features [sin(t e), cos(t e)] (cos first when
/// flipped), zero-padded to an odd dimension.
public func timestepEmbedding(_ timesteps: Tensor, dimension: Int, flipSinToCos: Bool, shift: Double,
                              scale: Float = 1, maxPeriod: Double = 10000) -> Tensor {
    let half = dimension / 2
    let frequencies = (0..<half).map { i -> Float in
        // torch: exponent = -log(max_period) * arange(half) in float32, / (half - shift), exp.
        let exponent = Float(-Foundation.log(maxPeriod)) * Float(i)
        return Foundation.exp(exponent / Float(Double(half) - shift))
    }
    let t = timesteps.to(.float32).reshaped(-1, 1)
    let args = t * Tensor(frequencies).reshaped(1, half) * scale
    var parts = [args.sin(), args.cos()]
    if flipSinToCos { parts.reverse() }
    var emb = Tensor.concatenate(parts, axis: 1)
    if dimension % 2 == 1 { emb = emb.padded([(0, 0), (0, 1)]) }
    return emb
}

/// diffusers' `Timesteps`: the sinusoidal features as a (parameter-free) module.
public final class Timesteps: Module {
    public let channels: Int, flipSinToCos: Bool, shift: Double
    public init(channels: Int, flipSinToCos: Bool, shift: Double) {
        (self.channels, self.flipSinToCos, self.shift) = (channels, flipSinToCos, shift)
        super.init()
    }
    public func callAsFunction(_ t: Tensor) -> Tensor {
        timestepEmbedding(t, dimension: channels, flipSinToCos: flipSinToCos, shift: shift)
    }
}

/// diffusers' `GaussianFourierProjection` (log-timestep random Fourier features): weight ~
/// N(0, scale^2), features [sin(2 pi log(t) w), cos(2 pi log(t) w)]; the weight is not trained.
public final class GaussianFourierProjection: Module {
    public let weight: Parameter
    public init(size: Int, scale: Float = 16, generator: RandomGenerator? = nil) {
        weight = Parameter(Initialization.normal([size], std: scale, generator: generator), trainable: false)
        super.init()
    }
    public func callAsFunction(_ t: Tensor) -> Tensor {
        let projection = t.to(.float32).log().reshaped(-1, 1) * weight.value.reshaped(1, -1) * Float(2 * Double.pi)
        return Tensor.concatenate([projection.sin(), projection.cos()], axis: 1)
    }
}

/// diffusers' `TimestepEmbedding`: linear_1 -> SiLU -> linear_2.
public final class TimestepEmbedding: Module {
    public let linear1: Linear, linear2: Linear
    public override class var keyOverrides: [String: String] { ["linear1": "linear_1", "linear2": "linear_2"] }
    public init(_ inChannels: Int, _ dimension: Int, generator: RandomGenerator? = nil) {
        linear1 = Linear(inChannels, dimension, generator: generator)
        linear2 = Linear(dimension, dimension, generator: generator)
        super.init()
    }
    public func callAsFunction(_ x: Tensor) -> Tensor { linear2(linear1(x).silu()) }
}
