"""Benchmark 8: peak memory and time of one Di4C loss evaluation at the OpenWebText shape.

    python benchmarks/openwebtext_loss_memory.py [--variants plain 256 64] [--S 50258]

Shape of the paper (docs/algorithm.md#openwebtext-times,
docs/algorithm.md#settings-table): one conditioning sequence (B = 1 per GPU),
K = 16 lambda samples, D = 1024 tokens, S = 50258 classes. Inputs are random:
student log-probs ``logp`` (B, K, D, S) (a leaf that receives the gradient, as
the network's log-softmax output would), the detached consistency targets
``pi`` (B, K, D, S), teacher marginals (B, D, S), targets y and x0. One
evaluation = forward and backward of the terms of a consistency-region step
(data term + consistency term; 70% of the authors' steps), the heavier case.

Each variant runs in a fresh subprocess. The peak resident memory of the
evaluation is measured exactly with Linux's peak-RSS counter (VmHWM), reset
through ``/proc/self/clear_refs`` after the inputs exist; it is reported above
the inputs and in units of one K-copy tensor (K x D x S fp32 = 3.29 GB).
Variants: ``plain`` (the default expressions of di4c/loss.py), an integer c
(``dim_chunk=c``: :class:`di4c.loss.ChunkedTerms`, the two terms evaluated by
two calls as ``di4c.distill`` does) and ``fused<c>`` (both terms in one
``chunked_terms`` call, so a single gradient tensor). ``plain`` does not fit
in 24 GB at the paper shape; when it does not fit it runs at the largest S
that fits (``--plain-S``) and its peak is reported in K-copy units of that
shape (a ratio that does not depend on S). ``--max-gb`` caps the memory a
variant may need (default: what the machine has available, less 2 GB); a
smaller D (``--D 512``) halves every tensor and leaves the K-copy ratios as they
are, for machines shared with other jobs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

GB = 1e9


def worker(args) -> dict:
    import torch

    from di4c.benchmarking import reset_peak, rss_bytes
    from di4c.loss import alpha_sigmoid, chunked_terms, consistency_loss, data_loss

    torch.set_num_threads(args.threads)
    B, K, D, S = 1, args.K, args.D, args.S
    g = torch.Generator().manual_seed(0)
    chunk = None if args.variant == "plain" else int(args.variant.removeprefix("fused"))
    with torch.no_grad():  # in-place construction keeps the set-up peak low
        logp = torch.randn(B, K, D, S, generator=g)
        for k in range(K):
            logp[:, k] -= torch.logsumexp(logp[:, k], -1, keepdim=True)
        pi = torch.randn(B, K, D, S, generator=g)
        for k in range(K):
            pi[:, k] = torch.softmax(pi[:, k], -1)
        teacher = torch.log_softmax(torch.randn(B, D, S, generator=g), -1)
    logp.requires_grad_(True)
    y = torch.randint(0, S, (B, K, D), generator=g)
    x0 = torch.randint(0, S, (B, D), generator=g)
    alpha = alpha_sigmoid(torch.tensor([0.7]), 0.1)
    inputs = rss_bytes("VmRSS")
    reset_peak("cpu")  # reset the peak RSS counter
    t0 = time.perf_counter()
    if args.variant.startswith("fused"):  # both terms in one chunked pass: one gradient
        P = pi.mean(1)
        targets = (
            torch.stack([teacher.exp(), P], 1),
            torch.stack([teacher, P.clamp_min(1e-45).log()], 1),
        )
        points = torch.cat([x0[:, None], y], 1)
        marg, cor, _ = chunked_terms(logp, targets, points, None, True, chunk)
        total = (alpha * cor[:, 0] + marg[:, 0] + marg[:, 1] + cor[:, 1:].mean(1)).sum()
    else:
        total = (
            data_loss(logp, x0, teacher, alpha, dim_chunk=chunk)
            + consistency_loss(logp, pi, y, dim_chunk=chunk)
        ).sum()
    t1 = time.perf_counter()
    total.backward()
    t2 = time.perf_counter()
    peak = rss_bytes("VmHWM")
    kcopy = B * K * D * S * 4
    return {
        "variant": args.variant,
        "shape": [B, K, D, S],
        "loss": float(total.detach()),
        "grad_abs_sum": float(logp.grad.abs().sum()),
        "forward_s": t1 - t0,
        "backward_s": t2 - t1,
        "inputs_gb": inputs / GB,
        "peak_gb": peak / GB,
        "peak_above_inputs_gb": (peak - inputs) / GB,
        "kcopy_gb": kcopy / GB,
        "peak_above_inputs_kcopies": (peak - inputs) / kcopy,
        "threads": args.threads,
    }


def free_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024 / GB
    return 0.0


def build_parser() -> argparse.ArgumentParser:
    """The command line of the script (also parsed by the worker subprocesses)."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--variants", nargs="+", default=["plain", "64", "fused64"])
    ap.add_argument("--K", type=int, default=16)
    ap.add_argument("--D", type=int, default=1024)
    ap.add_argument("--S", type=int, default=50258)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--plain-kcopies", type=float, default=9.0, help="assumed 'plain' peak"
    )
    ap.add_argument(
        "--plain-S", type=int, default=12565, help="S for 'plain' if S does not fit"
    )
    ap.add_argument(
        "--max-gb",
        type=float,
        default=None,
        help="memory budget per variant (default: available memory - 2 GB)",
    )
    ap.add_argument("--out", default="results/benchmarks/openwebtext_loss_memory.json")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--variant", default=None, help=argparse.SUPPRESS)
    return ap


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)), flush=True)
        return
    from di4c.artifacts import write_json, write_meta

    results = []
    t0 = time.time()
    for v in args.variants:
        S = args.S
        kcopy = args.K * args.D * S * 4 / GB
        need = kcopy * (2 + (args.plain_kcopies if v == "plain" else 2.2))
        budget = free_gb() - 2
        if args.max_gb is not None:
            budget = min(budget, args.max_gb)
        if need > budget:
            if v != "plain":
                print(
                    f"[bench] skip {v}: needs ~{need:.1f} GB of {budget:.1f}",
                    flush=True,
                )
                results.append({"variant": v, "skipped": f"needs ~{need:.1f} GB"})
                continue
            S = args.plain_S
            print(
                f"[bench] plain needs ~{need:.0f} GB at S={args.S}: run at S={S}",
                flush=True,
            )
        cmd = [sys.executable, __file__, "--worker", "--variant", v]
        cmd += ["--K", str(args.K), "--D", str(args.D), "--S", str(S)]
        cmd += ["--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
        if out.returncode != 0:
            print(f"[bench] {v} failed: {out.stderr[-800:]}", flush=True)
            results.append({"variant": v, "error": out.stderr.strip()[-800:]})
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(r)
        print(
            f"[bench] {v:>7} S={r['shape'][3]}: forward {r['forward_s']:.2f}s backward "
            f"{r['backward_s']:.2f}s | inputs {r['inputs_gb']:.2f} GB, peak "
            f"{r['peak_gb']:.2f} GB = inputs + {r['peak_above_inputs_gb']:.2f} GB = "
            f"{r['peak_above_inputs_kcopies']:.2f} K-copies of {r['kcopy_gb']:.2f} GB "
            f"| loss {r['loss']:.7g}",
            flush=True,
        )
    write_json(args.out, results)
    write_meta(args.out, config=vars(args), wall_time_s=time.time() - t0)


if __name__ == "__main__":
    main()
