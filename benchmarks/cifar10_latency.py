"""Benchmark 9: sampling latency of the Di4C mixture student vs its product teacher (CIFAR-10).

    python benchmarks/cifar10_latency.py [--batch 2 --steps 4 --reps 4]

Paper (its latency comparison of student and teacher): one sampling call (batch 50, GPU not stated) takes
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

import time

import torch

from di4c.benchmarking import latency_parser, time_denoisers
from di4c.networks.tauldr_unet import TauLDRDenoiser, TauLDRUNet, TauLDRUNetConfig
from di4c.processes.gaussian_rate import GaussianRateProcess
from di4c.samplers import SampleRNG, analytical_sample


def timed_call(den, process, args) -> None:
    """One whole sampling call (what the benchmark times)."""
    rng = SampleRNG(list(range(args.batch)))
    with torch.inference_mode():
        analytical_sample(process, den, args.steps, rng, 3 * 32 * 32)


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
    ap = latency_parser(
        __doc__, batch=2, steps=4, reps=4, out="results/benchmarks/cifar10_latency.json"
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t_start = time.time()
    dens = build()
    process = GaussianRateProcess(S=256)
    time_denoisers(
        dens, lambda d: timed_call(d, process, args), args, "cifar10", t_start=t_start
    )


if __name__ == "__main__":
    main()
