"""PyTorch peer of `diffuse bench sd`: Stable Diffusion's full-size networks with random weights
in diffusers 0.42 + transformers, float32 (--bf16: modules and inputs cast to bfloat16, what
torch_dtype=torch.bfloat16 loads), eager, under inference_mode, on the same thread count.

The configs come from the folder `diffuse bench sd` writes (--configs DIR: unet.json, vae.json,
text_encoder.json in diffusers / transformers form), so both sides build the same architectures.
Items (each prints one JSON line: the seconds of every timed run after one warm-up run):
- unet: one classifier-free-guided U-Net evaluation, latents [2, 4, S/8, S/8] (uncond + cond),
  timestep 500, context [2, 77, D];
- vae: one decode of latents [1, 4, S/8, S/8] to an S x S image;
- e2e: text-to-image at S x S: the text encoder on the two 77-token rows (negative + prompt),
  then diffusers' StableDiffusionPipeline with those embeddings (20 guided DDIM steps, decode,
  output_type "pt"); no warm-up (the items before warm it up on both sides).
--flops prints the FLOPs torch's FlopCounterMode counts for the U-Net evaluation and the decode
(on the meta device: shapes only, nothing computed) as {"flops": {...}}.

Usage: .venv-peer/bin/python scripts/bench/diffusers_sd.py --configs DIR [--size 512]
       [--threads 2] [--repeats 3] [--steps 20] [--items unet,vae,e2e] [--flops] [--bf16]
"""
import argparse, json, os, time

ap = argparse.ArgumentParser()
ap.add_argument("--configs", required=True, help="folder with unet.json, vae.json, text_encoder.json")
ap.add_argument("--size", type=int, default=512)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--repeats", type=int, default=3)
ap.add_argument("--e2e-repeats", type=int, default=1)
ap.add_argument("--steps", type=int, default=20)
ap.add_argument("--guidance", type=float, default=7.5)
ap.add_argument("--items", default="unet,vae,e2e")
ap.add_argument("--flops", action="store_true")
ap.add_argument("--bf16", action="store_true", help="modules and inputs in bfloat16 (as torch_dtype=torch.bfloat16 loads them)")
args = ap.parse_args()

import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

torch.set_num_threads(args.threads)
torch.manual_seed(0)


def config(name):
    with open(os.path.join(args.configs, name)) as f:
        return json.load(f)


def build(device="cpu"):
    with torch.device(device):
        unet = UNet2DConditionModel.from_config(config("unet.json")).eval()
        vae = AutoencoderKL.from_config(config("vae.json")).eval()
        text_config = {k: v for k, v in config("text_encoder.json").items() if k not in ("architectures", "model_type")}
        text = CLIPTextModel(CLIPTextConfig(**text_config)).eval()
    return unet, vae, text


latent = args.size // 8
items = args.items.split(",")

if args.flops:
    from torch.utils.flop_counter import FlopCounterMode
    unet, vae, text = build("meta")
    counts = {}
    with torch.inference_mode():
        for name, run in [("unet", lambda: unet(torch.zeros(2, 4, latent, latent, device="meta"), 500,
                                                encoder_hidden_states=torch.zeros(2, 77, unet.config.cross_attention_dim, device="meta"))),
                          ("vae", lambda: vae.decode(torch.zeros(1, 4, latent, latent, device="meta"))),
                          ("text", lambda: text(torch.zeros(2, 77, dtype=torch.long, device="meta")))]:
            mode = FlopCounterMode(display=False)
            with mode:
                run()
            counts[name] = mode.get_total_flops()
    print(json.dumps({"flops": counts}), flush=True)
    del unet, vae, text

unet, vae, text = build()
dtype = torch.bfloat16 if args.bf16 else torch.float32
for m in (unet, vae, text):
    m.to(dtype)
ctx_dim = unet.config.cross_attention_dim
g = torch.Generator().manual_seed(1)


def timed(name, f, repeats, warmup=True):
    if warmup:
        f()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    print(json.dumps({"item": name, "seconds": times}), flush=True)


with torch.inference_mode():
    if "unet" in items:
        x = torch.randn(2, 4, latent, latent, generator=g).to(dtype)
        ctx = torch.randn(2, 77, ctx_dim, generator=g).to(dtype)
        t = torch.tensor([500, 500])
        timed("unet", lambda: unet(x, t, encoder_hidden_states=ctx).sample, args.repeats)
    if "vae" in items:
        z = torch.randn(1, 4, latent, latent, generator=g).to(dtype)
        timed("vae", lambda: vae.decode(z).sample, args.repeats)
    if "e2e" in items:
        scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                                  set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon")
        pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=None, unet=unet, scheduler=scheduler,
                                       safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        # "" and a short prompt as CLIP's tokenizer pads them: bos, tokens, eos, then eos (SD 1.x) to 77.
        ids = torch.full((2, 77), 49407, dtype=torch.long)
        ids[:, 0] = 49406
        ids[1, 1:6] = torch.tensor([320, 1929, 539, 550, 1125])

        def e2e():
            embeds = text(ids)[0]
            return pipe(prompt_embeds=embeds[1:], negative_prompt_embeds=embeds[:1], height=args.size, width=args.size,
                        num_inference_steps=args.steps, guidance_scale=args.guidance, output_type="pt",
                        generator=torch.Generator().manual_seed(0)).images
        timed("e2e", e2e, args.e2e_repeats, warmup=False)
