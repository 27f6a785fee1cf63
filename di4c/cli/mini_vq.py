"""Train the ImageNet mini twin's VQ tokenizer (step ``mini_vq``).

    python -m di4c.cli.mini_vq --scale mini --data-dir D --out-dir M

Stands in for the paper's VQGAN f16 (Sec. 5.2): the same ``VQModel`` family
(:mod:`di4c.networks.mini_vq`) trained on the training digits only with the VQ-VAE
objective (straight-through, commitment weight ``beta``), its codebook initialised
by k-means and unused codes re-seeded every ``restart_every`` steps. Written as the
authors' VQGAN container (``last.ckpt`` + ``model.yaml``); configuration
``models.vq.network`` and ``models.vq.train``. The codes themselves are made by the
``encode`` step, as at paper scale.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from di4c.artifacts import provenance
from di4c.cli.common import model_spec, run_step, step_config, step_parser
from di4c.cli.teacher import loop_config
from di4c.config import ConfigError
from di4c.data.images import load_splits
from di4c.models import ModelCard, write_card
from di4c.networks.mini_vq import (
    MiniVQConfig,
    build_mini_vq,
    kmeans_init_codebook,
    vq_forward,
)
from di4c.teachers.maskgit import save_vqgan_checkpoint, write_vqgan_yaml
from di4c.train import train


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


def main(args) -> None:
    cfg = step_config(args)
    spec = model_spec(cfg, "vq", "train")
    t = spec["train"]
    net_cfg = MiniVQConfig(
        **{
            k: tuple(v) if isinstance(v, list) else v
            for k, v in spec["network"].items()
        }
    )
    t0 = time.time()
    torch.manual_seed(t["seed"])  # anything drawing from the global generator
    splits = load_splits(Path(args.data_dir) / "data.pt")
    S = splits.levels
    want = (net_cfg.in_channels, net_cfg.resolution, net_cfg.resolution)
    if splits.image_shape != want:
        raise ConfigError(
            f"the digits are {splits.image_shape}; models.vq.network expects {want} "
            "(set resolution / in_channels to match data.size)"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(t["seed"])
        model = build_mini_vq(net_cfg)
    gen = torch.Generator().manual_seed(t["seed"])
    init_idx = torch.randperm(splits.train_x.shape[0], generator=gen)[
        : t["kmeans_images"]
    ]
    probe = to_signed(splits.train_x[init_idx], S)
    counts = kmeans_init_codebook(model, probe, seed=t["seed"])
    print(f"[vq] k-means init: {int((counts > 0).sum())}/{net_cfg.n_embed} codes used")

    def loss_fn(batch, _gen):
        x = to_signed(batch["x"], S)
        out = vq_forward(model, x)
        recon = F.mse_loss(out.recon, x)
        total = recon + out.codebook_loss + t["beta"] * out.commit_loss
        return VQLoss(total, float(recon.detach()), float(out.commit_loss.detach()))

    def on_step(step, m):
        if t["restart_every"] and step % t["restart_every"] == 0 and step < t["iters"]:
            n = restart_unused_codes(m, probe, step, t["seed"])
            if n:
                print(f"[vq] step {step}: re-seeded {n} unused codes", flush=True)

    out = Path(args.out_dir)
    train(
        model,
        loss_fn,
        {"x": splits.train_x},
        loop_config(t),
        out / "run",
        "vq",
        on_step,
    )
    model.eval()
    codes = encode_tokens(model, splits.train_x, S)
    usage = torch.bincount(codes.long().flatten(), minlength=net_cfg.n_embed)
    with torch.no_grad():
        x = to_signed(splits.heldout_x, S)
        held_mse = float(F.mse_loss(model(x), x))
    stats = {"codes_used": int((usage > 0).sum()), "heldout_mse": held_mse}
    print(f"[vq] {stats}", flush=True)
    save_vqgan_checkpoint(out / "last.ckpt", model, global_step=t["iters"])
    write_vqgan_yaml(out / "model.yaml", net_cfg.to_vqgan())
    card = ModelCard(
        name="vq",
        setting="imagenet",
        kind="tokenizer",
        source="train",
        files={"weights": "last.ckpt", "config": "model.yaml"},
        network=net_cfg.to_dict(),
        extra={"stats": stats},
    )
    write_card(
        out,
        card,
        provenance=provenance(
            config=spec,
            inputs={"data": Path(args.data_dir) / "data.json"},
            seeds={"train": t["seed"]},
            wall_time_s=time.time() - t0,
        ),
    )


def cli(argv=None) -> None:
    ap = step_parser(__doc__, "imagenet")
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--out-dir", required=True)
    run_step(main, ap, argv)


if __name__ == "__main__":
    cli()
