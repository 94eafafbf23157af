#!/usr/bin/env python3
"""Reads a `diffuse train --log-dir DIR` run with TensorBoard's own event reader.

Not in CI (the tensorboard package is large): run it with a Python that has tensorboard,
e.g. the peer virtual environment used for benchmarks:

    python3 -m venv .venv-peer && .venv-peer/bin/pip install tensorboard
    .venv-peer/bin/python scripts/tests/tensorboard-events.py [.build/release/diffuse]

It trains the tiny model for 6 steps on Fashion-MNIST's first 64 images with --log-dir,
--sample-every 3 and --eval-every 3 (8 samples: needs the FID Inception weights that
scripts/setup installs), then checks with EventAccumulator that every scalar tag is there at
the expected steps with finite values, that eval/fid equals the run's evaluations.json, and
that the sample grids decode as PNG images of the grid's size.
"""
import io
import json
import math
import os
import subprocess
import sys
import tempfile

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

binary = sys.argv[1] if len(sys.argv) > 1 else ".build/release/diffuse"
with tempfile.TemporaryDirectory() as tmp:
    run, logs = os.path.join(tmp, "run"), os.path.join(tmp, "tb")
    subprocess.run([binary, "train", "--data", "fashion-mnist", "--limit", "64", "--model", "tiny", "--out", run,
                    "--steps", "6", "--batch-size", "8", "--log-every", "1", "--sample-every", "3",
                    "--eval-every", "3", "--eval-samples", "8", "--eval-steps", "3", "--log-dir", logs,
                    "--threads", "1"], check=True)
    acc = EventAccumulator(logs, size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    expected = {"train/loss": list(range(1, 7)), "train/loss_smoothed": list(range(1, 7)),
                "train/learning_rate": list(range(1, 7)), "train/grad_norm": list(range(1, 7)),
                "train/images_per_second": list(range(1, 7)), "eval/fid": [3, 6], "eval/kid": [3, 6]}
    for tag, steps in expected.items():
        assert tag in tags["scalars"], f"{tag} missing: {tags['scalars']}"
        events = acc.Scalars(tag)
        assert [e.step for e in events] == steps, f"{tag}: steps {[e.step for e in events]}"
        assert all(math.isfinite(e.value) for e in events), f"{tag}: {events}"
    with open(os.path.join(run, "evaluations.json")) as f:
        evaluations = json.load(f)
    for e, record in zip(acc.Scalars("eval/fid"), evaluations):
        assert record["step"] == e.step and abs(record["report"]["fid"] - e.value) <= 1e-5 * abs(record["report"]["fid"]), (e, record)
    assert "samples" in tags["images"], tags["images"]
    images = acc.Images("samples")
    assert [i.step for i in images] == [3, 6], [i.step for i in images]
    for image in images:
        assert image.encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n"
        # A 4x4 grid of 28x28 images with 2-pixel padding: 4 * 28 + 5 * 2 = 122.
        assert (image.width, image.height) == (122, 122), (image.width, image.height)
    print(f"TensorBoard read {len(tags['scalars'])} scalar tags, {len(images)} images; "
          f"eval/fid {[round(e.value, 3) for e in acc.Scalars('eval/fid')]}: ok")
