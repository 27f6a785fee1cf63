"""The paper-cost projection: its arithmetic on known unit costs, the jobs it counts
(against the settings' cells and the paper dry runs' job structure), and a run of the
measuring code on tiny networks so the benchmark cannot rot."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
from test_workflow import PAPER as DRY_RUN_JOBS  # the paper DAGs' planned jobs

from di4c.config import load_config, resolve
from di4c.cost import Job, UnitCost, cell_steps, job_counts, paper_jobs, project
from di4c.settings import get_setting
from di4c.settings.base import Cell

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "paper_cost.py"
SETTINGS = ("cifar10", "imagenet", "openwebtext")


def _bench():
    spec = importlib.util.spec_from_file_location("paper_cost", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def paper():
    config = load_config()
    return {s: resolve(config, s, "paper") for s in SETTINGS}


# ------------------------------------------------------------------ arithmetic
def test_projection_of_known_unit_costs():
    jobs = [
        Job("distill", "student", "distill_iter", 1000),
        Job("sample", "teacher_n10", "step_teacher", 500),
        Job("sample", "hybrid_n10_l3", "step_teacher", 300),
        Job("sample", "hybrid_n10_l3", "step_student", 700),
        Job("score", "teacher_n10", "features", 10),
        Job("reference", "reference", "features", 4),
    ]
    units = {
        # 2 s at rows 1 x 16, paper 8 x 16: 16 s per iteration
        "distill_iter": UnitCost(2.0, 5 * 10**9, 16, 128),
        "step_teacher": UnitCost(0.5, 10**9, 500, 500),  # measured at the paper batch
        "step_student": UnitCost(0.01, 2 * 10**9, 5, 500),  # x100: 1 s
        "features": UnitCost(3.6, 3 * 10**9, 256, 256),
    }
    p = project(jobs, units)
    rows = {(r["group"], r["unit"]): r for r in p["rows"]}
    assert rows["distill", "distill_iter"]["device_hours"] == pytest.approx(
        1000 * 16 / 3600
    )
    assert rows["distill", "distill_iter"]["scale"] == 8
    teacher = rows["sample", "step_teacher"]
    assert teacher["count"] == 800 and teacher["jobs"] == 2
    assert teacher["device_hours"] == pytest.approx(800 * 0.5 / 3600)
    assert rows["sample", "step_student"]["unit_seconds"] == pytest.approx(1.0)
    assert rows["score", "features"]["device_hours"] == pytest.approx(0.01)
    assert rows["reference", "features"]["device_hours"] == pytest.approx(0.004)
    total = (16000 + 400 + 700 + 36 + 14.4) / 3600
    assert p["total_device_hours"] == pytest.approx(total)
    assert p["peak_bytes"] == 5 * 10**9
    assert [r["group"] for r in p["rows"]] == [
        "distill",
        "sample",
        "sample",
        "score",
        "reference",
    ]
    assert p["jobs"] == {"distill": 1, "sample": 2, "score": 1, "reference": 1}
    with pytest.raises(
        ValueError, match=r"no measured cost for unit\(s\) \['decode'\]"
    ):
        project(jobs + [Job("score", "x", "decode", 1)], units)


# ------------------------------------------------------------------ job counts
@pytest.mark.parametrize("setting", SETTINGS)
def test_jobs_follow_the_cells_and_the_paper_dry_run(setting, paper):
    cfg = paper[setting]
    cells = get_setting(setting).cells(cfg)
    jobs = paper_jobs(setting, cfg)
    dry = DRY_RUN_JOBS[setting]
    assert job_counts(jobs) == {
        "distill": dry["distill"],
        "sample": dry["sample"],
        "score": dry["score"],
        "reference": dry["reference"],
    }
    assert dry["sample"] == len(cells)
    # every cell: N steps per batch, split over the step units; the batches of the
    # paper's sample count
    s = cfg["sample"]
    batches = math.ceil(s["num_samples"] / s["batch_size"])
    for cell in cells:
        steps = [j for j in jobs if j.group == "sample" and j.job == cell.id]
        assert sum(j.count for j in steps) == cell.steps * batches, cell.id
    # distillation: each distilled student's own iteration count
    distil = {j.job: j.count for j in jobs if j.group == "distill"}
    assert all(cfg["models"][m]["source"] == "distill" for m in distil)
    for m, n in distil.items():
        iters = (cfg["models"][m].get("distill") or {}).get("iters")
        assert n == (iters or cfg["distill"]["iters"])


def test_known_counts_of_the_paper_tables(paper):
    """Hand-counted from the paper configs (Table 1, Fig. 3, Fig. 4)."""
    totals = {}
    for s in SETTINGS:
        for j in paper_jobs(s, paper[s]):
            key = (s, j.group, j.unit)
            totals[key] = totals.get(key, 0) + j.count
    # CIFAR-10: 50,000 samples in batches of 500; teacher N = 10, 20, 40 plus the
    # hybrids' last L = 3, 6, 12 steps; student N = 10, 20, 40 plus N - L = 7, 14, 28
    assert totals["cifar10", "sample", "step_teacher"] == (70 + 21) * 100
    assert totals["cifar10", "sample", "step_student"] == (70 + 49) * 100
    assert totals["cifar10", "distill", "distill_iter"] == 320_000
    # 9 cells x 50,000 / 256 feature batches (+ the fid_clean column), 50,000 train
    assert totals["cifar10", "score", "features"] == 9 * 196
    assert totals["cifar10", "score", "clean_fid"] == 9 * 196
    assert totals["cifar10", "reference", "features"] == 196
    # OpenWebText: 1,024 samples in batches of 16; 2 teachers and 4 students at
    # N = 8 .. 128 (248 steps each), at fp32 and at fp64 noise; judge batches of 8
    for noise in ("fp32", "fp64"):
        assert totals["openwebtext", "sample", f"step_teacher_{noise}"] == 2 * 248 * 64
        assert totals["openwebtext", "sample", f"step_student_{noise}"] == 4 * 248 * 64
    assert totals["openwebtext", "score", "judge"] == 60 * 128
    assert totals["openwebtext", "distill", "distill_iter"] == 2 * 10_000


def test_cfg_ramp_and_hybrid_split_per_cell(paper):
    cfg = paper["imagenet"]
    # the first step is unguided (w_0 = 0), the other N - 1 run both halves
    assert cell_steps(cfg, Cell("teacher", 8, 0, 3.0)) == {
        "step_teacher": 1,
        "step_teacher_cfg": 7,
    }
    assert cell_steps(cfg, Cell("di4c", 4, 0, 0.0)) == {"step_student": 4}
    assert cell_steps(cfg, Cell("released", 4, 0, 6.0)) == {
        "step_student": 1,
        "step_student_cfg": 3,
    }
    # any student's hybrid: the student for N - L steps, its root teacher for L
    assert cell_steps(cfg, Cell("di4c-d", 8, 3, 3.0)) == {
        "step_student": 1,
        "step_student_cfg": 4,
        "step_teacher_cfg": 3,
    }
    owt = paper["openwebtext"]
    assert cell_steps(owt, Cell("sdtt6_di4c2", 16, noise="fp32")) == {
        "step_student_fp32": 16
    }


# ------------------------------------------------------------------ the measuring code
TINY = ["--size", "tiny", "--in-process", "--reps", "1", "--threads", "1"]
TINY += ["--sample-batch", "2", "--metric-batch", "1"]
TINY += ["--distill-batch-x", "1", "--distill-K", "2"]


def test_tiny_run_measures_every_unit_and_writes_provenance(tmp_path, capsys):
    bench = _bench()
    out = tmp_path / "cost.json"
    threads = torch.get_num_threads()
    try:
        rec = bench.main(
            [*TINY, "--settings", "imagenet,openwebtext", "--out", str(out)]
        )
    finally:
        torch.set_num_threads(threads)
    saved = json.loads(out.read_text())
    assert saved["settings"].keys() == {"imagenet", "openwebtext"}
    for key in ("device", "torch", "git_commit", "date_utc"):
        assert saved[key]
    assert saved["note"] == "projected from CPU only; no GPU was available"
    assert out.with_suffix(".meta.json").is_file()
    for s, res in rec["settings"].items():
        cfg = resolve(load_config(), s, "paper")
        units = {j.unit for j in paper_jobs(s, cfg)}
        assert set(res["units"]) == units
        for u in res["units"].values():
            assert len(u["seconds"]) == 1 and u["seconds"][0] > 0
            assert u["peak_bytes"] > 0
        p = res["projection"]
        assert p["total_device_hours"] > 0
        # the step units were measured at batch 2 and scaled to the paper batch
        step = next(r for r in p["rows"] if r["unit"].startswith("step_"))
        assert step["scale"] == cfg["sample"]["batch_size"] / 2
    printed = capsys.readouterr().out
    assert "projected from CPU only" in printed and "scaled x" in printed
    assert "| **total** |" in printed

    # runs of some units each (--units) merge into the same projection (--render)
    owt = saved["settings"]["openwebtext"]
    parts = []
    for keep in ({"judge"}, set(owt["units"]) - {"judge"}):
        part = dict(saved, settings={"openwebtext": {"units": {}, "projection": None}})
        part["settings"]["openwebtext"]["units"] = {
            u: r for u, r in owt["units"].items() if u in keep
        }
        parts.append(tmp_path / f"part{len(parts)}.json")
        parts[-1].write_text(json.dumps(part))
    alone = bench.merge_records(parts[:1])["settings"]["openwebtext"]
    assert alone["missing"] == sorted(set(owt["units"]) - {"judge"})
    assert {r["unit"] for r in alone["projection"]["rows"]} == {"judge"}
    text = bench.report(bench.merge_records(parts[:1]))
    assert "not measured: distill_iter" in text and "| **>= " in text
    merged = bench.main(["--render", *map(str, parts)])
    assert merged["settings"]["openwebtext"]["projection"] == owt["projection"]
    assert len(merged["runs"]) == 2


def test_tiny_image_metric_units():
    """The CIFAR-10 metric units: torch-fidelity and clean-fid Inception features."""
    bench = _bench()
    threads = torch.get_num_threads()
    try:
        for unit in ("features", "clean_fid"):
            res = bench.measure_unit(
                {
                    "setting": "cifar10",
                    "unit": unit,
                    "size": "tiny",
                    "device": "cpu",
                    "batch": 1,
                    "reps": 1,
                    "warmup": 1,
                    "threads": 1,
                    "config": str(bench.DEFAULT_CONFIG),
                }
            )
            assert res["seconds"][0] > 0 and res["peak_bytes"] > 0
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_tiny_cifar10_run_in_subprocesses(tmp_path):
    """The default path: every unit in its own worker process."""
    bench = _bench()
    tiny = [a for a in TINY if a != "--in-process"]
    rec = bench.main(
        [*tiny, "--settings", "cifar10", "--out", str(tmp_path / "c.json")]
    )
    assert rec["settings"]["cifar10"]["projection"]["jobs"]["sample"] == 9


def test_arguments_are_checked(capsys):
    bench = _bench()
    for argv in (["--settings", "mnist"], ["--distill-K", "2"], ["--reps", "0"]):
        with pytest.raises(SystemExit):
            bench.main(argv)
    err = capsys.readouterr().err
    assert "unknown setting(s) ['mnist']" in err and "go together" in err
