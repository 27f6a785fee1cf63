"""Tokenise ImageNet train with the MaskGIT VQGAN: the data of paper-scale Di4C training.

    python -m di4c.cli.imagenet_encode --imagenet-dir DIR \
        --vq-ckpt weights/vqgan/last.ckpt --vq-yaml weights/vqgan/model.yaml \
        --out results/imagenet/paper/tokens.pt

The authors encode every training batch on the fly (Resize 256, RandomCrop
256, horizontal flip, then 2x - 1 and the VQGAN encoder; method.md §4.1,
§4.3). We encode each training image once with one draw of that augmentation,
seeded per image from (``--seed``, index) by
:class:`di4c.data.imagenet.SeededItems` (the same codes at any batch size or
worker count), which gives the distribution of one epoch of their pipeline; at
their batch of 4 images an epoch is 320k iterations, beyond what the released
checkpoint's (unknown) length is likely to be. Codes are stored as int16
(1.28M x 256 = 0.66 GB), with labels, in the token-file layout the distillation
CLI reads (``train_tokens``, ``train_labels``).
"""

from __future__ import annotations

import argparse
import time

import torch

from di4c.artifacts import save_torch, write_meta
from di4c.cli.common import add_run_args, setup_run
from di4c.cli.imagenet_images import load_tokenizer
from di4c.data.imagenet import SeededItems, imagenet_folder
from di4c.devices import resolve_device


@torch.no_grad()
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--imagenet-dir", required=True)
    ap.add_argument("--vq-ckpt", required=True)
    ap.add_argument("--vq-yaml", required=True)
    ap.add_argument("--split", default="train")
    ap.add_argument("--limit", type=int, default=0, help="encode only the first N")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0, help="augmentation seed")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", required=True)
    add_run_args(ap)
    args = ap.parse_args(argv)
    setup_run(args.log, args.threads)
    t0 = time.time()
    device = resolve_device(args.device)
    ds = SeededItems(imagenet_folder(args.imagenet_dir, args.split), args.seed)
    if args.limit:
        ds = torch.utils.data.Subset(ds, range(min(args.limit, len(ds))))
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=args.batch_size,
        num_workers=args.workers,
        shuffle=False,
    )
    vq = load_tokenizer(args.vq_ckpt, args.vq_yaml, device=device).eval()
    n = len(ds)
    codes, labels = [], []
    done = 0
    for x, y in loader:
        grid = vq.encode_grid(2 * x.to(device) - 1)
        codes.append(grid.flatten(1).to(torch.int16).cpu())
        labels.append(y)
        done += y.numel()
        if len(codes) % 50 == 0 or done == n:
            rate = done / (time.time() - t0)
            print(
                f"[encode] {done}/{n} images ({rate:.0f}/s, ETA "
                f"{(n - done) / rate / 60:.1f} min)",
                flush=True,
            )
    tokens = torch.cat(codes)
    save_torch(
        args.out,
        {
            "train_tokens": tokens,
            "train_labels": torch.cat(labels),
            "grid": int(round(tokens.shape[1] ** 0.5)),
            "codebook_size": vq.config.n_embed,
        },
    )
    write_meta(
        args.out,
        config={"split": args.split, "limit": args.limit, "workers": args.workers},
        inputs={"vq_ckpt": args.vq_ckpt},
        seeds={"augmentation": args.seed},
        wall_time_s=time.time() - t0,
        extra={"num_images": n, "imagenet_dir": args.imagenet_dir},
    )
    print(f"wrote {args.out}: {n} images in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
