import NeuralNetworks
import Tensors

/// The options every block of a UNet2DModel shares.
struct BlockOptions {
    let tembChannels: Int
    let groups: Int
    let eps: Float
    let dropout: Float
    let scaleShift: Bool
    let headDim: Int?
    let generator: RandomGenerator?

    func resnet(_ inChannels: Int, _ outChannels: Int, outputScale: Float = 1, resample: ResnetBlock2D.Resample = .none) -> ResnetBlock2D {
        ResnetBlock2D(inChannels: inChannels, outChannels: outChannels, tembChannels: tembChannels, groups: groups, eps: eps,
                      dropout: dropout, scaleShift: scaleShift, outputScale: outputScale, resample: resample, generator: generator)
    }

    /// diffusers' spatial attention: heads = channels / headDim, group norm, bias, residual.
    func attention(_ channels: Int, normGroups: Int?, outputScale: Float = 1) -> Attention {
        let dim = headDim ?? channels
        return Attention(queryDim: channels, heads: channels / dim, headDim: dim, bias: true, normGroups: normGroups, eps: eps,
                         residualConnection: true, rescaleOutputFactor: outputScale, generator: generator)
    }
}

/// DownBlock2D / AttnDownBlock2D: resnets (each followed by attention in the Attn kind),
/// then a downsampler; returns the output and every intermediate state for the skips.
public final class UNetDownBlock: Module {
    public let resnets: [ResnetBlock2D]
    public let attentions: [Attention]
    public let downsamplers: [Module]

    init(_ kind: String, inChannels: Int, outChannels: Int, layers: Int, addDownsample: Bool, options o: BlockOptions,
         downsamplePadding: Int, downsampleType: String) {
        resnets = (0..<layers).map { o.resnet($0 == 0 ? inChannels : outChannels, outChannels) }
        let hasAttention = kind == "AttnDownBlock2D"
        attentions = hasAttention ? (0..<layers).map { _ in o.attention(outChannels, normGroups: o.groups) } : []
        if !addDownsample {
            downsamplers = []
        } else if hasAttention && downsampleType == "resnet" {
            downsamplers = [o.resnet(outChannels, outChannels, resample: .down)]
        } else {
            downsamplers = [Downsample2D(channels: outChannels, useConv: true, padding: downsamplePadding, generator: o.generator)]
        }
        super.init()
    }

    public func callAsFunction(_ input: Tensor, temb: Tensor) -> (Tensor, [Tensor]) {
        var x = input
        var states: [Tensor] = []
        for (i, resnet) in resnets.enumerated() {
            x = resnet(x, temb: temb)
            if i < attentions.count { x = attentions[i](x) }
            states.append(x)
        }
        for d in downsamplers {
            x = (d as? ResnetBlock2D).map { $0(x, temb: temb) } ?? (d as! Downsample2D)(x)
            states.append(x)
        }
        return (x, states)
    }
}

/// UpBlock2D / AttnUpBlock2D: each resnet takes the running state concatenated with a skip
/// (newest first), attention after it in the Attn kind, then an upsampler.
public final class UNetUpBlock: Module {
    public let resnets: [ResnetBlock2D]
    public let attentions: [Attention]
    public let upsamplers: [Module]

    init(_ kind: String, inChannels: Int, prevOutputChannels: Int, outChannels: Int, layers: Int, addUpsample: Bool,
         options o: BlockOptions, upsampleType: String) {
        resnets = (0..<layers).map { i in
            let skip = i == layers - 1 ? inChannels : outChannels
            let resnetIn = i == 0 ? prevOutputChannels : outChannels
            return o.resnet(resnetIn + skip, outChannels)
        }
        let hasAttention = kind == "AttnUpBlock2D"
        attentions = hasAttention ? (0..<layers).map { _ in o.attention(outChannels, normGroups: o.groups) } : []
        if !addUpsample {
            upsamplers = []
        } else if hasAttention && upsampleType == "resnet" {
            upsamplers = [o.resnet(outChannels, outChannels, resample: .up)]
        } else {
            upsamplers = [Upsample2D(channels: outChannels, generator: o.generator)]
        }
        super.init()
    }

    /// `skips` in the order they were produced; this block takes them from the end.
    public func callAsFunction(_ input: Tensor, skips: [Tensor], temb: Tensor) -> Tensor {
        var x = input
        for (i, resnet) in resnets.enumerated() {
            x = resnet(Tensor.concatenate([x, skips[skips.count - 1 - i]], axis: 1), temb: temb)
            if i < attentions.count { x = attentions[i](x) }
        }
        for u in upsamplers {
            x = (u as? ResnetBlock2D).map { $0(x, temb: temb) } ?? (u as! Upsample2D)(x)
        }
        return x
    }
}

/// UNetMidBlock2D: resnet, (attention, resnet) per layer, all scaled by the mid block's
/// output scale factor.
public final class UNetMidBlock: Module {
    public let attentions: [Attention]
    public let resnets: [ResnetBlock2D]

    init(channels: Int, options o: BlockOptions, outputScale: Float, addAttention: Bool, attentionGroups: Int?) {
        resnets = [o.resnet(channels, channels, outputScale: outputScale), o.resnet(channels, channels, outputScale: outputScale)]
        attentions = addAttention ? [o.attention(channels, normGroups: attentionGroups, outputScale: outputScale)] : []
        super.init()
    }

    public func callAsFunction(_ input: Tensor, temb: Tensor) -> Tensor {
        var x = resnets[0](input, temb: temb)
        if let attention = attentions.first { x = attention(x) }
        return resnets[1](x, temb: temb)
    }
}
