"""Encode the ImageNet setting's training images into VQ codes (step ``encode``).

    python -m di4c.cli.encode --scale paper --data-dir D --vq M/vq --out D/tokens.pt

Paper scale: ImageNet train through the MaskGIT VQGAN. The authors encode every
training batch on the fly (Resize 256, RandomCrop 256, horizontal flip, then
2x - 1; sony/di4c maskgit-pytorch/Trainer/trainer.py); we encode each image once
with one draw of that augmentation, seeded per image from (``data.encode.seed``,
index) (:class:`di4c.data.imagenet.SeededItems`): the distribution of one epoch of
their pipeline, the same codes at any batch size or worker count. Mini scale: the
training digits through the mini VQ. Writes ``train_tokens`` (int16) and
``train_labels``.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from di4c.artifacts import meta_path_for, provenance, save_torch, write_json
from di4c.cli.common import run_step, step_config, step_parser
from di4c.cli.mini_vq import encode_tokens
from di4c.data.images import load_splits
from di4c.devices import resolve_device
from di4c.models import read_card
from di4c.settings.imagenet import ImageNet, load_tokenizer


@torch.no_grad()
def encode_imagenet(cfg: dict, vq, device) -> tuple[torch.Tensor, torch.Tensor]:
    from di4c.data.imagenet import SeededItems, imagenet_folder

    e = cfg["data"]["encode"]
    ds = SeededItems(imagenet_folder(cfg["data"]["root"], "train"), e["seed"])
    if e["limit"]:
        ds = torch.utils.data.Subset(ds, range(min(e["limit"], len(ds))))
    loader = torch.utils.data.DataLoader(
        ds, batch_size=e["batch_size"], num_workers=e["workers"], shuffle=False
    )
    codes, labels, done, t0 = [], [], 0, time.time()
    for x, y in loader:
        codes.append(
            vq.encode_grid(2 * x.to(device) - 1).flatten(1).to(torch.int16).cpu()
        )
        labels.append(y)
        done += y.numel()
        if len(codes) % 50 == 0 or done == len(ds):
            rate = done / (time.time() - t0)
            print(
                f"[encode] {done}/{len(ds)} images ({rate:.0f}/s, ETA "
                f"{(len(ds) - done) / rate / 60:.1f} min)",
                flush=True,
            )
    return torch.cat(codes), torch.cat(labels)


def main(args) -> None:
    cfg = step_config(args)
    t0 = time.time()
    device = resolve_device(cfg["device"])
    card = read_card(args.vq)
    vq = load_tokenizer(card, device)
    if ImageNet.is_mini(cfg):
        splits = load_splits(Path(args.data_dir) / "data.pt")
        tokens, labels = (
            encode_tokens(vq.cpu(), splits.train_x, splits.levels),
            splits.train_y,
        )
    else:
        tokens, labels = encode_imagenet(cfg, vq, device)
    save_torch(
        args.out,
        {
            "train_tokens": tokens,
            "train_labels": labels,
            "grid": int(round(tokens.shape[1] ** 0.5)),
            "codebook_size": vq.config.n_embed,
        },
    )
    write_json(
        meta_path_for(args.out),
        provenance(
            config=cfg["data"],
            inputs={"vq": Path(card.folder) / "model.json"},
            wall_time_s=time.time() - t0,
            extra={"num_images": int(tokens.shape[0])},
        ),
    )
    print(f"[encode] {tokens.shape[0]} images -> {args.out}", flush=True)


def cli(argv=None) -> None:
    ap = step_parser(__doc__, "imagenet")
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--vq", required=True, help="tokenizer model folder (model.json)")
    ap.add_argument("--out", required=True)
    run_step(main, ap, argv)


if __name__ == "__main__":
    cli()
