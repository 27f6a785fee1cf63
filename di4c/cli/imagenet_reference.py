"""Reference features for the ImageNet-slice metrics (method.md §4.5), both scales.

    python -m di4c.cli.imagenet_reference paper --imagenet-dir DIR --out ref.pt
    python -m di4c.cli.imagenet_reference mini --data data.pt --classifier clf.pt \
        --vq-ckpt vq/last.ckpt --vq-yaml vq/model.yaml --out ref.pt --rows rows.json

Paper: Inception features (torch-fidelity ``inception-v3-compat``: 2048-d pool
and logits) of the 50,000 ImageNet val images, Resize 256 + CenterCrop 256, each
min-max rescaled to uint8, computed once (the authors' real statistics).

Mini: digit-classifier features of the held-out digits (the reference set),
and the reference rows of the table, scored like any generated cell: the
training digits themselves (what a perfect generator scores) and their mini-VQ
reconstructions (the tokenizer's floor, as rFID is for a VQGAN), each with its
split-half spread.
"""

from __future__ import annotations

import argparse
import time

import torch

from di4c.artifacts import save_torch, write_json, write_meta
from di4c.cli.common import add_run_args, setup_run
from di4c.cli.imagenet_eval import metrics_for
from di4c.cli.imagenet_images import (
    decoded_chunks,
    features_of_chunks,
    load_tokenizer,
    score_features,
    to_judge,
)
from di4c.cli.imagenet_mini_vq import encode_tokens
from di4c.data.imagenet import MinMaxImages, imagenet_folder
from di4c.data.images import levels_to_uint8, load_splits

MINI_METRICS = ("fid", "isc", "prc")


def real_levels_to_judge(x_levels: torch.Tensor, levels: int) -> torch.Tensor:
    """Real digits (levels) through the same min-max + re-quantisation as samples."""
    return to_judge(levels_to_uint8(x_levels, levels).float(), levels)


def run_paper(args) -> None:
    t0 = time.time()
    ds = MinMaxImages(imagenet_folder(args.imagenet_dir, "val"), limit=args.num)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=args.chunk, num_workers=args.workers, shuffle=False
    )
    feats = features_of_chunks(
        loader,
        args.feature_extractor,
        metrics_for(args.feature_extractor),
        args.weights_path,
    )
    save_torch(args.out, feats)
    write_meta(
        args.out,
        config={"num": len(ds), "feature_extractor": args.feature_extractor},
        inputs={},
        wall_time_s=time.time() - t0,
        extra={"imagenet_dir": args.imagenet_dir, "preprocessing": "per-image min-max"},
    )
    print(f"wrote {args.out}: {len(ds)} val images in {time.time() - t0:.0f}s")


def run_mini(args) -> None:
    t0 = time.time()
    splits = load_splits(args.data)
    S = splits.levels
    ext, w = "digit-classifier", args.classifier
    real = features_of_chunks(
        [real_levels_to_judge(splits.heldout_x, S)], ext, MINI_METRICS, w
    )
    n = min(args.num, splits.train_x.shape[0])
    pick = torch.randperm(
        splits.train_x.shape[0], generator=torch.Generator().manual_seed(args.seed)
    )[:n]
    train_x = splits.train_x[pick]
    train_feats = features_of_chunks(
        [real_levels_to_judge(train_x, S)], ext, MINI_METRICS, w
    )
    rows = {"data": score_features(train_feats, real, ext, MINI_METRICS)}
    tok = load_tokenizer(args.vq_ckpt, args.vq_yaml).eval()
    codes = encode_tokens(tok, train_x, S)
    recon = features_of_chunks(
        decoded_chunks(tok, codes, 1000, S, label="vq recon"), ext, MINI_METRICS, w
    )
    rows["vq_reconstruction"] = score_features(recon, real, ext, MINI_METRICS)
    for name, r in rows.items():
        nums = ", ".join(f"{k} {v:.4g}" for k, v in r.items() if isinstance(v, float))
        print(f"[reference] {name} ({n} train images): {nums}")
    save_torch(args.out, real)
    inputs = {"data": args.data, "classifier": args.classifier, "vq": args.vq_ckpt}
    write_meta(
        args.out,
        config={
            "feature_extractor": ext,
            "num_reference": int(splits.heldout_x.shape[0]),
            "num_rows": n,
        },
        inputs=inputs,
        wall_time_s=time.time() - t0,
    )
    write_json(args.rows, rows)
    write_meta(
        args.rows,
        config={"num_train_images": n},
        inputs=inputs,
        seeds={"subset": args.seed},
        wall_time_s=time.time() - t0,
    )
    print(f"wrote {args.out} and {args.rows} in {time.time() - t0:.0f}s")


SCALES = {"paper": run_paper, "mini": run_mini}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="scale", required=True)
    p = sub.add_parser("paper", help="ImageNet val Inception features")
    p.add_argument("--imagenet-dir", required=True)
    p.add_argument("--num", type=int, default=50000)
    p.add_argument("--feature-extractor", default="inception-v3-compat")
    p.add_argument("--weights-path", default=None, help="local Inception weights")
    p.add_argument("--chunk", type=int, default=500)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--out", required=True)
    add_run_args(p)
    m = sub.add_parser("mini", help="held-out digits + reference rows")
    m.add_argument("--data", required=True)
    m.add_argument("--classifier", required=True)
    m.add_argument("--vq-ckpt", required=True)
    m.add_argument("--vq-yaml", required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--rows", required=True, help="reference-row metrics (.json)")
    m.add_argument("--num", type=int, default=2000, help="train images per row")
    m.add_argument("--seed", type=int, default=0, help="seed of that subset")
    add_run_args(m)
    args = ap.parse_args(argv)
    setup_run(args.log, args.threads)
    SCALES[args.scale](args)


if __name__ == "__main__":
    main()
