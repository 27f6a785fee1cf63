"""Published values, table layouts, and table writing (metric records -> CSV / markdown).

:data:`PAPER_VALUES` holds exactly the numbers transcribed from the Di4C paper
(Table 1) and the references it compares with (tauLDR paper; MaskGIT-pytorch
README); every other paper cell stays empty. Each entry names its source. Never
add a value here that was not transcribed from the paper or the named reference.

:data:`LAYOUTS` gives, per setting, the table's CSV columns, its primary and
secondary metrics, the keys its notes are grouped by, its row order, its K = 1
baseline and its plot; the notes themselves come from :mod:`di4c.analysis`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from di4c import analysis
from di4c.artifacts import write_text

# (setting, model, steps, guidance, metric) -> (value, source); guidance None: no CFG
PAPER_VALUES: dict[tuple[str, str, int, float | None, str], tuple[float, str]] = {
    ("cifar10", "teacher", 10, None, "fid"): (32.61, "Di4C paper, Table 1"),
    ("cifar10", "student", 10, None, "fid"): (20.64, "Di4C paper, Table 1"),
    ("cifar10", "teacher", 20, None, "fid"): (12.36, "Di4C paper, Table 1"),
    ("cifar10", "student", 20, None, "fid"): (9.77, "Di4C paper, Table 1"),
    ("cifar10", "tauldr_pc_tau_leaping", 1000, None, "fid"): (
        3.74,
        "tauLDR paper (PC tau-leaping, ~1000 NFE)",
    ),
    ("imagenet", "teacher", 8, 3.0, "fid"): (
        6.80,
        "MaskGIT-pytorch README (8 steps, cfg 3, 50k)",
    ),
    ("imagenet", "teacher", 8, 3.0, "is"): (
        214.0,
        "MaskGIT-pytorch README (8 steps, cfg 3, 50k)",
    ),
}

# Latency of one sampling call (seconds), Di4C paper; teacher vs Di4C student, same steps/batch
PAPER_LATENCY: dict[str, tuple[float, float, str]] = {
    "cifar10": (0.5515, 0.5786, "Di4C paper (+4.9%)"),
    "openwebtext": (3.3409, 3.4817, "Di4C paper (+4.2%)"),
}


def paper_value(
    table: str, model: str, steps: int, metric: str, guidance: float | None = None
) -> float | None:
    """The published value for a cell, or None where none was transcribed."""
    v = PAPER_VALUES.get((table, model, int(steps), guidance, metric))
    return None if v is None else v[0]


def paper_source(
    table: str, model: str, steps: int, metric: str, guidance: float | None = None
) -> str:
    v = PAPER_VALUES.get((table, model, int(steps), guidance, metric))
    return "" if v is None else v[1]


# ------------------------------------------------------------------------- layouts

CELL_FIELDS = (
    "model",
    "steps",
    "teacher_last",
    "guidance",
    "noise",
    "nfe",
    "num_samples",
)
ANALYSIS_FIELDS = (
    "teacher",
    "teacher_equiv_steps",
    "speedup",
    "vs_teacher_n",
    "vs_teacher_2n",
)


@dataclass(frozen=True)
class TableLayout:
    """How one setting's table looks (CSV columns, notes, plot).

    ``metrics``: the measured metrics, each a column with its ``_sd``; ``primary`` /
    ``secondary``: the metrics of the notes (equal-quality steps in the primary, the
    secondary "kept" or not); ``group_by``: cell fields the notes and teacher curves
    are split by; ``row_order``: model names first in the table (others follow by
    name, reference rows last); ``baseline``: the K = 1 (product) distillation row
    compared at equal compute; ``paper_names``: our model name -> the published
    value's model name; ``paper_metrics``: metrics with a ``paper_*`` column;
    ``paper_beside``: published metric -> the measured metric whose column (and sd)
    its ``paper_*`` column follows (the one computed like the paper's; others sit
    after the analysis columns); ``paper_noise``: the sampling-noise precision of the
    published runs (only cells of that precision get ``paper_*`` values; None: every
    cell); ``plot``: ``"steps"`` (metrics against N) or ``"steps+guidance"`` (also FID
    against IS over the guidance grid, as Fig. 3).
    """

    setting: str
    title: str
    rows: str
    metrics: tuple[str, ...]
    primary: str
    secondary: str | None = None
    group_by: tuple[str, ...] = ()
    row_order: tuple[str, ...] = ()
    baseline: str | None = None
    paper_names: Mapping[str, str] = field(default_factory=dict, hash=False)
    paper_metrics: tuple[str, ...] = ()
    paper_beside: Mapping[str, str] = field(default_factory=dict, hash=False)
    paper_noise: str | None = None
    plot: str = "steps"

    @property
    def columns(self) -> tuple[str, ...]:
        """The CSV columns: cell fields, each metric and its sd (a ``paper_*`` column
        right after the metric it is beside), the analysis, the other paper columns."""
        after = {v: f"paper_{k}" for k, v in self.paper_beside.items()}
        measured = tuple(
            c
            for m in self.metrics
            for c in (m, f"{m}_sd", *([after[m]] if m in after else []))
        )
        paper = tuple(
            f"paper_{m}" for m in self.paper_metrics if m not in self.paper_beside
        )
        return CELL_FIELDS + measured + ANALYSIS_FIELDS + paper + ("paper_source",)

    def paper_name(self, model: str) -> str:
        return self.paper_names.get(model, model)


ROWS_TEXT = (
    "Rows: model, steps N, teacher_last L (hybrid: the teacher takes the last L of "
    "the N steps), NFE and number of samples; each metric with its sd (bootstrap "
    "over the generated samples, the reference fixed). `teacher`: the root teacher a "
    "row is compared with; `teacher_equiv_steps`: the teacher steps reaching the row's "
    "{primary} (log-log interpolation on the teacher's running-best curve; `<= N` "
    "worse than its first point, `> N` / `~ N` better than its best point beyond / "
    "within the noise); `speedup` = that / N; `vs_teacher_n`, `vs_teacher_2n`: "
    "{primary} against the teacher at N and 2N under the noise rule; `paper_*`: the "
    "published value (paper scale only, empty where none was transcribed). Rows with "
    "steps 0 are references."
)

LAYOUTS: dict[str, TableLayout] = {
    "cifar10": TableLayout(
        setting="cifar10",
        title="CIFAR-10 (paper Sec. 5.1, Table 1): FID / IS against sampling steps",
        rows=ROWS_TEXT.format(primary="FID")
        + " `fid` / `is`: torch-fidelity's Inception; `fid_clean`: clean-fid's FID of "
        "the same samples; `fid_pgm` / `is_pgm`: pytorch-gan-metrics, the tool of the "
        "paper's Table 1 (its resize, Inception weights and CIFAR-10 train "
        "statistics), the columns comparable with the paper: `paper_fid` / "
        "`paper_is` sit beside them (paper scale; the mini twins score with a digit "
        "classifier and leave these columns empty).",
        metrics=(
            "fid",
            "is",
            "fid_clean",
            "fid_pgm",
            "is_pgm",
            "kid",
            "precision",
            "recall",
        ),
        primary="fid",
        secondary="is",
        row_order=(
            "teacher",
            "student",
            "released_student",
            "student_k1",
            "hybrid",
            "real",
        ),
        baseline="student_k1",
        paper_names={"released_student": "student"},
        paper_metrics=("fid", "is"),
        paper_beside={"fid": "fid_pgm", "is": "is_pgm"},
    ),
    "imagenet": TableLayout(
        setting="imagenet",
        title="ImageNet 256 (paper Sec. 5.2, Fig. 3): FID / IS against steps and "
        "CFG weight",
        rows=ROWS_TEXT.format(primary="FID")
        + " `guidance`: the classifier-free guidance weight; the notes compare "
        "cells at the same weight.",
        metrics=("fid", "is", "precision", "recall"),
        primary="fid",
        secondary="is",
        group_by=("guidance",),
        row_order=("teacher", "di4c-d", "di4c", "released", "k1", "hybrid"),
        baseline="k1",
        paper_metrics=("fid", "is"),
        plot="steps+guidance",
    ),
    "openwebtext": TableLayout(
        setting="openwebtext",
        title="OpenWebText (paper Sec. 5.3, Fig. 4): generative perplexity and "
        "unigram entropy against sampling steps",
        rows=ROWS_TEXT.format(primary="gen PPL")
        + " `noise`: the float precision of the Gumbel sampling noise: `fp32` as the "
        "paper's Fig. 4 runs (float32 noise on bf16 logits; the cells comparable with "
        "the paper, the only ones with `paper_*` values), `fp64` float64 noise (32-bit "
        "categorical sampling truncates the tail, so fp64 gives higher gen PPL and "
        "entropy for every model); the notes compare cells of the same precision. "
        "`mauve` where computed.",
        metrics=("gen_ppl", "entropy", "mauve"),
        primary="gen_ppl",
        secondary="entropy",
        group_by=("noise",),
        row_order=(
            "teacher",
            "di4c",
            "di4c2",
            "k1",
            "hybrid",
            "sdtt6",
            "sdtt6_di4c",
            "sdtt6_di4c2",
            "sdtt7",
            "sdtt7_di4c",
            "sdtt7_di4c2",
        ),
        baseline="k1",
        paper_metrics=("gen_ppl", "entropy"),
        paper_noise="fp32",
    ),
}


def get_layout(setting: str) -> TableLayout:
    """The layout of ``setting`` (ValueError naming the known settings otherwise)."""
    try:
        return LAYOUTS[setting]
    except KeyError:
        raise ValueError(
            f"unknown setting {setting!r}; known: {', '.join(LAYOUTS)}"
        ) from None


# ------------------------------------------------------------------ records -> rows


NUMERIC = ("teacher_last", "guidance", "nfe", "num_samples")


class TableInputError(ValueError):
    """A metric record file the table step cannot use (the message names it)."""


def read_records(path: str | Path) -> list[dict]:
    """The metric records of one file: a JSON object (one cell) or a list of them
    (reference rows). Each needs ``model`` (str) and ``steps`` (int)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise TableInputError(f"{path}: not a readable JSON metric record ({e})") from e
    recs = data if isinstance(data, list) else [data]
    for i, r in enumerate(recs):
        where = f"{path}" + (f" [{i}]" if isinstance(data, list) else "")
        if not isinstance(r, dict):
            raise TableInputError(f"{where}: a metric record is a JSON object")
        if not isinstance(r.get("model"), str) or not isinstance(r.get("steps"), int):
            raise TableInputError(
                f"{where}: a metric record needs 'model' (string) and 'steps' (integer)"
            )
        for k, v in r.items():
            numeric = k in analysis.METRICS or k.endswith("_sd") or k in NUMERIC
            if numeric and v is not None and not isinstance(v, (int, float)):
                raise TableInputError(
                    f"{where}: {k} must be a number or null, not {v!r}"
                )
    return recs


def check_records(
    records: Sequence[Mapping], setting: str, scale: str, teacher_of: Mapping
) -> None:
    """Refuse records of another setting or scale, duplicate cells, and a table
    without records of a teacher named by ``teacher_of``."""
    seen = set()
    for r in records:
        for k, want in (("setting", setting), ("scale", scale)):
            if r.get(k) not in (None, want):
                raise TableInputError(
                    f"record {analysis.cell_name(r)} is for {k} {r[k]!r}, not {want!r}"
                )
        cell = (r["model"], r["steps"], r.get("teacher_last") or 0)
        cell += (r.get("guidance"), r.get("noise"))
        if cell in seen:
            raise TableInputError(f"two records for the cell {cell}")
        seen.add(cell)
    models = {r["model"] for r in records}
    for t in sorted({analysis.root_teacher(m, teacher_of) for m in teacher_of}):
        if t not in models:
            raise TableInputError(
                f"no records of teacher {t!r} (named by teacher_of); "
                f"models in the records: {', '.join(sorted(models))}"
            )


def build_rows(
    records: Iterable[Mapping],
    layout: TableLayout,
    teacher_of: Mapping[str, str],
    scale: str,
) -> list[dict]:
    """The table's rows in layout order: each record with its analysis columns
    (:func:`di4c.analysis.analyse_rows`) and, at paper scale, the published values."""
    records = [dict(r) for r in records]
    found = {
        id(a.record): a for a in analysis.analyse_rows(records, layout, teacher_of)
    }
    rows = []
    for r in sorted(records, key=lambda r: analysis.row_sort_key(r, layout)):
        a = found.get(id(r))
        if a is not None:
            r["teacher"] = a.teacher
            r["teacher_equiv_steps"] = a.equivalent.text(".4g")
            r["speedup"] = a.speedup.text(".4g")
            r["vs_teacher_n"] = a.same_n.verdict if a.same_n else None
            r["vs_teacher_2n"] = a.double_n.verdict if a.double_n else None
        sources = []
        published = scale == "paper" and layout.paper_noise in (None, r.get("noise"))
        for m in layout.paper_metrics:
            args = (layout.setting, layout.paper_name(r["model"]), r["steps"], m)
            v = paper_value(*args, r.get("guidance")) if published else None
            r[f"paper_{m}"] = v
            if v is not None:
                sources.append(paper_source(*args, r.get("guidance")))
        r["paper_source"] = "; ".join(dict.fromkeys(sources))
        rows.append(r)
    return rows


def markdown_table(rows: Sequence[Mapping], columns: Sequence[str]) -> str:
    """A markdown table of the columns that have a value in some row."""
    cols = [c for c in columns if any(r.get(c) not in (None, "") for r in rows)]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [_fmt(r.get(c), ".4g") for c in cols]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def _fmt(v, fmt: str = ".6g") -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if v != v else format(v, fmt)
    return str(v)


def records_to_csv(records: Iterable[dict], columns: Sequence[str]) -> str:
    """Render records as CSV with a fixed column order (missing cells empty)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in records:
        w.writerow([_fmt(r.get(c)) for c in columns])
    return buf.getvalue()


def write_table(
    records: Iterable[dict], path: str | Path, columns: Sequence[str]
) -> Path:
    """Write a CSV table atomically."""
    return write_text(path, records_to_csv(records, columns))


def read_table(path: str | Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))
