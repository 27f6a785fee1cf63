"""Class labels of the evaluation samples (method.md §4.5: labels follow the val loader).

    python -m di4c.cli.imagenet_labels --imagenet-dir DIR --num 50000 --out labels.pt
    python -m di4c.cli.imagenet_labels --tokens tokens.pt --num 2000 --out labels.pt

Paper scale: the labels of the 50,000 ImageNet val images in the order of a
shuffling val loader, the shuffle fixed by ``--seed``
(:func:`di4c.data.imagenet.val_labels_in_loader_order`): 50 per class.
Mini scale: the labels of the held-out digits (the metric's reference set) in
a seeded shuffled order, repeated until ``--num`` labels: the class mix of the
reference set, as at paper scale.
"""

from __future__ import annotations

import argparse

import torch

from di4c.artifacts import save_torch, write_meta
from di4c.cli.common import add_run_args, setup_run
from di4c.data.imagenet import val_labels_in_loader_order


def heldout_labels_in_loader_order(labels: torch.Tensor, num: int, seed: int):
    """Reshuffle ``labels`` (seeded, one fresh permutation per pass) until ``num``."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    while sum(x.numel() for x in out) < num:
        out.append(labels[torch.randperm(labels.numel(), generator=gen)])
    return torch.cat(out)[:num]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--imagenet-dir", help="ImageNet root with val/ (paper scale)")
    src.add_argument("--tokens", help="mini token file with heldout_labels")
    ap.add_argument("--num", type=int, required=True, help="number of labels")
    ap.add_argument("--seed", type=int, default=0, help="loader shuffle seed")
    ap.add_argument("--out", required=True)
    add_run_args(ap)
    args = ap.parse_args(argv)
    setup_run(args.log, args.threads)
    if args.imagenet_dir:
        labels = val_labels_in_loader_order(args.imagenet_dir, args.seed, args.num)
        source = {"imagenet_val": args.imagenet_dir}
        inputs = {}
    else:
        held = torch.load(args.tokens, map_location="cpu", weights_only=True)
        labels = heldout_labels_in_loader_order(
            held["heldout_labels"].long(), args.num, args.seed
        )
        source = {"heldout_labels": args.tokens}
        inputs = {"tokens": args.tokens}
    save_torch(args.out, {"labels": labels})
    counts = torch.bincount(labels).tolist()
    write_meta(
        args.out,
        config={"num": args.num, **source},
        inputs=inputs,
        seeds={"shuffle": args.seed},
        extra={"class_counts": counts},
    )
    print(f"wrote {args.out}: {labels.numel()} labels, per class {counts[:10]}...")


if __name__ == "__main__":
    main()
