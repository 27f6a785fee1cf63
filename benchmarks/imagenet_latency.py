"""Benchmark 9: sampling latency of the Di4C MaskGIT student vs its teacher (ImageNet).

    python benchmarks/imagenet_latency.py [--batch 1 --steps 4 --cfg 3 --reps 3]

Paper (paper-numbers.md): for ImageNet the overhead is "within noise"; the
authors time the whole ``sample()`` call, VQGAN decoding included (method.md
§4.7, pitfall 24). Here both transformers have the paper's size (24 layers,
768 wide, 16 x 16 codes + class token; the student adds the lambda token and
its ``latent_projection``) and the paper VQGAN f16 decoder, all with random
weights, fp32 on CPU. One timed call = the MaskGIT confidence sampler with the
Di4C unmask schedule and a linear CFG ramp (conditional and unconditional
halves in one pass, the same lambda in both), then ``decode_code`` of the final
codes: the authors' ``sample()``. Calls alternate teacher / student after one
warm-up each, with the same seeds; the ratio is reported as mean(student) /
mean(teacher) and as the median of the per-repetition ratios. The defaults
(one image, 4 steps) keep it to a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from di4c.networks.maskgit import (
    PAPER_STUDENT_CONFIG,
    PAPER_TEACHER_CONFIG,
    MaskTransformer,
)
from di4c.networks.vqgan import PAPER_VQGAN_CONFIG, VQModel
from di4c.samplers import SampleRNG, confidence_sample
from di4c.teachers.maskgit import MaskGITDenoiser


def sample(den: MaskGITDenoiser, vq: VQModel, args) -> torch.Tensor:
    """The authors' ``sample()``: confidence sampling, then VQGAN decoding."""
    rng = SampleRNG(list(range(args.batch)))
    labels = torch.arange(args.batch) % 1000
    codes = confidence_sample(
        den,
        args.steps,
        rng,
        den.num_tokens,
        den.mask_id,
        labels,
        cfg_w=args.cfg,
        num_classes=den.mask_id,
    ).x
    g = int(den.num_tokens**0.5)
    return vq.decode_code(codes.view(-1, g, g))


def timed_call(den, vq, args) -> float:
    t0 = time.perf_counter()
    with torch.no_grad():
        sample(den, vq, args)
    return time.perf_counter() - t0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--cfg", type=float, default=3.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="results/benchmarks/imagenet_latency.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from di4c.artifacts import write_json, write_meta

    t_start = time.time()
    torch.manual_seed(0)
    teacher = MaskTransformer(PAPER_TEACHER_CONFIG).eval()
    torch.manual_seed(1)
    student = MaskTransformer(PAPER_STUDENT_CONFIG).eval()
    student.load_state_dict(teacher.state_dict(), strict=False)  # + random lambda MLP
    torch.manual_seed(2)
    vq = VQModel(PAPER_VQGAN_CONFIG).eval()
    dens = {"teacher": MaskGITDenoiser(teacher), "student": MaskGITDenoiser(student)}
    params = {k: sum(p.numel() for p in d.net.parameters()) for k, d in dens.items()}
    params["vqgan"] = sum(p.numel() for p in vq.parameters())
    with torch.no_grad():
        img = sample(dens["student"], vq, args)
    print(f"[latency] output images {tuple(img.shape)}", flush=True)
    for name, den in dens.items():
        w = timed_call(den, vq, args)
        print(f"[latency] warm-up {name}: {w:.2f}s", flush=True)
    times = {"teacher": [], "student": []}
    for r in range(args.reps):
        order = ("teacher", "student") if r % 2 == 0 else ("student", "teacher")
        for name in order:
            times[name].append(timed_call(dens[name], vq, args))
        print(
            f"[latency] rep {r + 1}/{args.reps}: teacher {times['teacher'][-1]:.2f}s "
            f"student {times['student'][-1]:.2f}s",
            flush=True,
        )
    mean = {k: statistics.mean(v) for k, v in times.items()}
    std = {k: statistics.stdev(v) if len(v) > 1 else 0.0 for k, v in times.items()}
    ratios = [s / t for s, t in zip(times["student"], times["teacher"])]
    res = {
        "times_s": times,
        "mean_s": mean,
        "std_s": std,
        "ratio_of_means": mean["student"] / mean["teacher"],
        "median_paired_ratio": statistics.median(ratios),
        "paired_ratios": ratios,
        "params": params,
        "paper": {"overhead": "within noise (ImageNet, paper-numbers.md)"},
        "setting": vars(args)
        | {
            "device": "cpu",
            "dtype": "fp32",
            "weights": "random",
            "decode": "VQGAN f16",
        },
    }
    print(
        f"[latency] teacher {mean['teacher']:.3f}+-{std['teacher']:.3f}s, student "
        f"{mean['student']:.3f}+-{std['student']:.3f}s: overhead "
        f"{100 * (res['ratio_of_means'] - 1):+.2f}% (median paired "
        f"{100 * (res['median_paired_ratio'] - 1):+.2f}%); paper: within noise",
        flush=True,
    )
    write_json(args.out, res)
    write_meta(args.out, config=vars(args), wall_time_s=time.time() - t_start)


if __name__ == "__main__":
    main()
