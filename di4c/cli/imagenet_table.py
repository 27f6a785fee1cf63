"""Figure 3 table and plot: FID / IS / precision / recall per model, steps and CFG weight.

    python -m di4c.cli.imagenet_table --scale paper --metrics M1.json M2.json ... \
        --out paper_tables/imagenet.csv [--reference-rows rows.json] \
        [--curve-steps teacher=8,4 student=4] [--note-cfg 3]

Long-format records (one per sample cell: model, steps, cfg) sorted teacher
first, then students; reference rows (mini: real training digits and their
VQ reconstructions) carry steps 0. The ``paper_*`` columns hold the only value
transcribed for this figure, the MaskGIT-pytorch README teacher (8 steps,
CFG 3, 50k samples; ``paper_source`` names it), and nothing else.

Writes ``<out>`` (CSV), ``<stem>.png`` (left: FID against IS over the CFG grid,
one curve per model and step count, as Figure 3; right: FID against steps at
``note-cfg``), ``<stem>.md`` (the table and the closing notes) and
``<stem>.meta.json``. The closing notes state, per student, the speed-up at
equal quality: the largest teacher step count M whose FID the student reaches
at N steps within the noise (2 sd of the difference, bootstrap sd per cell),
given only when the teacher at N steps is worse than the student beyond it.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from di4c.artifacts import atomic_path, write_meta, write_text
from di4c.cli.common import add_run_args, setup_run
from di4c.tables import paper_source, paper_value, records_to_csv

COLUMNS = [
    "model",
    "steps",
    "cfg",
    "nfe",
    "fid",
    "fid_sd",
    "fid_spread",
    "is",
    "is_sd",
    "is_spread",
    "precision",
    "recall",
    "num_samples",
    "paper_fid",
    "paper_is",
    "paper_source",
]
PAPER_CFG = {("teacher", 8): 3.0}  # the README reference is at CFG 3
REFERENCE_MODELS = {
    "data": "data (training digits)",
    "vq_reconstruction": "vq reconstruction",
}


def model_rank(model: str) -> tuple:
    order = {"teacher": 0, "released": 3, "k1": 4, "hybrid": 5}
    return (order.get(model, 1 if model.startswith("di4c") else 2), model)


def load_records(paths, scale: str) -> list[dict]:
    recs = []
    for p in paths:
        r = json.loads(Path(p).read_text())
        rec = {c: r.get(c) for c in COLUMNS if c in r}
        rec["num_samples"] = r.get("num_samples", r.get("num_fake"))
        if (
            scale == "paper"
            and PAPER_CFG.get((rec["model"], rec["steps"])) == rec["cfg"]
        ):
            for m in ("fid", "is"):
                rec[f"paper_{m}"] = paper_value(
                    "imagenet", rec["model"], rec["steps"], m
                )
            rec["paper_source"] = paper_source("imagenet", "teacher", 8, "fid")
        recs.append(rec)
    recs.sort(key=lambda r: (model_rank(r["model"]), r["steps"], r["cfg"]))
    return recs


def reference_records(path) -> list[dict]:
    rows = json.loads(Path(path).read_text())
    out = []
    for key, name in REFERENCE_MODELS.items():
        if key in rows:
            r = rows[key]
            out.append(
                {
                    "model": name,
                    "steps": 0,
                    "fid": r["fid"],
                    "fid_sd": r.get("fid_sd"),
                    "fid_spread": r.get("fid_spread"),
                    "is": r["is"],
                    "is_sd": r.get("is_sd"),
                    "is_spread": r.get("is_spread"),
                    "precision": r.get("precision"),
                    "recall": r.get("recall"),
                    "num_samples": r.get("num_fake"),
                }
            )
    return out


def _noise(a: dict, b: dict) -> float:
    """Noise band of an FID difference: 2 sd of the difference (bootstrap sd of
    each cell), or the combined split-half spreads where no sd was recorded."""
    if a.get("fid_sd") is not None and b.get("fid_sd") is not None:
        return 2 * math.hypot(a["fid_sd"], b["fid_sd"])
    return math.hypot(a.get("fid_spread") or 0.0, b.get("fid_spread") or 0.0)


def _sd(r: dict) -> str:
    sd = r.get("fid_sd")
    return (
        f"{sd:.2g}" if sd is not None else f"split-half {r.get('fid_spread') or 0:.2g}"
    )


def teacher_curve_note(teacher: dict[int, dict], cfg: float) -> str:
    """Does the teacher keep improving with N (mini-twins.md, lesson 1)?"""
    ns = sorted(teacher)
    fids = ", ".join(f"N={n}: {teacher[n]['fid']:.3g}" for n in ns)
    better = [
        b
        for a, b in zip(ns, ns[1:])
        if teacher[a]["fid"] - teacher[b]["fid"] > _noise(teacher[a], teacher[b])
    ]
    last = f"up to N={max(better)}" if better else "at no step beyond noise"
    return f"Teacher FID vs steps (CFG {cfg:g}): {fids}; improves beyond noise {last}."


def speedup_notes(recs: list[dict], cfg: float) -> list[str]:
    """Speed-up at equal quality (FID) at CFG ``cfg``, beyond split-half noise."""
    at = [r for r in recs if r.get("cfg") == cfg and r["steps"]]
    teacher = {r["steps"]: r for r in at if r["model"] == "teacher"}
    if not teacher:
        return [f"CFG {cfg:g}: no teacher cells; no speed-up stated."]
    notes = [teacher_curve_note(teacher, cfg)]
    for model in sorted({r["model"] for r in at} - {"teacher"}, key=model_rank):
        for r in sorted(
            (r for r in at if r["model"] == model), key=lambda r: r["steps"]
        ):
            n = r["steps"]
            match = [
                m for m, t in teacher.items() if r["fid"] - t["fid"] <= _noise(r, t)
            ]
            same = teacher.get(n)
            head = (
                f"{model} @ {n} steps (CFG {cfg:g}): FID {r['fid']:.3g} (sd {_sd(r)})"
            )
            if same is None:
                notes.append(f"{head}; no teacher cell at {n} steps.")
                continue
            gap = same["fid"] - r["fid"]
            if gap <= _noise(r, same):
                notes.append(
                    f"{head}; teacher @ {n}: {same['fid']:.3g} (sd {_sd(same)}): "
                    "no gain beyond noise, no speed-up."
                )
                continue
            best = max(match) if match else n
            larger = sorted(m for m in teacher if m > best)
            bound = f"< {larger[0] / n:g}x" if larger else "(teacher grid exhausted)"
            if best == n:
                tail = (
                    f"short of teacher @ {larger[0]}: speed-up {bound}."
                    if larger
                    else ""
                )
                notes.append(
                    f"{head}; better than teacher @ {n} ({same['fid']:.3g}) beyond "
                    f"noise, {tail}".rstrip(", ")
                )
                continue
            notes.append(
                f"{head}; better than teacher @ {n} ({same['fid']:.3g}) beyond noise; "
                f"matches teacher @ {best} ({teacher[best]['fid']:.3g}): speed-up "
                f">= {best / n:g}x at equal FID, {bound}."
            )
    notes += baseline_notes(at)
    return notes


def _compare(a: dict, b: dict, key: str = "fid") -> str:
    """'better' / 'worse' / 'within noise' for metric ``key`` of a vs b (2 sd band)."""
    sa, sb = a.get(f"{key}_sd"), b.get(f"{key}_sd")
    band = (
        2 * math.hypot(sa, sb)
        if sa is not None and sb is not None
        else math.hypot(a.get(f"{key}_spread") or 0.0, b.get(f"{key}_spread") or 0.0)
    )
    diff = a[key] - b[key]
    if abs(diff) <= band:
        return "within noise"
    lower_is_better = key == "fid"
    return "better" if (diff < 0) == lower_is_better else "worse"


def baseline_notes(at: list[dict]) -> list[str]:
    """Di4C students vs the equal-compute K = 1 baseline at the same steps (the
    ablation: is the gain the mixture's, or fine-tuning's?)."""
    k1 = {r["steps"]: r for r in at if r["model"] == "k1"}
    notes = []
    for r in sorted(at, key=lambda r: (model_rank(r["model"]), r["steps"])):
        if not r["model"].startswith("di4c") or r["steps"] not in k1:
            continue
        b = k1[r["steps"]]
        notes.append(
            f"{r['model']} vs k1 @ {r['steps']} steps (CFG {r['cfg']:g}): FID "
            f"{r['fid']:.3g} vs {b['fid']:.3g}: {_compare(r, b)}."
        )
    return notes


def curve_notes(recs: list[dict], curve_steps: dict) -> list[str]:
    """Figure 3's claim at every CFG weight: the student at its curve steps vs the
    teacher at each of its curve steps, in FID and in IS (2 sd bands)."""
    notes = []
    for w in sorted({r["cfg"] for r in recs if r.get("cfg") is not None}):
        at = {(r["model"], r["steps"]): r for r in recs if r.get("cfg") == w}
        for (m, n), r in sorted(at.items(), key=lambda kv: model_rank(kv[0][0])):
            if m == "teacher" or n not in curve_steps.get("student", []):
                continue
            parts = []
            for nt in sorted(curve_steps.get("teacher", [])):
                t = at.get(("teacher", nt))
                if t is not None:
                    parts.append(
                        f"vs teacher @ {nt}: FID {_compare(r, t)}, IS "
                        f"{_compare(r, t, 'is')}"
                    )
            if parts:
                notes.append(
                    f"CFG {w:g}: {m} @ {n} (FID {r['fid']:.3g}, IS {r['is']:.3g}) "
                    + "; ".join(parts)
                    + "."
                )
    return notes


def plot(recs, refs, path: Path, curve_steps: dict, note_cfg: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    models = sorted({r["model"] for r in recs}, key=model_rank)
    colors = {m: f"C{i}" for i, m in enumerate(models)}
    for m in models:
        steps = curve_steps.get("teacher" if m == "teacher" else "student", [])
        for j, n in enumerate(sorted(steps, reverse=True)):
            pts = sorted(
                (r["cfg"], r["is"], r["fid"])
                for r in recs
                if r["model"] == m and r["steps"] == n
            )
            if len(pts) < 1:
                continue
            _, xs, ys = zip(*pts)
            style = ["-o", "--s", ":^"][j % 3]
            a1.plot(xs, ys, style, color=colors[m], ms=4, label=f"{m} {n} steps")
            for w, x, y in pts:
                a1.annotate(f"{w:g}", (x, y), fontsize=6, alpha=0.7)
    a1.set_xlabel("IS")
    a1.set_ylabel("FID")
    a1.set_title("FID vs IS over CFG weights (labels: w)", fontsize=9)
    a1.legend(fontsize=7)
    a1.grid(alpha=0.3)
    for m in models:
        pts = sorted(
            (r["steps"], r["fid"], 2 * (r.get("fid_sd") or 0.0))
            for r in recs
            if r["model"] == m and r["cfg"] == note_cfg
        )
        if pts:
            xs, ys, es = zip(*pts)
            a2.errorbar(xs, ys, yerr=es, fmt="-o", color=colors[m], ms=4, label=m)
    for k, r in enumerate(refs):
        a2.axhline(r["fid"], color="k", ls=[":", "--"][k % 2], lw=1, label=r["model"])
    a2.set_xscale("log", base=2)
    a2.set_xlabel("steps N (NFE)")
    a2.set_ylabel("FID")
    a2.set_title(
        f"FID vs steps at CFG {note_cfg:g} (bars: split-half spread)", fontsize=9
    )
    a2.legend(fontsize=7)
    a2.grid(alpha=0.3, which="both")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def markdown(recs: list[dict], notes: list[str], header: str) -> str:
    cols = [c for c in COLUMNS if any(r.get(c) not in (None, "") for r in recs)]
    lines = [header, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in recs:
        cells = []
        for c in cols:
            v = r.get(c)
            cells.append(
                "" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)
            )
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Closing notes (speed-up at equal quality):", ""]
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def parse_curve_steps(items) -> dict:
    out = {}
    for it in items or []:
        k, _, v = it.partition("=")
        if k not in ("teacher", "student") or not v:
            raise ValueError(
                f"--curve-steps entries look like teacher=8,4 or student=4; got {it!r}"
            )
        out[k] = [int(x) for x in v.split(",")]
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--scale", required=True, choices=["paper", "mini", "smoke"])
    ap.add_argument(
        "--metrics", nargs="+", required=True, help="cell metric .json files"
    )
    ap.add_argument("--reference-rows", default=None, help="mini reference rows .json")
    ap.add_argument("--curve-steps", nargs="*", default=["teacher=8,4", "student=4"])
    ap.add_argument("--note-cfg", type=float, default=3.0)
    ap.add_argument("--meta-note", default="", help="free text for the table's meta")
    ap.add_argument("--out", required=True)
    add_run_args(ap)
    args = ap.parse_args(argv)
    setup_run(args.log, args.threads)
    t0 = time.time()
    recs = load_records(args.metrics, args.scale)
    refs = reference_records(args.reference_rows) if args.reference_rows else []
    notes = speedup_notes(recs, args.note_cfg) + curve_notes(
        recs, parse_curve_steps(args.curve_steps)
    )
    out = Path(args.out)
    write_text(out, records_to_csv(recs + refs, COLUMNS))
    plot(
        recs,
        refs,
        out.with_suffix(".png"),
        parse_curve_steps(args.curve_steps),
        args.note_cfg,
    )
    header = f"# ImageNet slice (paper Fig. 3), {args.scale} scale\n\n{args.meta_note}".rstrip()
    write_text(out.with_suffix(".md"), markdown(recs + refs, notes, header))
    write_meta(
        out,
        config={
            "scale": args.scale,
            "note_cfg": args.note_cfg,
            "curve_steps": args.curve_steps,
        },
        inputs={Path(p).stem: p for p in args.metrics}
        | ({"reference_rows": args.reference_rows} if args.reference_rows else {}),
        wall_time_s=time.time() - t0,
        extra={
            "notes": notes,
            "about": args.meta_note,
            "paper_values": "only the MaskGIT-pytorch README teacher reference "
            "(8 steps, CFG 3, 50k samples) is transcribed; every other paper cell is empty",
        },
    )
    for n in notes:
        print(n)
    print(f"wrote {out} ({len(recs)} cells, {len(refs)} reference rows)")


if __name__ == "__main__":
    main()
