import Foundation

/// The full-size Stable Diffusion architectures `diffuse bench sd` builds with random
/// weights, as the config.json files of a diffusers pipeline folder state them (the peer,
/// `scripts/bench/diffusers_sd.py`, builds its models from the same files).
enum StableDiffusionBenchConfig: String, CaseIterable {
    /// SD 1.5: U-Net 860M (heads of 8, 1x1-convolution projections, context 768), CLIP ViT-L/14
    /// text encoder (12 layers, quick_gelu, 123M), VAE [128, 256, 512, 512].
    case sd15
    /// SD 2.1: U-Net 866M (head dims [5, 10, 20, 20] as diffusers reads attention_head_dim,
    /// linear projections, context 1024), OpenCLIP ViT-H text encoder (hidden 1024, the 23
    /// layers SD 2 uses, gelu, 340M), the same VAE.
    case sd21

    var unet: String {
        let (heads, context, linear) = self == .sd15 ? ("8", 768, false) : ("[5, 10, 20, 20]", 1024, true)
        return """
            {"_class_name": "UNet2DConditionModel", "sample_size": 64, "in_channels": 4, "out_channels": 4,
             "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
             "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
             "block_out_channels": [320, 640, 1280, 1280], "layers_per_block": 2, "norm_num_groups": 32,
             "cross_attention_dim": \(context), "attention_head_dim": \(heads), "use_linear_projection": \(linear),
             "flip_sin_to_cos": true, "freq_shift": 0, "act_fn": "silu", "norm_eps": 1e-05, "downsample_padding": 1,
             "mid_block_scale_factor": 1, "center_input_sample": false}
            """
    }

    var vae: String {
        """
        {"_class_name": "AutoencoderKL", "in_channels": 3, "out_channels": 3, "latent_channels": 4,
         "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
         "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
         "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "norm_num_groups": 32, "act_fn": "silu",
         "sample_size": 512, "scaling_factor": 0.18215}
        """
    }

    var textEncoder: String {
        let (hidden, layers, heads, act) = self == .sd15 ? (768, 12, 12, "quick_gelu") : (1024, 23, 16, "gelu")
        return """
            {"architectures": ["CLIPTextModel"], "model_type": "clip_text_model", "vocab_size": 49408,
             "hidden_size": \(hidden), "intermediate_size": \(4 * hidden), "projection_dim": \(self == .sd15 ? 768 : 512),
             "num_hidden_layers": \(layers), "num_attention_heads": \(heads), "max_position_embeddings": 77,
             "hidden_act": "\(act)", "layer_norm_eps": 1e-05, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2}
            """
    }

    /// DDIM as Stable Diffusion's scheduler_config.json sets it up (scaled-linear betas
    /// 0.00085-0.012, steps offset 1, leading spacing), eps prediction on both configs.
    static let scheduler = """
        {"_class_name": "DDIMScheduler", "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
         "beta_schedule": "scaled_linear", "clip_sample": false, "set_alpha_to_one": false, "steps_offset": 1,
         "prediction_type": "epsilon", "timestep_spacing": "leading"}
        """

    /// Writes unet.json, vae.json, text_encoder.json and scheduler.json into `folder`.
    func write(to folder: String) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for (name, text) in [("unet", unet), ("vae", vae), ("text_encoder", textEncoder), ("scheduler", Self.scheduler)] {
            try Data(text.utf8).write(to: URL(fileURLWithPath: folder + "/\(name).json"))
        }
    }
}
