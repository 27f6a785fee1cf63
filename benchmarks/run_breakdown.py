"""Where a DAG run's time goes: the per-rule Snakemake benchmark files, summed by stage.

    python benchmarks/run_breakdown.py [--results results] [--scale mini] [--json out.json]

Every rule writes a Snakemake benchmark file (wall seconds ``s``, ``cpu_time``,
``max_rss`` in MB) under ``results/{setting}/{scale}/benchmarks/`` (docs/pipeline.md).
This script reads them and prints, per setting, the time of each stage (teacher
training, distillation, sampling, scoring, ...), its share, and the settings'
totals. ``cpu_time`` is the figure to compare between machines and loads: wall time
depends on how many jobs shared the cores.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

# benchmark-file name prefix -> stage (longest prefix wins)
STAGES: dict[str, str] = {
    "prepare_data": "data",
    "encode_images": "data",
    "fetch": "data",
    "make_standins": "data",
    "train_teacher": "teacher training",
    "check_teacher": "teacher check",
    "train_classifier": "metric models",
    "train_judge": "metric models",
    "train_vq": "tokenizer (VQ)",
    "distill": "distillation",
    "sample": "sampling",
    "reference": "scoring",
    "score": "scoring",
    "table": "tables",
}


def stage_of(name: str, setting: str) -> str:
    """The stage of one benchmark file (its name without ``.tsv``)."""
    hits = [p for p in STAGES if name == p or name.startswith(p + "_")]
    if hits:
        return STAGES[max(hits, key=len)]
    return "theory experiments" if setting == "theory" else "other"


def read_benchmark(path: Path) -> dict[str, float]:
    """The last row of a Snakemake benchmark file (a rerun appends rows)."""
    with path.open() as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows:
        raise ValueError(f"{path}: empty benchmark file")
    row = rows[-1]
    return {
        "wall_s": float(row["s"]),
        "cpu_s": float(row["cpu_time"]),
        "max_rss_mb": float(row["max_rss"]),
    }


def breakdown(results: Path, scale: str) -> dict[str, dict[str, dict[str, float]]]:
    """{setting: {stage: {jobs, wall_s, cpu_s, max_rss_mb}}} over every benchmark file."""
    out: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(float)))
    for path in sorted(results.glob(f"*/{scale}/benchmarks/*.tsv")):
        setting = path.parts[-4]
        b = read_benchmark(path)
        agg = out[setting][stage_of(path.stem, setting)]
        agg["jobs"] += 1
        agg["wall_s"] += b["wall_s"]
        agg["cpu_s"] += b["cpu_s"]
        agg["max_rss_mb"] = max(agg["max_rss_mb"], b["max_rss_mb"])
    return {s: {k: dict(v) for k, v in st.items()} for s, st in out.items()}


def render(data: dict) -> str:
    lines = [
        "| setting | stage | jobs | wall min | CPU min | share of CPU | peak RSS MB |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    grand_wall = grand_cpu = 0.0
    for setting, stages in sorted(data.items()):
        cpu_total = sum(v["cpu_s"] for v in stages.values()) or 1.0
        for stage, v in sorted(stages.items(), key=lambda kv: -kv[1]["cpu_s"]):
            lines.append(
                f"| {setting} | {stage} | {int(v['jobs'])} | {v['wall_s'] / 60:.1f} "
                f"| {v['cpu_s'] / 60:.1f} | {100 * v['cpu_s'] / cpu_total:.0f}% "
                f"| {v['max_rss_mb']:.0f} |"
            )
        wall = sum(v["wall_s"] for v in stages.values())
        lines.append(
            f"| {setting} | **total** | {int(sum(v['jobs'] for v in stages.values()))} "
            f"| {wall / 60:.1f} | {cpu_total / 60:.1f} | 100% | |"
        )
        grand_wall += wall
        grand_cpu += cpu_total
    lines.append(
        f"| all | **total** (job time summed; jobs run two at a time) | "
        f"| {grand_wall / 60:.1f} | {grand_cpu / 60:.1f} | | |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=Path("results"))
    ap.add_argument("--scale", default="mini")
    ap.add_argument("--json", type=Path, help="also write the breakdown as JSON here")
    args = ap.parse_args(argv)
    data = breakdown(args.results, args.scale)
    if not data:
        raise SystemExit(
            f"no benchmark files under {args.results}/*/{args.scale}/benchmarks/: "
            "run the DAG first (make run)"
        )
    print(render(data))
    if args.json:
        args.json.write_text(json.dumps(data, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
