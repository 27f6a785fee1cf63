"""Table plots from metric records and a :class:`di4c.tables.TableLayout`.

Panels: the primary and the secondary metric against steps N (log-2 axis, sd error
bars), one line per model (hybrids included; one per group value where the layout
groups cells, e.g. per CFG weight), published values as stars and reference rows
(steps 0) as horizontal lines. ``plot == "steps+guidance"`` adds FID against IS over
the guidance grid, one curve per model and step count, as the paper's Fig. 3.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from di4c.analysis import get_metric, group_key, group_label, row_sort_key, value
from di4c.artifacts import atomic_path

MARKERS = "os^vD<>ph*"
LINESTYLES = ("-", "--", ":", "-.")


def _lines(records: Sequence[Mapping], layout) -> dict[tuple, list[Mapping]]:
    """Cells by (model, group) in layout order; reference rows left out."""
    out: dict[tuple, list[Mapping]] = {}
    for r in sorted(records, key=lambda r: row_sort_key(r, layout)):
        if int(r["steps"]) > 0:
            out.setdefault((r["model"], group_key(r, layout.group_by)), []).append(r)
    return out


def _steps_panel(ax, records, layout, metric: str, colors: dict) -> None:
    m = get_metric(metric)
    groups = sorted(
        {k for _, k in _lines(records, layout)},
        key=lambda k: [str(v) for v in k],
    )
    for (model, key), cells in _lines(records, layout).items():
        pts = sorted(
            (int(r["steps"]), value(r, metric), r.get(f"{metric}_sd") or 0.0)
            for r in cells
            if value(r, metric) is not None
        )
        if not pts:
            continue
        xs, ys, es = zip(*pts)
        label = group_label(key, layout.group_by)
        ax.errorbar(
            xs,
            ys,
            yerr=es,
            color=colors[model],
            marker=MARKERS[list(colors).index(model) % len(MARKERS)],
            ls=LINESTYLES[groups.index(key) % len(LINESTYLES)],
            ms=4,
            lw=1.2,
            capsize=2,
            label=f"{model} ({label})" if label else model,
        )
        paper = [
            (int(r["steps"]), r[f"paper_{metric}"])
            for r in cells
            if r.get(f"paper_{metric}") is not None
        ]
        if paper:
            ax.plot(
                *zip(*paper),
                color=colors[model],
                marker="*",
                ms=11,
                ls="none",
                label=f"{model} (paper)",
            )
    for i, r in enumerate(r for r in records if int(r["steps"]) == 0):
        if value(r, metric) is not None:
            ax.axhline(
                value(r, metric),
                color="grey",
                ls=LINESTYLES[i % len(LINESTYLES)],
                lw=1,
                label=r["model"],
            )
    ax.set_xscale("log", base=2)
    ys = [value(r, metric) for r in records if value(r, metric) is not None]
    if not m.higher_is_better and ys and min(ys) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("steps N")
    ax.set_ylabel(
        f"{m.label} ({'higher' if m.higher_is_better else 'lower'} is better)"
    )
    ax.grid(alpha=0.3, which="both")


def _guidance_panel(ax, records, layout, colors: dict) -> None:
    """FID (primary) against IS (secondary) over the guidance grid (Fig. 3)."""
    p, s = layout.primary, layout.secondary
    curves: dict[tuple, list] = {}
    for r in records:
        if int(r["steps"]) > 0 and r.get("guidance") is not None:
            if value(r, p) is not None and value(r, s) is not None:
                curves.setdefault((r["model"], int(r["steps"])), []).append(r)
    curves = {k: v for k, v in curves.items() if len(v) > 1}  # a curve, not a point
    for j, ((model, n), cells) in enumerate(sorted(curves.items())):
        cells = sorted(cells, key=lambda r: float(r["guidance"]))
        xs = [value(r, s) for r in cells]
        ys = [value(r, p) for r in cells]
        ax.plot(
            xs,
            ys,
            color=colors[model],
            ls=LINESTYLES[j % len(LINESTYLES)],
            marker=MARKERS[list(colors).index(model) % len(MARKERS)],
            ms=4,
            label=f"{model} N={n}",
        )
        for r, x, y in zip(cells, xs, ys):
            ax.annotate(f"{float(r['guidance']):g}", (x, y), fontsize=6, alpha=0.7)
    ax.set_xlabel(get_metric(s).label)
    ax.set_ylabel(get_metric(p).label)
    ax.set_title("over the CFG grid (labels: guidance weight)", fontsize=9)
    ax.grid(alpha=0.3)


def plot_table(
    records: Sequence[Mapping], layout, path: str | Path, *, title: str = ""
) -> Path:
    """Write the table's figure (PNG) atomically; returns ``path``.

    ``records``: the table's rows (:func:`di4c.tables.build_rows`, or plain metric
    records; ``paper_<metric>`` keys, where present, are drawn as stars).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in (layout.primary, layout.secondary) if m]
    guidance = layout.plot == "steps+guidance" and layout.secondary is not None
    models = list(dict.fromkeys(r["model"] for r in records if int(r["steps"]) > 0))
    colors = {m: f"C{i % 10}" for i, m in enumerate(models)}
    n = len(metrics) + guidance
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 4.0), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        _steps_panel(ax, records, layout, metric, colors)
    if guidance:
        _guidance_panel(axes[0][-1], records, layout, colors)
    for ax in axes[0]:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    fig.suptitle(title or layout.title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return Path(path)
