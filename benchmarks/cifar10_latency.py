"""Benchmark 9: sampling latency of the Di4C mixture student vs its product teacher (CIFAR-10).

    python benchmarks/cifar10_latency.py [--batch 2 --steps 4 --reps 4]

Paper (paper-numbers.md): one sampling call (batch 50, GPU not stated) takes
0.5515 s for the tauLDR teacher and 0.5786 s for the Di4C student (+4.9%).
Here both networks have the paper's size (:class:`TauLDRUNet` CIFAR-10 config,
35.7 M and 39.1 M parameters; the student adds lambda embeddings A and B and a
``dense1`` per ResBlock), random weights, fp32 on CPU. Each timed call is one
``analytical_sample`` (the whole sampler: network calls, truncated-logistic head
over S = 256, analytical posterior steps, final argmax) with the same seeds,
batch and N for both. After one warm-up call each, calls alternate teacher /
student (order flipped every repetition) so both see the same machine state;
the overhead is mean(student) / mean(teacher) - 1 and the median of the
per-repetition ratios. The defaults keep the run to a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from di4c.networks.tauldr_unet import TauLDRUNet, TauLDRUNetConfig
from di4c.processes.gaussian_rate import GaussianRateProcess
from di4c.samplers import SampleRNG, analytical_sample
from di4c.teachers.tauldr import TauLDRDenoiser


def timed_call(den, process, args) -> float:
    rng = SampleRNG(list(range(args.batch)))
    t0 = time.perf_counter()
    with torch.inference_mode():
        analytical_sample(process, den, args.steps, rng, 3 * 32 * 32)
    return time.perf_counter() - t0


def build(seed: int = 0) -> dict[str, TauLDRDenoiser]:
    """Paper-size teacher (random weights) and a student holding the same weights + a live lambda path."""
    torch.manual_seed(seed)
    teacher = TauLDRUNet(TauLDRUNetConfig.paper_teacher()).eval()
    student = TauLDRUNet(TauLDRUNetConfig.paper_student()).eval()
    missing = student.load_state_dict(teacher.state_dict(), strict=False).missing_keys
    with torch.no_grad():  # give the zero-initialised dense1 layers non-zero weights
        for k in missing:
            if ".dense1." in k:
                student.get_parameter(k).normal_(0, 1e-3)
    return {"teacher": TauLDRDenoiser(teacher), "student": TauLDRDenoiser(student)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="results/benchmarks/cifar10_latency.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from di4c.artifacts import write_json, write_meta
    from di4c.tables import PAPER_LATENCY

    t_start = time.time()
    dens = build()
    params = {k: sum(p.numel() for p in d.net.parameters()) for k, d in dens.items()}
    process = GaussianRateProcess(S=256)
    for name, den in dens.items():
        print(
            f"[latency] warm-up {name}: {timed_call(den, process, args):.2f}s",
            flush=True,
        )
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
    t_paper, s_paper, src = PAPER_LATENCY["cifar10"]
    res = {
        "times_s": times,
        "mean_s": mean,
        "std_s": std,
        "ratio_of_means": mean["student"] / mean["teacher"],
        "median_paired_ratio": statistics.median(ratios),
        "paired_ratios": ratios,
        "params": params,
        "paper": {
            "teacher_s": t_paper,
            "student_s": s_paper,
            "ratio": s_paper / t_paper,
            "source": src,
        },
        "setting": vars(args) | {"device": "cpu", "dtype": "fp32", "weights": "random"},
    }
    print(
        f"[latency] teacher {mean['teacher']:.3f}+-{std['teacher']:.3f}s, student "
        f"{mean['student']:.3f}+-{std['student']:.3f}s: ratio {res['ratio_of_means']:.4f} "
        f"({100 * (res['ratio_of_means'] - 1):+.2f}%; median paired "
        f"{100 * (res['median_paired_ratio'] - 1):+.2f}%); paper "
        f"{s_paper / t_paper:.4f} (+{100 * (s_paper / t_paper - 1):.1f}%)",
        flush=True,
    )
    write_json(args.out, res)
    write_meta(args.out, config=vars(args), wall_time_s=time.time() - t_start)


if __name__ == "__main__":
    main()
