"""Benchmark 9: sampling latency of the Di4C mixture student vs its product teacher (OWT).

    python benchmarks/openwebtext_latency.py [--length 1024 --batch 1 --steps 4 --reps 3]

Paper (paper-numbers.md): one 16 x 1024-token sampling round takes 3.3409 s for
the SDTT teacher and 3.4817 s for the Di4C student (+4.2%, GPU not stated).
Here both networks have the paper's size (dit-orig small: 12 blocks, 768 wide,
GPT-2 vocabulary + mask; the student adds the lambda token and its
``latent_projection``), random weights, fp32 on CPU. Each timed call is one
``ancestral_sample`` (the whole sampler: network calls, SUBS, float64 Gumbel
draws), with the same seeds for both. Calls alternate teacher / student after
one warm-up each, so both see the same machine state; the ratio is reported as
mean(student) / mean(teacher) and as the median of the per-repetition ratios.
At the defaults (batch 1, 1024 tokens, 4 steps) the lambda token is 1 of 1025
tokens, as on GPU; one sampler call took ~190 s on 2 CPU cores shared with other
jobs (8 calls in all), so ``--length 256 --steps 2`` (~30 s a call there) is the
quick setting. Per-call times on a busy machine vary by tens of percent, far
more than the paper's +4.2%: compare the paired ratios, and trust the result
only on an otherwise idle machine (or a GPU).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from di4c.networks.dit import DIT, DiTConfig, DiTDenoiser
from di4c.networks.mini_text import student_from
from di4c.processes.masked import MaskedProcess
from di4c.samplers import SampleRNG, ancestral_sample


def timed_call(den, process, args) -> float:
    rng = SampleRNG(list(range(args.batch)))
    t0 = time.perf_counter()
    with torch.no_grad():
        ancestral_sample(process, den, args.steps, rng, args.length, method="gumbel")
    return time.perf_counter() - t0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--length", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="results/benchmarks/openwebtext_latency.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from di4c.artifacts import write_json, write_meta

    t_start = time.time()
    torch.manual_seed(0)
    teacher = DIT(DiTConfig(length=args.length)).eval()
    with torch.no_grad():  # random weights everywhere (adaLN/output are zero-init)
        for p in teacher.parameters():
            p.normal_(0, 0.02)
    student = student_from(teacher, seed=1).eval()
    dens = {"teacher": DiTDenoiser(teacher), "student": DiTDenoiser(student)}
    params = {k: sum(p.numel() for p in d.net.parameters()) for k, d in dens.items()}
    process = MaskedProcess(
        teacher.config.vocab_size - 1, "loglinear", dtype=torch.float64
    )
    for name, den in dens.items():
        w = timed_call(den, process, args)
        print(f"[latency] warm-up {name}: {w:.2f}s", flush=True)
    times = {"teacher": [], "student": []}
    for r in range(args.reps):
        order = ("teacher", "student") if r % 2 == 0 else ("student", "teacher")
        for name in order:
            times[name].append(timed_call(dens[name], process, args))
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
        "paper": {"teacher_s": 3.3409, "student_s": 3.4817, "overhead": "+4.2%"},
        "setting": vars(args) | {"device": "cpu", "dtype": "fp32", "weights": "random"},
    }
    print(
        f"[latency] teacher {mean['teacher']:.3f}+-{std['teacher']:.3f}s, student "
        f"{mean['student']:.3f}+-{std['student']:.3f}s: overhead "
        f"{100 * (res['ratio_of_means'] - 1):+.2f}% (median paired "
        f"{100 * (res['median_paired_ratio'] - 1):+.2f}%); paper +4.2%",
        flush=True,
    )
    write_json(args.out, res)
    write_meta(args.out, config=vars(args), wall_time_s=time.time() - t_start)


if __name__ == "__main__":
    main()
