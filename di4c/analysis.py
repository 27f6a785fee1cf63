"""The analysis behind every table note: metric directions, the one noise rule,
teacher steps at equal quality (speed-up), the 2N comparison and the notes' wording.

The paper's headline measure is the speed-up at equal quality (Sec. 5): Table 1
compares the CIFAR-10 student with the teacher at the same N (10 and 20 steps);
Fig. 3 claims the 4-step ImageNet student matches the 8-step teacher in FID and IS,
with and without classifier-free guidance; Fig. 4 claims OpenWebText students reach
at 32 steps the generative perplexity of 64-128 teacher steps while keeping the
unigram entropy. The same functions state all three, with the same wording.

Inputs are plain metric records (dicts): ``model``, ``steps`` (N), ``teacher_last``
(L: a hybrid's teacher takes the last L of its N steps), ``guidance``, ``noise`` and,
per metric, ``<metric>`` and ``<metric>_sd``. Records with ``steps`` 0 are reference
rows (floors) and are never compared. The noise of a cell is its ``<metric>_sd``;
every function takes ``sd_suffix`` so that a caller can decide with another spread
of the same records (e.g. an across-seed spread stored as ``<metric>_seed_sd``)
under the same rule. No torch: pure functions over dicts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# --------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class Metric:
    """A metric's name in the records, its label in text, and its direction."""

    name: str
    label: str
    higher_is_better: bool

    def better(self, x: float, y: float) -> bool:
        """True when value ``x`` is strictly better than ``y``."""
        return x > y if self.higher_is_better else x < y


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("fid", "FID", False),
        Metric("fid_clean", "clean-FID", False),
        Metric("fid_pgm", "FID (pytorch-gan-metrics)", False),
        Metric("is_pgm", "IS (pytorch-gan-metrics)", True),
        Metric("kid", "KID", False),
        Metric("gen_ppl", "gen PPL", False),
        Metric("is", "IS", True),
        Metric("precision", "precision", True),
        Metric("recall", "recall", True),
        Metric("entropy", "unigram entropy", True),
        Metric("mauve", "MAUVE", True),
    )
}


def get_metric(name: str) -> Metric:
    """The registered metric ``name`` (ValueError naming the known ones otherwise)."""
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(
            f"unknown metric {name!r}; known: {', '.join(METRICS)}"
        ) from None


# ----------------------------------------------------------------------- noise rule

BEYOND = {"better": "better beyond the noise", "worse": "worse beyond the noise"}
NOISE_RULE = (
    "Noise rule: two cells differ beyond the noise when |a - b| > "
    "2 sqrt(sd_a^2 + sd_b^2), sd = the cell's bootstrap standard deviation over its "
    "generated samples (a missing sd counts as 0); +- gives that sd."
)


def value(rec: Mapping[str, Any], metric: str) -> float | None:
    """The record's value of ``metric`` (None where absent)."""
    v = rec.get(metric)
    return None if v is None else float(v)


def sd(rec: Mapping[str, Any], metric: str, sd_suffix: str = "_sd") -> float:
    """The cell's noise in ``metric``: ``<metric><sd_suffix>``, 0 where missing."""
    v = rec.get(metric + sd_suffix)
    return 0.0 if v is None else float(v)


def noise_band(a: Mapping, b: Mapping, metric: str, sd_suffix: str = "_sd") -> float:
    """2 sqrt(sd_a^2 + sd_b^2): the difference beyond which two cells differ."""
    return 2.0 * math.hypot(sd(a, metric, sd_suffix), sd(b, metric, sd_suffix))


@dataclass(frozen=True)
class Difference:
    """Cell a against cell b in one metric, from a's side (values and their sd)."""

    metric: str
    a: float
    b: float
    sd_a: float
    sd_b: float
    verdict: str  # "better" | "worse" | "within noise"

    @property
    def diff(self) -> float:
        return self.a - self.b

    @property
    def band(self) -> float:
        """2 sqrt(sd_a^2 + sd_b^2)."""
        return 2.0 * math.hypot(self.sd_a, self.sd_b)


def difference(
    a: Mapping, b: Mapping, metric: str, *, sd_suffix: str = "_sd"
) -> Difference:
    """Compare cells ``a`` and ``b`` in ``metric`` under the noise rule."""
    m = get_metric(metric)
    va, vb = value(a, metric), value(b, metric)
    if va is None or vb is None:
        missing = a if va is None else b
        raise ValueError(f"no {m.label} in the record of {missing.get('model')!r}")
    sa, sb = sd(a, metric, sd_suffix), sd(b, metric, sd_suffix)
    if abs(va - vb) <= 2.0 * math.hypot(sa, sb):
        verdict = "within noise"
    else:
        verdict = "better" if m.better(va, vb) else "worse"
    return Difference(metric, va, vb, sa, sb, verdict)


def compare(a: Mapping, b: Mapping, metric: str, *, sd_suffix: str = "_sd") -> str:
    """``"better"`` / ``"worse"`` / ``"within noise"``: cell a against cell b."""
    return difference(a, b, metric, sd_suffix=sd_suffix).verdict


# ------------------------------------------------------ equivalent teacher steps


@dataclass(frozen=True)
class Estimate:
    """A step count or speed-up, exact or a bound.

    ``relation``: ``"="`` interpolated on the teacher curve; ``"<="`` the student is
    worse than the teacher's first point; ``">"`` better than its best point beyond the
    noise; ``"~"`` better than its best point but within the noise.
    """

    value: float
    relation: str = "="

    def text(self, fmt: str = ".3g") -> str:
        v = format(self.value, fmt)
        return v if self.relation == "=" else f"{self.relation} {v}"

    def per(self, steps: int) -> Estimate:
        """The speed-up at ``steps``: this step count divided by the student's N."""
        return Estimate(self.value / steps, self.relation)


def curve_points(records: Iterable[Mapping], metric: str) -> list[Mapping]:
    """The records of one curve that carry ``metric``, by steps (reference rows out)."""
    pts = [r for r in records if int(r["steps"]) > 0 and value(r, metric) is not None]
    return sorted(pts, key=lambda r: int(r["steps"]))


def running_best(records: Iterable[Mapping], metric: str) -> list[tuple[int, Mapping]]:
    """The teacher's monotone envelope: ``(N, record of the best value at <= N)``.

    A teacher that gets worse with more steps does not make a student look faster:
    each step count is credited with the best value reached at or below it.
    """
    m = get_metric(metric)
    out: list[tuple[int, Mapping]] = []
    for r in curve_points(records, metric):
        if not out or m.better(value(r, metric), value(out[-1][1], metric)):
            out.append((int(r["steps"]), r))
        else:
            out.append((int(r["steps"]), out[-1][1]))
    return out


def _loglog(x: float, n0: int, v0: float, n1: int, v1: float) -> float:
    """log N linear in log metric between two points (linear in the metric where a
    value is not positive, e.g. a precision of 0)."""
    if x > 0 and v0 > 0 and v1 > 0:
        frac = (math.log(x) - math.log(v0)) / (math.log(v1) - math.log(v0))
    else:
        frac = (x - v0) / (v1 - v0)
    return math.exp(math.log(n0) + frac * (math.log(n1) - math.log(n0)))


def equivalent_steps(
    x: float,
    teacher: Sequence[Mapping],
    metric: str,
    *,
    x_sd: float = 0.0,
    sd_suffix: str = "_sd",
) -> Estimate:
    """Teacher steps reaching value ``x`` (log-log interpolation of N against the
    metric on the teacher's running-best curve); the speed-up is this over N (Sec. 5).

    Outside the curve: ``<= N_min`` when ``x`` is worse than the first point;
    ``> N_max`` when better than the best point beyond the noise (``x_sd`` against that
    point's sd), ``~ N_max`` when better but within it.
    """
    m = get_metric(metric)
    env = running_best(teacher, metric)
    if not env:
        raise ValueError(f"no teacher cells with {m.label} to interpolate on")
    n_min, first = env[0]
    if m.better(value(first, metric), x):
        return Estimate(n_min, "<=")
    n_max, best = env[-1]
    vb = value(best, metric)
    if m.better(x, vb):
        band = 2.0 * math.hypot(x_sd, sd(best, metric, sd_suffix))
        return Estimate(n_max, ">" if abs(x - vb) > band else "~")
    for (n0, r0), (n1, r1) in zip(env, env[1:]):
        v0, v1 = value(r0, metric), value(r1, metric)
        if v0 == x or v1 == x:
            return Estimate(n0 if v0 == x else n1)
        if not m.better(x, v1):  # v0 worse than x, v1 reaches it
            return Estimate(_loglog(x, n0, v0, n1, v1))
    return Estimate(n_max)


def teacher_cell(teacher: Sequence[Mapping], steps: int) -> Mapping | None:
    """The teacher's cell at ``steps`` (None where it was not sampled)."""
    return next((r for r in teacher if int(r["steps"]) == int(steps)), None)


def vs_teacher(
    student: Mapping,
    teacher: Sequence[Mapping],
    metric: str,
    *,
    factor: int = 1,
    sd_suffix: str = "_sd",
) -> Difference | None:
    """The student at N against the teacher at ``factor`` x N (2: the 2N comparison of
    Fig. 3 / Fig. 4; 1: the same-N comparison of Table 1). None without that cell or
    value."""
    t = teacher_cell(teacher, factor * int(student["steps"]))
    if t is None or value(t, metric) is None or value(student, metric) is None:
        return None
    return difference(student, t, metric, sd_suffix=sd_suffix)


# ------------------------------------------------------------------ rows and groups


def root_teacher(model: str, teacher_of: Mapping[str, str]) -> str:
    """Follow ``teacher_of`` (student -> its teacher) to the teacher at the root."""
    seen = [model]
    while model in teacher_of:
        model = teacher_of[model]
        if model in seen:
            raise ValueError(f"teacher_of has a cycle: {' -> '.join([*seen, model])}")
        seen.append(model)
    return model


def group_key(rec: Mapping, group_by: Sequence[str]) -> tuple:
    return tuple(rec.get(k) for k in group_by)


GROUP_LABELS = {"guidance": "CFG {}", "noise": "noise {}"}


def group_label(key: tuple, group_by: Sequence[str]) -> str:
    """``"CFG 3"``, ``"noise fp64"``; empty without group keys."""
    parts = []
    for k, v in zip(group_by, key):
        v = "none" if v is None else format(v, "g") if isinstance(v, float) else v
        parts.append(GROUP_LABELS.get(k, k + " {}").format(v))
    return ", ".join(parts)


def _group_sort(key: tuple) -> tuple:
    """Sort key of a group: None first, then numbers, then labels."""
    return tuple(
        (0, 0.0, "")
        if v is None
        else (1, float(v), "")
        if isinstance(v, (int, float))
        else (2, 0.0, str(v))
        for v in key
    )


def group_records(
    records: Iterable[Mapping], group_by: Sequence[str]
) -> dict[tuple, list[Mapping]]:
    """Records by the layout's group keys (e.g. guidance weight, noise precision),
    groups in sorted order; reference rows (steps 0) left out."""
    out: dict[tuple, list[Mapping]] = {}
    for r in records:
        if int(r["steps"]) > 0:
            out.setdefault(group_key(r, group_by), []).append(r)
    return {k: out[k] for k in sorted(out, key=_group_sort)}


@dataclass(frozen=True)
class RowAnalysis:
    """One student row (hybrids included) against its root teacher in its group."""

    record: Mapping
    group: tuple
    teacher: str
    equivalent: Estimate  # teacher steps at equal primary metric
    speedup: Estimate  # equivalent / N
    same_n: Difference | None  # primary, teacher at N
    double_n: Difference | None  # primary, teacher at 2N
    secondary: Difference | None  # secondary, teacher at secondary_at steps
    secondary_at: int | None  # 2N, or N where the teacher has no 2N cell
    baseline: Difference | None  # primary, the K = 1 baseline at the same N

    @property
    def steps(self) -> int:
        return int(self.record["steps"])


def row_sort_key(rec: Mapping, layout) -> tuple:
    """Layout row order, then model, group, N and L; reference rows last."""
    order = {m: i for i, m in enumerate(layout.row_order)}
    return (
        int(rec["steps"]) == 0,
        order.get(rec["model"], len(order)),
        rec["model"],
        _group_sort(group_key(rec, layout.group_by)),
        int(rec["steps"]),
        int(rec.get("teacher_last") or 0),
    )


def _secondary(r, tcurve, metric, sd_suffix) -> tuple[Difference | None, int | None]:
    for factor in (2, 1):
        d = vs_teacher(r, tcurve, metric, factor=factor, sd_suffix=sd_suffix)
        if d is not None:
            return d, factor * int(r["steps"])
    return None, None


def analyse_rows(
    records: Iterable[Mapping],
    layout,
    teacher_of: Mapping[str, str],
    *,
    sd_suffix: str = "_sd",
) -> list[RowAnalysis]:
    """Analyse every student row (a model in ``teacher_of``) of a table.

    ``layout`` is any object with ``primary``, ``secondary``, ``group_by``,
    ``baseline`` and ``row_order`` (:class:`di4c.tables.TableLayout`). Each row is
    compared with its root teacher's cells in the same group. The secondary metric is
    compared at 2N (Fig. 3: FID and IS of the 4-step student against the 8-step
    teacher; Fig. 4: entropy kept), at N where the teacher has no 2N cell. The K = 1
    baseline (the equal-compute product distillation) is compared at the same N with
    non-hybrid rows only. Rows whose group has no teacher cell with the primary metric
    are left out (:func:`note_lines` says so).
    """
    p, s = layout.primary, layout.secondary
    out = []
    for key, recs in group_records(records, layout.group_by).items():
        by_model: dict[str, list[Mapping]] = {}
        for r in recs:
            by_model.setdefault(r["model"], []).append(r)
        base = [
            x
            for x in by_model.get(layout.baseline, [])
            if not int(x.get("teacher_last") or 0)
        ]
        for r in sorted(recs, key=lambda r: row_sort_key(r, layout)):
            if r["model"] not in teacher_of or value(r, p) is None:
                continue
            t = root_teacher(r["model"], teacher_of)
            curve = curve_points(by_model.get(t, []), p)
            if not curve:
                continue
            eq = equivalent_steps(
                value(r, p), curve, p, x_sd=sd(r, p, sd_suffix), sd_suffix=sd_suffix
            )
            sec, sec_at = (None, None)
            if s is not None and value(r, s) is not None:
                sec, sec_at = _secondary(
                    r, curve_points(by_model.get(t, []), s), s, sd_suffix
                )
            hybrid = int(r.get("teacher_last") or 0) > 0
            out.append(
                RowAnalysis(
                    record=r,
                    group=key,
                    teacher=t,
                    equivalent=eq,
                    speedup=eq.per(int(r["steps"])),
                    same_n=vs_teacher(r, curve, p, sd_suffix=sd_suffix),
                    double_n=vs_teacher(r, curve, p, factor=2, sd_suffix=sd_suffix),
                    secondary=sec,
                    secondary_at=sec_at,
                    baseline=None
                    if hybrid or r["model"] == layout.baseline
                    else vs_teacher(r, curve_points(base, p), p, sd_suffix=sd_suffix),
                )
            )
    return out


# ------------------------------------------------------------------------- wording


def fmt_value(v: float, noise: float = 0.0) -> str:
    """A value with its sd (``61.0 +- 4.3``): decimals to the sd's second digit."""
    if not noise:
        return format(v, ".4g")
    dec = min(6, max(0, 1 - math.floor(math.log10(noise))))
    return f"{v:.{dec}f} +- {noise:.{dec}f}"


def cell_name(rec: Mapping) -> str:
    """``student N=8``, ``hybrid N=8 (L=2)``."""
    last = int(rec.get("teacher_last") or 0)
    return f"{rec['model']} N={int(rec['steps'])}" + (f" (L={last})" if last else "")


def verdict_text(d: Difference) -> str:
    """``better beyond the noise`` / ``worse beyond the noise`` / ``within noise``."""
    return BEYOND.get(d.verdict, d.verdict)


def kept_text(d: Difference) -> str:
    """For a metric that should be kept: ``kept within noise`` / ``lower beyond the
    noise`` / ``higher beyond the noise``."""
    if d.verdict == "within noise":
        return "kept within noise"
    return f"{'higher' if d.a > d.b else 'lower'} beyond the noise"


def teacher_curve_line(
    teacher: str, records: Sequence[Mapping], metric: str, *, sd_suffix: str = "_sd"
) -> str:
    """The teacher's curve and whether it still improves, beyond the noise, between
    its two largest step counts (if not, equivalent steps near its top are bounds)."""
    m = get_metric(metric)
    pts = curve_points(records, metric)
    cells = ", ".join(
        f"N={int(r['steps'])}: {fmt_value(value(r, metric), sd(r, metric, sd_suffix))}"
        for r in pts
    )
    line = f"{teacher} {m.label} by N: {cells}"
    if len(pts) < 2:
        return line + "; a single step count, no curve to read."
    a, b = pts[-2], pts[-1]
    still = {
        "better": "still improves beyond the noise",
        "within noise": "no longer improves beyond the noise",
        "worse": "gets worse beyond the noise",
    }[compare(b, a, metric, sd_suffix=sd_suffix)]
    improving = [
        int(y["steps"])
        for x, y in zip(pts, pts[1:])
        if compare(y, x, metric, sd_suffix=sd_suffix) == "better"
    ]
    last = f"N={max(improving)}" if improving else "none"
    return (
        f"{line}; from N={int(a['steps'])} to N={int(b['steps'])} it {still} "
        f"(largest N better beyond the noise than the previous one: {last})."
    )


def row_line(row: RowAnalysis, layout, *, sd_suffix: str = "_sd") -> str:
    """One student row: primary metric, teacher at N and 2N, equal-quality teacher
    steps and speed-up, the secondary metric, and the K = 1 baseline."""
    p, n, t = get_metric(layout.primary), row.steps, row.teacher
    v, v_sd = value(row.record, p.name), sd(row.record, p.name, sd_suffix)
    parts = [f"{cell_name(row.record)}: {p.label} {fmt_value(v, v_sd)}"]
    for d, at in ((row.same_n, f"N={n}"), (row.double_n, f"2N={2 * n}")):
        parts.append(
            f"vs {t} {at}: "
            + (
                "no teacher cell"
                if d is None
                else f"{verdict_text(d)} ({fmt_value(d.b, d.sd_b)})"
            )
        )
    parts.append(
        f"{t} steps at equal {p.label}: {row.equivalent.text()} "
        f"(speed-up {row.speedup.text('.2f')}x)"
    )
    if row.secondary is not None:
        d, s = row.secondary, get_metric(layout.secondary)
        parts.append(
            f"{s.label} vs {t} N={row.secondary_at}: {kept_text(d)} "
            f"({fmt_value(d.a, d.sd_a)} vs {fmt_value(d.b, d.sd_b)})"
        )
    if row.baseline is not None:
        d = row.baseline
        parts.append(
            f"vs {layout.baseline} N={n} (K = 1 baseline): {verdict_text(d)} "
            f"({fmt_value(d.b, d.sd_b)})"
        )
    return "; ".join(parts) + "."


def note_lines(
    records: Iterable[Mapping],
    layout,
    teacher_of: Mapping[str, str],
    *,
    sd_suffix: str = "_sd",
) -> list[str]:
    """The note of a table (Sec. 5; the same wording for every setting): the noise
    rule, then per group (e.g. CFG weight, sampling-noise precision) each root
    teacher's curve and one line per student row (hybrids included) against it."""
    records = list(records)
    rows = analyse_rows(records, layout, teacher_of, sd_suffix=sd_suffix)
    teachers = sorted({root_teacher(m, teacher_of) for m in teacher_of})
    p = get_metric(layout.primary)
    lines = [NOISE_RULE]
    for key, recs in group_records(records, layout.group_by).items():
        label = group_label(key, layout.group_by)
        prefix = f"[{label}] " if label else ""
        for t in teachers:
            curve = [r for r in recs if r["model"] == t]
            if curve_points(curve, p.name):
                lines.append(
                    prefix + teacher_curve_line(t, curve, p.name, sd_suffix=sd_suffix)
                )
        mine = [row for row in rows if row.group == key]
        done = {id(row.record) for row in mine}
        lines += [prefix + row_line(row, layout, sd_suffix=sd_suffix) for row in mine]
        for r in sorted(recs, key=lambda r: row_sort_key(r, layout)):
            if r["model"] in teacher_of and id(r) not in done:
                t = root_teacher(r["model"], teacher_of)
                lines.append(
                    f"{prefix}{cell_name(r)}: no {t} cell with {p.label} "
                    "in this group, or no value; not compared."
                )
    return lines
