import Diffusion
import NeuralNetworks
import Tensors

/// diffusers' `UNet2DModel` (Ho et al. 2020's U-Net, as diffusers builds it): the same
/// config fields, the same parameter names, the same forward pass, so a diffusers model
/// folder loads as it is. Activations run channels-last.
public final class UNet2DModel: Module, Denoiser {
    public let config: UNet2DConfig
    public let convIn: Conv2d
    public let timeProj: Module
    public let timeEmbedding: TimestepEmbedding
    public let classEmbedding: Module?
    public let downBlocks: [UNetDownBlock]
    public let midBlock: UNetMidBlock?
    public let upBlocks: [UNetUpBlock]
    public let convNormOut: GroupNorm
    public let convOut: Conv2d

    /// A model with fresh (PyTorch-default) weights.
    public init(_ config: UNet2DConfig, generator: RandomGenerator? = nil) throws {
        try config.validate()
        self.config = config
        let channels = config.blockOutChannels
        let embedDim = config.timeEmbedDim
        let g = generator
        convIn = Conv2d(config.inChannels, channels[0], kernelSize: 3, padding: 1, generator: g)
        let timeInput: Int
        if config.timeEmbeddingType == "fourier" {
            timeProj = GaussianFourierProjection(size: channels[0], scale: 16, generator: g)
            timeInput = 2 * channels[0]
        } else {
            timeProj = Timesteps(channels: channels[0], flipSinToCos: config.flipSinToCos, shift: Double(config.freqShift))
            timeInput = channels[0]
        }
        timeEmbedding = TimestepEmbedding(timeInput, embedDim, generator: g)
        switch (config.classEmbedType, config.numClassEmbeds) {
        case (nil, let n?): classEmbedding = Embedding(n, embedDim, generator: g)
        case ("timestep", _): classEmbedding = TimestepEmbedding(timeInput, embedDim, generator: g)
        case ("identity", _): classEmbedding = Identity()
        default: classEmbedding = nil
        }
        let options = BlockOptions(tembChannels: embedDim, groups: config.normNumGroups, eps: Float(config.normEps),
                                   dropout: Float(config.dropout), scaleShift: config.resnetTimeScaleShift == "scale_shift",
                                   headDim: config.attentionHeadDim, generator: g)
        var output = channels[0]
        var downs: [UNetDownBlock] = []
        for (i, kind) in config.downBlockTypes.enumerated() {
            let input = output
            output = channels[i]
            downs.append(UNetDownBlock(kind, inChannels: input, outChannels: output, layers: config.layersPerBlock,
                                       addDownsample: i < channels.count - 1, options: options,
                                       downsamplePadding: config.downsamplePadding, downsampleType: config.downsampleType))
        }
        downBlocks = downs
        midBlock = config.midBlockType == nil ? nil : UNetMidBlock(
            channels: channels[channels.count - 1], options: options, outputScale: Float(config.midBlockScaleFactor),
            addAttention: config.addAttention,
            attentionGroups: config.attnNormNumGroups ?? (config.resnetTimeScaleShift == "default" ? config.normNumGroups : nil))
        let reversed = Array(channels.reversed())
        output = reversed[0]
        var ups: [UNetUpBlock] = []
        for (i, kind) in config.upBlockTypes.enumerated() {
            let previous = output
            output = reversed[i]
            let input = reversed[Swift.min(i + 1, channels.count - 1)]
            ups.append(UNetUpBlock(kind, inChannels: input, prevOutputChannels: previous, outChannels: output,
                                   layers: config.layersPerBlock + 1, addUpsample: i < channels.count - 1, options: options,
                                   upsampleType: config.upsampleType))
        }
        upBlocks = ups
        convNormOut = GroupNorm(groups: config.normNumGroups, channels: channels[0], eps: Float(config.normEps))
        convOut = Conv2d(channels[0], config.outChannels, kernelSize: 3, padding: 1, generator: g)
        super.init()
    }

    /// The model output (eps, x0 or v, as trained) for `sample` [N, C, H, W] at `timesteps`
    /// (one per sample, or one for all), with class labels when the model has them.
    public func callAsFunction(_ sample: Tensor, timesteps: Tensor, classLabels: Tensor? = nil) -> Tensor {
        precondition(sample.rank == 4 && sample.shape[1] == config.inChannels,
                     "UNet2DModel: sample must be [N, \(config.inChannels), H, W], got \(sample.shape)")
        let n = sample.shape[0]
        var t = timesteps.to(.float32).reshaped(-1)
        if t.count == 1 && n > 1 { t = t.expanded([n]) }
        precondition(t.count == n, "UNet2DModel: \(t.count) timesteps for a batch of \(n)")
        var x = config.centerInputSample ? sample * 2 - 1 : sample
        let features = (timeProj as? Timesteps).map { $0(t) } ?? (timeProj as! GaussianFourierProjection)(t)
        var emb = timeEmbedding(features)
        if let classEmbedding {
            guard let labels = classLabels else { preconditionFailure("UNet2DModel: this model needs class labels") }
            switch classEmbedding {
            case let table as Embedding: emb = emb + table(labels)
            case let proj as TimestepEmbedding:
                emb = emb + proj((timeProj as? Timesteps).map { $0(labels) } ?? (timeProj as! GaussianFourierProjection)(labels))
            default: emb = emb + labels.to(.float32)
            }
        } else {
            precondition(classLabels == nil, "UNet2DModel: class labels given to a model without class conditioning")
        }
        x = convIn(compute(x).channelsLast())
        var skips = [x]
        for block in downBlocks {
            let (y, states) = block(x, temb: emb)
            x = y
            skips += states
        }
        if let midBlock { x = midBlock(x, temb: emb) }
        for block in upBlocks {
            let count = block.resnets.count
            x = block(x, skips: Array(skips.suffix(count)), temb: emb)
            skips.removeLast(count)
        }
        x = convOut(convNormOut(x, activation: .silu))
        if config.timeEmbeddingType == "fourier" { x = x / t.reshaped(n, 1, 1, 1) }
        return x
    }

    /// `Denoiser`: class labels from the conditioning, and its image channels appended to
    /// the sample (SR3, inpainting models).
    public func callAsFunction(_ sample: Tensor, timesteps: Tensor, conditioning: Conditioning?) -> Tensor {
        callAsFunction(conditioning?.modelInput(sample) ?? sample, timesteps: timesteps, classLabels: conditioning?.classLabels)
    }

    /// The channels of the samples the model denoises: its output channels (half of them
    /// with a learned variance), fewer than its input channels when conditioning images are
    /// appended to the sample.
    public var sampleChannels: Int {
        config.outChannels == 2 * config.inChannels ? config.inChannels : config.outChannels
    }
}

/// A module that passes its input through (torch.nn.Identity).
public final class Identity: Module {
    public override init() { super.init() }
}
