import NeuralNetworks
import Tensors

/// diffusers' VAE `Decoder` (the LDM autoencoder's decoder, Rombach et al. 2022): conv_in
/// from the latents to the coarsest width, the mid block, one UpDecoderBlock2D per
/// resolution (layers_per_block + 1 resnets, doubling the size at all but the last), then
/// GroupNorm + SiLU and conv_out to the image channels. Activations run channels-last.
public final class VAEDecoder: Module {
    public let convIn: Conv2d
    public let midBlock: VAEMidBlock2D
    public let upBlocks: [UpDecoderBlock2D]
    public let convNormOut: GroupNorm
    public let convOut: Conv2d

    init(_ config: AutoencoderKLConfig, generator g: RandomGenerator?) {
        let reversed = Array(config.blockOutChannels.reversed())
        let o = VAEBlockOptions(groups: config.normNumGroups, generator: g)
        convIn = Conv2d(config.latentChannels, reversed[0], kernelSize: 3, padding: 1, generator: g)
        midBlock = VAEMidBlock2D(channels: reversed[0], addAttention: config.midBlockAddAttention, options: o)
        upBlocks = reversed.indices.map { i in
            UpDecoderBlock2D(inChannels: reversed[max(i - 1, 0)], outChannels: reversed[i], layers: config.layersPerBlock + 1,
                             addUpsample: i < reversed.count - 1, options: o)
        }
        convNormOut = GroupNorm(groups: config.normNumGroups, channels: reversed.last!, eps: VAEBlockOptions.eps)
        convOut = Conv2d(reversed.last!, config.outChannels, kernelSize: 3, padding: 1, generator: g)
        super.init()
    }

    /// Latents [N, latent_channels, h, w] (after post_quant_conv) -> images
    /// [N, out_channels, h f, w f], channels-last.
    public func callAsFunction(_ latents: Tensor) -> Tensor {
        var x = convIn(compute(latents).channelsLast())
        x = midBlock(x)
        for block in upBlocks { x = block(x) }
        return convOut(convNormOut(x, activation: .silu))
    }
}
