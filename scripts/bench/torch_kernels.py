"""PyTorch peer for `diffuse bench kernels`: times the same kernels at the same shapes,
2 threads, in both memory layouts PyTorch offers (NCHW and channels_last), and prints one
JSON line per (kernel, dtype, layout) with the median milliseconds.

Usage: .venv-peer/bin/python scripts/bench/torch_kernels.py [--iterations 7] [--threads 2]
The names match the Swift suite (Sources/Tensors/Diagnostics/KernelBenchmarks.swift).
"""
import argparse, json, time, torch
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--iterations", type=int, default=7)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--filter", default="")
args = ap.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)

def median_ms(f):
    f(); f()
    ts = []
    for _ in range(args.iterations):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    ts.sort()
    return ts[len(ts) // 2] * 1e3

def emit(name, dtype, layout, f):
    if args.filter and args.filter not in name:
        return
    print(json.dumps({"name": name, "dtype": dtype, "layout": layout, "ms": median_ms(f)}), flush=True)

def conv(batch, ch, size, dt, dname):
    base = f"conv3x3 {ch}->{ch} {batch}x{ch}x{size}x{size}"
    for layout, fmt in [("nchw", torch.contiguous_format), ("channels_last", torch.channels_last)]:
        x = torch.randn(batch, ch, size, size, dtype=dt).to(memory_format=fmt)
        w = (torch.randn(ch, ch, 3, 3) * 0.05).to(dt).to(memory_format=fmt)
        gy = torch.randn(batch, ch, size, size, dtype=dt).to(memory_format=fmt)
        args = ([1, 1], [1, 1], [1, 1], False, [0, 0], 1)
        with torch.no_grad():
            emit(base + " fwd", dname, layout, lambda: F.conv2d(x, w, padding=1))
            emit(base + " bwd-data", dname, layout,
                 lambda: torch.ops.aten.convolution_backward(gy, x, w, None, *args, [True, False, False]))
            emit(base + " bwd-weights", dname, layout,
                 lambda: torch.ops.aten.convolution_backward(gy, x, w, None, *args, [False, True, False]))

conv(64, 64, 32, torch.float32, "float32")
conv(64, 64, 32, torch.bfloat16, "bfloat16")
conv(64, 128, 16, torch.float32, "float32")
conv(64, 256, 8, torch.float32, "float32")

with torch.no_grad():
    A, B = torch.randn(1024, 1024), torch.randn(1024, 1024)
    emit("matmul 1024x1024x1024", "float32", "rowmajor", lambda: A @ B)
    X, W = torch.randn(8192, 320), torch.randn(2560, 320)
    emit("linear 8192x320->2560", "float32", "rowmajor", lambda: X @ W.t())
    bias = torch.randn(2560)
    emit("linear 8192x320->2560 +bias", "float32", "rowmajor", lambda: F.linear(X, W, bias))
    q, k = torch.randn(128, 256, 64), torch.randn(128, 256, 64)
    emit("attention QK^T 128x256x256x64", "float32", "rowmajor", lambda: torch.matmul(q, k.transpose(1, 2)))
    p, v = torch.randn(128, 256, 256), torch.randn(128, 256, 64)
    emit("attention PV 128x256x256x64", "float32", "rowmajor", lambda: torch.matmul(p, v))

# The bench U-Nets' attention: unet-small at 16x16 and 8x8, ddpm-cifar10-32 at 16x16.
for b, h, l, d in [(64, 2, 256, 32), (64, 4, 64, 32), (8, 1, 256, 256)]:
    name = f"attention {b}x{h}x{l}x{d}"
    for dt, dname in [(torch.float32, "float32"), (torch.bfloat16, "bfloat16")]:
        q, k, v = (torch.randn(b, l, h, d).to(dt).permute(0, 2, 1, 3) for _ in range(3))
        with torch.no_grad():
            emit(name + " fwd", dname, "strided-heads", lambda: F.scaled_dot_product_attention(q, k, v))
        qg, kg, vg = (t.detach().requires_grad_() for t in (q, k, v))
        def attention_step():
            F.scaled_dot_product_attention(qg, kg, vg).sum().backward()
            qg.grad = kg.grad = vg.grad = None
        emit(name + " fwd+bwd", dname, "strided-heads", attention_step)

# Stable Diffusion 1.x's self-attention at 64x64 latents (guided batch 2), sampling only.
for dt, dname in [(torch.float32, "float32"), (torch.bfloat16, "bfloat16")]:
    q, k, v = (torch.randn(2, 4096, 8, 40).to(dt).permute(0, 2, 1, 3) for _ in range(3))
    with torch.no_grad():
        emit("attention 2x8x4096x40 fwd", dname, "strided-heads", lambda: F.scaled_dot_product_attention(q, k, v))

# 64x64x32x32: unet-small's 64-channel layers at batch 64 (beyond L2); 8x128x32x32:
# ddpm-cifar10-32's 32x32 resnets at batch 8 (2 MB in bf16).
for (n, c, size) in [(64, 64, 32), (8, 128, 32)]:
    name = f"groupnorm+silu {n}x{c}x{size}x{size} g32"
    for (layout, fmt), (dt, dname) in [(l, d) for d in [(torch.float32, "float32"), (torch.bfloat16, "bfloat16")]
                                       for l in [("nchw", torch.contiguous_format), ("channels_last", torch.channels_last)]]:
        # bf16: as autocast runs it in a bf16 model (group_norm takes bf16 in, bf16 out on CPU).
        x = torch.randn(n, c, size, size).to(dt).to(memory_format=fmt).requires_grad_()
        w = (torch.randn(c) + 1).requires_grad_(); b = torch.randn(c).requires_grad_()
        gy = torch.randn(n, c, size, size).to(dt).to(memory_format=fmt)
        with torch.no_grad():
            emit(name + " fwd", dname, layout, lambda: F.silu(F.group_norm(x, 32, w, b)))
        y = F.silu(F.group_norm(x, 32, w, b))
        emit(name + " bwd", dname, layout, lambda: torch.autograd.grad(y, (x, w, b), gy, retain_graph=True))

with torch.no_grad():
    cl = lambda *s: torch.randn(*s).to(memory_format=torch.channels_last)
    for layout, make in [("nchw", lambda *s: torch.randn(*s)), ("channels_last", cl)]:
        a, b = make(64, 64, 32, 32), make(64, 64, 32, 32)
        emit("add 64x64x32x32", "float32", layout, lambda: a + b)
        bias = torch.randn(1, 64, 1, 1)
        emit("add bias[C] 64x64x32x32", "float32", layout, lambda: a + bias)
        emit("silu 64x64x32x32", "float32", layout, lambda: F.silu(a))
    s = torch.randn(128, 256, 256)
    emit("softmax 128x256x256", "float32", "rowmajor", lambda: torch.softmax(s, -1))
    m = torch.randn(64, 64, 32, 32)
    emit("mean over HW 64x64x32x32", "float32", "nchw", lambda: m.mean((2, 3)))

# torch.optim.AdamW's CPU step (its default single-tensor path) over ddpm-cifar10-32's
# parameter count, as one tensor.
n = 35_746_307
p = torch.nn.Parameter(torch.randn(n))
p.grad = torch.randn(n)
opt = torch.optim.AdamW([p], lr=1e-4)
emit(f"adamw step {n / 1e6:.1f}M", "float32", "rowmajor", opt.step)
