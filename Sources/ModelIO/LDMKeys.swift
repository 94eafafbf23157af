import Models
import Tensors

/// Where a diffusers parameter comes from in a checkpoint of the original CompVis/LDM layout
/// (Stable Diffusion's `v1-5-pruned-emaonly.safetensors`, `v2-1_768-ema-pruned.safetensors`):
/// the LDM key and what turns that tensor into the parameter.
public struct LDMSource: Equatable, Sendable {
    /// How the LDM tensor becomes the diffusers parameter.
    public enum Transform: Equatable, Sendable {
        /// As it is.
        case none
        /// A 1x1 convolution's weight [O, I, 1, 1] (or a 1-D one's [O, I, 1]) read as a linear
        /// weight [O, I]: the VAE's mid-block attention, q/k/v/proj_out as convolutions in LDM.
        /// A weight that is already [O, I] is taken as it is.
        case squeezeConv
        /// Rows `part * n ..< (part + 1) * n` of a tensor of `parts * n` rows: open_clip's
        /// fused `in_proj_weight` [3D, D] / `in_proj_bias` [3D] holds q, k, v in that order.
        case rows(part: Int, of: Int)
    }

    /// The key in the single file.
    public var key: String
    public var transform: Transform

    public init(_ key: String, _ transform: Transform = .none) { (self.key, self.transform) = (key, transform) }

    /// The LDM tensor's shape for a diffusers parameter of shape `shape`.
    public func ldmShape(for shape: [Int]) -> [Int] {
        switch transform {
        case .none: return shape
        case .squeezeConv: return shape + [1, 1]
        case .rows(_, let parts): return shape.isEmpty ? shape : [shape[0] * parts] + shape.dropFirst()
        }
    }

    /// Whether `found` is an acceptable LDM shape for a parameter of shape `shape` (before the
    /// parameter's own shape check).
    public func accepts(_ found: [Int], for shape: [Int]) -> Bool {
        switch transform {
        case .squeezeConv: return found == shape || found == shape + [1] || found == shape + [1, 1]
        default: return found == ldmShape(for: shape)
        }
    }

    /// The parameter from the LDM tensor (whose shape `accepts` allowed).
    public func apply(_ tensor: Tensor, shape: [Int]) -> Tensor {
        switch transform {
        case .none: return tensor
        case .squeezeConv: return tensor.shape == shape ? tensor : tensor.reshaped(shape)
        case .rows(let part, _): return tensor.sliced(axis: 0, part * shape[0] ..< (part + 1) * shape[0]).contiguous()
        }
    }
}

/// The names of the CompVis/LDM layout, as diffusers' `single_file_utils` converts them
/// (`convert_ldm_unet_checkpoint`, `convert_ldm_vae_checkpoint`, `convert_ldm_clip_checkpoint`,
/// `convert_open_clip_checkpoint`), written here in the other direction: for each parameter of
/// a model built from a diffusers config, the LDM key it is read from. Walking the model's own
/// parameters makes the set of keys a checkpoint must hold exact (what is missing and what is
/// left over can both be named).
public enum LDMKeys {
    /// Key prefixes of the three networks in an LDM Stable Diffusion checkpoint.
    public static let unetPrefix = "model.diffusion_model."
    public static let vaePrefix = "first_stage_model."
    /// SD 1.x: transformers' CLIPTextModel under this prefix (`text_model.` ... inside).
    public static let clipPrefix = "cond_stage_model.transformer."
    /// SD 2.x: open_clip's text tower (`transformer.resblocks.N.`, `token_embedding`, ...).
    public static let openCLIPPrefix = "cond_stage_model.model."

    /// ResnetBlock2D's layers in openaimodel.py's ResBlock: diffusers name -> LDM name.
    static let unetResnet: [(String, String)] = [
        ("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("time_emb_proj", "emb_layers.1"),
        ("norm2", "out_layers.0"), ("conv2", "out_layers.3"), ("conv_shortcut", "skip_connection"),
    ]

    /// The LDM source of a UNet2DConditionModel parameter, or nil for a parameter the LDM
    /// layout has no place for (class or addition embeddings, ...).
    ///
    /// openaimodel.py numbers its blocks in one sequence per side: `input_blocks.0` is conv_in,
    /// then each level's resnets (`.0`, with the level's transformer as `.1`) and its
    /// downsampler (`.0.op`); `output_blocks` holds each up level's resnets (one more than down)
    /// with the upsampler inside the level's last block (`.1.conv`, or `.2.conv` after a
    /// transformer); `middle_block` is resnet, transformer, resnet. The transformers' insides
    /// (`transformer_blocks.k.attn1.to_q`, `norm`, `proj_in`, ...) have the same names in both.
    public static func unet(_ name: String, config: UNet2DConditionConfig) -> LDMSource? {
        let fixed = ["time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
                     "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"]
        let parts = name.split(separator: ".").map(String.init)
        guard parts.count >= 2 else { return nil }
        let head = parts.dropLast().joined(separator: "."), leaf = parts[parts.count - 1]
        if let ldm = fixed[head] { return LDMSource(unetPrefix + ldm + "." + leaf) }
        func resnet(_ rest: ArraySlice<String>) -> String? {
            guard let first = rest.first, let ldm = unetResnet.first(where: { $0.0 == first })?.1 else { return nil }
            return ([ldm] + rest.dropFirst()).joined(separator: ".")
        }
        func index(_ s: String) -> Int? { Int(s) }
        let n = config.blockCount
        switch parts[0] {
        case "down_blocks":
            guard parts.count >= 5, let level = index(parts[1]), level < n, let j = index(parts[3]) else { return nil }
            // input_blocks.0 is conv_in; each level before this one has its layers and a downsampler.
            let start = 1 + (0..<level).reduce(0) { $0 + config.layers(block: $1) + 1 }
            let layers = config.layers(block: level)
            switch parts[2] {
            case "resnets":
                guard j < layers, let rest = resnet(parts[4...]) else { return nil }
                return LDMSource(unetPrefix + "input_blocks.\(start + j).0.\(rest)")
            case "attentions":
                guard j < layers else { return nil }
                return LDMSource(unetPrefix + "input_blocks.\(start + j).1." + parts[4...].joined(separator: "."))
            case "downsamplers":
                guard j == 0, parts.count == 6, parts[4] == "conv" else { return nil }
                return LDMSource(unetPrefix + "input_blocks.\(start + layers).0.op.\(leaf)")
            default: return nil
            }
        case "mid_block":
            guard parts.count >= 4, let i = index(parts[2]) else { return nil }
            switch parts[1] {
            case "resnets":
                guard i < 2, let rest = resnet(parts[3...]) else { return nil }
                return LDMSource(unetPrefix + "middle_block.\(2 * i).\(rest)")
            case "attentions":
                guard i == 0 else { return nil }
                return LDMSource(unetPrefix + "middle_block.1." + parts[3...].joined(separator: "."))
            default: return nil
            }
        case "up_blocks":
            guard parts.count >= 5, let level = index(parts[1]), level < n, let j = index(parts[3]) else { return nil }
            // Up level i mirrors down level n - 1 - i and has one resnet more.
            let start = (0..<level).reduce(0) { $0 + config.layers(block: n - 1 - $1) + 1 }
            let count = config.layers(block: n - 1 - level) + 1
            switch parts[2] {
            case "resnets":
                guard j < count, let rest = resnet(parts[4...]) else { return nil }
                return LDMSource(unetPrefix + "output_blocks.\(start + j).0.\(rest)")
            case "attentions":
                guard j < count else { return nil }
                return LDMSource(unetPrefix + "output_blocks.\(start + j).1." + parts[4...].joined(separator: "."))
            case "upsamplers":
                guard j == 0, parts.count == 6, parts[4] == "conv" else { return nil }
                let slot = config.hasCrossAttention(upBlock: level) ? 2 : 1
                return LDMSource(unetPrefix + "output_blocks.\(start + count - 1).\(slot).conv.\(leaf)")
            default: return nil
            }
        default:
            return nil
        }
    }

    /// The LDM source of an AutoencoderKL parameter (ldm/modules/diffusionmodules/model.py's
    /// Encoder/Decoder): `down.i.block.j` (`nin_shortcut` for conv_shortcut) and
    /// `down.i.downsample.conv`; the decoder's `up.i` counted from the lowest resolution (so
    /// diffusers' up_blocks.i is up.(levels - 1 - i)); `mid.block_1`, `mid.attn_1`, `mid.block_2`,
    /// the attention's `norm`, `q`, `k`, `v`, `proj_out` 1x1 convolutions; `norm_out` for
    /// conv_norm_out. nil for a parameter with no LDM place.
    public static func vae(_ name: String, levels: Int) -> LDMSource? {
        let parts = name.split(separator: ".").map(String.init)
        guard parts.count >= 2 else { return nil }
        let side = parts[0], leaf = parts[parts.count - 1]
        if (side == "quant_conv" || side == "post_quant_conv") && parts.count == 2 { return LDMSource(vaePrefix + name) }
        guard side == "encoder" || side == "decoder" else { return nil }
        let rest = Array(parts.dropFirst())
        func resnet(_ r: ArraySlice<String>) -> String { r.map { $0 == "conv_shortcut" ? "nin_shortcut" : $0 }.joined(separator: ".") }
        switch rest[0] {
        case "conv_in", "conv_out":
            return LDMSource(vaePrefix + name)
        case "conv_norm_out":
            return LDMSource(vaePrefix + "\(side).norm_out.\(leaf)")
        case "down_blocks", "up_blocks":
            guard rest.count >= 4, let i = Int(rest[1]), i < levels else { return nil }
            let down = rest[0] == "down_blocks"
            guard down == (side == "encoder") else { return nil }
            let (word, ldmLevel) = down ? ("down", i) : ("up", levels - 1 - i)
            switch rest[2] {
            case "resnets":
                guard rest.count >= 5 else { return nil }
                return LDMSource(vaePrefix + "\(side).\(word).\(ldmLevel).block.\(rest[3])." + resnet(rest[4...]))
            case "downsamplers", "upsamplers":
                guard rest[3] == "0", rest.count == 6, rest[4] == "conv" else { return nil }
                return LDMSource(vaePrefix + "\(side).\(word).\(ldmLevel).\(down ? "downsample" : "upsample").conv.\(leaf)")
            default: return nil
            }
        case "mid_block":
            guard rest.count >= 4 else { return nil }
            if rest[1] == "resnets", let i = Int(rest[2]), i < 2 {
                return LDMSource(vaePrefix + "\(side).mid.block_\(i + 1)." + resnet(rest[3...]))
            }
            guard rest[1] == "attentions", rest[2] == "0" else { return nil }
            let layers = ["group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out": "proj_out"]
            guard let layer = layers[rest[3]] else { return nil }
            let key = vaePrefix + "\(side).mid.attn_1.\(layer).\(leaf)"
            return LDMSource(key, layer != "norm" && leaf == "weight" ? .squeezeConv : .none)
        default:
            return nil
        }
    }

    /// SD 1.x: the LDM source of a CLIPTextModel parameter (transformers' own names under
    /// `cond_stage_model.transformer.`).
    public static func clip(_ name: String) -> LDMSource { LDMSource(clipPrefix + name) }

    /// SD 2.x: the LDM source of a CLIPTextModel parameter in open_clip's text tower
    /// (`cond_stage_model.model.`): token_embedding, positional_embedding (a bare tensor),
    /// ln_final, and per block `transformer.resblocks.N.` ln_1, attn (q/k/v rows of
    /// in_proj_weight / in_proj_bias, out_proj), ln_2, mlp.c_fc, mlp.c_proj. nil for none.
    public static func openCLIP(_ name: String) -> LDMSource? {
        let p = openCLIPPrefix
        let fixed = ["text_model.embeddings.token_embedding.weight": "token_embedding.weight",
                     "text_model.embeddings.position_embedding.weight": "positional_embedding",
                     "text_model.final_layer_norm.weight": "ln_final.weight", "text_model.final_layer_norm.bias": "ln_final.bias"]
        if let ldm = fixed[name] { return LDMSource(p + ldm) }
        let parts = name.split(separator: ".").map(String.init)
        guard parts.count >= 6, parts[0] == "text_model", parts[1] == "encoder", parts[2] == "layers", let block = Int(parts[3]) else {
            return nil
        }
        let inner = parts[4...].dropLast().joined(separator: "."), leaf = parts[parts.count - 1]
        let prefix = p + "transformer.resblocks.\(block)."
        let qkv = ["self_attn.q_proj": 0, "self_attn.k_proj": 1, "self_attn.v_proj": 2]
        if let part = qkv[inner] { return LDMSource(prefix + "attn.in_proj_\(leaf)", .rows(part: part, of: 3)) }
        let layers = ["self_attn.out_proj": "attn.out_proj", "layer_norm1": "ln_1", "layer_norm2": "ln_2",
                      "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"]
        guard let layer = layers[inner] else { return nil }
        return LDMSource(prefix + layer + "." + leaf)
    }
}
