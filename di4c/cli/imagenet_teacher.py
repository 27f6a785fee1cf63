"""Mini twin, ImageNet slice: train the class-conditional MaskGIT teacher on digit codes.

    python -m di4c.cli.imagenet_teacher --tokens results/imagenet/mini/tokens.pt \
        --out results/imagenet/mini/teacher/model.pth [--iters ... --hidden-dim ...]

The paper's teacher is the pretrained MaskGIT-pytorch transformer (Sec. 5.2);
the mini teacher is the same network at small size
(:mod:`di4c.networks.mini_maskgit`) trained with the MaskGIT objective of
MaskGIT-pytorch (method.md §4.1): progress r ~ U(0, 1) per image, each code
masked with probability arccos(r) / (pi / 2), the label replaced by the
dropped-label token with probability ``label_drop`` (10%, for classifier-free
guidance), cross-entropy of the x0-prediction at every position (masked or not,
as the authors) with ``label_smoothing``. The authors smooth with 0.1 over 1025
classes; the mini config sets its own value (see the config comment). Optional
EMA weights are what the file stores (``ema_decay``).

Writes ``--out`` in the authors' transformer ``.pth`` container and its
``.meta.json`` (network config, training config, final loss).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from di4c.cli.common import (
    add_dataclass_args,
    add_run_args,
    dataclass_from_args,
    setup_run,
)
from di4c.cli.imagenet_common import drop_labels, masked_process, save_network
from di4c.networks.mini_maskgit import MiniMaskGITConfig, build_mini_maskgit
from di4c.train import TrainConfig, train, weights_for_sampling


@dataclass(frozen=True)
class TeacherTrainConfig:
    iters: int = 20000
    batch_size: int = 64
    lr: float = 5e-4
    betas: tuple = (0.9, 0.96)  # MaskGIT-pytorch AdamW betas
    weight_decay: float = 1e-5
    warmup_steps: int = 500
    grad_clip: float = 1.0
    ema_decay: float = 0.999  # 0 disables; the stored weights are the EMA ones
    label_drop: float = 0.1  # MaskGIT-pytorch drop_label
    label_smoothing: float = 0.1  # MaskGIT-pytorch: 0.1
    init_std: float = (
        0.02  # tok_emb ~ N(0, init_std^2); 0 keeps torch's N(0, 1) (authors)
    )
    seed: int = 0


@dataclass
class TeacherLoss:
    total: torch.Tensor
    masked_ce: float  # cross-entropy on the masked positions only (monitoring)


def maskgit_teacher_loss(
    net, process, x0, labels, generator, label_drop: float, label_smoothing: float
) -> TeacherLoss:
    """MaskGIT training loss of one batch (codes ``x0`` (B, D), labels (B,))."""
    B, D = x0.shape
    r = torch.rand(B, generator=generator)
    x_t = process.sample_forward(x0, 1 - r, generator)
    cond = drop_labels(labels, label_drop, torch.rand(B, generator=generator))
    null = torch.full_like(cond, net.config.null_label)
    cond = torch.where(cond < 0, null, cond)
    logits = net(x_t, cond, cond == net.config.null_label)
    ce = F.cross_entropy(
        logits.reshape(B * D, -1), x0.reshape(-1), label_smoothing=label_smoothing
    )
    with torch.no_grad():
        m = (x_t == process.mask_id).reshape(-1)
        mce = F.cross_entropy(logits.reshape(B * D, -1)[m], x0.reshape(-1)[m])
    return TeacherLoss(ce, float(mce) if m.any() else 0.0)


def tokens_config(
    net_cfg: MiniMaskGITConfig, args, tok: dict, path
) -> MiniMaskGITConfig:
    """Take ``grid`` and ``codebook_size`` from the token file; refuse conflicting flags."""
    found = {"grid": int(tok["grid"]), "codebook_size": int(tok["codebook_size"])}
    for key, val in found.items():
        given = getattr(args, key, None)
        if given is not None and given != val:
            raise ValueError(
                f"--{key.replace('_', '-')} {given} conflicts with {path}, whose codes "
                f"have {key} {val}; drop the flag (it is read from the token file)"
            )
    if tok["train_tokens"].shape[1] != found["grid"] ** 2:
        raise ValueError(f"{path}: train_tokens do not hold grid**2 codes per image")
    return dataclasses.replace(net_cfg, **found)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tokens", required=True, help="token file of imagenet_mini_vq")
    ap.add_argument("--out", required=True, help="teacher .pth to write")
    add_run_args(ap)
    add_dataclass_args(ap, MiniMaskGITConfig)
    add_dataclass_args(ap, TeacherTrainConfig)
    args = ap.parse_args(argv)
    setup_run(args.log, args.threads)
    net_cfg = dataclass_from_args(MiniMaskGITConfig, args)
    cfg = dataclass_from_args(TeacherTrainConfig, args)
    t0 = time.time()

    tok = torch.load(args.tokens, map_location="cpu", weights_only=True)
    x0 = tok["train_tokens"].long()
    net_cfg = tokens_config(net_cfg, args, tok, args.tokens)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        net = build_mini_maskgit(net_cfg)
        if cfg.init_std > 0:
            torch.nn.init.normal_(net.tok_emb.weight, 0.0, cfg.init_std)
    process = masked_process(net.config)

    def loss_fn(batch, gen):
        return maskgit_teacher_loss(
            net,
            process,
            batch["x0"],
            batch["y"],
            gen,
            cfg.label_drop,
            cfg.label_smoothing,
        )

    tcfg = TrainConfig.from_run(
        cfg,
        optimizer="adamw",
        ema_decay=cfg.ema_decay or None,
        log_every=max(1, cfg.iters // 40),
        ckpt_every=max(1, cfg.iters // 8),
    )
    out_dir = Path(args.out).with_suffix(".run")
    result = train(
        net, loss_fn, {"x0": x0, "y": tok["train_labels"]}, tcfg, out_dir, "teacher"
    )
    net.load_state_dict(weights_for_sampling(result, use_ema=bool(cfg.ema_decay)))
    net.eval()
    save_network(
        args.out,
        net,
        iters=cfg.iters,
        config={"train": dataclasses.asdict(cfg), "mini_network": net_cfg.to_dict()},
        inputs={"tokens": args.tokens},
        seeds={"torch": cfg.seed},
        wall_time_s=time.time() - t0,
        extra={"final": result.history[-1] if result.history else None},
    )
    print(f"wrote {args.out} in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
