import NeuralNetworks
import Tensors

/// What every block of an AutoencoderKL shares: diffusers builds the VAE's resnets and
/// attention with eps 1e-6, no time embedding, no dropout and unit output scale.
struct VAEBlockOptions {
    let groups: Int
    let generator: RandomGenerator?
    static let eps: Float = 1e-6

    func resnet(_ inChannels: Int, _ outChannels: Int) -> ResnetBlock2D {
        ResnetBlock2D(inChannels: inChannels, outChannels: outChannels, tembChannels: nil, groups: groups, eps: Self.eps,
                      dropout: 0, scaleShift: false, outputScale: 1, generator: generator)
    }
}

/// diffusers' `DownEncoderBlock2D`: `layers` resnets (the first changes the width), then,
/// except at the coarsest resolution, a stride-2 3x3 convolution with padding 0 after
/// padding the right and bottom by one (diffusers' asymmetric (0, 1, 0, 1) padding).
public final class DownEncoderBlock2D: Module {
    public let resnets: [ResnetBlock2D]
    public let downsamplers: [Downsample2D]

    init(inChannels: Int, outChannels: Int, layers: Int, addDownsample: Bool, options o: VAEBlockOptions) {
        resnets = (0..<layers).map { o.resnet($0 == 0 ? inChannels : outChannels, outChannels) }
        downsamplers = addDownsample ? [Downsample2D(channels: outChannels, useConv: true, padding: 0, generator: o.generator)] : []
        super.init()
    }

    public func callAsFunction(_ input: Tensor) -> Tensor {
        var x = input
        for resnet in resnets { x = resnet(x, temb: nil) }
        for down in downsamplers { x = down(x) }
        return x
    }
}

/// diffusers' `UpDecoderBlock2D`: `layers` resnets (the first changes the width), then,
/// except at the finest resolution, nearest 2x upsampling and a 3x3 convolution.
public final class UpDecoderBlock2D: Module {
    public let resnets: [ResnetBlock2D]
    public let upsamplers: [Upsample2D]

    init(inChannels: Int, outChannels: Int, layers: Int, addUpsample: Bool, options o: VAEBlockOptions) {
        resnets = (0..<layers).map { o.resnet($0 == 0 ? inChannels : outChannels, outChannels) }
        upsamplers = addUpsample ? [Upsample2D(channels: outChannels, generator: o.generator)] : []
        super.init()
    }

    public func callAsFunction(_ input: Tensor) -> Tensor {
        var x = input
        for resnet in resnets { x = resnet(x, temb: nil) }
        for up in upsamplers { x = up(x) }
        return x
    }
}

/// The VAE's mid block (diffusers' `UNetMidBlock2D` without a time embedding): resnet,
/// optional self-attention, resnet. The attention is diffusers' `Attention` with group norm
/// and a single head as wide as the block (attention_head_dim = channels), biased q/k/v/out
/// projections and a residual: x + to_out(softmax(q k^T / sqrt(C)) v) over the H x W
/// positions (the non-local block of the LDM autoencoder, Rombach et al. 2022).
public final class VAEMidBlock2D: Module {
    public let attentions: [Attention]
    public let resnets: [ResnetBlock2D]

    init(channels: Int, addAttention: Bool, options o: VAEBlockOptions) {
        resnets = [o.resnet(channels, channels), o.resnet(channels, channels)]
        attentions = addAttention ? [Attention(queryDim: channels, heads: 1, headDim: channels, bias: true, normGroups: o.groups,
                                               eps: VAEBlockOptions.eps, residualConnection: true, generator: o.generator)] : []
        super.init()
    }

    public func callAsFunction(_ input: Tensor) -> Tensor {
        var x = resnets[0](input, temb: nil)
        if let attention = attentions.first { x = attention(x) }
        return resnets[1](x, temb: nil)
    }
}
