"""PyTorch peer for the AutoencoderKL timing (Tests/ModelsTests/AutoencoderKLBenchmark.swift):
diffusers' AutoencoderKL with Stable Diffusion 1.x's VAE config and random weights, decoding
latents [1, 4, 64, 64] to a 512x512 image (and optionally 1024x1024 with enable_tiling()),
2 threads, float32, under inference_mode; prints one JSON line per case with the seconds of
each run after one warm-up run, and the peak resident memory.

Usage: .venv-peer/bin/python scripts/bench/diffusers_vae.py [--runs 2] [--threads 2] [--tiled]
"""
import argparse, json, resource, time, torch
from diffusers import AutoencoderKL

ap = argparse.ArgumentParser()
ap.add_argument("--runs", type=int, default=2)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--tiled", action="store_true", help="also decode 1024x1024 with enable_tiling()")
ap.add_argument("--encode", action="store_true", help="also encode a 512x512 image")
ap.add_argument("--save", metavar="DIR", help="write the model, latents [1, 4, 32, 32] and their decode (latents.npy, "
                "decoded.npy) into DIR instead of timing, for AutoencoderKLBenchmark's full-size check (DIFFUSE_VAE_FULL=DIR)")
args = ap.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)
vae = AutoencoderKL(down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                    block_out_channels=[128, 256, 512, 512], layers_per_block=2, sample_size=512).eval()


def timed(name, f):
    f()
    times = []
    for _ in range(args.runs):
        t = time.perf_counter(); f(); times.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"case": name, "seconds": [round(s, 3) for s in times], "peak_rss_mib": round(peak)}), flush=True)


if args.save:
    import numpy as np
    vae.save_pretrained(args.save, safe_serialization=True)
    with torch.inference_mode():
        z = torch.randn(1, 4, 32, 32)
        np.save(f"{args.save}/latents.npy", z.numpy())
        np.save(f"{args.save}/decoded.npy", vae.decode(z).sample.numpy())
    raise SystemExit(0)

with torch.inference_mode():
    z = torch.randn(1, 4, 64, 64)
    timed("decode 512x512", lambda: vae.decode(z).sample)
    if args.encode:
        x = torch.rand(1, 3, 512, 512) * 2 - 1
        timed("encode 512x512", lambda: vae.encode(x).latent_dist.mean)
    if args.tiled:
        vae.enable_tiling()
        z = torch.randn(1, 4, 128, 128)
        timed("tiled decode 1024x1024", lambda: vae.decode(z).sample)
