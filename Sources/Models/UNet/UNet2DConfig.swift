import Foundation
import Tensors

/// A diffusers `UNet2DModel` `config.json`: its field names and defaults.
public struct UNet2DConfig: Codable, Equatable, Sendable {
    /// Height = width of the samples the model was trained on.
    public var sampleSize: Int?
    public var inChannels: Int
    public var outChannels: Int
    /// Map inputs from [0, 1] to [-1, 1] first (2x - 1).
    public var centerInputSample: Bool
    /// "positional" (sinusoidal) or "fourier" (random Fourier features, log t).
    public var timeEmbeddingType: String
    /// Width of the timestep embedding (default 4 x the first block's channels).
    public var timeEmbeddingDim: Int?
    /// Sinusoidal embedding: frequency shift and whether cos comes first.
    public var freqShift: Int
    public var flipSinToCos: Bool
    /// Block kinds per resolution: DownBlock2D / AttnDownBlock2D, UpBlock2D / AttnUpBlock2D.
    public var downBlockTypes: [String]
    public var midBlockType: String?
    public var upBlockTypes: [String]
    /// Channels per resolution.
    public var blockOutChannels: [Int]
    public var layersPerBlock: Int
    /// The mid block's output scale (residual sums divided by it).
    public var midBlockScaleFactor: Double
    /// Padding of the strided downsampling convolution (0: pad right/bottom by one first).
    public var downsamplePadding: Int
    /// "conv" or "resnet" resampling in attention blocks.
    public var downsampleType: String
    public var upsampleType: String
    public var dropout: Double
    public var actFn: String
    /// Channels per attention head (nil: one head per block).
    public var attentionHeadDim: Int?
    public var normNumGroups: Int
    public var attnNormNumGroups: Int?
    public var normEps: Double
    /// "default" (add the timestep embedding) or "scale_shift" (scale and shift after norm2).
    public var resnetTimeScaleShift: String
    /// Attention in the mid block.
    public var addAttention: Bool
    /// Class conditioning: nil with numClassEmbeds (an embedding table), "timestep" or "identity".
    public var classEmbedType: String?
    public var numClassEmbeds: Int?
    /// The class names by label ("0": "T-shirt/top", ...), as diffusers' DiT pipelines and
    /// transformers' configs keep them (`id2label`); diffusers' UNet2DModel ignores the key.
    /// nil: the classes are numbers only.
    public var id2label: [String: String]?

    enum CodingKeys: String, CodingKey {
        case sampleSize = "sample_size", inChannels = "in_channels", outChannels = "out_channels"
        case centerInputSample = "center_input_sample", timeEmbeddingType = "time_embedding_type"
        case timeEmbeddingDim = "time_embedding_dim", freqShift = "freq_shift", flipSinToCos = "flip_sin_to_cos"
        case downBlockTypes = "down_block_types", midBlockType = "mid_block_type", upBlockTypes = "up_block_types"
        case blockOutChannels = "block_out_channels", layersPerBlock = "layers_per_block"
        case midBlockScaleFactor = "mid_block_scale_factor", downsamplePadding = "downsample_padding"
        case downsampleType = "downsample_type", upsampleType = "upsample_type", dropout, actFn = "act_fn"
        case attentionHeadDim = "attention_head_dim", normNumGroups = "norm_num_groups"
        case attnNormNumGroups = "attn_norm_num_groups", normEps = "norm_eps", resnetTimeScaleShift = "resnet_time_scale_shift"
        case addAttention = "add_attention", classEmbedType = "class_embed_type", numClassEmbeds = "num_class_embeds", id2label
    }

    /// diffusers' defaults.
    public init() {
        sampleSize = nil
        (inChannels, outChannels, centerInputSample) = (3, 3, false)
        (timeEmbeddingType, timeEmbeddingDim, freqShift, flipSinToCos) = ("positional", nil, 0, true)
        downBlockTypes = ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"]
        midBlockType = "UNetMidBlock2D"
        upBlockTypes = ["AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"]
        blockOutChannels = [224, 448, 672, 896]
        layersPerBlock = 2
        midBlockScaleFactor = 1
        (downsamplePadding, downsampleType, upsampleType) = (1, "conv", "conv")
        (dropout, actFn, attentionHeadDim) = (0, "silu", 8)
        (normNumGroups, attnNormNumGroups, normEps) = (32, nil, 1e-5)
        (resnetTimeScaleShift, addAttention) = ("default", true)
        (classEmbedType, numClassEmbeds) = (nil, nil)
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var d = UNet2DConfig()
        func read<T: Decodable>(_ key: CodingKeys, _ field: inout T) throws {
            if let v = try c.decodeIfPresent(T.self, forKey: key) { field = v }
        }
        if let size = try? c.decodeIfPresent(Int.self, forKey: .sampleSize) {
            d.sampleSize = size
        } else if let pair = try? c.decodeIfPresent([Int].self, forKey: .sampleSize) {
            d.sampleSize = pair.first
        }
        try read(.inChannels, &d.inChannels)
        try read(.outChannels, &d.outChannels)
        try read(.centerInputSample, &d.centerInputSample)
        try read(.timeEmbeddingType, &d.timeEmbeddingType)
        d.timeEmbeddingDim = try c.decodeIfPresent(Int.self, forKey: .timeEmbeddingDim)
        try read(.freqShift, &d.freqShift)
        try read(.flipSinToCos, &d.flipSinToCos)
        try read(.downBlockTypes, &d.downBlockTypes)
        if c.contains(.midBlockType) { d.midBlockType = try c.decodeIfPresent(String.self, forKey: .midBlockType) }
        try read(.upBlockTypes, &d.upBlockTypes)
        try read(.blockOutChannels, &d.blockOutChannels)
        try read(.layersPerBlock, &d.layersPerBlock)
        try read(.midBlockScaleFactor, &d.midBlockScaleFactor)
        try read(.downsamplePadding, &d.downsamplePadding)
        try read(.downsampleType, &d.downsampleType)
        try read(.upsampleType, &d.upsampleType)
        try read(.dropout, &d.dropout)
        try read(.actFn, &d.actFn)
        if c.contains(.attentionHeadDim) { d.attentionHeadDim = try c.decodeIfPresent(Int.self, forKey: .attentionHeadDim) }
        try read(.normNumGroups, &d.normNumGroups)
        d.attnNormNumGroups = try c.decodeIfPresent(Int.self, forKey: .attnNormNumGroups)
        try read(.normEps, &d.normEps)
        try read(.resnetTimeScaleShift, &d.resnetTimeScaleShift)
        try read(.addAttention, &d.addAttention)
        d.classEmbedType = try c.decodeIfPresent(String.self, forKey: .classEmbedType)
        d.numClassEmbeds = try c.decodeIfPresent(Int.self, forKey: .numClassEmbeds)
        d.id2label = try c.decodeIfPresent([String: String].self, forKey: .id2label)
        self = d
    }

    /// Writes every field, nil ones as JSON null: leaving out a null `attention_head_dim` or
    /// `mid_block_type` would read back as their defaults (8, UNetMidBlock2D), another model
    /// (found by scripts/fuzz).
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(sampleSize, forKey: .sampleSize)
        try c.encode(inChannels, forKey: .inChannels)
        try c.encode(outChannels, forKey: .outChannels)
        try c.encode(centerInputSample, forKey: .centerInputSample)
        try c.encode(timeEmbeddingType, forKey: .timeEmbeddingType)
        try c.encode(timeEmbeddingDim, forKey: .timeEmbeddingDim)
        try c.encode(freqShift, forKey: .freqShift)
        try c.encode(flipSinToCos, forKey: .flipSinToCos)
        try c.encode(downBlockTypes, forKey: .downBlockTypes)
        try c.encode(midBlockType, forKey: .midBlockType)
        try c.encode(upBlockTypes, forKey: .upBlockTypes)
        try c.encode(blockOutChannels, forKey: .blockOutChannels)
        try c.encode(layersPerBlock, forKey: .layersPerBlock)
        try c.encode(midBlockScaleFactor, forKey: .midBlockScaleFactor)
        try c.encode(downsamplePadding, forKey: .downsamplePadding)
        try c.encode(downsampleType, forKey: .downsampleType)
        try c.encode(upsampleType, forKey: .upsampleType)
        try c.encode(dropout, forKey: .dropout)
        try c.encode(actFn, forKey: .actFn)
        try c.encode(attentionHeadDim, forKey: .attentionHeadDim)
        try c.encode(normNumGroups, forKey: .normNumGroups)
        try c.encode(attnNormNumGroups, forKey: .attnNormNumGroups)
        try c.encode(normEps, forKey: .normEps)
        try c.encode(resnetTimeScaleShift, forKey: .resnetTimeScaleShift)
        try c.encode(addAttention, forKey: .addAttention)
        try c.encode(classEmbedType, forKey: .classEmbedType)
        try c.encode(numClassEmbeds, forKey: .numClassEmbeds)
        try c.encodeIfPresent(id2label, forKey: .id2label)
    }

    /// Reads a `config.json`, refusing what the model cannot build.
    public static func load(_ path: String) throws -> UNet2DConfig {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ModelError("\(path): cannot read: \(ErrorText.describe(error))")
        }
        if let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
           let name = object["_class_name"] as? String, name != "UNet2DModel" {
            throw ModelError("\(path): _class_name is \(name), not UNet2DModel"
                             + (name == "UNet2DConditionModel" ? " (a text-conditioned U-Net: generate with diffuse generate)" : ""))
        }
        let config: UNet2DConfig
        do { config = try JSONDecoder().decode(UNet2DConfig.self, from: data) } catch {
            throw ModelError("\(path): not a valid UNet2DModel config: \(ErrorText.describe(error))")
        }
        do { try config.validate() } catch let e as ModelError { throw ModelError("\(path): \(e.message)") }
        return config
    }

    public func save(_ path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        var data = try encoder.encode(self)
        // diffusers identifies the class by these two fields.
        if var object = try JSONSerialization.jsonObject(with: data) as? [String: Any] {
            object["_class_name"] = "UNet2DModel"
            data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        }
        try data.write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// Refuses what the model cannot build, by field name, before anything is allocated:
    /// unsupported kinds, counts below 1, non-finite or non-positive epsilons, and weights
    /// that would not fit in memory.
    public func validate() throws {
        guard !blockOutChannels.isEmpty else { throw ModelError("block_out_channels is empty") }
        try ConfigChecks.atLeast(1, "in_channels", inChannels)
        try ConfigChecks.atLeast(1, "out_channels", outChannels)
        try ConfigChecks.atLeast(1, "sample_size", sampleSize)
        try ConfigChecks.eachAtLeast(1, "block_out_channels", blockOutChannels)
        try ConfigChecks.atLeast(1, "layers_per_block", layersPerBlock)
        try ConfigChecks.atLeast(1, "norm_num_groups", normNumGroups)
        try ConfigChecks.atLeast(1, "attn_norm_num_groups", attnNormNumGroups)
        try ConfigChecks.atLeast(1, "attention_head_dim", attentionHeadDim)
        try ConfigChecks.atLeast(1, "time_embedding_dim", timeEmbeddingDim)
        try ConfigChecks.atLeast(1, "num_class_embeds", numClassEmbeds)
        try ConfigChecks.atLeast(0, "downsample_padding", downsamplePadding)
        try ConfigChecks.positive("norm_eps", normEps)
        try ConfigChecks.positive("mid_block_scale_factor", midBlockScaleFactor)
        try ConfigChecks.probability("dropout", dropout)
        guard downBlockTypes.count == blockOutChannels.count && upBlockTypes.count == blockOutChannels.count else {
            throw ModelError("down_block_types (\(downBlockTypes.count)), up_block_types (\(upBlockTypes.count)) and block_out_channels (\(blockOutChannels.count)) must have the same length")
        }
        for t in downBlockTypes where !["DownBlock2D", "AttnDownBlock2D"].contains(t) {
            throw ModelError("down block type \(t) is not supported (DownBlock2D, AttnDownBlock2D)")
        }
        for t in upBlockTypes where !["UpBlock2D", "AttnUpBlock2D"].contains(t) {
            throw ModelError("up block type \(t) is not supported (UpBlock2D, AttnUpBlock2D)")
        }
        if let m = midBlockType, m != "UNetMidBlock2D" { throw ModelError("mid block type \(m) is not supported (UNetMidBlock2D or null)") }
        guard ["positional", "fourier"].contains(timeEmbeddingType) else {
            throw ModelError("time_embedding_type \(timeEmbeddingType) is not supported (positional, fourier)")
        }
        guard ["default", "scale_shift"].contains(resnetTimeScaleShift) else {
            throw ModelError("resnet_time_scale_shift \(resnetTimeScaleShift) is not supported (default, scale_shift)")
        }
        guard ["silu", "swish"].contains(actFn) else { throw ModelError("act_fn \(actFn) is not supported (silu)") }
        guard ["conv", "resnet"].contains(downsampleType), ["conv", "resnet"].contains(upsampleType) else {
            throw ModelError("downsample_type/upsample_type must be conv or resnet, got \(downsampleType)/\(upsampleType)")
        }
        for c in blockOutChannels where c % normNumGroups != 0 {
            throw ModelError("norm_num_groups \(normNumGroups) does not divide block channels \(c)")
        }
        if let h = attentionHeadDim {
            for (c, t) in zip(blockOutChannels, downBlockTypes) where t.hasPrefix("Attn") && c % h != 0 {
                throw ModelError("attention_head_dim \(h) does not divide \(c) channels")
            }
        }
        if let type = classEmbedType, !["timestep", "identity"].contains(type) {
            throw ModelError("class_embed_type \(type) is not supported (timestep, identity)")
        }
        if let groups = attnNormNumGroups {
            let attended = zip(blockOutChannels, downBlockTypes).filter { $0.1.hasPrefix("Attn") }.map(\.0)
                + (addAttention && midBlockType != nil ? [blockOutChannels.last!] : [])
            for c in attended where c % groups != 0 {
                throw ModelError("attn_norm_num_groups \(groups) does not divide block channels \(c)")
            }
        }
        try ConfigChecks.weightsFit(ConfigChecks.estimatedUNetParameters(
            blockOutChannels: blockOutChannels, resnets: { _ in layersPerBlock }, timeEmbedding: timeEmbedDim))
    }

    /// The timestep embedding width.
    public var timeEmbedDim: Int { timeEmbeddingDim ?? blockOutChannels[0] * 4 }
}

/// A model configuration or checkpoint the models refuse, with the reason.
public struct ModelError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
