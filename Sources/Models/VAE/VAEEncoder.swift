import NeuralNetworks
import Tensors

/// diffusers' VAE `Encoder` (the LDM autoencoder's encoder, Rombach et al. 2022, after
/// Esser et al.'s VQGAN): conv_in, one DownEncoderBlock2D per resolution (halving the size
/// at all but the last), the mid block, then GroupNorm + SiLU and conv_out to
/// 2 x latent_channels: the mean and log-variance of q(z | x) (Kingma & Welling 2014).
/// Activations run channels-last.
public final class VAEEncoder: Module {
    public let convIn: Conv2d
    public let downBlocks: [DownEncoderBlock2D]
    public let midBlock: VAEMidBlock2D
    public let convNormOut: GroupNorm
    public let convOut: Conv2d

    init(_ config: AutoencoderKLConfig, generator g: RandomGenerator?) {
        let channels = config.blockOutChannels
        let o = VAEBlockOptions(groups: config.normNumGroups, generator: g)
        convIn = Conv2d(config.inChannels, channels[0], kernelSize: 3, padding: 1, generator: g)
        downBlocks = channels.indices.map { i in
            DownEncoderBlock2D(inChannels: channels[max(i - 1, 0)], outChannels: channels[i], layers: config.layersPerBlock,
                               addDownsample: i < channels.count - 1, options: o)
        }
        midBlock = VAEMidBlock2D(channels: channels.last!, addAttention: config.midBlockAddAttention, options: o)
        convNormOut = GroupNorm(groups: config.normNumGroups, channels: channels.last!, eps: VAEBlockOptions.eps)
        convOut = Conv2d(channels.last!, 2 * config.latentChannels, kernelSize: 3, padding: 1, generator: g)
        super.init()
    }

    /// Images [N, in_channels, H, W] -> moments [N, 2 x latent_channels, H / f, W / f]
    /// (f = 2^(levels - 1)), channels-last.
    public func callAsFunction(_ images: Tensor) -> Tensor {
        var x = convIn(compute(images).channelsLast())
        for block in downBlocks { x = block(x) }
        x = midBlock(x)
        return convOut(convNormOut(x, activation: .silu))
    }
}
