"""Table 1 (CIFAR-10) and its mini twin: metric records -> CSV in the paper's layout + plot.

    python -m di4c.cli.cifar10_table --metrics m_teacher.json m_student.json ... \
        --scale mini --classifier-meta classifier.meta.json --out paper_tables/mini/cifar10.csv

One row per (model, steps, teacher_last): our FID / IS (+ split-half spread,
clean-fid FID where computed) beside the published value from
:func:`di4c.tables.paper_value` (teacher / student at 10 and 20 steps; empty
elsewhere). Also writes ``<out stem>.png`` (FID and IS against N),
``<out stem>.md`` (the closing note) and ``<out stem>.meta.json``.

Closing note: the speed-up at equal quality. For each N, the Di4C student
"matches the teacher at 2N" when FID_student(N) <= FID_teacher(2N) + noise,
and its gain over the teacher at N exceeds the noise (noise = root sum of
squares of the two cells' split-half spreads). The note states the smallest
such N (or that there is none) and, for every student N, the equivalent
teacher step count (log-linear interpolation of the teacher's FID curve).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from di4c.artifacts import atomic_path, write_meta, write_text
from di4c.tables import paper_source, paper_value, write_table

COLUMNS = (
    "model",
    "steps",
    "teacher_last",
    "nfe",
    "fid",
    "fid_spread",
    "is",
    "is_spread",
    "fid_clean",
    "kid",
    "precision",
    "recall",
    "num_samples",
    "paper_fid",
    "paper_is",
    "paper_source",
)
ORDER = {
    "teacher": 0,
    "student": 1,
    "released_student": 2,
    "student_k1": 3,
    "hybrid": 4,
    "real": 9,
}
STUDENTS = ("student", "released_student", "student_k1")
# the released tldr-di4c.pt is the paper's Table 1 student: compare it to that row
PAPER_MODEL = {"released_student": "student"}
# the .md's description of the columns: mini / smoke (False) and paper scale (True)
ROWS_NOTE = {
    False: "FID/IS with split-half spreads. "
    "Row `real`: held-out real images vs the training split (the floor).",
    True: "FID/IS from torch-fidelity's Inception against CIFAR-10 train "
    "(50,000 samples per cell, no split-half spreads, so the speed-up note "
    "compares point values), `fid_clean`: clean-fid's FID of the same samples, "
    "`paper_*`: the published values (empty where not transcribed).",
}


def load_records(paths) -> list[dict]:
    recs = []
    for p in paths:
        d = json.loads(Path(p).read_text())
        for r in d["records"]:
            r = dict(r)
            r["num_samples"] = r.get("num_fake")
            pm = PAPER_MODEL.get(r["model"], r["model"])
            r["paper_fid"] = paper_value("cifar10", pm, r["steps"], "fid")
            r["paper_is"] = paper_value("cifar10", pm, r["steps"], "is")
            r["paper_source"] = paper_source("cifar10", pm, r["steps"], "fid")
            recs.append(r)
    recs.sort(
        key=lambda r: (
            ORDER.get(r["model"], 5),
            r["model"],
            r["steps"],
            r["teacher_last"],
        )
    )
    return recs


def _noise(a: dict, b: dict) -> float:
    return math.hypot(a.get("fid_spread") or 0.0, b.get("fid_spread") or 0.0)


def equivalent_teacher_steps(fid: float, teacher: dict[int, float]) -> float | None:
    """Teacher steps reaching ``fid``: log-linear interpolation of its FID curve (None if never)."""
    ns = sorted(teacher)
    best = math.inf
    for i, n in enumerate(ns):
        if teacher[n] <= fid:
            if i == 0:
                return float(n)
            n0 = ns[i - 1]
            f0, f1 = teacher[n0], teacher[n]
            w = (f0 - fid) / (f0 - f1) if f0 != f1 else 1.0
            return float(math.exp(math.log(n0) + w * (math.log(n) - math.log(n0))))
        best = min(best, teacher[n])
    return None


def speedup_note(recs: list[dict]) -> tuple[str, dict]:
    teacher = {r["steps"]: r for r in recs if r["model"] == "teacher"}
    tfid = {n: r["fid"] for n, r in teacher.items()}
    lines, summary = [], {}
    for model in STUDENTS:
        rows = {r["steps"]: r for r in recs if r["model"] == model}
        if not rows or not teacher:
            continue
        eq, match = {}, None
        for n in sorted(rows):
            r = rows[n]
            e = equivalent_teacher_steps(r["fid"], tfid)
            eq[n] = e
            if match is None and n in teacher and 2 * n in teacher:
                t1, t2 = teacher[n], teacher[2 * n]
                gain_real = t1["fid"] - r["fid"] > _noise(r, t1)
                if gain_real and r["fid"] <= t2["fid"] + _noise(r, t2):
                    match = n
        summary[model] = {
            "first_N_matching_teacher_2N": match,
            "equivalent_teacher_steps": eq,
        }
        eqs = ", ".join(
            f"N={n}: {'>' + str(max(tfid)) if e is None else f'{e:.1f}'} ({'-' if e is None else f'{e / n:.2f}x'})"
            for n, e in eq.items()
        )
        if match is None:
            head = f"{model}: at no N does it match the teacher at 2N beyond the noise."
        else:
            r, t2 = rows[match], teacher[2 * match]
            head = (
                f"{model}: smallest N where it matches the teacher at 2N (beyond the noise): "
                f"N={match} (FID {r['fid']:.2f} +- {r.get('fid_spread') or 0:.2f} vs teacher@{2 * match} "
                f"{t2['fid']:.2f} +- {t2.get('fid_spread') or 0:.2f}; teacher@{match} {teacher[match]['fid']:.2f})"
                " -> a speed-up of >= 2x at equal quality."
            )
        lines.append(f"- {head} Equivalent teacher steps (speed-up): {eqs}.")
    return "\n".join(lines), summary


def plot(recs: list[dict], path: Path, title: str, floor: dict | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    styles = {
        "teacher": ("k", "o"),
        "student": ("C3", "s"),
        "released_student": ("C1", "D"),
        "student_k1": ("C0", "^"),
        "hybrid": ("C2", "v"),
    }
    for metric, ax in zip(("fid", "is"), axes):
        for model, (color, marker) in styles.items():
            rows = sorted(
                (r for r in recs if r["model"] == model and r.get(metric) is not None),
                key=lambda r: r["nfe"],
            )
            if not rows:
                continue
            x = [r["nfe"] for r in rows]
            y = [r[metric] for r in rows]
            err = [r.get(f"{metric}_spread") or 0.0 for r in rows]
            label = (
                model if model != "hybrid" else "hybrid (student, then teacher for L)"
            )
            ax.errorbar(
                x,
                y,
                yerr=err,
                color=color,
                marker=marker,
                ms=4,
                lw=1.2,
                capsize=2,
                label=label,
            )
            if metric == "fid":
                pv = [
                    (r["steps"], r["paper_fid"])
                    for r in rows
                    if r.get("paper_fid") is not None
                ]
                if pv:
                    ax.plot(
                        *zip(*pv),
                        color=color,
                        marker="*",
                        ms=10,
                        ls="none",
                        label=f"{model} (paper)",
                    )
        if floor and floor.get(metric) is not None:
            ax.axhline(
                floor[metric],
                color="grey",
                ls=":",
                lw=1,
                label="real held-out vs train",
            )
        ax.set_xscale("log", base=2)
        if metric == "fid":
            ax.set_yscale("log")
        ax.set_xlabel("steps N (NFE)")
        ax.set_ylabel(metric.upper())
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--metrics",
        nargs="+",
        required=True,
        help="metrics JSON files (cifar10_metrics)",
    )
    ap.add_argument("--scale", required=True, choices=["paper", "mini", "smoke"])
    ap.add_argument(
        "--classifier-meta",
        default=None,
        help="mini: classifier meta.json (real floor row)",
    )
    ap.add_argument(
        "--out", required=True, help="CSV path; .png/.md/.meta.json go beside it"
    )
    ap.add_argument("--log", default=None)
    args = ap.parse_args(argv)
    if args.log:
        from di4c.cli.common import setup_run

        setup_run(args.log, None)
    t0 = time.time()
    recs = load_records(args.metrics)
    floor = None
    if args.classifier_meta:
        m = json.loads(Path(args.classifier_meta).read_text())
        floor = m["real_heldout_vs_train"]
        recs.append(
            {
                "model": "real",
                "steps": 0,
                "teacher_last": 0,
                "nfe": 0,
                "fid": floor["fid"],
                "is": floor["is"],
                "num_samples": floor["num_fake"],
            }
        )
    note, summary = speedup_note(recs)
    out = Path(args.out)
    judge = (
        "digit-classifier features"
        if args.scale != "paper"
        else "Inception-v3 (torch-fidelity)"
    )
    title = f"CIFAR-10 Table 1 ({args.scale}): FID / IS vs steps, {judge}"
    plot(recs, out.with_suffix(".png"), title, floor)
    write_table(recs, out, COLUMNS)
    md = (
        f"# {title}\n\nRows: model, steps N (NFE), teacher_last L (hybrid: the teacher takes the "
        "last L steps incl. the final argmax), "
        + ROWS_NOTE[args.scale == "paper"]
        + f"\n\n## Speed-up at equal quality\n\n{note or '- no student rows.'}\n"
    )
    write_text(out.with_suffix(".md"), md)
    write_meta(
        out,
        config=vars(args) | {"log": None},
        inputs={f"metrics_{i}": p for i, p in enumerate(args.metrics)},
        wall_time_s=time.time() - t0,
        extra={"speedup": summary, "note": note},
    )
    print(md)


if __name__ == "__main__":
    main()
