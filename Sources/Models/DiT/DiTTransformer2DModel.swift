import Diffusion
import NeuralNetworks
import Tensors

/// diffusers' `DiTTransformer2DModel` (Peebles & Xie 2023, "Scalable Diffusion Models with
/// Transformers"): the same config fields, parameter names and forward pass.
///
///   h = patchify(x) + pos                        tokens [N, (H/p)(W/p), D]
///   h = DiT blocks (adaLN-Zero on c_b = t_emb_b(t) + y_emb_b(y), each block its own)
///   [shift, scale] = proj_out_1(silu(c_0));  h = proj_out_2(norm(h) (1 + scale) + shift)
///   out = unpatchify(h)                          [N, out_channels, H, W], channels-last
///
/// With learned sigma (out_channels = 2 in_channels) the output is [eps, variance values];
/// the `Denoiser` conformance returns the eps half (what DDIM and the other samplers take),
/// `fullOutput` a denoiser returning both (for DDPM's "learned_range" variance).
public final class DiTTransformer2DModel: Module, Denoiser {
    public let config: DiTTransformer2DConfig
    public let posEmbed: PatchEmbed
    public let transformerBlocks: [DiTTransformerBlock]
    public let normOut: LayerNorm
    public let projOut1: Linear
    public let projOut2: Linear
    /// Draws the label dropout while training (diffusers' 10% null labels for guidance).
    public let labelDropGenerator: RandomGenerator
    /// Whether the model replaces labels by the null class itself while training (diffusers'
    /// behaviour). A trainer that draws the dropout itself (Diffuse's `Trainer`, per image from
    /// the step's seeded generators, so that a resumed run repeats it) turns this off.
    public var dropsLabelsWhileTraining = true

    public override class var keyOverrides: [String: String] { ["projOut1": "proj_out_1", "projOut2": "proj_out_2"] }

    /// A model with fresh (PyTorch-default, as diffusers) weights; throws for configs it
    /// cannot build. `labelDropGenerator` draws the training-time label dropout.
    public init(_ config: DiTTransformer2DConfig, generator: RandomGenerator? = nil,
                labelDropGenerator: RandomGenerator = PhiloxGenerator(seed: 0)) throws {
        try config.validate()
        self.config = config
        let g = generator
        let d = config.innerDim
        posEmbed = PatchEmbed(sampleSize: config.sampleSize, patchSize: config.patchSize, inChannels: config.inChannels,
                              dim: d, generator: g)
        let activation = FeedForwardActivation(rawValue: config.activationFn)!
        transformerBlocks = (0..<config.numLayers).map { _ in
            DiTTransformerBlock(dim: d, heads: config.numAttentionHeads, headDim: config.attentionHeadDim,
                                numClasses: config.numEmbedsAdaNorm!, dropout: Float(config.dropout), activation: activation,
                                attentionBias: config.attentionBias, normElementwiseAffine: config.normElementwiseAffine,
                                normEps: Float(config.normEps), generator: g)
        }
        normOut = LayerNorm(d, eps: 1e-6, elementwiseAffine: false)
        projOut1 = Linear(d, 2 * d, generator: g)
        projOut2 = Linear(d, config.patchSize * config.patchSize * config.resolvedOutChannels, generator: g)
        self.labelDropGenerator = labelDropGenerator
        super.init()
    }

    /// adaLN-Zero initialisation (Peebles & Xie 2023, sec. 3.2): zeroes every block's
    /// modulation layer (`norm1.linear`, so each block starts as the identity: its gates are 0)
    /// and the output layers (`proj_out_1`, `proj_out_2`, so the model starts predicting 0), as
    /// the paper's code does for training from scratch. The other weights keep PyTorch's
    /// default initialisation (diffusers' own; the paper's code uses Xavier for the linears).
    public func zeroInitializeModulation() throws {
        var zeros: [String: Tensor] = [:]
        for (key, value) in stateDict()
        where key.hasPrefix("proj_out_") || (key.hasPrefix("transformer_blocks.") && key.contains(".norm1.linear.")) {
            zeros[key] = Tensor.zeros(value.shape)
        }
        try load(stateDict: zeros, strict: false)
    }

    /// The label of the null class (unconditional), the last row of the class tables.
    public var nullClassLabel: Int { transformerBlocks[0].norm1.emb.classEmbedder.nullLabel ?? config.numEmbedsAdaNorm! }

    /// The full output [N, out_channels, H, W] for `sample` [N, in_channels, H, W] (H and W
    /// multiples of the patch size) at `timesteps` (one per sample, or one for all) and
    /// integer `classLabels` [N] (`nullClassLabel` for unconditional). While training, labels
    /// are replaced by the null class with probability 0.1, once per sample for all blocks
    /// (diffusers draws again in each block; the DiT paper drops a label once).
    public func callAsFunction(_ sample: Tensor, timesteps: Tensor, classLabels: Tensor) -> Tensor {
        let p = config.patchSize
        precondition(sample.rank == 4 && sample.shape[1] == config.inChannels && sample.shape[2] % p == 0 && sample.shape[3] % p == 0,
                     "DiTTransformer2DModel: sample must be [N, \(config.inChannels), H, W] with H, W multiples of \(p), got \(sample.shape)")
        let n = sample.shape[0]
        var t = timesteps.to(.float32).reshaped(-1)
        if t.count == 1 && n > 1 { t = t.expanded([n]) }
        precondition(t.count == n, "DiTTransformer2DModel: \(t.count) timesteps for a batch of \(n)")
        var labels = classLabels.reshaped(-1)
        precondition(labels.dtype.isInteger && labels.count == n,
                     "DiTTransformer2DModel: class labels must be \(n) integers, got \(classLabels.dtype) \(classLabels.shape)")
        let embedder = transformerBlocks[0].norm1.emb
        if isTraining && dropsLabelsWhileTraining && embedder.classEmbedder.dropoutProbability > 0 {
            labels = embedder.classEmbedder.droppingLabels(labels, generator: labelDropGenerator)
        }

        var h = posEmbed(compute(sample).channelsLast())
        let features = CombinedTimestepLabelEmbeddings.features(t)
        var first: Tensor? = nil
        for block in transformerBlocks {
            let c = block.norm1.emb(features: features, labels: labels)
            if first == nil { first = c }
            h = block(h, conditioning: c)
        }
        let modulation = projOut1(first!.silu()).chunked(2, axis: 1).map { $0.reshaped(n, 1, -1) }
        h = projOut2(normOut(h) * (modulation[1] + 1) + modulation[0])
        return unpatchify(h, height: sample.shape[2] / p, width: sample.shape[3] / p)
    }

    /// Tokens [N, h w, p p C] -> [N, C, h p, w p] (einsum nhwpqc -> nchpwq), channels-last.
    func unpatchify(_ tokens: Tensor, height h: Int, width w: Int) -> Tensor {
        let (n, p, c) = (tokens.shape[0], config.patchSize, config.resolvedOutChannels)
        let nhwc = tokens.reshaped(n, h, w, p, p, c).permuted(0, 1, 3, 2, 4, 5).contiguous().reshaped(n, h * p, w * p, c)
        return nhwc.permuted(0, 3, 1, 2)
    }

    /// `Denoiser`: class labels from the conditioning (the null class when none are given);
    /// with learned sigma, only the prediction half (the first in_channels).
    public func callAsFunction(_ sample: Tensor, timesteps: Tensor, conditioning: Conditioning?) -> Tensor {
        let out = fullOutput(sample, timesteps: timesteps, conditioning: conditioning)
        return config.learnsSigma ? out.sliced(axis: 1, start: 0, end: config.inChannels) : out
    }

    /// The whole output, prediction and learned variance values, for the conditioning.
    public func fullOutput(_ sample: Tensor, timesteps: Tensor, conditioning: Conditioning?) -> Tensor {
        let labels = conditioning?.classLabels
            ?? Tensor(integers: Array(repeating: nullClassLabel, count: sample.shape[0]))
        return callAsFunction(sample, timesteps: timesteps, classLabels: labels)
    }

    /// A `Denoiser` that returns the full output (e.g. for DDPM with learned variance).
    public var withLearnedVariance: DiTFullOutput { DiTFullOutput(model: self) }
}

/// A DiT as a `Denoiser` returning the full output, learned variance included.
public struct DiTFullOutput: Denoiser {
    public let model: DiTTransformer2DModel
    public func callAsFunction(_ sample: Tensor, timesteps: Tensor, conditioning: Conditioning?) -> Tensor {
        model.fullOutput(sample, timesteps: timesteps, conditioning: conditioning)
    }
}
