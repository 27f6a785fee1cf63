"""Distil one theory-table student (Di4C, K lambdas) from the exact product teacher.

    python -m di4c.cli.theory_student --experiment two_bit --out-dir results/theory/two_bit
    torchrun --nproc_per_node 2 -m di4c.cli.theory_student ... --per-example-rng true

The same code runs on one process or data-parallel under torchrun (gloo on
CPU, nccl on GPUs); with ``--per-example-rng`` the result does not depend on
the number of processes. Resumes from ``<out-dir>/checkpoint.pt``. Writes
``<out-dir>/student.pt`` (state dict) and ``student.meta.json``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from di4c.artifacts import save_torch, write_meta
from di4c.cli.common import add_run_args, parse_bool, run_step
from di4c.config import ConfigError
from di4c.networks.small import MLPDenoiser
from di4c.theory.experiments import (
    EXPERIMENTS,
    TheoryConfig,
    build_setup,
    distill_student,
    fit_product_net,
    sample_dataset,
)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--experiment",
        required=True,
        choices=sorted(EXPERIMENTS),
        help="theory experiment",
    )
    ap.add_argument("--out-dir", required=True, help="checkpoint/output folder")
    ap.add_argument(
        "--K",
        type=int,
        default=16,
        help="lambda samples per x_t (1 = product distillation)",
    )
    ap.add_argument(
        "--batch-x", type=int, default=32, help="global batch of conditioning states"
    )
    ap.add_argument("--iters", type=int, default=3000, help="optimiser steps")
    ap.add_argument(
        "--fit-iters",
        type=int,
        default=0,
        help="product-net pre-fit steps (0 = fresh net)",
    )
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-examples", type=int, default=100_000)
    ap.add_argument(
        "--per-example-rng",
        type=parse_bool,
        default=False,
        help="needed for exact DDP equivalence",
    )
    ap.add_argument(
        "--ckpt-every", type=int, default=100, help="checkpoint interval (steps)"
    )
    add_run_args(ap)
    return ap


POSITIVE = ("K", "batch_x", "hidden", "train_examples", "ckpt_every")


def check_args(args, world: int) -> None:
    """Bad flag values as one-line configuration errors, before any work."""
    bad = [
        f"--{k.replace('_', '-')} must be >= 1"
        for k in POSITIVE
        if getattr(args, k) < 1
    ]
    bad += [
        f"--{k.replace('_', '-')} must be >= 0"
        for k in ("iters", "fit_iters")
        if getattr(args, k) < 0
    ]
    if not args.lr > 0:
        bad.append("--lr must be > 0")
    if world > 1 and (not args.per_example_rng or args.batch_x % world):
        bad.append(
            f"data-parallel training over {world} processes needs --per-example-rng true "
            f"and a --batch-x divisible by {world}"
        )
    if bad:
        raise ConfigError("invalid theory_student flags: " + "; ".join(bad))


def run(args) -> None:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    check_args(args, world)
    if world > 1:
        import torch.distributed as dist

        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = int(os.environ.get("RANK", "0"))
    t0 = time.time()
    exp = EXPERIMENTS[args.experiment]
    proc, data, teacher = build_setup(exp)
    x0 = sample_dataset(exp, data, args.train_examples, args.seed)
    cfg = TheoryConfig(
        experiments=(exp.name,),
        fit_iters=args.fit_iters,
        batch_x=args.batch_x,
        K=args.K,
        lr=args.lr,
        hidden=args.hidden,
        seed=args.seed,
    )
    if args.fit_iters > 0:
        base = fit_product_net(exp, proc, teacher, x0, cfg)
    else:
        torch.manual_seed(args.seed)
        base = MLPDenoiser(exp.D, proc.num_states, exp.S, hidden=args.hidden)
    out = Path(args.out_dir)
    net, res = distill_student(
        exp,
        proc,
        teacher,
        base,
        x0,
        args.K,
        args.batch_x,
        args.iters,
        args.lr,
        args.seed,
        out_dir=out,
        per_example_rng=args.per_example_rng,
        ckpt_every=args.ckpt_every,
    )
    if rank == 0:
        save_torch(out / "student.pt", net.state_dict())
        write_meta(
            out / "student.pt",
            config=vars(args) | {"world_size": world},
            seeds={"torch": args.seed},
            wall_time_s=time.time() - t0,
            extra={"resumed_from": res.resumed_from},
        )
        print(
            f"wrote {out / 'student.pt'} (world size {world}, resumed from step {res.resumed_from})"
        )
    if world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()


def main(argv=None) -> None:
    run_step(run, parser(), argv)


if __name__ == "__main__":
    main()
