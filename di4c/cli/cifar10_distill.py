"""Di4C distillation of the tauLDR teacher into a mixture student (paper Sec. 5.1; method.md §3.2-§3.3).

Paper scale (GPU; CIFAR-10 train with random flips, rules ``SETTINGS["cifar10"]``)::

    python -m di4c.cli.cifar10_distill --scale paper --teacher-ckpt ckpt_0001999999.pt \
        --cifar10-root data/cifar10 --iters 320000 --out student.pt --work-dir run/

Mini twin (CPU; the DAG's own teacher and digits)::

    python -m di4c.cli.cifar10_distill --scale mini --teacher-ckpt teacher.pt \
        --data data.pt --iters 1500 --out student.pt --work-dir run/ [--K 1 --batch-x 128]

The student is the teacher's network plus the lambda path, started from the
teacher file's raw weights (the authors' behaviour, method.md pitfall 13;
``--student-init ema`` to deviate), with every ``dense1`` at zero. Each step
evaluates :func:`di4c.distill.di4c_loss` (data + distillation + consistency,
K lambdas per x_t) and takes one optimiser step of :func:`di4c.train.train`
(resumable checkpoints in ``--work-dir``). ``--K 1 --batch-x 128`` is the
equal-compute product-distilled baseline (C = 0: per-dimension KLs only).
Output: the student in the authors' container (EMA shadow = the sampling
weights) and ``<out>.meta.json`` (``net_config``, ``process``, rules, losses).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import asdict

import torch

from di4c.artifacts import write_meta
from di4c.cli.cifar10_common import checkpoint_info, net_config_to_dict
from di4c.cli.common import add_run_args, setup_run
from di4c.devices import resolve_device
from di4c.distill import di4c_loss, train_config
from di4c.networks.tauldr_unet import TauLDRDenoiser
from di4c.samplers.noise import BatchRNG
from di4c.settings import get_rules
from di4c.teachers.tauldr import (
    init_student,
    load_teacher_file,
    save_checkpoint,
    teacher_checkpoint_path,
)
from di4c.train import train

RULE_FLAGS = ("K", "batch_x", "lr", "ema_decay", "seed")


def loss_rng(gen: torch.Generator, device: str | torch.device):
    """The loss's randomness: ``gen`` itself on the CPU; on a GPU, a device generator.

    The loss draws its categorical samples against probabilities on the
    network's device, so on a GPU the uniforms must be drawn there too: a
    :class:`BatchRNG` on ``device`` seeded from one draw of the loop's
    (checkpointed) CPU generator, so a resumed run replays the same stream.
    """
    device = torch.device(device)
    if device.type == "cpu":
        return BatchRNG(gen)
    seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    return BatchRNG(torch.Generator(device).manual_seed(seed), device)


def training_images(args) -> tuple[torch.Tensor, tuple[int, int, int], str]:
    """(N, D) uint8 training states, image shape, provenance name."""
    if args.scale == "mini":
        if not args.data:
            raise SystemExit("--scale mini needs --data (image-splits file)")
        from di4c.data.images import load_splits

        s = load_splits(args.data)
        return s.flat("train").to(torch.uint8), s.image_shape, args.data
    if not args.cifar10_root:
        raise SystemExit("--scale paper needs --cifar10-root")
    from di4c.data.cifar10 import load_cifar10

    x, _ = load_cifar10(args.cifar10_root, train=True)
    return (
        x.reshape(x.shape[0], -1),
        tuple(x.shape[1:]),
        f"cifar10-train:{args.cifar10_root}",
    )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--scale", required=True, choices=["paper", "mini"])
    ap.add_argument(
        "--teacher-ckpt",
        default="",
        help="teacher container; empty: fetch the tauLDR teacher",
    )
    ap.add_argument("--data", default=None, help="mini: image-splits file")
    ap.add_argument(
        "--cifar10-root", default=None, help="paper: CIFAR-10 folder (torchvision)"
    )
    ap.add_argument(
        "--out", required=True, help="student checkpoint (authors' container)"
    )
    ap.add_argument("--work-dir", required=True, help="resumable training state")
    ap.add_argument("--iters", type=int, required=True)
    ap.add_argument(
        "--K", type=int, default=None, help="lambda samples per x_t (paper 16)"
    )
    ap.add_argument(
        "--batch-x", type=int, default=None, help="images per step (paper 8)"
    )
    ap.add_argument("--lr", type=float, default=None, help="paper 2e-4 (Adam)")
    ap.add_argument("--ema-decay", type=float, default=None, help="paper 0.9999")
    ap.add_argument("--seed", type=int, default=None, help="paper 431354")
    ap.add_argument("--student-init", default="raw", choices=["raw", "ema"])
    ap.add_argument(
        "--hflip",
        default=None,
        choices=["true", "false"],
        help="default: paper true, mini false",
    )
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--ckpt-every", type=int, default=500)
    ap.add_argument("--label", default="di4c")
    add_run_args(ap)
    args = ap.parse_args(argv)
    setup_run(args.log, args.threads)
    t0 = time.time()
    device = resolve_device("auto")
    overrides = {
        k: getattr(args, k) for k in RULE_FLAGS if getattr(args, k) is not None
    }
    rules = get_rules("cifar10", **overrides)
    hflip = (args.hflip or ("true" if args.scale == "paper" else "false")) == "true"

    teacher_path = teacher_checkpoint_path(args.teacher_ckpt or None)
    net_cfg, proc_cfg = checkpoint_info(teacher_path)
    data, image_shape, data_name = training_images(args)
    if tuple(image_shape) != tuple(net_cfg.image_shape):
        raise SystemExit(
            f"training images are {image_shape} but the teacher models {net_cfg.image_shape}"
        )
    process = proc_cfg.build(device)
    teacher = TauLDRDenoiser(
        load_teacher_file(teacher_path, config=net_cfg, device=device)
    )
    student_net = init_student(
        teacher_path, config=net_cfg, weights=args.student_init, seed=rules.seed
    ).to(device)
    student = TauLDRDenoiser(student_net)

    def loss_fn(batch, gen):
        x0 = batch["x0"]
        if hflip:
            from di4c.data.cifar10 import random_hflip

            x0 = random_hflip(x0.view(-1, *image_shape), gen).reshape(x0.shape[0], -1)
        return di4c_loss(
            student,
            teacher,
            process,
            x0.long().to(device),
            rules,
            rng=loss_rng(gen, device),
        )

    cfg = train_config(
        rules, iters=args.iters, log_every=args.log_every, ckpt_every=args.ckpt_every
    )
    print(
        f"[{args.label}] K={rules.K} batch_x={rules.batch_x} lr={rules.lr} "
        f"iters={args.iters} init={args.student_init} hflip={hflip}",
        flush=True,
    )
    res = train(
        student_net,
        loss_fn,
        {"x0": data},
        cfg,
        out_dir=args.work_dir,
        label=args.label,
        run_key={"rules": asdict(rules)},
    )
    ema = res.ema
    save_checkpoint(
        student_net,
        args.out,
        ema_params=ema.shadow if ema else None,
        ema_decay=ema.decay if ema else 0.0,
        ema_num_updates=ema.num_updates if ema else 0,
        n_iter=args.iters,
    )
    write_meta(
        args.out,
        config=vars(args) | {"log": None},
        inputs={"teacher": teacher_path},
        seeds={"torch": rules.seed},
        wall_time_s=time.time() - t0,
        extra={
            "net_config": net_config_to_dict(student_net.config.as_teacher()),
            "process": dataclasses.asdict(proc_cfg),
            "rules": dataclasses.asdict(rules),
            "data": data_name,
            "history": res.history,
            "resumed_from": res.resumed_from,
            "train_wall_time_s": res.wall_time_s,
        },
    )
    print(f"wrote {args.out} in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
