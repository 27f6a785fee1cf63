"""Figure 4 table and plot: generative perplexity and unigram entropy vs sampling steps.

    python -m di4c.cli.openwebtext_table --metrics teacher.json di4c.json ... \\
        --teachers teacher --out paper_tables/mini/openwebtext.csv

One row per (model, steps) with the noise of each cell (delta-method standard
error and split-half values), the teacher steps that reach the same Gen PPL
(log-log interpolation on the teacher's running-best curve) and the speed-up
this gives, the comparison with the teacher at twice the steps (z-score of the
Gen PPL difference and the entropy difference), and the published value
beside ours (``di4c.tables.paper_value``; Fig. 4 values were not transcribed,
so these columns stay empty). The meta.json states the paper's claim and a
summary of what the table shows; ``<stem>.md`` has the same as a readable note.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from di4c.artifacts import atomic_path, write_meta, write_text
from di4c.cli.common import add_run_args, setup_run
from di4c.tables import paper_value, write_table

PAPER_CLAIM = (
    "Fig. 4 (paper-numbers.md): Di4C / di4c^2 students of sdtt-6/7 give more than a 2x "
    "speed-up (the Gen PPL of 64-128 teacher steps reached at 32 steps) while keeping "
    "the unigram entropy; the published values were not transcribed"
)
COLUMNS = [
    "model",
    "steps",
    "nfe",
    "gen_ppl",
    "gen_ppl_se",
    "gen_ppl_half_a",
    "gen_ppl_half_b",
    "entropy",
    "entropy_se",
    "entropy_half_a",
    "entropy_half_b",
    "n_samples",
    "teacher",
    "teacher_equiv_steps",
    "speedup_equal_ppl",
    "z_vs_teacher_2x",
    "entropy_minus_teacher_2x",
    "entropy_diff_se",
    "mauve",
    "paper_gen_ppl",
    "paper_entropy",
    "noise_dtype",
    "weights_kind",
]


def teacher_equiv_steps(curve: list[tuple[int, float]], ppl: float) -> float | None:
    """Teacher steps reaching Gen PPL ``ppl`` on the running-best curve (log-log interp.).

    Returns the smallest step count of the curve if ``ppl`` is no better than its
    first point, and None if ``ppl`` beats every point (beyond the teacher's best).
    """
    pts = sorted(curve)
    env, best = [], math.inf
    for n, v in pts:
        best = min(best, v)
        env.append((n, best))
    if ppl >= env[0][1]:
        return float(env[0][0])
    for (n0, v0), (n1, v1) in zip(env, env[1:]):
        if v1 <= ppl:
            if v1 == v0:
                return float(n1)
            frac = (math.log(ppl) - math.log(v0)) / (math.log(v1) - math.log(v0))
            return math.exp(math.log(n0) + frac * (math.log(n1) - math.log(n0)))
    return None


def teacher_for(model: str, teachers: list[str]) -> str | None:
    """The teacher a row is compared with: a teacher name prefixing it, else the only teacher."""
    if model in teachers or model == "data":
        return None
    hits = [t for t in teachers if model.startswith(t)]
    if hits:
        return max(hits, key=len)
    return teachers[0] if len(teachers) == 1 else None


def analyse(records: list[dict], teachers: list[str], table: str) -> list[dict]:
    """Add teacher-relative columns and published values to each record."""
    by = {(r["model"], int(r["steps"])): r for r in records}
    curves = {
        t: [(int(r["steps"]), r["gen_ppl"]) for r in records if r["model"] == t]
        for t in teachers
    }
    out = []
    for r in records:
        r = dict(r)
        t = teacher_for(r["model"], teachers)
        r["teacher"] = t or ""
        if t and curves.get(t):
            n_eq = teacher_equiv_steps(curves[t], r["gen_ppl"])
            r["teacher_equiv_steps"] = n_eq
            r["speedup_equal_ppl"] = n_eq / r["steps"] if n_eq is not None else None
            ref = by.get((t, 2 * int(r["steps"])))
            if ref is not None:
                se = math.hypot(r["gen_ppl_se"], ref["gen_ppl_se"])
                r["z_vs_teacher_2x"] = (
                    (ref["gen_ppl"] - r["gen_ppl"]) / se if se > 0 else None
                )
                r["entropy_minus_teacher_2x"] = r["entropy"] - ref["entropy"]
                r["entropy_diff_se"] = math.hypot(r["entropy_se"], ref["entropy_se"])
        if r["model"] != "data":
            r["paper_gen_ppl"] = paper_value(
                table, r["model"], int(r["steps"]), "gen_ppl"
            )
            r["paper_entropy"] = paper_value(
                table, r["model"], int(r["steps"]), "entropy"
            )
        out.append(r)
    order = {m: i for i, m in enumerate(["data", *teachers])}
    return sorted(
        out,
        key=lambda r: (order.get(r["model"], len(order)), r["model"], int(r["steps"])),
    )


def summarise(rows: list[dict]) -> list[str]:
    """One line per student row with a teacher at twice its steps: is the 2x speed-up beyond 2 sigma?"""
    lines = []
    for r in rows:
        z = r.get("z_vs_teacher_2x")
        if z is None:
            continue
        dh, dse = r["entropy_minus_teacher_2x"], r["entropy_diff_se"]
        kept = "kept (within 2 se)" if dh > -2 * dse else "LOWER beyond 2 se"
        verdict = (
            "beyond the noise"
            if z > 2
            else ("within the noise" if z > -2 else "worse beyond the noise")
        )
        eq = r.get("teacher_equiv_steps")
        eq_txt = (
            f"{eq:.1f}"
            if eq is not None
            else f"> {max(int(x['steps']) for x in rows if x['model'] == r['teacher'])}"
        )
        lines.append(
            f"{r['model']} N={r['steps']}: gen PPL {r['gen_ppl']:.3f}+-{r['gen_ppl_se']:.3f} vs "
            f"{r['teacher']} N={2 * int(r['steps'])}: z = {z:+.2f} ({verdict}); equal-PPL teacher "
            f"steps {eq_txt}; entropy diff {dh:+.4f}+-{dse:.4f} ({kept})"
        )
    return lines


def _beyond_curve(r: dict, first: dict, last: dict, eq_txt: str, speed_txt: str):
    """Texts for a student outside the teacher's curve: past its last point ("> N",
    beyond 2 se; "~ N" within), or worse than its first ("<= 1")."""
    n = int(r["steps"])
    if r["gen_ppl"] < last["gen_ppl"] and r.get("teacher_equiv_steps") is None:
        se = math.hypot(r["gen_ppl_se"], last["gen_ppl_se"])
        mark = ">" if last["gen_ppl"] - r["gen_ppl"] > 2 * se else "~"
        top = int(last["steps"])
        return f"{mark} {top}", f"{mark} {top / n:.2f}"
    if r["gen_ppl"] > first["gen_ppl"]:
        low = int(first["steps"])
        return f"<= {low}", f"<= {low / n:.2f}"
    return eq_txt, speed_txt


def markdown(rows: list[dict], lines: list[str], title: str) -> str:
    """The table's note: each cell's Gen PPL and entropy, then the 2x comparisons."""

    def num(v, fmt):
        return "" if v is None or v == "" else format(v, fmt)

    out = [
        f"# {title}",
        "",
        f"Paper: {PAPER_CLAIM}.",
        "",
        "## Gen PPL and unigram entropy by steps N (+- delta-method se)",
        "",
        "| model | N | NFE | gen PPL | entropy | teacher steps at equal gen PPL | speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    curves = {}  # model -> its rows by steps (a teacher's curve)
    for r in sorted(rows, key=lambda x: int(x["steps"])):
        curves.setdefault(r["model"], []).append(r)
    for r in rows:
        eq, speed = r.get("teacher_equiv_steps"), r.get("speedup_equal_ppl")
        eq_txt, speed_txt = num(eq, ".1f"), num(speed, ".2f")
        if r.get("teacher"):
            curve = curves[r["teacher"]]
            eq_txt, speed_txt = _beyond_curve(r, curve[0], curve[-1], eq_txt, speed_txt)
        out.append(
            f"| {r['model']} | {r['steps']} | {num(r.get('nfe'), '.1f')} "
            f"| {r['gen_ppl']:.2f} +- {r['gen_ppl_se']:.2f} "
            f"| {r['entropy']:.4f} +- {r['entropy_se']:.4f} "
            f"| {eq_txt} | {speed_txt} |"
        )
    out += [
        "",
        "## Against the teacher at 2N (z > 2: better beyond the noise)",
        "",
        *(f"- {line}" for line in lines or ["no student rows with a teacher at 2N."]),
        "",
    ]
    return "\n".join(out)


def teacher_improvement(rows: list[dict], teacher: str) -> dict:
    """For each doubling N/2 -> N of the teacher: Gen PPL gain and its z-score (mini-twins.md)."""
    pts = {int(r["steps"]): r for r in rows if r["model"] == teacher}
    out = {}
    for n in sorted(pts):
        if n // 2 in pts and n % 2 == 0:
            a, b = pts[n // 2], pts[n]
            se = math.hypot(a["gen_ppl_se"], b["gen_ppl_se"])
            gain = a["gen_ppl"] - b["gen_ppl"]
            out[n] = {"gain": gain, "z": gain / se if se else None}
    improving = [n for n, v in out.items() if v["z"] is not None and v["z"] > 2]
    return {
        "doublings": out,
        "improves_beyond_noise_up_to": max(improving, default=None),
    }


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    models = list(dict.fromkeys(r["model"] for r in rows if r["model"] != "data"))
    for i, m in enumerate(models):
        pts = sorted((int(r["steps"]), r) for r in rows if r["model"] == m)
        xs = [n for n, _ in pts]
        style = dict(
            marker="os^vD<>"[i % 7], ms=4, lw=1.3, capsize=2, label=m.replace("_", "+")
        )
        a1.errorbar(
            xs,
            [r["gen_ppl"] for _, r in pts],
            yerr=[r["gen_ppl_se"] for _, r in pts],
            **style,
        )
        a2.errorbar(
            xs,
            [r["entropy"] for _, r in pts],
            yerr=[r["entropy_se"] for _, r in pts],
            **style,
        )
    for r in rows:
        if r["model"] == "data":
            a1.axhline(r["gen_ppl"], color="k", ls=":", lw=1, label="real text")
            a2.axhline(r["entropy"], color="k", ls=":", lw=1, label="real text")
    for ax, lab in (
        (a1, "generative perplexity (judge LM)"),
        (a2, "unigram entropy (nats)"),
    ):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sampling steps N")
        ax.set_ylabel(lab)
        ax.grid(alpha=0.3, which="both")
    a1.set_yscale("log")
    a1.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--metrics", nargs="+", required=True, help="metrics JSON files (score rule)"
    )
    ap.add_argument(
        "--teachers", nargs="+", required=True, help="model names of the teachers"
    )
    ap.add_argument(
        "--out", required=True, help="CSV path (.png, .md, .meta.json beside it)"
    )
    ap.add_argument(
        "--table", default="openwebtext", help="key of the published values"
    )
    ap.add_argument("--title", default="OpenWebText (Fig. 4)")
    add_run_args(ap)
    args = ap.parse_args(argv)
    setup_run(args.log, args.threads)
    t0 = time.time()
    records = [rec for f in args.metrics for rec in json.loads(Path(f).read_text())]
    missing = [t for t in args.teachers if not any(r["model"] == t for r in records)]
    if missing:
        ap.error(
            f"no records for teacher(s) {missing}; models present: {sorted({r['model'] for r in records})}"
        )
    rows = analyse(records, args.teachers, args.table)
    out = Path(args.out)
    plot(rows, out.with_suffix(".png"), args.title)
    write_table(rows, out, COLUMNS)
    lines = summarise(rows)
    for line in lines:
        print("[table] " + line, flush=True)
    write_text(out.with_suffix(".md"), markdown(rows, lines, args.title))
    write_meta(
        out,
        config=vars(args),
        inputs={f"metrics_{i}": f for i, f in enumerate(args.metrics)},
        wall_time_s=time.time() - t0,
        extra={
            "claim": PAPER_CLAIM,
            "summary": lines,
            "teacher_curve": {t: teacher_improvement(rows, t) for t in args.teachers},
            "noise": "se = delta-method standard error over samples; z > 2 is called beyond the noise",
        },
    )
    print(f"wrote {out} ({len(rows)} rows)", flush=True)


if __name__ == "__main__":
    main()
