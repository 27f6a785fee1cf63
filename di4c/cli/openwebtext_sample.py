"""Unconditional samples of an OpenWebText model at several step counts (method.md §5.1, §5.5).

    python -m di4c.cli.openwebtext_sample --weights di4c.ckpt --kind student \\
        --model-name di4c --steps 4 8 --out s4.pt s8.pt --num-samples 2000 --length 64

MDLM ancestral sampler (``di4c.samplers.ancestral_sample``): grid linspace(1,
1e-5, N + 1), N steps, a final argmax denoise if any mask is left; a mixture
student gets a fresh lambda per sample at every network call. Gumbel noise and
probabilities in float64 by default (``--noise-dtype``; the authors' GPU runs
drew float32 noise from bf16 logits, pitfall 17). Students are sampled from
their raw weights by default, as the authors (``from_ema: False``, pitfall 16;
``--weights-kind ema`` switches). Sample i uses seed ``seed + i`` with its own
generator, so every model and step count sees the same per-sample seeds and
a sample does not depend on the batch size. ``--hybrid-teacher`` takes the
first ceil(frac N) steps with the model and the rest with that teacher.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from di4c.artifacts import write_meta
from di4c.cli.common import add_run_args, setup_run
from di4c.cli.openwebtext_common import (
    NOISE_DTYPES,
    PRECISIONS,
    denoiser,
    load_dit,
    masked_process,
    write_samples,
)
from di4c.devices import resolve_device
from di4c.samplers import SampleRNG, ancestral_sample


def sample_ids(
    process, dens, steps, seeds, length, batch_size, device, noise_dtype, t_end
):
    """Token ids (n, length) and the mean NFE for per-step denoisers ``dens``."""
    out, nfe = [], 0.0
    t0 = time.time()
    for b in range(0, len(seeds), batch_size):
        rng = SampleRNG(seeds[b : b + batch_size], device)
        with torch.no_grad():
            res = ancestral_sample(
                process,
                dens,
                steps,
                rng,
                length,
                t_end=t_end,
                method="gumbel",
                noise_dtype=noise_dtype,
            )
        out.append(res.x.cpu())
        nfe += res.nfe * len(rng)
        done = b + len(rng)
        rate = done / max(time.time() - t0, 1e-9)
        print(
            f"[sample] N={steps}: {done}/{len(seeds)} ({rate:.1f}/s, ETA {(len(seeds) - done) / rate:.0f}s)",
            flush=True,
        )
    return torch.cat(out), nfe / len(seeds)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--weights", required=True, help="model file or pointer .json")
    ap.add_argument("--kind", required=True, choices=["product", "student"])
    ap.add_argument("--model-name", required=True, help="row name in the table")
    ap.add_argument("--steps", type=int, nargs="+", required=True)
    ap.add_argument(
        "--out", nargs="+", required=True, help="one sample file per --steps value"
    )
    ap.add_argument("--num-samples", type=int, default=1024)
    ap.add_argument("--length", type=int, default=1024, help="tokens per sample")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seed", type=int, default=100, help="sample i uses seed + i")
    ap.add_argument("--noise-dtype", default="float64", choices=sorted(NOISE_DTYPES))
    ap.add_argument("--weights-kind", default="raw", choices=["raw", "ema"])
    ap.add_argument("--precision", default="fp32", choices=PRECISIONS)
    ap.add_argument("--t-end", type=float, default=1e-5)
    ap.add_argument(
        "--hybrid-teacher", default=None, help="product model for the last steps"
    )
    ap.add_argument(
        "--hybrid-frac",
        type=float,
        default=0.5,
        help="share of steps taken by --weights",
    )
    ap.add_argument("--device", default="auto")
    add_run_args(ap)
    args = ap.parse_args(argv)
    setup_run(args.log, args.threads)
    if len(args.out) != len(args.steps):
        ap.error(
            f"--out needs one file per --steps value ({len(args.steps)}); got {len(args.out)}"
        )
    dev = resolve_device(args.device)
    noise_dtype = NOISE_DTYPES[args.noise_dtype]
    net = load_dit(args.weights, args.kind, args.weights_kind, dev).eval()
    den = denoiser(net, args.precision)
    teacher = None
    if args.hybrid_teacher:
        teacher = denoiser(
            load_dit(args.hybrid_teacher, "product", "raw", dev).eval(),
            args.precision,
        )
    process = masked_process(
        net.config.vocab_size - 1,
        dtype=torch.float64 if noise_dtype == torch.float64 else torch.float32,
    )
    seeds = [args.seed + i for i in range(args.num_samples)]
    for steps, out in zip(args.steps, args.out):
        t0 = time.time()
        dens = den
        n_model = steps
        if teacher is not None:
            n_model = math.ceil(args.hybrid_frac * steps)
            dens = [den] * n_model + [teacher] * (steps - n_model)
        ids, nfe = sample_ids(
            process,
            dens,
            steps,
            seeds,
            args.length,
            args.batch_size,
            dev,
            noise_dtype,
            args.t_end,
        )
        wall = time.time() - t0
        info = dict(
            model=args.model_name,
            steps=steps,
            nfe=nfe,
            noise_dtype=args.noise_dtype,
            weights_kind=args.weights_kind,
            precision=args.precision,
            model_steps=n_model,
        )
        write_samples(out, ids, seeds, **info)
        write_meta(
            out,
            config={k: v for k, v in vars(args).items() if k not in ("out", "steps")}
            | {"steps": steps},
            inputs={"weights": args.weights}
            | ({"hybrid_teacher": args.hybrid_teacher} if teacher else {}),
            seeds={
                "first": seeds[0],
                "last": seeds[-1],
                "rule": "sample i uses seed + i",
            },
            wall_time_s=wall,
            extra=info | {"device": str(dev)},
        )
        print(
            f"[sample] {args.model_name} N={steps}: {len(seeds)} samples, NFE {nfe:.2f}, {wall:.1f}s -> {out}",
            flush=True,
        )


if __name__ == "__main__":
    main()
