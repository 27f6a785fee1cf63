"""Published values and table writing (long-format records pivoted into the paper's layout).

:data:`PAPER_VALUES` holds exactly the numbers in ``shared/reference/paper-numbers.md``
that are known for certain; every other paper cell stays empty. Each entry names
its source. Never add a value here that was not transcribed from the paper (or
the named reference) itself.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path

from di4c.artifacts import write_text

# (table, model, steps, metric) -> (value, source)
PAPER_VALUES: dict[tuple[str, str, int, str], tuple[float, str]] = {
    ("cifar10", "teacher", 10, "fid"): (32.61, "Di4C paper, Table 1"),
    ("cifar10", "student", 10, "fid"): (20.64, "Di4C paper, Table 1"),
    ("cifar10", "teacher", 20, "fid"): (12.36, "Di4C paper, Table 1"),
    ("cifar10", "student", 20, "fid"): (9.77, "Di4C paper, Table 1"),
    ("cifar10", "tauldr_pc_tau_leaping", 1000, "fid"): (
        3.74,
        "tauLDR paper (PC tau-leaping, ~1000 NFE)",
    ),
    ("imagenet", "teacher", 8, "fid"): (
        6.80,
        "MaskGIT-pytorch README (8 steps, cfg 3, 50k)",
    ),
    ("imagenet", "teacher", 8, "is"): (
        214.0,
        "MaskGIT-pytorch README (8 steps, cfg 3, 50k)",
    ),
}

# Latency of one sampling call (seconds), Di4C paper; teacher vs Di4C student, same steps/batch
PAPER_LATENCY: dict[str, tuple[float, float, str]] = {
    "cifar10": (0.5515, 0.5786, "Di4C paper (+4.9%)"),
    "openwebtext": (3.3409, 3.4817, "Di4C paper (+4.2%)"),
}


def paper_value(table: str, model: str, steps: int, metric: str) -> float | None:
    """The published value for a cell, or None where none was transcribed."""
    v = PAPER_VALUES.get((table, model, int(steps), metric))
    return None if v is None else v[0]


def paper_source(table: str, model: str, steps: int, metric: str) -> str:
    v = PAPER_VALUES.get((table, model, int(steps), metric))
    return "" if v is None else v[1]


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if v != v else f"{v:.6g}"
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
