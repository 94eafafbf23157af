import Diffusion
import NeuralNetworks
import Tensors

/// diffusers' `UNet2DConditionModel` (the latent-diffusion U-Net of Rombach et al. 2022 as
/// diffusers builds it) for the block kinds CrossAttnDownBlock2D, DownBlock2D,
/// UNetMidBlock2DCrossAttn (or UNetMidBlock2D / none), UpBlock2D and CrossAttnUpBlock2D:
/// the same config fields, parameter names and forward pass, so a diffusers folder loads as
/// it is.
///
///   emb = time_embedding(sinusoid(t)) + class_embedding(labels)   (or concatenated)
///   h = conv_in(x); down blocks (resnets conditioned on emb, spatial transformers
///   attending to encoder_hidden_states), mid block, up blocks with the skips;
///   out = conv_out(silu(conv_norm_out(h)))
///
/// Activations run channels-last, with group norm + SiLU and residual adds fused.
public final class UNet2DConditionModel: Module, Denoiser {
    public let config: UNet2DConditionConfig
    public let convIn: Conv2d
    public let timeProj: Timesteps
    public let timeEmbedding: TimestepEmbedding
    public let encoderHidProj: Linear?
    /// nn.Embedding, TimestepEmbedding ("timestep", "projection"), Linear ("simple_projection")
    /// or Identity.
    public let classEmbedding: Module?
    public let downBlocks: [UNetConditionDownBlock]
    public let midBlock: UNetConditionMidBlock?
    public let upBlocks: [UNetConditionUpBlock]
    public let convNormOut: GroupNorm
    public let convOut: Conv2d

    /// A model with fresh (PyTorch-default) weights; throws for configs it cannot build.
    public init(_ config: UNet2DConditionConfig, generator: RandomGenerator? = nil) throws {
        try config.validate()
        self.config = config
        let g = generator
        let c = config.blockOutChannels, n = config.blockCount
        let embedDim = config.timeEmbedDim
        let groups = config.normNumGroups!
        convIn = Conv2d(config.inChannels, c[0], kernelSize: Int2(config.convInKernel),
                        padding: Int2((config.convInKernel - 1) / 2), generator: g)
        timeProj = Timesteps(channels: config.timestepInputDim, flipSinToCos: config.flipSinToCos, shift: Double(config.freqShift))
        timeEmbedding = TimestepEmbedding(config.timestepInputDim, embedDim, generator: g)
        encoderHidProj = config.encoderHidDim.map { Linear($0, config.crossAttentionDim[0], generator: g) }
        switch (config.classEmbedType, config.numClassEmbeds) {
        case (nil, let k?): classEmbedding = Embedding(k, embedDim, generator: g)
        case ("timestep", _): classEmbedding = TimestepEmbedding(config.timestepInputDim, embedDim, generator: g)
        case ("identity", _): classEmbedding = Identity()
        case ("projection", _): classEmbedding = TimestepEmbedding(config.projectionClassEmbeddingsInputDim!, embedDim, generator: g)
        case ("simple_projection", _): classEmbedding = Linear(config.projectionClassEmbeddingsInputDim!, embedDim, generator: g)
        default: classEmbedding = nil
        }
        let options = BlockOptions(tembChannels: config.blocksTimeEmbedDim, groups: groups, eps: Float(config.normEps),
                                   dropout: Float(config.dropout), scaleShift: config.resnetTimeScaleShift == "scale_shift",
                                   headDim: nil, generator: g)
        func attention(_ i: Int, _ present: Bool) -> CrossAttentionOptions? {
            present ? CrossAttentionOptions(heads: config.heads(block: i), crossAttentionDim: config.crossAttentionDim[i],
                                            useLinearProjection: config.useLinearProjection,
                                            onlyCrossAttention: config.onlyCrossAttention[i]) : nil
        }
        var output = c[0]
        downBlocks = (0..<n).map { i in
            let input = output
            output = c[i]
            return UNetConditionDownBlock(inChannels: input, outChannels: output, layers: config.layers(block: i),
                                          attention: attention(i, config.hasCrossAttention(downBlock: i)),
                                          transformerLayers: config.downTransformerLayers(block: i), addDownsample: i < n - 1,
                                          downsamplePadding: config.downsamplePadding, options: options)
        }
        midBlock = config.midBlockType.map { kind in
            let cross = UNet2DConditionConfig.canonical(kind) == "UNetMidBlock2DCrossAttn"
            // diffusers passes the mid block no only_cross_attention flag.
            let a = cross ? CrossAttentionOptions(heads: config.heads(block: n - 1), crossAttentionDim: config.crossAttentionDim[n - 1],
                                                  useLinearProjection: config.useLinearProjection, onlyCrossAttention: false) : nil
            return UNetConditionMidBlock(channels: c[n - 1], attention: a, transformerLayers: config.midTransformerLayers,
                                         outputScale: Float(config.midBlockScaleFactor), options: options)
        }
        output = c[n - 1]
        upBlocks = (0..<n).map { i in
            let previous = output
            output = c[n - 1 - i]
            let input = c[Swift.max(n - 2 - i, 0)]
            let d = n - 1 - i  // the matching down block: per-block settings are read reversed
            return UNetConditionUpBlock(inChannels: input, prevOutputChannels: previous, outChannels: output,
                                        layers: config.layers(block: d) + 1, attention: attention(d, config.hasCrossAttention(upBlock: i)),
                                        transformerLayers: config.upTransformerLayers(block: i), addUpsample: i < n - 1, options: options)
        }
        convNormOut = GroupNorm(groups: groups, channels: c[0], eps: Float(config.normEps))
        convOut = Conv2d(c[0], config.outChannels, kernelSize: Int2(config.convOutKernel),
                         padding: Int2((config.convOutKernel - 1) / 2), generator: g)
        super.init()
    }

    /// The model output (eps, x0 or v, as trained) for `sample` [N, C, H, W] at `timesteps`
    /// (one per sample, or one for all), attending to `encoderHiddenStates` [N, L, D]
    /// (required when the model has cross-attention), with `classLabels` when the model has
    /// a class embedding (integer labels for a table, floats [N, E] for projections).
    /// `encoderAttentionMask` [N, L] (1 keep, 0 drop) masks context tokens in the
    /// cross-attentions, as diffusers' `encoder_attention_mask`.
    public func callAsFunction(_ sample: Tensor, timesteps: Tensor, encoderHiddenStates: Tensor?,
                               classLabels: Tensor? = nil, encoderAttentionMask: Tensor? = nil) -> Tensor {
        precondition(sample.rank == 4 && sample.shape[1] == config.inChannels,
                     "UNet2DConditionModel: sample must be [N, \(config.inChannels), H, W], got \(sample.shape)")
        let n = sample.shape[0]
        var t = timesteps.to(.float32).reshaped(-1)
        if t.count == 1 && n > 1 { t = t.expanded([n]) }
        precondition(t.count == n, "UNet2DConditionModel: \(t.count) timesteps for a batch of \(n)")
        let emb = embedding(t, classLabels: classLabels, batch: n)
        let (context, mask) = prepareContext(encoderHiddenStates, mask: encoderAttentionMask, batch: n)

        var x = convIn(compute(config.centerInputSample ? sample * 2 - 1 : sample).channelsLast())
        var skips = [x]
        for block in downBlocks {
            let (y, states) = block(x, temb: emb, context: context, contextMask: mask)
            x = y
            skips += states
        }
        if let midBlock { x = midBlock(x, temb: emb, context: context, contextMask: mask) }
        for (i, block) in upBlocks.enumerated() {
            let count = block.resnets.count
            let mine = Array(skips.suffix(count))
            skips.removeLast(count)
            // The upsampler restores the size of the next skip (diffusers' upsample_size),
            // which is 2x unless the input size is not divisible by 2^(blocks - 1).
            let size = i < upBlocks.count - 1 ? (skips[skips.count - 1].shape[2], skips[skips.count - 1].shape[3]) : nil
            x = block(x, skips: mine, temb: emb, context: context, contextMask: mask, upsampleSize: size)
        }
        return convOut(convNormOut(x, activation: .silu))
    }

    /// `Denoiser`: `context` as encoder_hidden_states, `classLabels` as class labels, image
    /// channels appended to the sample (as Stable Diffusion's inpainting U-Net takes them).
    public func callAsFunction(_ sample: Tensor, timesteps: Tensor, conditioning: Conditioning?) -> Tensor {
        callAsFunction(conditioning?.modelInput(sample) ?? sample, timesteps: timesteps, encoderHiddenStates: conditioning?.context,
                       classLabels: conditioning?.classLabels)
    }

    /// emb = time_embedding(sinusoid(t)) (+ or concatenated with the class embedding),
    /// then `time_embedding_act_fn`.
    func embedding(_ t: Tensor, classLabels: Tensor?, batch n: Int) -> Tensor {
        var emb = timeEmbedding(timeProj(t))
        if let classEmbedding {
            guard let labels = classLabels else {
                preconditionFailure("UNet2DConditionModel: this model needs class labels (class_embed_type \(config.classEmbedType ?? "null"), num_class_embeds \(config.numClassEmbeds.map { "\($0)" } ?? "null"))")
            }
            precondition(labels.shape.first == n, "UNet2DConditionModel: \(labels.shape) class labels for a batch of \(n)")
            let classEmb: Tensor
            switch classEmbedding {
            case let table as Embedding: classEmb = table(labels.reshaped(-1))
            case let mlp as TimestepEmbedding:
                classEmb = config.classEmbedType == "timestep" ? mlp(timeProj(labels.to(.float32).reshaped(-1))) : mlp(labels.to(.float32))
            case let linear as Linear: classEmb = linear(labels.to(.float32))
            default: classEmb = labels.to(.float32)
            }
            emb = config.classEmbeddingsConcat ? Tensor.concatenate([emb, classEmb], axis: 1) : emb + classEmb
        } else {
            precondition(classLabels == nil, "UNet2DConditionModel: class labels given to a model without class conditioning")
        }
        switch config.timeEmbeddingActFn {
        case "silu"?, "swish"?: emb = emb.silu()
        case "gelu"?: emb = emb.gelu()
        default: break
        }
        return emb
    }

    /// The context after `encoder_hid_proj`, and the mask as an additive bias [N, 1, 1, L]:
    /// (1 - mask) * -10000, as diffusers.
    func prepareContext(_ states: Tensor?, mask: Tensor?, batch n: Int) -> (Tensor?, Tensor?) {
        guard let states else {
            precondition(!config.usesContext, "UNet2DConditionModel: this model attends to encoder_hidden_states [N, L, D]; none given")
            return (nil, nil)
        }
        precondition(states.rank == 3 && states.shape[0] == n,
                     "UNet2DConditionModel: encoder_hidden_states must be [\(n), L, D], got \(states.shape)")
        let context = encoderHidProj.map { $0(states) } ?? states
        guard let mask else { return (context, nil) }
        precondition(mask.shape == [n, states.shape[1]],
                     "UNet2DConditionModel: encoder_attention_mask must be [\(n), \(states.shape[1])], got \(mask.shape)")
        return (context, ((1 - mask.to(.float32)) * -10000).reshaped(n, 1, 1, states.shape[1]))
    }
}
