#!/usr/bin/env python3
"""Compares two Diffuse checkpoints (standard library only): per-step losses within a relative
tolerance, and every weight tensor (the model's EMA weights and raw/ optimized weights) within
an absolute tolerance. Prints the largest differences; exits 1 when a bound is broken.

    compare-checkpoints.py A/checkpoint B/checkpoint [--loss-rtol 1e-5] [--weight-atol 1e-5]
"""
import argparse, array, json, struct, sys


def safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            continue
        start, end = info["data_offsets"]
        a = array.array("f")
        a.frombytes(data[start:end])
        out[name] = a
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("a"); p.add_argument("b")
    p.add_argument("--loss-rtol", type=float, default=1e-5)
    p.add_argument("--weight-atol", type=float, default=1e-5)
    args = p.parse_args()
    ok = True
    la = json.load(open(args.a + "/training_state.json"))["losses"]
    lb = json.load(open(args.b + "/training_state.json"))["losses"]
    if len(la) != len(lb):
        print(f"FAIL: {len(la)} losses vs {len(lb)}"); return 1
    worst = max(abs(x - y) / max(abs(x), 1e-12) for x, y in zip(la, lb))
    print(f"losses: {len(la)} steps, largest relative difference {worst:.3g} (bound {args.loss_rtol:g})")
    ok &= worst <= args.loss_rtol
    for sub in ["", "raw/"]:
        wa = safetensors(f"{args.a}/{sub}diffusion_pytorch_model.safetensors")
        wb = safetensors(f"{args.b}/{sub}diffusion_pytorch_model.safetensors")
        if set(wa) != set(wb):
            print(f"FAIL: {sub or 'main '}weights hold different tensors"); return 1
        diff, where = 0.0, ""
        for k in wa:
            d = max((abs(x - y) for x, y in zip(wa[k], wb[k])), default=0.0)
            if d > diff:
                diff, where = d, k
        print(f"{'raw' if sub else 'EMA'} weights: {len(wa)} tensors, largest difference {diff:.3g} ({where}) (bound {args.weight_atol:g})")
        ok &= diff <= args.weight_atol
    print("same run" if ok else "FAIL: the runs differ")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
