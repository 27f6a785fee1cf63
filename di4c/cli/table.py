"""The table step of every setting: metric records -> CSV, notes, plot, provenance.

    python -m di4c.cli.table --setting cifar10 --scale mini \\
        --metrics m1.json m2.json ... [--rows reference/rows.json] \\
        --teacher-of '{"student": "teacher", "hybrid": "teacher"}' \\
        --out paper_tables/mini/cifar10.csv [--log L]

The layout is :data:`di4c.tables.LAYOUTS` [setting]. Writes ``<out>`` (CSV),
``<stem>.md`` (title, what the rows are, the table, the notes of
:func:`di4c.analysis.note_lines`), ``<stem>.png`` (:func:`di4c.plots.plot_table`)
and ``<stem>.meta.json``. Published values are attached at paper scale only.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from di4c import analysis, tables
from di4c.artifacts import write_meta, write_text
from di4c.config import REHEARSAL_SCALES
from di4c.plots import plot_table

REHEARSAL_NOTE = (
    "**Rehearsal**: every job of the paper DAG ran on stand-ins (di4c.standins: random "
    "weights and stand-in data in the published formats, tiny counts); the numbers "
    "mean nothing, only the columns and the code path are the paper run's."
)


def parse_teacher_of(text: str) -> dict[str, str]:
    try:
        m = json.loads(text)
    except json.JSONDecodeError as e:
        raise SystemExit(f"--teacher-of is not JSON ({e}): {text!r}") from None
    if not isinstance(m, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in m.items()
    ):
        raise SystemExit(
            f"--teacher-of must map model names to teacher names: {text!r}"
        )
    return m


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--setting", required=True)
    ap.add_argument("--scale", required=True)
    ap.add_argument("--metrics", nargs="+", required=True, help="metric record files")
    ap.add_argument("--rows", default=None, help="reference rows (a list of records)")
    ap.add_argument("--teacher-of", required=True, help='JSON {"student": "teacher"}')
    ap.add_argument("--out", required=True, help="CSV; .md/.png/.meta.json beside it")
    ap.add_argument("--about", default="", help="one paragraph for the .md")
    ap.add_argument("--log", default=None)
    args = ap.parse_args(argv)
    if args.log:
        from di4c.cli.common import setup_run

        setup_run(args.log, None)
    t0 = time.time()
    teacher_of = parse_teacher_of(args.teacher_of)
    try:
        layout = tables.get_layout(args.setting)
        files = args.metrics + ([args.rows] if args.rows else [])
        records = [r for f in files for r in tables.read_records(f)]
        tables.check_records(records, args.setting, args.scale, teacher_of)
        notes = analysis.note_lines(records, layout, teacher_of)
    except ValueError as e:  # TableInputError, unknown setting, teacher_of cycle
        raise SystemExit(f"table: {e}") from None
    rows = tables.build_rows(records, layout, teacher_of, args.scale)
    out = Path(args.out)
    title = f"{layout.title} ({args.scale} scale)"
    tables.write_table(rows, out, layout.columns)
    plot_table(rows, layout, out.with_suffix(".png"), title=title)
    rehearsal = args.scale in REHEARSAL_SCALES
    about = [a for a in (REHEARSAL_NOTE if rehearsal else "", args.about) if a]
    md = [f"# {title}", ""] + [line for a in about for line in (a, "")]
    md += [layout.rows, ""]
    md += [tables.markdown_table(rows, layout.columns), "", "## Notes", ""]
    md += [f"- {line}" for line in notes]
    write_text(out.with_suffix(".md"), "\n".join(md) + "\n")
    inputs = {f"metrics_{i}": p for i, p in enumerate(args.metrics)}
    write_meta(
        out,
        config={
            "setting": args.setting,
            "scale": args.scale,
            "rehearsal": rehearsal,
            "teacher_of": teacher_of,
            "layout": layout.setting,
            "columns": list(layout.columns),
        },
        inputs=inputs | ({"reference_rows": args.rows} if args.rows else {}),
        wall_time_s=time.time() - t0,
        extra={"notes": notes},
    )
    print("\n".join(notes))
    print(f"wrote {out} ({len(rows)} rows)")


if __name__ == "__main__":
    main()
