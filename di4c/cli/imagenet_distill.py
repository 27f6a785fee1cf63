"""Distil a Di4C MaskGIT student from a MaskGIT teacher (paper Sec. 5.2; method.md §4.3).

    python -m di4c.cli.imagenet_distill --teacher TEACHER.pth --tokens TOKENS.pt \
        --out results/imagenet/paper/students/di4c-d/model.pth --variant di4c-d \
        [--K 32 --batch-x 4 --alpha-const 0.1 --iters ...]

Both scales: the paper teacher (MaskGIT-pytorch ImageNet 256) on VQGAN codes of
ImageNet train, or the mini teacher on the mini VQ's digit codes. The rules are
``di4c.settings.SETTINGS["imagenet"]`` (K = 32 lambdas per image, 4 images per
step, progress r ~ U(0, 1), teacher one step r -> r + 0.05 with the Gumbel
annealing of an 8-step teacher, distillation at r >= 0.95 weighted 20 on the
same x_t, consistency below, data term alpha = 0.1 sigmoid(20 (t - 1/2)),
stop-grad target pass in eval mode, AdamW 1e-5 / (0.9, 0.96) / wd 1e-5, grad
clip 1, no EMA) with the flags below overriding fields; every flag defaults to
the paper value.

Label drop: with probability ``label_drop`` (10%) an image's label is replaced
by the unconditional label before the loss; the loss passes that one label to
the teacher (marginals and one-step samples), to the student at x_t for all K
lambdas and to the student target pass, so the drop is shared by teacher and
student as in the authors' ``train_di4c``.

Precision: the authors train under fp16 autocast with a GradScaler. The
shared training loop (:mod:`di4c.train`) has no scaler, so ``precision`` is
``fp32`` or ``bf16`` (autocast of the loss computation, no scaling needed;
the paper config uses bf16 on a GPU). fp16 is refused rather than run
without a scaler.

The student starts from the teacher file with a random lambda projection
(:func:`di4c.teachers.maskgit.init_student_from_teacher`). Resumable
(``<out dir>/run/checkpoint.pt``). Writes ``--out`` in the authors' ``.pth``
container and ``.meta.json`` (rules, training curve summary, and
``lambda_spread``: how much the student's per-token marginals move with
lambda, the size of the mixture the student learnt).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from di4c.cli.common import (
    add_dataclass_args,
    add_run_args,
    dataclass_from_args,
    setup_run,
)
from di4c.cli.imagenet_common import (
    drop_labels,
    load_network,
    masked_process,
    save_network,
)
from di4c.devices import resolve_device
from di4c.distill import di4c_loss, train_config
from di4c.networks.maskgit import MaskGITDenoiser
from di4c.samplers.noise import BatchRNG
from di4c.settings import DistillRules, get_rules
from di4c.train import train

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class DistillConfig:
    """Overrides of the paper rules (defaults = ``SETTINGS["imagenet"]``)."""

    iters: int = 1000
    K: int = 32
    batch_x: int = 4
    alpha_const: float = 0.1  # 0: no alpha C(x0) data-correlation term
    distil_weight: float = 20.0
    r_delta: float = (
        0.05  # teacher step in progress r; distillation at r >= 1 - r_delta
    )
    teacher_steps: int = 8  # Gumbel annealing of this many-step teacher
    r_temp: float = 4.5
    sm_temp: float = 1.0
    lr: float = 1e-5
    betas: tuple = (0.9, 0.96)
    weight_decay: float = 1e-5
    warmup_steps: int = 0
    grad_clip: float = 1.0
    label_drop: float = 0.1
    precision: str = "fp32"  # fp32 | bf16 (autocast); see the module docstring
    seed: int = 42
    init_seed: int = 0  # seed of the random lambda projection
    log_every: int = 50
    ckpt_every: int = 1000

    def __post_init__(self):
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(
                f"precision {self.precision!r} not supported by the training loop "
                "(no GradScaler for fp16); allowed: ['bf16', 'fp32']"
            )


def rules_from(cfg: DistillConfig) -> DistillRules:
    return get_rules(
        "imagenet",
        K=cfg.K,
        batch_x=cfg.batch_x,
        alpha_const=cfg.alpha_const,
        distil_weight=cfg.distil_weight,
        time_kwargs={"r_delta": cfg.r_delta},
        teacher_step_kwargs={
            "r_delta": cfg.r_delta,
            "teacher_steps": cfg.teacher_steps,
            "r_temp": cfg.r_temp,
            "sm_temp": cfg.sm_temp,
        },
        lr=cfg.lr,
        betas=tuple(cfg.betas),
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_steps,
        grad_clip=cfg.grad_clip,
        precision=cfg.precision,
        seed=cfg.seed,
    )


def make_loss_fn(student, teacher, process, rules, label_drop, device, precision):
    """``loss_fn(batch, generator)`` for :func:`di4c.train.train`.

    Per step: one uniform per image from the loop's generator decides the label
    drop; a device generator seeded from it drives :func:`di4c_loss`, so a
    resumed run replays the same randomness.
    """
    dtype = PRECISIONS[precision]

    def loss_fn(batch, gen):
        x0 = batch["x0"].long().to(device)
        y = batch["y"].long().to(device)
        cond = drop_labels(y, label_drop, torch.rand(y.shape[0], generator=gen))
        seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        rng = BatchRNG(torch.Generator(device).manual_seed(seed), device)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            return di4c_loss(student, teacher, process, x0, rules, cond=cond, rng=rng)

    return loss_fn


@torch.no_grad()
def lambda_spread(
    student: MaskGITDenoiser, process, x0, y, seed: int = 0, pairs: int = 4
) -> float:
    """Mean over images of sum_d KL(p(.|x_t; lam_a) || p(.|x_t; lam_b)) (nats per image).

    x_t from the forward process at r ~ U(0, 1); 0 for a student whose lambda
    token has no effect (a product model).
    """
    gen = torch.Generator().manual_seed(seed)
    B = x0.shape[0]
    vals = []
    for _ in range(pairs):
        r = torch.rand(B, generator=gen)
        x_t = process.sample_forward(x0, 1 - r, gen)
        la, lb = torch.rand(B, generator=gen), torch.rand(B, generator=gen)
        pa, pb = student(x_t, 1 - r, la, y), student(x_t, 1 - r, lb, y)
        vals.append((pa.exp() * (pa - pb)).sum((1, 2)).mean())
    return float(torch.stack(vals).mean())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--teacher", required=True, help="teacher .pth (authors' format)")
    ap.add_argument("--tokens", required=True, help="training codes + labels (.pt)")
    ap.add_argument("--out", required=True, help="student .pth to write")
    ap.add_argument("--variant", default="di4c-d", help="name recorded in the meta")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda[:i]")
    add_run_args(ap)
    add_dataclass_args(ap, DistillConfig)
    args = ap.parse_args(argv)
    setup_run(args.log, args.threads)
    cfg = dataclass_from_args(DistillConfig, args)
    rules = rules_from(cfg)
    device = resolve_device(args.device)
    t0 = time.time()

    tok = torch.load(args.tokens, map_location="cpu", weights_only=True)
    data = {"x0": tok["train_tokens"], "y": tok["train_labels"]}
    teacher_net = load_network(args.teacher, "teacher", device=device)
    teacher_net.requires_grad_(False).eval()
    student_net = load_network(
        args.teacher, "student_init", seed=cfg.init_seed, device=device
    )
    D = teacher_net.config.num_tokens
    if data["x0"].shape[1] != D:
        raise ValueError(
            f"{args.tokens}: {data['x0'].shape[1]} tokens per image; the teacher "
            f"{args.teacher} models {D}"
        )
    teacher = MaskGITDenoiser(teacher_net)
    student = MaskGITDenoiser(student_net)
    process = masked_process(teacher_net.config)
    loss_fn = make_loss_fn(
        student, teacher, process, rules, cfg.label_drop, device, cfg.precision
    )

    tcfg = train_config(
        rules, iters=cfg.iters, log_every=cfg.log_every, ckpt_every=cfg.ckpt_every
    )
    out = Path(args.out)
    result = train(
        student_net,
        loss_fn,
        data,
        tcfg,
        out.parent / "run",
        args.variant,
        run_key={"rules": asdict(rules)},
    )
    student_net.eval()

    probe = torch.randperm(
        data["x0"].shape[0], generator=torch.Generator().manual_seed(1)
    )[:64]
    spread = lambda_spread(
        student,
        process,
        data["x0"][probe].long().to(device),
        data["y"][probe].long().to(device),
    )
    hist = result.history
    tail = hist[-max(1, len(hist) // 10) :]
    summary = {
        k: sum(h[k] for h in tail) / len(tail) for k in (tail[0] if tail else {})
    }
    print(f"[{args.variant}] lambda_spread {spread:.4f} nats/image; final {summary}")
    save_network(
        out,
        student_net.cpu(),
        iters=cfg.iters,
        config={
            "variant": args.variant,
            "distill": dataclasses.asdict(cfg),
            "rules": dataclasses.asdict(rules),
        },
        inputs={"teacher": args.teacher, "tokens": args.tokens},
        seeds={"train": rules.seed, "lambda_init": cfg.init_seed},
        wall_time_s=time.time() - t0,
        extra={"lambda_spread": spread, "final_losses": summary},
    )
    print(f"wrote {out} in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
