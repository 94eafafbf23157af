import NeuralNetworks
import Tensors

/// What the blocks of a UNet2DConditionModel share beyond the resnet options: the
/// transformer settings of one resolution.
struct CrossAttentionOptions {
    let heads: Int
    let crossAttentionDim: Int
    let useLinearProjection: Bool
    let onlyCrossAttention: Bool

    /// diffusers' `Transformer2DModel(heads, channels / heads, in_channels=channels, ...)`.
    func transformer(_ channels: Int, layers: Int, groups: Int, generator: RandomGenerator?) -> Transformer2DModel {
        Transformer2DModel(heads: heads, headDim: channels / heads, channels: channels, layers: layers,
                           crossAttentionDim: crossAttentionDim, normGroups: groups, useLinearProjection: useLinearProjection,
                           onlyCrossAttention: onlyCrossAttention, generator: generator)
    }
}

/// CrossAttnDownBlock2D (each resnet followed by a spatial transformer) or DownBlock2D (no
/// `attentions`), then a strided-convolution downsampler; returns the output and every
/// intermediate state for the skip connections.
public final class UNetConditionDownBlock: Module {
    public let resnets: [ResnetBlock2D]
    public let attentions: [Transformer2DModel]
    public let downsamplers: [Downsample2D]

    init(inChannels: Int, outChannels: Int, layers: Int, attention: CrossAttentionOptions?, transformerLayers: [Int],
         addDownsample: Bool, downsamplePadding: Int, options o: BlockOptions) {
        resnets = (0..<layers).map { o.resnet($0 == 0 ? inChannels : outChannels, outChannels) }
        attentions = attention.map { a in
            transformerLayers.map { a.transformer(outChannels, layers: $0, groups: o.groups, generator: o.generator) }
        } ?? []
        downsamplers = addDownsample
            ? [Downsample2D(channels: outChannels, useConv: true, padding: downsamplePadding, generator: o.generator)] : []
        super.init()
    }

    public func callAsFunction(_ input: Tensor, temb: Tensor, context: Tensor?, contextMask: Tensor?) -> (Tensor, [Tensor]) {
        var x = input
        var states: [Tensor] = []
        for (i, resnet) in resnets.enumerated() {
            x = resnet(x, temb: temb)
            if i < attentions.count { x = attentions[i](x, context: context, contextMask: contextMask) }
            states.append(x)
        }
        for d in downsamplers {
            x = d(x)
            states.append(x)
        }
        return (x, states)
    }
}

/// CrossAttnUpBlock2D / UpBlock2D: each resnet takes the running state concatenated with a
/// skip (newest first), a spatial transformer after it in the cross-attention kind, then a
/// nearest upsampler and a convolution.
public final class UNetConditionUpBlock: Module {
    public let resnets: [ResnetBlock2D]
    public let attentions: [Transformer2DModel]
    public let upsamplers: [Upsample2D]

    init(inChannels: Int, prevOutputChannels: Int, outChannels: Int, layers: Int, attention: CrossAttentionOptions?,
         transformerLayers: [Int], addUpsample: Bool, options o: BlockOptions) {
        resnets = (0..<layers).map { i in
            let skip = i == layers - 1 ? inChannels : outChannels
            let resnetIn = i == 0 ? prevOutputChannels : outChannels
            return o.resnet(resnetIn + skip, outChannels)
        }
        attentions = attention.map { a in
            transformerLayers.map { a.transformer(outChannels, layers: $0, groups: o.groups, generator: o.generator) }
        } ?? []
        upsamplers = addUpsample ? [Upsample2D(channels: outChannels, generator: o.generator)] : []
        super.init()
    }

    /// `skips` in the order they were produced (this block takes them from the end);
    /// `upsampleSize` the (height, width) to upsample to, twice the input's when nil.
    public func callAsFunction(_ input: Tensor, skips: [Tensor], temb: Tensor, context: Tensor?, contextMask: Tensor?,
                               upsampleSize: (Int, Int)? = nil) -> Tensor {
        var x = input
        for (i, resnet) in resnets.enumerated() {
            x = resnet(Tensor.concatenate([x, skips[skips.count - 1 - i]], axis: 1), temb: temb)
            if i < attentions.count { x = attentions[i](x, context: context, contextMask: contextMask) }
        }
        for u in upsamplers {
            let size = upsampleSize ?? (2 * x.shape[2], 2 * x.shape[3])
            x = u.conv(nearestResized(x, height: size.0, width: size.1))
        }
        return x
    }
}

/// UNetMidBlock2DCrossAttn: resnet, then (transformer, resnet); or diffusers' conditional
/// UNetMidBlock2D, a single resnet. Resnet outputs are divided by the mid block scale factor.
public final class UNetConditionMidBlock: Module {
    public let attentions: [Transformer2DModel]
    public let resnets: [ResnetBlock2D]

    init(channels: Int, attention: CrossAttentionOptions?, transformerLayers: Int, outputScale: Float, options o: BlockOptions) {
        if let attention {
            attentions = [attention.transformer(channels, layers: transformerLayers, groups: o.groups, generator: o.generator)]
            resnets = (0..<2).map { _ in o.resnet(channels, channels, outputScale: outputScale) }
        } else {
            attentions = []
            resnets = [o.resnet(channels, channels, outputScale: outputScale)]
        }
        super.init()
    }

    public func callAsFunction(_ input: Tensor, temb: Tensor, context: Tensor?, contextMask: Tensor?) -> Tensor {
        var x = resnets[0](input, temb: temb)
        for (attention, resnet) in zip(attentions, resnets.dropFirst()) {
            x = resnet(attention(x, context: context, contextMask: contextMask), temb: temb)
        }
        return x
    }
}

/// Nearest-neighbour resize of NCHW `x` (F.interpolate(mode="nearest")): source index
/// floor(i in / out) per axis; exact 2x uses the broadcast view, other sizes index.
func nearestResized(_ x: Tensor, height: Int, width: Int) -> Tensor {
    let (h, w) = (x.shape[2], x.shape[3])
    if height == 2 * h && width == 2 * w { return x.upsampledNearest() }
    func indices(_ input: Int, _ output: Int) -> Tensor {
        let scale = Float(input) / Float(output)
        return Tensor(integers: (0..<output).map { Swift.min(Int((Float($0) * scale).rounded(.down)), input - 1) })
    }
    var y = x
    if height != h { y = y.indexSelect(axis: 2, indices: indices(h, height)) }
    if width != w { y = y.indexSelect(axis: 3, indices: indices(w, width)) }
    return y
}
