"""Regenerate the theory table (exact TV; Theorem 1 and Di4C students).

    python -m di4c.cli.theory --out paper_tables/theory.csv [--distill-iters 3000 ...]

Writes ``<out>`` (CSV), ``<out stem>.meta.json`` (provenance and diagnostics) and
``<out stem>.png`` (log-log plot).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import time
from pathlib import Path

from di4c.artifacts import atomic_path, write_meta, write_text
from di4c.cli.common import (
    add_dataclass_args,
    add_run_args,
    dataclass_from_args,
    setup_run,
)
from di4c.theory.experiments import Row, TheoryConfig, run_theory

PAPER_CLAIM = "Theorem 1: TV = Theta(1/N) (slope -1)"


def rows_to_csv(rows: list[Row]) -> str:
    fields = [f.name for f in dataclasses.fields(Row)] + ["paper_claim"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in rows:
        d = dataclasses.asdict(r)
        for k, v in d.items():
            if isinstance(v, float):
                d[k] = "" if v != v else f"{v:.10g}"
        d["paper_claim"] = PAPER_CLAIM if r.model == "product_exact" else ""
        w.writerow(d)
    return buf.getvalue()


def plot(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    exps = list(dict.fromkeys(r.experiment for r in rows))
    fig, axes = plt.subplots(
        1, len(exps), figsize=(4.2 * len(exps), 3.6), squeeze=False
    )
    styles = {
        "product_exact": "k-",
        "product_net": "C2s",
        "di4c_student": "C3o",
        "product_student": "C0^",
    }
    for ax, e in zip(axes[0], exps):
        for model, style in styles.items():
            pts = sorted(
                (r.steps, r.tv_to_data)
                for r in rows
                if r.experiment == e and r.model == model
            )
            if pts:
                ax.loglog(*zip(*pts), style, label=model, ms=5, lw=1.2, alpha=0.9)
        ex = [r for r in rows if r.experiment == e and r.model == "product_exact"]
        if ex and ex[0].loglog_slope == ex[0].loglog_slope:
            n0 = ex[-1].steps
            ax.loglog(
                [n0 / 8, n0],
                [ex[-1].tv_to_data * 8, ex[-1].tv_to_data],
                "k:",
                lw=1,
                label="slope -1",
            )
            ax.set_title(f"{e} (slope {ex[0].loglog_slope:.3f})", fontsize=9)
        ax.set_xlabel("steps N")
        ax.set_ylabel("exact TV to data")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--out", required=True, help="CSV path (plot and meta.json go beside it)"
    )
    add_run_args(ap)
    add_dataclass_args(ap, TheoryConfig)
    args = ap.parse_args(argv)
    setup_run(args.log, args.threads)
    cfg = dataclass_from_args(TheoryConfig, args)
    t0 = time.time()
    rows, diag = run_theory(cfg)
    out = Path(args.out)
    plot(rows, out.with_suffix(".png"))
    write_text(out, rows_to_csv(rows))
    write_meta(
        out,
        config=dataclasses.asdict(cfg),
        seeds={"torch": cfg.seed},
        wall_time_s=time.time() - t0,
        extra={"diagnostics": diag["experiments"]},
    )
    print(f"wrote {out} ({len(rows)} rows) in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
