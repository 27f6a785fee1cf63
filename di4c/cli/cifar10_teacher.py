"""Train the CIFAR-10 mini twin's tauLDR-family teacher on packaged digits (method.md §3.1).

    python -m di4c.cli.cifar10_teacher --data results/cifar10_mini/data.pt \
        --out results/cifar10_mini/teacher.pt --work-dir results/cifar10_mini/teacher_run

The network is the paper's UNet class at digit size (:mod:`di4c.networks.mini_unet`);
the process the paper's Gaussian-target rate matrix at S levels. Objective: the
x0 cross-entropy E_t E_{x_t ~ q_t(.|x0)} [-sum_d log p(x0^d | x_t)] / D with
t ~ U(min_time, 1), i.e. the x0-prediction part of tauLDR's loss (the paper's
teacher was trained with the CTMC ELBO plus 0.001 x this term; both have the
true posterior marginals as optimum, and only the x0-predictor is used by Di4C).
No horizontal flips (digits are not mirror-symmetric). Training is resumable
(``--work-dir``). Output: the authors' container on EMA weights (plus the raw
weights) and ``<out>.meta.json`` holding ``net_config`` and ``process``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from di4c.artifacts import write_meta
from di4c.cli.cifar10_common import ProcessConfig, net_config_to_dict
from di4c.cli.common import (
    add_dataclass_args,
    add_run_args,
    dataclass_from_args,
    setup_run,
)
from di4c.data.images import load_splits
from di4c.networks.mini_unet import MiniUNetConfig, build_mini_unet
from di4c.teachers.tauldr import save_checkpoint
from di4c.train import TrainConfig, train


@dataclass(frozen=True)
class TeacherRun:
    """Teacher training (network width: :class:`MiniUNetConfig`; process: :class:`ProcessConfig`)."""

    iters: int = 4000
    batch_size: int = 64
    lr: float = 1e-3
    warmup_steps: int = 100
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    min_time: float = 0.01
    seed: int = 0
    log_every: int = 100
    ckpt_every: int = 500


def x0_cross_entropy(
    net, process, x0: torch.Tensor, gen: torch.Generator, min_time: float
):
    """Mean over pixels of -log p_theta(x0 | x_t), t ~ U(min_time, 1), x_t ~ q_t(. | x0)."""
    t = min_time + (1.0 - min_time) * torch.rand(x0.shape[0], generator=gen)
    x_t = process.sample_forward(x0, t, gen)
    logits = net(x_t, t)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x0.reshape(-1))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", required=True, help="image-splits file (cifar10_data)")
    ap.add_argument(
        "--out", required=True, help="teacher checkpoint (authors' container)"
    )
    ap.add_argument("--work-dir", required=True, help="resumable training state")
    add_run_args(ap)
    add_dataclass_args(ap, TeacherRun)
    add_dataclass_args(ap, MiniUNetConfig)
    ap.add_argument(
        "--rate-sigma", type=float, default=6.0, help="rate window (paper 6 at S=256)"
    )
    ap.add_argument(
        "--Q-sigma", type=float, default=512.0, help="target std (paper 512)"
    )
    ap.add_argument("--time-base", type=float, default=3.0)
    ap.add_argument("--time-exponential", type=float, default=100.0)
    args = ap.parse_args(argv)
    setup_run(args.log, args.threads)
    run = dataclass_from_args(TeacherRun, args)
    mini = dataclass_from_args(MiniUNetConfig, args)
    t0 = time.time()
    splits = load_splits(args.data)
    proc_cfg = ProcessConfig(
        S=splits.levels,
        rate_sigma=args.rate_sigma,
        Q_sigma=args.Q_sigma,
        time_base=args.time_base,
        time_exponential=args.time_exponential,
    )
    process = proc_cfg.build()
    net = build_mini_unet(mini, splits.image_shape, splits.levels, seed=run.seed)
    n_params = sum(p.numel() for p in net.parameters())
    print(
        f"[teacher] {n_params:,} parameters, images {splits.image_shape}, S={splits.levels}"
    )
    cfg = TrainConfig.from_run(run, optimizer="adam")
    data = {"x0": splits.flat("train")}
    res = train(
        net,
        lambda batch, gen: x0_cross_entropy(
            net, process, batch["x0"], gen, run.min_time
        ),
        data,
        cfg,
        out_dir=args.work_dir,
        label="teacher",
    )
    save_checkpoint(
        net,
        args.out,
        ema_params=res.ema.shadow,
        ema_decay=res.ema.decay,
        ema_num_updates=res.ema.num_updates,
        n_iter=run.iters,
    )
    write_meta(
        args.out,
        config={**asdict(run), "network": asdict(mini)},
        inputs={"data": args.data},
        seeds={"torch": run.seed},
        wall_time_s=time.time() - t0,
        extra={
            "net_config": net_config_to_dict(net.config),
            "process": asdict(proc_cfg),
            "num_parameters": n_params,
            "final_loss": res.history[-1] if res.history else None,
            "resumed_from": res.resumed_from,
        },
    )
    print(f"wrote {args.out} in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
