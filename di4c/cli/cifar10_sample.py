"""Sample the CIFAR-10 models with the analytical sampler (method.md §3.1, §3.4, §3.5).

    python -m di4c.cli.cifar10_sample --model teacher --teacher-ckpt T.pt \
        --steps 1 2 4 8 --num-samples 2000 --seed 0 --out samples/teacher.pt
    python -m di4c.cli.cifar10_sample --model hybrid --teacher-ckpt T.pt \
        --student-ckpt S.pt --steps 10 --teacher-last 3 --num-samples 50000 --out ...

Models: ``teacher`` (product, EMA), ``student`` (Di4C mixture, fresh lambda per
image per call), ``hybrid`` (``-n N -l L``: the student for step indices
i < N - L, the teacher for the last L steps including the final argmax;
NFE = N). One run per entry of ``--steps`` (``--teacher-last`` gives L per
entry for the hybrid). Sample i uses seed ``seed * 10**7 + i`` in every run, so
rows differ only by the model and N. Output: ``{"runs": [{"steps", "teacher_last",
"nfe", "models", "levels" uint8 (n, C, H, W)}], "seeds", "S", "image_shape"}``.
"""

from __future__ import annotations

import argparse
import time

from di4c.artifacts import save_torch, write_meta
from di4c.cli.cifar10_common import generate, load_denoiser, sample_seeds
from di4c.cli.common import add_run_args, setup_run
from di4c.devices import resolve_device

MODELS = ("teacher", "student", "hybrid")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", required=True, choices=MODELS)
    ap.add_argument(
        "--teacher-ckpt", default=None, help="teacher container (teacher, hybrid)"
    )
    ap.add_argument(
        "--student-ckpt", default=None, help="student container (student, hybrid)"
    )
    ap.add_argument(
        "--steps", type=int, nargs="+", required=True, help="N per run (NFE)"
    )
    ap.add_argument(
        "--teacher-last", type=int, nargs="+", default=None, help="hybrid: L per run"
    )
    ap.add_argument("--num-samples", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument(
        "--label", default=None, help="row name in the table (default: --model)"
    )
    ap.add_argument("--out", required=True)
    add_run_args(ap)
    args = ap.parse_args(argv)
    setup_run(args.log, args.threads)
    needs = {
        "teacher": ("teacher",),
        "student": ("student",),
        "hybrid": ("teacher", "student"),
    }
    for role in needs[args.model]:
        if not getattr(args, f"{role}_ckpt"):
            ap.error(f"--model {args.model} needs --{role}-ckpt")
    L = args.teacher_last or [0] * len(args.steps)
    if args.model == "hybrid" and args.teacher_last is None:
        ap.error("--model hybrid needs --teacher-last (one L per --steps entry)")
    if len(L) != len(args.steps):
        ap.error(f"--teacher-last has {len(L)} entries for {len(args.steps)} --steps")
    device = resolve_device("auto")
    t0 = time.time()
    teacher = student = None
    inputs = {}
    if args.model in ("teacher", "hybrid"):
        teacher, cfg, proc = load_denoiser(args.teacher_ckpt, "teacher", device)
        inputs["teacher"] = args.teacher_ckpt
    if args.model in ("student", "hybrid"):
        student, cfg, proc = load_denoiser(args.student_ckpt, "student", device)
        inputs["student"] = args.student_ckpt
    process = proc.build(device)
    seeds = sample_seeds(args.num_samples, args.seed)
    runs = []
    for n, l in zip(args.steps, L):
        if args.model == "teacher":
            l = n
        elif args.model == "student":
            l = 0
        r0 = time.time()
        levels, nfe, names = generate(
            process,
            student,
            teacher,
            n,
            l,
            seeds,
            cfg.image_shape,
            args.batch_size,
            device,
            label=args.label or args.model,
        )
        runs.append(
            {
                "steps": n,
                "teacher_last": l,
                "nfe": nfe,
                "models": names,
                "levels": levels,
                "wall_time_s": time.time() - r0,
            }
        )
    save_torch(
        args.out,
        {
            "model": args.label or args.model,
            "sampler_model": args.model,
            "runs": runs,
            "seeds": seeds,
            "S": cfg.S,
            "image_shape": list(cfg.image_shape),
        },
    )
    write_meta(
        args.out,
        config=vars(args) | {"log": None},
        inputs=inputs,
        seeds={
            "per_sample": f"seed*10**7 + i, seed={args.seed}, i < {args.num_samples}"
        },
        wall_time_s=time.time() - t0,
        extra={
            "runs": [
                {
                    k: r[k]
                    for k in ("steps", "teacher_last", "nfe", "models", "wall_time_s")
                }
                for r in runs
            ]
        },
    )
    print(
        f"wrote {args.out}: {len(runs)} runs x {args.num_samples} samples in {time.time() - t0:.0f}s"
    )


if __name__ == "__main__":
    main()
