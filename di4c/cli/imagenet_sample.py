"""Class-conditional MaskGIT sampling with CFG (paper Sec. 5.2; method.md §4.1, §4.5).

    python -m di4c.cli.imagenet_sample --model MODEL.pth --labels LABELS.pt \
        --steps 4 --cfg 3 --num-samples 50000 --out samples.pt

One cell of the Figure 3 sweep: a teacher or a Di4C student (the file's keys
say which) sampled with the MaskGIT confidence sampler
(:func:`di4c.samplers.confidence_sample`): the Di4C unmask schedule (rounded
successive differences of arccos), a linear CFG ramp w_i = w i / (N - 1) with
the conditional and unconditional halves in one pass and the same lambda in
both, tokens drawn from softmax(logits * sm_temp), confidence = log p +
r_temp * Gumbel * (1 - i / (N - 1)), a fresh lambda per image per step. Labels
are the first ``num_samples`` entries of ``--labels`` (the val labels in
loader order at paper scale). Sample i uses seed ``seed + i`` (same seeds in
every cell, whatever the batch size).

Hybrid rows (``--hybrid-teacher T --teacher-last L``; mini-twins.md, lesson 3):
the student takes the first N - L steps and the teacher the last L, each with
its own network pass of the same sampler step (the MaskGIT code has no hybrid;
this is the suite's analogue of the CIFAR hybrid sampler, method.md §3.4).

Writes ``--out``: code grids (int16, decoded by the metric step), labels, seeds,
steps, cfg, NFE; and its ``.meta.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass

import torch

from di4c.artifacts import save_torch, write_meta
from di4c.cli.common import (
    add_dataclass_args,
    add_run_args,
    dataclass_from_args,
    setup_run,
)
from di4c.cli.imagenet_common import load_network
from di4c.devices import resolve_device
from di4c.networks.maskgit import MaskGITDenoiser
from di4c.samplers import SampleRNG, confidence_sample, unmask_schedule
from di4c.samplers.confidence import cfg_ramp

AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class SampleConfig:
    steps: int = 8
    cfg: float = 3.0  # final CFG weight of the linear ramp
    num_samples: int = 50000
    batch_size: int = 250
    seed: int = 0  # sample i uses seed + i
    sm_temp: float = 1.0
    r_temp: float = 4.5
    schedule: str = "arccos"
    precision: str = "fp32"  # autocast dtype of the network (authors: fp16)

    def __post_init__(self):
        if self.steps < 1 or self.num_samples < 1 or self.batch_size < 1:
            raise ValueError(
                "steps, num_samples and batch_size must be >= 1; got "
                f"{self.steps}, {self.num_samples}, {self.batch_size}"
            )
        if self.precision not in AUTOCAST:
            raise ValueError(
                f"unknown precision {self.precision!r}; allowed: {sorted(AUTOCAST)}"
            )


class HybridDenoiser:
    """Student for the first ``num_steps - teacher_last`` sampler steps, then the teacher.

    The confidence sampler makes exactly one (CFG-batched) network call per
    step, so the call count is the step index; build one per sampling call.
    """

    def __init__(self, student, teacher, num_steps: int, teacher_last: int):
        if not 0 <= teacher_last <= num_steps:
            raise ValueError(
                f"teacher_last must be in [0, {num_steps}]; got {teacher_last}"
            )
        if (
            student.num_tokens != teacher.num_tokens
            or student.mask_id != teacher.mask_id
        ):
            raise ValueError("hybrid student and teacher model different code grids")
        self.student, self.teacher = student, teacher
        self.switch = num_steps - teacher_last
        self.num_classes, self.is_mixture = student.num_classes, True
        self.num_tokens, self.mask_id = student.num_tokens, student.mask_id
        self.calls = []

    def __call__(self, x_t, t, lam=None, cond=None):
        den = self.student if len(self.calls) < self.switch else self.teacher
        self.calls.append("student" if den is self.student else "teacher")
        return den(x_t, t, lam, cond)


@torch.no_grad()
def sample_cells(
    make_den,
    labels: torch.Tensor,
    cfg: SampleConfig,
    device: torch.device,
    log_prefix: str = "sample",
) -> tuple[torch.Tensor, list[str]]:
    """Token grids (num_samples, D) for ``labels`` (num_samples,), and the model
    of each step. ``make_den()`` gives the denoiser of one sampling call."""
    den = make_den()
    n, D = cfg.num_samples, den.num_tokens
    out = torch.empty(n, D, dtype=torch.int16)
    dtype = AUTOCAST[cfg.precision]
    t0 = time.time()
    for start in range(0, n, cfg.batch_size):
        stop = min(n, start + cfg.batch_size)
        rng = SampleRNG(range(cfg.seed + start, cfg.seed + stop), device)
        den = make_den()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            res = confidence_sample(
                den,
                cfg.steps,
                rng,
                D,
                den.mask_id,
                labels[start:stop].to(device),
                cfg_w=cfg.cfg,
                sm_temp=cfg.sm_temp,
                r_temp=cfg.r_temp,
                schedule=cfg.schedule,
                num_classes=den.mask_id,
            )
        out[start:stop] = res.x.to(torch.int16).cpu()
        models = list(getattr(den, "calls", None) or res.models)
        rate = stop / max(time.time() - t0, 1e-9)
        print(
            f"[{log_prefix}] {stop}/{n} samples ({rate:.1f}/s, ETA "
            f"{(n - stop) / rate / 60:.1f} min)",
            flush=True,
        )
    return out, models


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", required=True, help="teacher or student .pth")
    ap.add_argument("--labels", required=True, help=".pt file with a 'labels' tensor")
    ap.add_argument("--out", required=True, help="samples .pt to write")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda[:i]")
    ap.add_argument("--hybrid-teacher", default=None, help="teacher .pth (hybrid)")
    ap.add_argument("--teacher-last", type=int, default=1, help="hybrid: teacher steps")
    add_run_args(ap)
    add_dataclass_args(ap, SampleConfig)
    args = ap.parse_args(argv)
    setup_run(args.log, args.threads)
    cfg = dataclass_from_args(SampleConfig, args)
    device = resolve_device(args.device)
    t0 = time.time()

    labels = torch.load(args.labels, map_location="cpu", weights_only=True)["labels"]
    if labels.numel() < cfg.num_samples:
        raise ValueError(
            f"{args.labels} holds {labels.numel()} labels; num_samples is "
            f"{cfg.num_samples} (lower it or regenerate the label file)"
        )
    labels = labels[: cfg.num_samples].long()
    net = load_network(args.model, device=device).eval()
    den = MaskGITDenoiser(net)
    teacher = None
    inputs = {"model": args.model, "labels": args.labels}
    if args.hybrid_teacher:
        net_t = load_network(args.hybrid_teacher, "teacher", device=device).eval()
        teacher = MaskGITDenoiser(net_t)
        inputs["hybrid_teacher"] = args.hybrid_teacher

    def make_den():
        if teacher is None:
            return den
        return HybridDenoiser(den, teacher, cfg.steps, args.teacher_last)

    tokens, models = sample_cells(make_den, labels, cfg, device, f"sample {args.model}")
    sched = unmask_schedule(cfg.steps, den.num_tokens, cfg.schedule)
    ramp = [cfg_ramp(i, cfg.steps, cfg.cfg) for i in range(cfg.steps)]
    seeds = [cfg.seed, cfg.seed + cfg.num_samples - 1]
    save_torch(
        args.out,
        {
            "tokens": tokens,
            "labels": labels,
            "seeds": torch.arange(cfg.seed, cfg.seed + cfg.num_samples),
            "steps": cfg.steps,
            "cfg": cfg.cfg,
            "nfe": cfg.steps,
            "is_student": den.is_mixture,
            "grid": net.config.grid,
        },
    )
    wall = time.time() - t0
    write_meta(
        args.out,
        config=dataclasses.asdict(cfg),
        inputs=inputs,
        seeds={"per_sample": f"seed + i, i = 0..{cfg.num_samples - 1}", "range": seeds},
        wall_time_s=wall,
        extra={
            "unmask_schedule": sched,
            "cfg_ramp": ramp,
            "nfe": cfg.steps,
            "step_models": models,
        },
    )
    print(f"wrote {args.out} ({cfg.num_samples} samples) in {wall:.0f}s")


if __name__ == "__main__":
    main()
