/// What `UNet2DConditionModel` builds: refused values are named by their `config.json` field.
extension UNet2DConditionConfig {
    static let downKinds = ["CrossAttnDownBlock2D", "DownBlock2D"]
    static let upKinds = ["CrossAttnUpBlock2D", "UpBlock2D"]
    static let midKinds = ["UNetMidBlock2DCrossAttn", "UNetMidBlock2D"]

    /// diffusers' "UNetRes" prefix is an alias (`UNetResDownBlock2D` = `DownBlock2D`).
    static func canonical(_ kind: String) -> String { kind.hasPrefix("UNetRes") ? String(kind.dropFirst(7)) : kind }

    /// Whether down block i has cross-attention transformers.
    public func hasCrossAttention(downBlock i: Int) -> Bool { Self.canonical(downBlockTypes[i]) == "CrossAttnDownBlock2D" }
    /// Whether up block i (from the coarsest) has cross-attention transformers.
    public func hasCrossAttention(upBlock i: Int) -> Bool { Self.canonical(upBlockTypes[i]) == "CrossAttnUpBlock2D" }

    /// Whether any block attends to `encoder_hidden_states`.
    public var usesContext: Bool {
        (0..<blockCount).contains { hasCrossAttention(downBlock: $0) || hasCrossAttention(upBlock: $0) }
            || midBlockType.map(Self.canonical) == "UNetMidBlock2DCrossAttn"
    }

    public func validate() throws {
        let n = blockCount
        guard n > 0 else { throw ModelError("block_out_channels is empty") }
        guard downBlockTypes.count == n, upBlockTypes.count == n else {
            throw ModelError("down_block_types (\(downBlockTypes.count)), up_block_types (\(upBlockTypes.count)) and block_out_channels (\(n)) must have the same length")
        }
        for t in downBlockTypes where !Self.downKinds.contains(Self.canonical(t)) {
            throw ModelError("down_block_types: \(t) is not supported (\(Self.downKinds.joined(separator: ", ")))")
        }
        for t in upBlockTypes where !Self.upKinds.contains(Self.canonical(t)) {
            throw ModelError("up_block_types: \(t) is not supported (\(Self.upKinds.joined(separator: ", ")))")
        }
        if let m = midBlockType, !Self.midKinds.contains(Self.canonical(m)) {
            throw ModelError("mid_block_type: \(m) is not supported (\(Self.midKinds.joined(separator: ", ")) or null)")
        }
        func perBlock<T>(_ name: String, _ value: OneOrMany<T>) throws {
            if let c = value.count, c != n { throw ModelError("\(name) has \(c) entries for \(n) blocks") }
        }
        try perBlock("only_cross_attention", onlyCrossAttention)
        try perBlock("layers_per_block", layersPerBlock)
        try perBlock("cross_attention_dim", crossAttentionDim)
        try perBlock("attention_head_dim", attentionHeadDim)
        try perBlock("transformer_layers_per_block", transformerLayersPerBlock)
        if numAttentionHeads != nil {
            throw ModelError("num_attention_heads must be null: diffusers refuses it too (the head count is attention_head_dim)")
        }
        for i in 0..<n {
            guard layers(block: i) >= 1 else { throw ModelError("layers_per_block must be at least 1, got \(layers(block: i))") }
            guard crossAttentionDim[i] >= 1 else { throw ModelError("cross_attention_dim must be positive, got \(crossAttentionDim[i])") }
            // diffusers' head width is channels / heads, rounded down (proj_in narrows to heads x width).
            let heads = heads(block: i)
            guard heads >= 1, heads <= blockOutChannels[i] else {
                throw ModelError("attention_head_dim (the head count) \(heads) must be between 1 and block_out_channels[\(i)] = \(blockOutChannels[i])")
            }
            if let c = transformerLayersPerBlock[i].count, c != layers(block: i) {
                throw ModelError("transformer_layers_per_block[\(i)] has \(c) entries for \(layers(block: i)) layers")
            }
            if transformerLayersPerBlock[i].count != nil && reverseTransformerLayersPerBlock == nil {
                throw ModelError("reverse_transformer_layers_per_block is required when transformer_layers_per_block has a list per block")
            }
            if downTransformerLayers(block: i).contains(where: { $0 < 1 }) {
                throw ModelError("transformer_layers_per_block must be at least 1")
            }
        }
        if let reverse = reverseTransformerLayersPerBlock {
            guard reverse.count == n else { throw ModelError("reverse_transformer_layers_per_block has \(reverse.count) entries for \(n) blocks") }
            for i in 0..<n where reverse[i].count != layers(block: n - 1 - i) + 1 {
                throw ModelError("reverse_transformer_layers_per_block[\(i)] has \(reverse[i].count) entries for \(layers(block: n - 1 - i) + 1) layers")
            }
        }
        guard let groups = normNumGroups else {
            throw ModelError("norm_num_groups null (no output norm) is not supported")
        }
        try ConfigChecks.atLeast(1, "norm_num_groups", groups)
        try ConfigChecks.eachAtLeast(1, "block_out_channels", blockOutChannels)
        try ConfigChecks.positive("norm_eps", normEps)
        try ConfigChecks.positive("mid_block_scale_factor", midBlockScaleFactor)
        try ConfigChecks.probability("dropout", dropout)
        try ConfigChecks.atLeast(1, "time_embedding_dim", timeEmbeddingDim)
        try ConfigChecks.atLeast(0, "downsample_padding", downsamplePadding)
        if let size = sampleSize {
            switch size {
            case .one(let s): try ConfigChecks.atLeast(1, "sample_size", s)
            case .many(let s): try ConfigChecks.eachAtLeast(1, "sample_size", s)
            }
        }
        for (i, c) in blockOutChannels.enumerated() where c < 1 || c % groups != 0 {
            throw ModelError("norm_num_groups \(groups) does not divide block_out_channels[\(i)] = \(c)")
        }
        guard ["silu", "swish"].contains(actFn) else { throw ModelError("act_fn: \(actFn) is not supported (silu, swish)") }
        guard timeEmbeddingType == "positional" else {
            throw ModelError("time_embedding_type: \(timeEmbeddingType) is not supported (positional)")
        }
        guard ["default", "scale_shift"].contains(resnetTimeScaleShift) else {
            throw ModelError("resnet_time_scale_shift: \(resnetTimeScaleShift) is not supported (default, scale_shift)")
        }
        if let act = timeEmbeddingActFn, !["silu", "swish", "gelu"].contains(act) {
            throw ModelError("time_embedding_act_fn: \(act) is not supported (silu, swish, gelu or null)")
        }
        try refuse("dual_cross_attention", dualCrossAttention ? "true" : nil)
        try refuse("addition_embed_type", additionEmbedType)
        try refuse("timestep_post_act", timestepPostAct)
        try refuse("time_cond_proj_dim", timeCondProjDim.map { "\($0)" })
        if attentionType != "default" { throw ModelError("attention_type: \(attentionType) is not supported (default)") }
        for (name, k) in [("conv_in_kernel", convInKernel), ("conv_out_kernel", convOutKernel)] where k < 1 || k % 2 == 0 {
            throw ModelError("\(name) must be odd and positive, got \(k)")
        }
        switch encoderHidDimType {
        case nil, "text_proj": break
        case let t?: throw ModelError("encoder_hid_dim_type: \(t) is not supported (text_proj or null)")
        }
        if encoderHidDimType != nil && encoderHidDim == nil {
            throw ModelError("encoder_hid_dim is required with encoder_hid_dim_type \(encoderHidDimType!)")
        }
        if encoderHidDim != nil, case .many = crossAttentionDim {
            throw ModelError("encoder_hid_dim needs a single cross_attention_dim, got a list")
        }
        switch classEmbedType {
        case nil, "timestep", "identity": break
        case "projection", "simple_projection":
            guard projectionClassEmbeddingsInputDim != nil else {
                throw ModelError("class_embed_type \(classEmbedType!) requires projection_class_embeddings_input_dim")
            }
        case let t?:
            throw ModelError("class_embed_type: \(t) is not supported (timestep, identity, projection, simple_projection or null)")
        }
        if classEmbeddingsConcat && classEmbedType == nil && numClassEmbeds == nil {
            throw ModelError("class_embeddings_concat is set but the model has no class embedding")
        }
        if let k = numClassEmbeds, k < 1 { throw ModelError("num_class_embeds must be positive, got \(k)") }
        guard inChannels >= 1, outChannels >= 1 else { throw ModelError("in_channels and out_channels must be positive") }
        try ConfigChecks.weightsFit(ConfigChecks.estimatedUNetParameters(
            blockOutChannels: blockOutChannels, resnets: { layers(block: $0) }, timeEmbedding: timeEmbeddingDim ?? blockOutChannels[0] * 4))
    }

    private func refuse(_ field: String, _ value: String?) throws {
        if let value { throw ModelError("\(field): \(value) is not supported (only the default)") }
    }
}
