"""Benchmark 9: sampling latency of the Di4C MaskGIT student vs its teacher (ImageNet).

    python benchmarks/imagenet_latency.py [--batch 1 --steps 4 --cfg 3 --reps 3]

Paper (its latency comparison of student and teacher): for ImageNet the overhead
is "within noise"; the authors time the whole ``sample()`` call, VQGAN decoding
included (sony/di4c maskgit-pytorch/Trainer/vit.py ``sample``). Here both transformers have the paper's size (24 layers,
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

import time

import torch

from di4c.benchmarking import latency_parser, time_denoisers
from di4c.networks.maskgit import (
    PAPER_STUDENT_CONFIG,
    PAPER_TEACHER_CONFIG,
    MaskGITDenoiser,
    MaskTransformer,
)
from di4c.networks.vqgan import PAPER_VQGAN_CONFIG, VQModel
from di4c.processes.masked import MaskedProcess
from di4c.samplers import SampleRNG, confidence_sample


def sample(den: MaskGITDenoiser, vq: VQModel, args) -> torch.Tensor:
    """The authors' ``sample()``: confidence sampling, then VQGAN decoding."""
    rng = SampleRNG(list(range(args.batch)))
    labels = torch.arange(args.batch) % 1000
    process = MaskedProcess(
        den.mask_id
    )  # the absorbing process: mask id = codebook size
    codes = confidence_sample(
        process,
        den,
        args.steps,
        rng,
        den.num_tokens,
        labels,
        guidance=args.cfg,
        num_classes=den.mask_id,
    ).x
    g = int(den.num_tokens**0.5)
    return vq.decode_code(codes.view(-1, g, g))


def main(argv=None) -> None:
    ap = latency_parser(
        __doc__,
        batch=1,
        steps=4,
        reps=3,
        out="results/benchmarks/imagenet_latency.json",
    )
    ap.add_argument("--cfg", type=float, default=3.0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t_start = time.time()
    torch.manual_seed(0)
    teacher = MaskTransformer(PAPER_TEACHER_CONFIG).eval()
    torch.manual_seed(1)
    student = MaskTransformer(PAPER_STUDENT_CONFIG).eval()
    student.load_state_dict(teacher.state_dict(), strict=False)  # + random lambda MLP
    torch.manual_seed(2)
    vq = VQModel(PAPER_VQGAN_CONFIG).eval()
    dens = {"teacher": MaskGITDenoiser(teacher), "student": MaskGITDenoiser(student)}
    with torch.no_grad():
        img = sample(dens["student"], vq, args)
    print(f"[latency] output images {tuple(img.shape)}", flush=True)
    time_denoisers(
        dens,
        lambda d: sample_no_grad(d, vq, args),
        args,
        "imagenet",
        fallback="within noise (ImageNet, the paper)",
        t_start=t_start,
        params={"vqgan": sum(p.numel() for p in vq.parameters())},
        setting={"decode": "VQGAN f16"},
    )


def sample_no_grad(den, vq, args):
    """One whole ``sample()`` incl. VQGAN decoding (what the benchmark times)."""
    with torch.no_grad():
        return sample(den, vq, args)


if __name__ == "__main__":
    main()
