"""The settings table: every cited paper value, its source and our deviations.

    python -m di4c.settings.sources            # print the markdown table
    python -m di4c.settings.sources --write README.md

One row per (setting, hyperparameter) from the adapters' ``PAPER`` trees
(:class:`~di4c.settings.base.Cited`); the README embeds it between the markers
``<!-- settings-table -->`` and ``<!-- /settings-table -->`` (``--write`` replaces
that block; a test checks it is in sync).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from di4c.settings import SETTINGS, setting_class

BEGIN, END = "<!-- settings-table -->", "<!-- /settings-table -->"


def _fmt(v) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items())
    return "null" if v is None else str(v)


def settings_table() -> str:
    lines = [
        "| setting | hyperparameter | value used | source | deviation (published; reason) |",
        "|---|---|---|---|---|",
    ]
    for name in SETTINGS:
        for key, c in setting_class(name).sources().items():
            dev = f"{_fmt(c.published)}; {c.reason}" if c.deviates else c.reason
            lines.append(f"| {name} | `{key}` | {_fmt(c.value)} | {c.source} | {dev} |")
    return "\n".join(lines)


def embed(text: str, table: str) -> str:
    """``text`` with the block between the markers replaced by ``table``."""
    if BEGIN not in text or END not in text:
        raise ValueError(f"the markers {BEGIN} ... {END} are missing")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table}\n{END}{tail}"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--write", default=None, help="a file with the markers (README.md)")
    args = ap.parse_args(argv)
    table = settings_table()
    if args.write:
        p = Path(args.write)
        p.write_text(embed(p.read_text(), table))
    else:
        print(table)


if __name__ == "__main__":
    main()
