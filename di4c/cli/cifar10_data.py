"""Build the CIFAR-10 mini twin's image data (packaged digits; method.md §3 at digit scale).

    python -m di4c.cli.cifar10_data --out results/cifar10_mini/data.pt \
        --source mnist5k --size 12 --levels 16 --heldout 1000 --seed 0

Writes the quantised train / held-out splits (:mod:`di4c.data.images`) and a
``.meta.json`` with their sizes and class counts.

Paper scale (``--cifar10-root R``): makes sure torchvision's CIFAR-10 is in R
(downloading it when missing), checks both splits and writes a JSON record
(``--out``) of their sizes and the archive checksum; the distillation and the
metrics read the images from R.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from di4c.artifacts import sha256_file, write_json, write_meta
from di4c.cli.common import (
    add_dataclass_args,
    add_run_args,
    dataclass_from_args,
    setup_run,
)
from di4c.data.images import ImageDataConfig, load_image_splits, save_splits


def prepare_cifar10(root: str, out: str) -> None:
    from pathlib import Path

    from di4c.data.cifar10 import load_cifar10

    t0 = time.time()
    counts = {}
    for split, train in (("train", True), ("test", False)):
        x, y = load_cifar10(root, train=train)
        counts[split] = {"images": int(x.shape[0]), "shape": list(x.shape[1:])}
    archive = Path(root) / "cifar-10-python.tar.gz"
    record = {
        "root": str(root),
        "splits": counts,
        "archive_sha256": sha256_file(archive) if archive.is_file() else None,
    }
    write_json(out, record)
    write_meta(out, config={"cifar10_root": root}, wall_time_s=time.time() - t0)
    print(f"CIFAR-10 ready in {root}: {counts}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", required=True, help="output .pt file")
    add_run_args(ap)
    ap.add_argument("--cifar10-root", default=None, help="paper scale: CIFAR-10 folder")
    add_dataclass_args(ap, ImageDataConfig)
    args = ap.parse_args(argv)
    setup_run(args.log, args.threads)
    if args.cifar10_root:
        return prepare_cifar10(args.cifar10_root, args.out)
    cfg = dataclass_from_args(ImageDataConfig, args)
    t0 = time.time()
    splits = load_image_splits(cfg)
    save_splits(splits, args.out)
    write_meta(
        args.out,
        config=dataclasses.asdict(cfg),
        seeds={"split": cfg.seed},
        wall_time_s=time.time() - t0,
        extra={
            "num_train": len(splits.train_y),
            "num_heldout": len(splits.heldout_y),
            "image_shape": list(splits.image_shape),
            "heldout_class_counts": torch.bincount(splits.heldout_y).tolist(),
            "mean_level_train": float(splits.train_x.float().mean()),
        },
    )
    print(
        f"wrote {args.out}: train {tuple(splits.train_x.shape)}, held-out {tuple(splits.heldout_x.shape)}"
    )


if __name__ == "__main__":
    main()
