import NeuralNetworks
import Tensors

/// diffusers' `ResnetBlock2D` (pre-norm, SiLU):
/// h = conv1(silu(norm1(x))); h += time_emb_proj(silu(temb)) (or, "scale_shift",
/// norm2(h) (1 + scale) + shift); h = conv2(dropout(silu(norm2(h))));
/// out = (shortcut(x) + h) / outputScale. With `down`/`up`, x and h are average-pooled /
/// upsampled (nearest) 2x after norm1. Runs channels-last with GroupNorm+SiLU fused (and the
/// time embedding added inside norm2) and the residual added inside conv2.
public final class ResnetBlock2D: Module {
    public let norm1: GroupNorm
    public let conv1: Conv2d
    public let timeEmbProj: Linear?
    public let norm2: GroupNorm
    public let dropout: Dropout
    public let conv2: Conv2d
    public let convShortcut: Conv2d?
    public let scaleShift: Bool
    public let outputScale: Float
    public let resample: Resample

    public enum Resample: Sendable { case none, down, up }

    public init(inChannels: Int, outChannels: Int, tembChannels: Int?, groups: Int, eps: Float, dropout: Float,
                scaleShift: Bool, outputScale: Float, resample: Resample = .none, generator: RandomGenerator? = nil) {
        norm1 = GroupNorm(groups: groups, channels: inChannels, eps: eps)
        conv1 = Conv2d(inChannels, outChannels, kernelSize: 3, padding: 1, generator: generator)
        timeEmbProj = tembChannels.map { Linear($0, scaleShift ? 2 * outChannels : outChannels, generator: generator) }
        norm2 = GroupNorm(groups: groups, channels: outChannels, eps: eps)
        self.dropout = Dropout(dropout)
        conv2 = Conv2d(outChannels, outChannels, kernelSize: 3, padding: 1, generator: generator)
        convShortcut = inChannels != outChannels ? Conv2d(inChannels, outChannels, kernelSize: 1, generator: generator) : nil
        (self.scaleShift, self.outputScale, self.resample) = (scaleShift, outputScale, resample)
        super.init()
    }

    public func callAsFunction(_ input: Tensor, temb: Tensor?) -> Tensor {
        var x = input
        var h = norm1(x, activation: .silu)
        switch resample {
        case .down: (x, h) = (x.avgPooled(kernel: 2), h.avgPooled(kernel: 2))
        case .up: (x, h) = (x.upsampledNearest(), h.upsampledNearest())
        case .none: break
        }
        h = conv1(h)
        if let proj = timeEmbProj, let temb {
            let t = proj(temb.silu())
            let c = conv1.outChannels
            if scaleShift {
                let scale = t.sliced(axis: 1, start: 0, end: c).reshaped(-1, c, 1, 1)
                let shift = t.sliced(axis: 1, start: c, end: 2 * c).reshaped(-1, c, 1, 1)
                h = (norm2(h) * (scale + 1) + shift).silu()
            } else {
                h = norm2(h, shift: t.reshaped(-1, c), activation: .silu)
            }
        } else {
            h = norm2(h, activation: .silu)
        }
        h = dropout(h)
        let shortcut = convShortcut.map { $0(x) } ?? x
        var out = conv2(h, residual: shortcut)
        if outputScale != 1 { out = out / outputScale }
        return out
    }
}

/// diffusers' `Downsample2D`: a stride-2 3x3 convolution (padding 0: pad right and bottom by
/// one first), or 2x2 average pooling.
public final class Downsample2D: Module {
    public let conv: Conv2d?
    let padding: Int

    public init(channels: Int, useConv: Bool, padding: Int, generator: RandomGenerator? = nil) {
        conv = useConv ? Conv2d(channels, channels, kernelSize: 3, stride: 2, padding: Int2(padding), generator: generator) : nil
        self.padding = padding
        super.init()
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        guard let conv else { return x.avgPooled(kernel: 2) }
        return conv(padding == 0 ? x.padded2D(left: 0, right: 1, top: 0, bottom: 1) : x)
    }
}

/// diffusers' `Upsample2D`: nearest 2x, then a 3x3 convolution.
public final class Upsample2D: Module {
    public let conv: Conv2d

    public init(channels: Int, generator: RandomGenerator? = nil) {
        conv = Conv2d(channels, channels, kernelSize: 3, padding: 1, generator: generator)
        super.init()
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { conv(x.upsampledNearest()) }
}
