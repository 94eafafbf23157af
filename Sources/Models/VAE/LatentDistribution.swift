import Tensors

/// The encoder's posterior q(z | x) = N(mean, diag(exp(logvar))) (Kingma & Welling 2014,
/// "Auto-Encoding Variational Bayes"; diffusers' `DiagonalGaussianDistribution`): the
/// moments split in half along the channels, the log-variance clamped to [-30, 20] as
/// diffusers does, std = exp(logvar / 2).
public struct LatentDistribution: Sendable {
    /// The mean [N, latent_channels, h, w] (also the mode).
    public let mean: Tensor
    /// The log-variance, clamped to [-30, 20].
    public let logvar: Tensor
    /// exp(logvar / 2).
    public let std: Tensor

    /// From the encoder's (and quant_conv's) moments [N, 2 x latent_channels, h, w].
    public init(moments: Tensor) {
        precondition(moments.rank == 4 && moments.shape[1] % 2 == 0,
                     "LatentDistribution: moments must be [N, 2 x channels, h, w], got \(moments.shape)")
        let c = moments.shape[1] / 2
        mean = moments.sliced(axis: 1, start: 0, end: c)
        logvar = moments.sliced(axis: 1, start: c, end: 2 * c).clamped(min: -30, max: 20)
        std = (logvar * 0.5).exp()
    }

    /// The most likely latent: the mean (diffusers' `mode()`, `sample_mode="argmax"`).
    public func mode() -> Tensor { mean }

    /// z = mean + std * eps, eps drawn as one tensor of the mean's shape from `generator`
    /// (diffusers' `sample(generator)`: with a `TorchGenerator` seeded as
    /// `torch.Generator().manual_seed(k)`, the same latents).
    public func sample(generator: RandomGenerator) -> Tensor {
        mean + std * generator.normal(mean.shape, mean: 0, std: 1)
    }

    /// One generator per sample of the batch, each drawing that sample's eps [1, C, h, w]
    /// (diffusers' pipelines given a list of generators encode and sample image by image).
    public func sample(generators: [RandomGenerator]) -> Tensor {
        let n = mean.shape[0]
        precondition(generators.count == n, "LatentDistribution: \(generators.count) generators for a batch of \(n)")
        var one = mean.shape
        one[0] = 1
        let eps = Tensor.concatenate(generators.map { $0.normal(one, mean: 0, std: 1) }, axis: 0)
        return mean + std * eps
    }

    /// KL(q || N(0, I)) per sample: 0.5 sum(mean^2 + var - 1 - logvar) over C, h, w.
    public func klDivergence() -> Tensor {
        (mean.square() + logvar.exp() - 1 - logvar).sum(axes: [1, 2, 3]) * 0.5
    }
}
