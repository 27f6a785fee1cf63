"""Side-by-side latency of a Di4C student and its teacher (the benchmarks' shared loop).

Each slice's ``benchmarks/<slice>_latency.py`` builds its paper-size networks and a
zero-argument ``call`` per model (one whole ``sample()``); this module times them the
same way everywhere: one warm-up call each, then ``reps`` repetitions that alternate
teacher / student (order flipped every repetition) so both see the same machine state,
and reports the ratio of mean wall times, the median of the per-repetition ratios, the
ratio of the fastest repetitions and the ratio of mean process CPU times next to the
paper's figure (:data:`di4c.tables.PAPER_LATENCY`; docs/algorithm.md#published-values).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from di4c.artifacts import write_json, write_meta
from di4c.tables import PAPER_LATENCY

MODELS = ("teacher", "student")


def rss_bytes(field: str = "VmRSS") -> int:
    """A memory field of this process from Linux's ``/proc/self/status`` (``VmRSS``:
    resident now; ``VmHWM``: peak resident since start or the last :func:`reset_peak`)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak(device) -> None:
    """Start a peak-memory window: CUDA's allocator peak, else the peak resident set
    (``/proc/self/clear_refs``; the peak restarts from what is resident now)."""
    import torch

    if getattr(device, "type", str(device)).startswith("cuda"):
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        Path("/proc/self/clear_refs").write_text("5")


def peak_bytes(device) -> int:
    """Peak memory since :func:`reset_peak`: ``torch.cuda.max_memory_allocated`` on
    CUDA (tensors only), the peak resident set of the process on the CPU."""
    import torch

    if getattr(device, "type", str(device)).startswith("cuda"):
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device))
    return rss_bytes("VmHWM")


def latency_parser(doc: str, *, batch: int, steps: int, reps: int, out: str):
    """The arguments every latency benchmark takes (slices add their own)."""
    ap = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--batch", type=int, default=batch)
    ap.add_argument("--steps", type=int, default=steps)
    ap.add_argument("--reps", type=int, default=reps)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=out)
    return ap


def _timed(call: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process over all its threads) of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - t0, time.process_time() - c0


def compare_latency(calls: dict[str, Callable[[], object]], reps: int) -> dict:
    """Time ``calls['teacher']`` and ``calls['student']`` side by side; the summary dict."""
    if set(calls) != set(MODELS):
        raise ValueError(f"calls must be exactly {MODELS}; got {sorted(calls)}")
    if reps < 1:
        raise ValueError(f"reps must be >= 1; got {reps}")
    for name in MODELS:
        print(f"[latency] warm-up {name}: {_timed(calls[name])[0]:.2f}s", flush=True)
    times = {name: [] for name in MODELS}
    cpu = {name: [] for name in MODELS}
    for r in range(reps):
        for name in MODELS if r % 2 == 0 else MODELS[::-1]:
            wall, used = _timed(calls[name])
            times[name].append(wall)
            cpu[name].append(used)
        print(
            f"[latency] rep {r + 1}/{reps}: teacher {times['teacher'][-1]:.2f}s "
            f"student {times['student'][-1]:.2f}s",
            flush=True,
        )
    mean = {k: statistics.mean(v) for k, v in times.items()}
    ratios = [s / t for s, t in zip(times["student"], times["teacher"])]
    return {
        "times_s": times,
        "mean_s": mean,
        "std_s": {
            k: statistics.stdev(v) if len(v) > 1 else 0.0 for k, v in times.items()
        },
        "ratio_of_means": mean["student"] / mean["teacher"],
        # the fastest repetition of each: the least disturbed by other load
        "ratio_of_mins": min(times["student"]) / min(times["teacher"]),
        "median_paired_ratio": statistics.median(ratios),
        "paired_ratios": ratios,
        # process CPU time over all threads: the work's cost rather than its latency;
        # other load inflates it less than wall time (though thread spin-waits count)
        "cpu_s": cpu,
        "cpu_ratio_of_means": statistics.mean(cpu["student"])
        / statistics.mean(cpu["teacher"]),
    }


def paper_latency(setting: str, fallback: str) -> tuple[dict, str]:
    """The paper's figure for ``setting`` as a record and as the text printed beside ours."""
    if setting not in PAPER_LATENCY:
        return {"overhead": fallback}, f"paper: {fallback}"
    t, s, src = PAPER_LATENCY[setting]
    rec = {"teacher_s": t, "student_s": s, "ratio": s / t, "source": src}
    return rec, f"paper {s / t:.4f} ({100 * (s / t - 1):+.1f}%)"


def report(
    res: dict, args, paper_setting: str, *, fallback="", t_start: float, **extra
):
    """Print the summary line and write ``args.out`` (+ meta sidecar) atomically."""
    paper, paper_text = paper_latency(paper_setting, fallback)
    res = {**res, **extra, "paper": paper}
    m, sd = res["mean_s"], res["std_s"]
    print(
        f"[latency] teacher {m['teacher']:.3f}+-{sd['teacher']:.3f}s, student "
        f"{m['student']:.3f}+-{sd['student']:.3f}s: ratio {res['ratio_of_means']:.4f} "
        f"({100 * (res['ratio_of_means'] - 1):+.2f}%; median paired "
        f"{100 * (res['median_paired_ratio'] - 1):+.2f}%; fastest of each "
        f"{100 * (res['ratio_of_mins'] - 1):+.2f}%; CPU time "
        f"{100 * (res['cpu_ratio_of_means'] - 1):+.2f}%); {paper_text}",
        flush=True,
    )
    write_json(args.out, res)
    write_meta(args.out, config=vars(args), wall_time_s=time.time() - t_start)
    return res


def time_denoisers(
    dens: dict,
    call: Callable[[object], object],
    args,
    paper_setting: str,
    *,
    t_start: float,
    fallback: str = "",
    params: dict | None = None,
    setting: dict | None = None,
) -> dict:
    """Time ``call(den)`` for ``dens['teacher']`` and ``dens['student']`` side by side
    (random-weight fp32 networks on CPU) and :func:`report` it with their sizes."""
    counts = {k: sum(p.numel() for p in d.net.parameters()) for k, d in dens.items()}
    return report(
        compare_latency({k: partial(call, d) for k, d in dens.items()}, args.reps),
        args,
        paper_setting,
        fallback=fallback,
        t_start=t_start,
        params=counts | (params or {}),
        setting=vars(args)
        | {"device": "cpu", "dtype": "fp32", "weights": "random"}
        | (setting or {}),
    )
