"""Regenerate the theory table (exact TV; Theorem 1 and Di4C students).

    python -m di4c.cli.theory experiment --scale mini --experiment two_bit \
        --out results/theory/mini/two_bit.json
    python -m di4c.cli.theory table --inputs results/theory/mini/*.json \
        --out paper_tables/theory.csv

``experiment`` takes the resolved ``theory`` configuration of its scale
(:mod:`di4c.config`; the defaults are :class:`~di4c.theory.experiments.TheoryConfig`'s).

``table`` writes ``<out>`` (CSV), ``<out stem>.meta.json`` (provenance and diagnostics) and
``<out stem>.png`` (log-log plot).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import time
from pathlib import Path

from di4c.artifacts import (
    ArtifactError,
    atomic_path,
    meta_path_for,
    read_json_artifact,
    write_json,
    write_meta,
    write_text,
)
from di4c.cli.common import add_config_args, add_run_args, run_step, step_config
from di4c.settings.theory import Theory
from di4c.theory.experiments import EXPERIMENTS, Row, run_experiment

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


def _load_results(paths) -> tuple[list[Row], dict]:
    rows, diag = [], {}
    for p in paths:
        rec = read_json_artifact(p, "theory experiment result", "run_theory_experiment")
        try:
            rows += [Row(**r) for r in rec["rows"]]
            diag[rec["experiment"]] = rec["diagnostics"]
        except (KeyError, TypeError) as e:
            raise ArtifactError(
                f"{p}: not a result of `python -m di4c.cli.theory experiment` ({e!r}); "
                "delete it and rerun the run_theory_experiment rule"
            ) from e
    return rows, diag


def cmd_experiment(args) -> None:
    """Run one experiment and write its rows and diagnostics as JSON."""
    cfg = Theory.config(step_config(args))
    exp = EXPERIMENTS[args.experiment]
    t0 = time.time()
    rows, diag = run_experiment(exp, cfg)
    diag["wall_time_s"] = time.time() - t0
    out = Path(args.out)
    rec = {
        "experiment": exp.name,
        "rows": [dataclasses.asdict(r) for r in rows],
        "diagnostics": diag,
    }
    write_json(out, rec)
    write_meta(
        out,
        config=dataclasses.asdict(cfg) | {"experiment": exp.name},
        seeds={"torch": cfg.seed},
        wall_time_s=diag["wall_time_s"],
    )
    print(f"wrote {out} ({len(rows)} rows) in {diag['wall_time_s']:.0f}s")


def cmd_table(args) -> None:
    """Merge experiment results into the CSV table, its plot and provenance."""
    t0 = time.time()
    rows, diag = _load_results(args.inputs)
    out = Path(args.out)
    plot(rows, out.with_suffix(".png"))
    write_text(out, rows_to_csv(rows))
    configs = [
        read_json_artifact(
            meta_path_for(p), "provenance sidecar", "run_theory_experiment"
        )["config"]
        for p in args.inputs
    ]
    write_meta(
        out,
        config={"experiments": configs},
        inputs={Path(p).stem: p for p in args.inputs},
        seeds={c["experiment"]: c["seed"] for c in configs},
        wall_time_s=time.time() - t0,
        extra={"diagnostics": diag, "paper_claim": PAPER_CLAIM},
    )
    print(f"wrote {out} ({len(rows)} rows from {len(args.inputs)} experiments)")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("experiment", help="run one experiment -> JSON")
    ex.add_argument("--experiment", required=True, choices=sorted(EXPERIMENTS))
    ex.add_argument("--out", required=True, help="JSON path (meta.json beside it)")
    add_config_args(ex, "theory")
    add_run_args(ex)
    tb = sub.add_parser("table", help="merge experiment JSONs -> CSV + PNG + meta")
    tb.add_argument("--inputs", nargs="+", required=True, help="experiment JSONs")
    tb.add_argument(
        "--out", required=True, help="CSV path (plot and meta.json go beside it)"
    )
    add_run_args(tb)
    commands = {"experiment": cmd_experiment, "table": cmd_table}
    run_step(lambda args: commands[args.cmd](args), ap, argv)


if __name__ == "__main__":
    main()
