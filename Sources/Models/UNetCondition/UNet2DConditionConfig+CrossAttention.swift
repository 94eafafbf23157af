extension UNet2DConditionConfig {
    /// The cross-attention version of a UNet2DModel architecture: the same resolutions,
    /// channels, resnets and norms, with every attention block (AttnDownBlock2D, AttnUpBlock2D,
    /// the attention mid block) a transformer that also attends to a context of width
    /// `crossAttentionDim` (CrossAttnDownBlock2D, CrossAttnUpBlock2D, UNetMidBlock2DCrossAttn).
    /// Heads keep the UNet2DModel's head width (`attention_head_dim` there is a width, here a
    /// head count). The model in a text-to-image run (`TextToImageModel`).
    public init(crossAttentionVersionOf u: UNet2DConfig, crossAttentionDim: Int) {
        self.init()
        sampleSize = u.sampleSize.map { .one($0) }
        inChannels = u.inChannels
        outChannels = u.outChannels
        centerInputSample = u.centerInputSample
        flipSinToCos = u.flipSinToCos
        freqShift = u.freqShift
        downBlockTypes = u.downBlockTypes.map { $0 == "AttnDownBlock2D" ? "CrossAttnDownBlock2D" : $0 }
        upBlockTypes = u.upBlockTypes.map { $0 == "AttnUpBlock2D" ? "CrossAttnUpBlock2D" : $0 }
        midBlockType = u.midBlockType == nil ? nil : u.addAttention ? "UNetMidBlock2DCrossAttn" : "UNetMidBlock2D"
        blockOutChannels = u.blockOutChannels
        layersPerBlock = .one(u.layersPerBlock)
        downsamplePadding = u.downsamplePadding
        midBlockScaleFactor = u.midBlockScaleFactor
        dropout = u.dropout
        actFn = u.actFn
        normNumGroups = u.normNumGroups
        normEps = u.normEps
        self.crossAttentionDim = .one(crossAttentionDim)
        let width = u.attentionHeadDim ?? 8
        attentionHeadDim = .many(u.blockOutChannels.map { Swift.max($0 / width, 1) })
        resnetTimeScaleShift = u.resnetTimeScaleShift
        timeEmbeddingType = u.timeEmbeddingType
        timeEmbeddingDim = u.timeEmbeddingDim
        classEmbedType = u.classEmbedType
        numClassEmbeds = u.numClassEmbeds
    }
}
