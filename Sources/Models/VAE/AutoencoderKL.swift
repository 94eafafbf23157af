import Foundation
import NeuralNetworks
import Tensors

/// diffusers' `AutoencoderKL`: the KL-regularised autoencoder of latent diffusion (Rombach
/// et al. 2022, "High-Resolution Image Synthesis with Latent Diffusion Models"), a
/// variational autoencoder (Kingma & Welling 2014) that maps images in [-1, 1] to a
/// Gaussian over latents 2^(levels - 1) times smaller per side and latents back to images.
/// The same config fields and parameter names as diffusers (`encoder.down_blocks.0.resnets.0.norm1.weight`,
/// `quant_conv.weight`, ...), so a Stable Diffusion `vae/` folder loads as it is.
///
///     moments = quant_conv(encoder(x)),  q(z | x) = N(mean, exp(logvar)),
///     x' = decoder(post_quant_conv(z)).
///
/// The diffusion model sees (z - shift_factor) x scaling_factor (`latents(of:)`,
/// `images(fromLatents:)`). Inference only; activations run channels-last.
public final class AutoencoderKL: Module {
    public let config: AutoencoderKLConfig
    public let encoder: VAEEncoder
    public let decoder: VAEDecoder
    public let quantConv: Conv2d?
    public let postQuantConv: Conv2d?
    /// Tiled encoding and decoding of inputs larger than one tile (diffusers'
    /// `enable_tiling()`); nil (the default): whole inputs at once.
    public var tiling: VAETiling?

    /// A model with fresh (PyTorch-default) weights; the config is validated first.
    public init(_ config: AutoencoderKLConfig, generator: RandomGenerator? = nil) throws {
        try config.validate()
        self.config = config
        encoder = VAEEncoder(config, generator: generator)
        decoder = VAEDecoder(config, generator: generator)
        let latent = config.latentChannels
        quantConv = config.useQuantConv ? Conv2d(2 * latent, 2 * latent, kernelSize: 1, generator: generator) : nil
        postQuantConv = config.usePostQuantConv ? Conv2d(latent, latent, kernelSize: 1, generator: generator) : nil
        super.init()
        eval()
    }

    /// Turns on tiling with diffusers' tile sizes (sample_size and sample_size / 2^(levels - 1),
    /// overlap 0.25), as `enable_tiling()`.
    public func enableTiling() { tiling = VAETiling(config) }

    // MARK: Encoding and decoding

    /// The posterior q(z | x) of images [N, in_channels, H, W] in [-1, 1] (H and W multiples
    /// of 2^(levels - 1)); tiled when `tiling` is on and the images exceed a tile.
    public func encode(_ images: Tensor) throws -> LatentDistribution {
        try checkInput(images, channels: config.inChannels, what: "images")
        let factor = config.downsamplingFactor
        let (h, w) = (images.shape[2], images.shape[3])
        guard h % factor == 0, w % factor == 0 else {
            throw ModelError("AutoencoderKL.encode: images of \(h)x\(w) pixels: height and width must be multiples of \(factor) (the VAE's downsampling factor)")
        }
        if let tiling, h > tiling.sampleTileSize || w > tiling.sampleTileSize {
            return LatentDistribution(moments: try tiledMoments(images, tiling: tiling))
        }
        try checkMemory(encoderPeakBytes(batch: images.shape[0], height: h, width: w), "encoding \(images.shape)")
        return LatentDistribution(moments: moments(images))
    }

    /// Images [N, out_channels, h f, w f] (f = 2^(levels - 1); about [-1, 1]) from latents
    /// [N, latent_channels, h, w] as the encoder makes them (not scaled: see
    /// `images(fromLatents:)`); tiled when `tiling` is on and the latents exceed a tile.
    /// The output is channels-last in memory.
    public func decode(_ latents: Tensor) throws -> Tensor {
        try checkInput(latents, channels: config.latentChannels, what: "latents")
        let (h, w) = (latents.shape[2], latents.shape[3])
        if let tiling, h > tiling.latentTileSize || w > tiling.latentTileSize {
            return try tiledDecode(latents, tiling: tiling)
        }
        try checkMemory(decoderPeakBytes(batch: latents.shape[0], height: h, width: w), "decoding \(latents.shape)")
        return decodeWhole(latents)
    }

    /// encoder + quant_conv: the moments [N, 2 x latent_channels, H / f, W / f] in the
    /// images' type (whatever the compute type).
    func moments(_ images: Tensor) -> Tensor {
        let x = encoder(images)
        return (quantConv.map { $0(x) } ?? x).to(images.dtype)
    }

    /// post_quant_conv + decoder on the whole input; the images in the latents' type.
    func decodeWhole(_ latents: Tensor) -> Tensor {
        let z = compute(latents).channelsLast()
        return decoder(postQuantConv.map { $0(z) } ?? z).to(latents.dtype)
    }

    // MARK: The diffusion model's latents

    /// (z - shift_factor) x scaling_factor: what the denoiser sees.
    public func scaled(_ z: Tensor) -> Tensor {
        let s = Float(config.scalingFactor)
        guard let shift = config.shiftFactor else { return z * s }
        return (z - Float(shift)) * s
    }

    /// latents / scaling_factor + shift_factor: back to what the decoder takes.
    public func unscaled(_ latents: Tensor) -> Tensor {
        let x = latents / Float(config.scalingFactor)
        guard let shift = config.shiftFactor else { return x }
        return x + Float(shift)
    }

    /// The denoiser's latents of images in [-1, 1], as the image-to-image pipelines make
    /// them: a draw from q(z | x) with `generator` (diffusers' `latent_dist.sample(generator)`),
    /// or its mode when `generator` is nil, then `scaled`.
    public func latents(of images: Tensor, generator: RandomGenerator?) throws -> Tensor {
        let posterior = try encode(images)
        return scaled(generator.map { posterior.sample(generator: $0) } ?? posterior.mode())
    }

    /// Images (about [-1, 1]) from the denoiser's latents: `decode(unscaled(latents))`, as the
    /// pipelines' `vae.decode(latents / scaling_factor + shift_factor)`.
    public func images(fromLatents latents: Tensor) throws -> Tensor {
        try decode(unscaled(latents))
    }

    // MARK: Checks

    func checkInput(_ x: Tensor, channels: Int, what: String) throws {
        guard x.rank == 4, x.shape[1] == channels, x.shape[0] >= 1, x.shape[2] >= 1, x.shape[3] >= 1 else {
            throw ModelError("AutoencoderKL: \(what) must be [N, \(channels), H, W], got \(x.shape)")
        }
        guard x.dtype.isFloatingPoint else { throw ModelError("AutoencoderKL: \(what) must be floating point, got \(x.dtype)") }
        let bad = x.nonFiniteCount
        if bad > 0 { throw ModelError("AutoencoderKL: \(what) hold \(bad) NaN or infinite value\(bad == 1 ? "" : "s")") }
    }

    func checkMemory(_ bytes: Double, _ what: String) throws {
        if let problem = MemoryBudget.shortfall(bytes, for: "AutoencoderKL " + what) { throw ModelError(problem) }
    }

    /// Float32 activations the decoder holds at its peak for [batch, latent, h, w]: at each
    /// resolution about four tensors of the widest width there (a resnet's input, its
    /// normalised copy, the conv outputs), the upsampled input of the next included. An
    /// estimate within a small factor, to refuse what cannot fit before allocating.
    public func decoderPeakBytes(batch: Int, height: Int, width: Int) -> Double {
        let reversed = Array(config.blockOutChannels.reversed())
        var peak = 0.0
        for (i, c) in reversed.enumerated() {
            let pixels = Double(height) * Double(width) * pow(4, Double(i))
            peak = max(peak, pixels * Double(max(c, reversed[max(i - 1, 0)])) * 4)
        }
        return Double(batch) * 4 * peak
    }

    /// The encoder's counterpart of `decoderPeakBytes` for images [batch, C, height, width].
    public func encoderPeakBytes(batch: Int, height: Int, width: Int) -> Double {
        var peak = 0.0
        for (i, c) in config.blockOutChannels.enumerated() {
            let pixels = Double(height) * Double(width) / pow(4, Double(i))
            peak = max(peak, pixels * Double(max(c, config.blockOutChannels[max(i - 1, 0)])) * 4)
        }
        return Double(batch) * 4 * peak
    }
}
