"""What a paper table costs: its jobs counted in measured units, and the projection.

A paper table (Table 1, Fig. 3, Fig. 4) is a set of jobs: distil each student
(``distill.iters`` optimiser steps), sample each cell (``sample.num_samples`` in
batches of ``sample.batch_size``, N sampler steps each), score each cell (metric
batches over its samples) and extract the reference once. :func:`paper_jobs` counts
them from the resolved configuration and the setting's cells (the same ones the DAG
plans: one ``distill`` job per distilled student, one ``sample`` and one ``score`` job
per cell, one ``reference`` job), in *units*: one distillation iteration, one
sampler step on one batch (per model kind, guided or not, per noise precision), one
metric batch. :func:`project` multiplies the counts by measured unit costs
(``benchmarks/paper_cost.py`` measures them) into device-hours and peak memory per
job group and per table.

Not counted: data preparation and downloads, ImageNet's one-off VQGAN encoding of
the training set, the precision/recall and bootstrap arithmetic on features, and
writing files.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from di4c.cli.distill import student_rules
from di4c.cli.sample import cell_models, chain_models, root_teacher
from di4c.samplers import cfg_ramp, hybrid_schedule
from di4c.settings import get_setting
from di4c.settings.base import Cell

STUDENT_SOURCES = ("distill", "released")
GROUPS = ("distill", "sample", "score", "reference")


@dataclass(frozen=True)
class Job:
    """``count`` units of ``unit`` spent by one job of a table (``group``: the rule)."""

    group: str  # distill | sample | score | reference
    job: str  # the model or cell the DAG job is named by
    unit: str
    count: float


@dataclass(frozen=True)
class UnitCost:
    """One measured unit: seconds and peak memory at the measured batch, and the
    factor to the paper batch (``paper_batch / measured_batch``; 1: measured at it)."""

    seconds: float  # median over the repetitions, at the measured batch
    peak_bytes: int
    measured_batch: int
    paper_batch: int

    @property
    def scale(self) -> float:
        return self.paper_batch / self.measured_batch

    @property
    def paper_seconds(self) -> float:
        """Seconds at the paper batch (linear in the batch where it was scaled)."""
        return self.seconds * self.scale


def is_student(cfg: dict, model: str) -> bool:
    return cfg["models"][model]["source"] in STUDENT_SOURCES


def distilled_models(cfg: dict, cells: list[Cell]) -> list[str]:
    """The students the table's cells need that the DAG distils (``source: distill``)."""
    needed = set()
    for cell in cells:
        needed |= set(chain_models(cfg, cell))
        first, last = cell_models(cfg, cell)
        if cell.teacher_last:
            needed.add(last or root_teacher(cfg, first))
    return sorted(m for m in needed if cfg["models"][m]["source"] == "distill")


def step_unit(kind: str, guided: bool, noise: str | None) -> str:
    """The unit of one sampler step: ``step_<teacher|student>[_cfg][_<noise>]``."""
    return f"step_{kind}" + ("_cfg" if guided else "") + (f"_{noise}" if noise else "")


def cell_steps(cfg: dict, cell: Cell) -> dict[str, int]:
    """Sampler steps of one batch of a cell, per unit: the hybrid rule
    (:func:`di4c.samplers.hybrid_schedule`) decides which model takes each step, the
    CFG ramp (:func:`di4c.samplers.cfg_ramp`) which steps run the guided double pass."""
    first, last = cell_models(cfg, cell)
    if cell.teacher_last and last is None:
        last = root_teacher(cfg, first)
    models = (
        hybrid_schedule(first, last, cell.steps, cell.teacher_last)
        if cell.teacher_last
        else [first] * cell.steps
    )
    out: dict[str, int] = defaultdict(int)
    for i, model in enumerate(models):
        w = cfg_ramp(i, cell.steps, cell.guidance) if cell.guidance else 0.0
        kind = "student" if is_student(cfg, model) else "teacher"
        out[step_unit(kind, w > 0, cell.noise)] += 1
    return dict(out)


def _batches(n: int, batch: int) -> int:
    return math.ceil(n / batch)


# what one cell's scoring and the reference spend, per setting (metric units are one
# batch of ``metrics.batch_size`` images or sequences). Mirrors the adapters' score and
# reference hooks: di4c.settings.{cifar10,imagenet,openwebtext}.
def _cifar10_scoring(cfg: dict) -> tuple[dict, dict]:
    from di4c.data.cifar10 import SPLIT_SIZES

    m, n = cfg["metrics"], cfg["sample"]["num_samples"]
    ref = SPLIT_SIZES[m["reference"]]
    cell = {"features": _batches(n, m["batch_size"])}
    reference = {"features": _batches(ref, m["batch_size"])}
    if m["clean_fid_extractor"] != "none":  # the fid_clean column (paper scale)
        cap = m["clean_fid_max_samples"]
        cell["clean_fid"] = _batches(min(cap or n, n), m["batch_size"])
        reference["clean_fid"] = _batches(min(cap or ref, ref), m["batch_size"])
    return cell, reference


def _imagenet_scoring(cfg: dict) -> tuple[dict, dict]:
    m, n = cfg["metrics"], cfg["sample"]["num_samples"]
    b = _batches(n, m["batch_size"])
    # cells: VQGAN decoding then features; reference: num_samples val images
    return {"decode": b, "features": b}, {"features": b}


def _openwebtext_scoring(cfg: dict) -> tuple[dict, dict]:
    m, n = cfg["metrics"], cfg["sample"]["num_samples"]
    ref = min(n, cfg["data"]["num_reference"])
    return {"judge": _batches(n, m["batch_size"])}, {
        "judge": _batches(ref, m["batch_size"])
    }


SCORING = {
    "cifar10": _cifar10_scoring,
    "imagenet": _imagenet_scoring,
    "openwebtext": _openwebtext_scoring,
}


def paper_jobs(setting: str, cfg: dict) -> list[Job]:
    """Every job of the table of ``setting`` at the resolved ``cfg``, in units."""
    cells = get_setting(setting).cells(cfg)
    jobs = [
        Job("distill", m, "distill_iter", student_rules(cfg, m).iters)
        for m in distilled_models(cfg, cells)
    ]
    s = cfg["sample"]
    batches = _batches(s["num_samples"], s["batch_size"])
    per_cell, reference = SCORING[setting](cfg)
    for cell in cells:
        jobs += [
            Job("sample", cell.id, u, k * batches)
            for u, k in sorted(cell_steps(cfg, cell).items())
        ]
        jobs += [Job("score", cell.id, u, k) for u, k in per_cell.items()]
    jobs += [Job("reference", "reference", u, k) for u, k in reference.items()]
    return jobs


def job_counts(jobs: list[Job]) -> dict[str, int]:
    """DAG jobs per group (rule): distinct job names of each group."""
    return {g: len({j.job for j in jobs if j.group == g}) for g in GROUPS}


def units_of(jobs: list[Job]) -> list[str]:
    return sorted({j.unit for j in jobs})


def project(jobs: list[Job], units: dict[str, UnitCost]) -> dict:
    """Device-hours and peak memory per (group, unit) and for the whole table."""
    missing = sorted(set(units_of(jobs)) - set(units))
    if missing:
        raise ValueError(f"no measured cost for unit(s) {missing}")
    rows: dict[tuple[str, str], dict] = {}
    for j in jobs:
        r = rows.setdefault(
            (j.group, j.unit),
            {"group": j.group, "unit": j.unit, "jobs": set(), "count": 0.0},
        )
        r["jobs"].add(j.job)
        r["count"] += j.count
    out = []
    for (group, unit), r in sorted(
        rows.items(), key=lambda kv: (GROUPS.index(kv[0][0]), kv[0][1])
    ):
        u = units[unit]
        out.append(
            {
                "group": group,
                "unit": unit,
                "jobs": len(r["jobs"]),
                "count": r["count"],
                "unit_seconds": u.paper_seconds,
                "scale": u.scale,
                "peak_bytes": u.peak_bytes,
                "device_hours": r["count"] * u.paper_seconds / 3600,
            }
        )
    return {
        "rows": out,
        "total_device_hours": sum(r["device_hours"] for r in out),
        "peak_bytes": max((r["peak_bytes"] for r in out), default=0),
        "jobs": job_counts(jobs),
    }
