"""Benchmark 9: sampling latency of the Di4C mixture student vs its product teacher (OWT).

    python benchmarks/openwebtext_latency.py [--length 1024 --batch 1 --steps 4 --reps 3]

Paper (Sec. 5.3; docs/algorithm.md#published-values): one 16 x 1024-token sampling round takes 3.3409 s for
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

import time

import torch

from di4c.benchmarking import latency_parser, time_denoisers
from di4c.networks.dit import DIT, DiTConfig, DiTDenoiser
from di4c.networks.mini_text import student_from
from di4c.processes.masked import MaskedProcess
from di4c.samplers import SampleRNG, ancestral_sample


def timed_call(den, process, args) -> None:
    """One whole sampling call (what the benchmark times)."""
    rng = SampleRNG(list(range(args.batch)))
    with torch.no_grad():
        ancestral_sample(process, den, args.steps, rng, args.length, method="gumbel")


def main(argv=None) -> None:
    ap = latency_parser(
        __doc__,
        batch=1,
        steps=4,
        reps=3,
        out="results/benchmarks/openwebtext_latency.json",
    )
    ap.add_argument("--length", type=int, default=1024)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t_start = time.time()
    torch.manual_seed(0)
    teacher = DIT(DiTConfig(length=args.length)).eval()
    with torch.no_grad():  # random weights everywhere (adaLN/output are zero-init)
        for p in teacher.parameters():
            p.normal_(0, 0.02)
    student = student_from(teacher, seed=1).eval()
    dens = {"teacher": DiTDenoiser(teacher), "student": DiTDenoiser(student)}
    process = MaskedProcess(
        teacher.config.vocab_size - 1, "loglinear", dtype=torch.float64
    )
    time_denoisers(
        dens,
        lambda d: timed_call(d, process, args),
        args,
        "openwebtext",
        t_start=t_start,
    )


if __name__ == "__main__":
    main()
