"""Mini twin, ImageNet slice: train the small VQ tokenizer and tokenise the digits.

    python -m di4c.cli.imagenet_mini_vq --data results/imagenet/mini/data.pt \
        --out-dir results/imagenet/mini/vq --tokens results/imagenet/mini/tokens.pt

Stands in for the paper's VQGAN f16 (Sec. 5.2; method.md §4.1): the same
``VQModel`` family (:mod:`di4c.networks.mini_vq`) trained here on the training
digits only. Writes ``<out-dir>/last.ckpt`` + ``model.yaml`` (the authors'
VQGAN container, read back by :func:`di4c.teachers.maskgit.vqgan_from_files`)
with ``last.meta.json``, and ``--tokens``: the code grids of the training
digits (the masked model's data) and of the held-out digits, with labels.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from di4c.artifacts import save_torch, write_meta
from di4c.cli.common import (
    add_dataclass_args,
    add_run_args,
    dataclass_from_args,
    setup_run,
)
from di4c.data.images import load_splits
from di4c.networks.mini_vq import (
    MiniVQConfig,
    build_mini_vq,
    kmeans_init_codebook,
    vq_forward,
)
from di4c.teachers.maskgit import save_vqgan_checkpoint, write_vqgan_yaml
from di4c.train import TrainConfig, train


@dataclass(frozen=True)
class VQTrainConfig:
    """Tokenizer training (VQ-VAE objective, straight-through; our choice)."""

    iters: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    beta: float = 0.25  # commitment weight
    kmeans_images: int = 512  # images whose latents initialise the codebook
    restart_every: int = 200  # re-seed unused codes every this many steps (0: never)
    seed: int = 0


@dataclass
class VQLoss:
    total: torch.Tensor
    recon: float
    commit: float


def to_signed(levels: torch.Tensor, num_levels: int) -> torch.Tensor:
    """Pixel levels {0..S-1} -> floats in [-1, 1] (the VQGAN input range)."""
    return levels.float() * (2.0 / (num_levels - 1)) - 1.0


@torch.no_grad()
def encode_tokens(model, x_levels, num_levels, batch: int = 512) -> torch.Tensor:
    """Code grids (N, h * w) of level images."""
    model.eval()
    out = []
    for i in range(0, x_levels.shape[0], batch):
        codes = model.encode_grid(to_signed(x_levels[i : i + batch], num_levels))
        out.append(codes.flatten(1))
    return torch.cat(out).to(torch.int16)


@torch.no_grad()
def restart_unused_codes(model, x, step: int, seed: int) -> int:
    """Re-seed codes no latent of ``x`` uses with randomly chosen latents."""
    lat = model.encode_latents(x)
    z = lat.permute(0, 2, 3, 1).reshape(-1, model.embed_dim)
    used = torch.bincount(model.quantize.indices(lat), minlength=model.n_embed)
    dead = (used == 0).nonzero().squeeze(1)
    if dead.numel():
        gen = torch.Generator().manual_seed(seed * 7919 + step)
        pick = torch.randperm(z.shape[0], generator=gen)[: dead.numel()]
        model.quantize.embedding.weight[dead] = z[pick]
    return int(dead.numel())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--data", required=True, help="image splits (.pt, di4c.data.images)"
    )
    ap.add_argument(
        "--out-dir", required=True, help="folder for last.ckpt + model.yaml"
    )
    ap.add_argument("--tokens", required=True, help="output token file (.pt)")
    add_run_args(ap)
    add_dataclass_args(ap, MiniVQConfig)
    add_dataclass_args(ap, VQTrainConfig)
    args = ap.parse_args(argv)
    setup_run(args.log, args.threads)
    net_cfg = dataclass_from_args(MiniVQConfig, args)
    cfg = dataclass_from_args(VQTrainConfig, args)
    t0 = time.time()

    splits = load_splits(args.data)
    S = splits.levels
    if splits.image_shape != (
        net_cfg.in_channels,
        net_cfg.resolution,
        net_cfg.resolution,
    ):
        raise ValueError(
            f"{args.data}: images are {splits.image_shape}; the tokenizer config expects "
            f"({net_cfg.in_channels}, {net_cfg.resolution}, {net_cfg.resolution}) "
            "(set resolution / in_channels to match the data)"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = build_mini_vq(net_cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    init_idx = torch.randperm(splits.train_x.shape[0], generator=gen)[
        : cfg.kmeans_images
    ]
    probe = to_signed(splits.train_x[init_idx], S)
    counts = kmeans_init_codebook(model, probe, seed=cfg.seed)
    print(f"[vq] k-means init: {int((counts > 0).sum())}/{net_cfg.n_embed} codes used")

    def loss_fn(batch, _gen):
        x = to_signed(batch["x"], S)
        out = vq_forward(model, x)
        recon = F.mse_loss(out.recon, x)
        total = recon + out.codebook_loss + cfg.beta * out.commit_loss
        return VQLoss(total, float(recon.detach()), float(out.commit_loss.detach()))

    def on_step(step, m):
        if cfg.restart_every and step % cfg.restart_every == 0 and step < cfg.iters:
            n = restart_unused_codes(m, probe, step, cfg.seed)
            if n:
                print(f"[vq] step {step}: re-seeded {n} unused codes", flush=True)

    out_dir = Path(args.out_dir)
    tcfg = TrainConfig.from_run(
        cfg,
        optimizer="adam",
        log_every=max(1, cfg.iters // 20),
        ckpt_every=max(1, cfg.iters // 4),
    )
    result = train(
        model, loss_fn, {"x": splits.train_x}, tcfg, out_dir / "run", "vq", on_step
    )
    model.eval()

    train_tok = encode_tokens(model, splits.train_x, S)
    held_tok = encode_tokens(model, splits.heldout_x, S)
    usage = torch.bincount(train_tok.long().flatten(), minlength=net_cfg.n_embed)
    p = usage.float() / usage.sum()
    perplexity = float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum()))
    with torch.no_grad():
        rec = model(to_signed(splits.heldout_x, S))
        held_mse = float(F.mse_loss(rec, to_signed(splits.heldout_x, S)))
    stats = {
        "codes_used": int((usage > 0).sum()),
        "code_perplexity": perplexity,
        "heldout_mse": held_mse,
        "final_train_loss": result.history[-1] if result.history else None,
    }
    print(f"[vq] {stats}")

    ckpt = out_dir / "last.ckpt"
    save_vqgan_checkpoint(ckpt, model, global_step=cfg.iters)
    write_vqgan_yaml(out_dir / "model.yaml", net_cfg.to_vqgan())
    wall = time.time() - t0
    write_meta(
        ckpt,
        config={"network": net_cfg.to_dict(), "train": dataclasses.asdict(cfg)},
        inputs={"data": args.data},
        seeds={"torch": cfg.seed},
        wall_time_s=wall,
        extra={"stats": stats},
    )
    save_torch(
        args.tokens,
        {
            "train_tokens": train_tok,
            "train_labels": splits.train_y,
            "heldout_tokens": held_tok,
            "heldout_labels": splits.heldout_y,
            "grid": net_cfg.grid,
            "codebook_size": net_cfg.n_embed,
        },
    )
    write_meta(
        args.tokens,
        config={"tokenizer": str(ckpt)},
        inputs={"data": args.data, "tokenizer": ckpt},
        wall_time_s=wall,
    )
    print(f"wrote {ckpt} and {args.tokens} in {wall:.0f}s")


if __name__ == "__main__":
    main()
