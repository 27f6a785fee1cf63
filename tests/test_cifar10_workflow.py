"""CIFAR-10 setting in the DAG: the teacher gate, configuration errors, the paper
branch's dry runs, and the mini branch of the shared smoke run.

The table logic (equivalent teacher steps, the noise rule, published values of
Table 1) is tested once for every setting in test_analysis.py and test_table.py.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import torch
from conftest import copy_workflow, snakemake

from di4c.artifacts import sha256_file
from di4c.cli import check as check_step
from di4c.cli.check import check_curve
from di4c.config import DEFAULT_CONFIG, ConfigError, deep_merge, load_config, resolve
from di4c.settings import get_setting
from di4c.tables import LAYOUTS

ROOT = Path(__file__).resolve().parent.parent


def _rec(steps, fid, sd=0.5):
    return {"model": "teacher", "steps": steps, "fid": fid, "fid_sd": sd}


TEACHER = {1: 40.0, 2: 30.0, 4: 20.0, 8: 12.0, 16: 8.0, 32: 6.0}


# ------------------------------------------------------------------ teacher gate
def test_teacher_gate_needs_a_gain_beyond_the_noise(tmp_path, capsys):
    """Distillation waits for a teacher still improving at N = min_steps: better than
    at N / 2 by more than 2 sqrt(sd_a^2 + sd_b^2) (the one noise rule)."""
    recs = [_rec(n, f) for n, f in TEACHER.items()]
    assert check_curve(recs, "fid", 32)["passed"]  # 8.0 -> 6.0 > 2 * 0.71
    assert check_curve(recs, "fid", 32)["curve"] == TEACHER
    close = [_rec(n, f if n < 32 else 6.6) for n, f in TEACHER.items()]
    assert not check_curve(close, "fid", 32)["passed"]  # 1.4 < 1.41: within the noise
    assert check_curve([_rec(n, f, 0.0) for n, f in TEACHER.items()], "fid", 32)[
        "passed"
    ]
    missing = check_curve(recs, "fid", 64)
    assert not missing["passed"] and "N=32 and N=64 are needed" in missing["reason"]
    # the step: with enforce a failed gate stops the DAG with one line naming the fix
    files = []
    for r in close:
        files.append(tmp_path / f"teacher_n{r['steps']}.json")
        files[-1].write_text(json.dumps(r))
    argv = ["--setting", "cifar10", "--scale", "smoke", "--metrics"]
    argv += [str(f) for f in files[-2:]]
    argv += ["--set", "teacher_check.min_steps=32", "--out", str(tmp_path / "c.json")]
    check_step.cli(argv)  # smoke: enforce is off, the verdict is written
    verdict = json.loads((tmp_path / "c.json").read_text())
    assert verdict["passed"] is False and verdict["config"]["min_steps"] == 32
    with pytest.raises(SystemExit) as e:
        check_step.cli([*argv, "--set", "teacher_check.enforce=true"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 1 and len(err) == 1 and "teacher_check.enforce" in err[0]


# ------------------------------------------------------------------ configuration
def test_bad_cifar10_configs_name_the_key():
    config = load_config(DEFAULT_CONFIG)
    bad = deep_merge(
        config, {"cifar10": {"mini": {"models": {"student": {"source": "zenodo"}}}}}
    )
    with pytest.raises(
        ConfigError,
        match=r"cifar10 \(mini\): models\.student\.source: 'zenodo' is not allowed",
    ):
        resolve(bad, "cifar10", "mini")
    bad = deep_merge(config, {"cifar10": {"smoke": {"sample": {"t_min": 0}}}})
    with pytest.raises(ConfigError, match=r"cifar10 \(smoke\): sample\.t_min"):
        resolve(bad, "cifar10", "smoke")
    # a scale changes only what it names: the smoke layer keeps the paper's loss rules
    paper, smoke = (
        resolve(config, "cifar10", s)["distill"] for s in ("paper", "smoke")
    )
    for key in (
        "time_sampler",
        "time_kwargs",
        "distil_mode",
        "alpha_schedule",
        "teacher_step",
    ):
        assert smoke[key] == paper[key], key


def test_paper_metrics_offline_names_the_weights_key(monkeypatch):
    """Without network, torch-fidelity's Inception download fails naming the config key."""
    import urllib.error

    import torch_fidelity.feature_extractor_inceptionv3 as inception

    from di4c.download import MissingWeightsError

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(inception, "load_state_dict_from_url", offline)
    cfg = resolve(load_config(DEFAULT_CONFIG), "cifar10", "paper")
    images = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
    with pytest.raises(
        MissingWeightsError, match=r"'cifar10\.paper\.metrics\.weights_path'"
    ):
        get_setting("cifar10").features(cfg, images, {})
    assert "weights_path" in cfg["metrics"]  # the key the message names exists


# ------------------------------------------------------------------ the paper DAG
def _job_counts(stdout: str) -> dict[str, int]:
    """The first 'Job stats' table of a dry run: rule -> number of jobs."""
    table = stdout.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    rows = (line.split() for line in table.splitlines()[3:])
    return {r[0]: int(r[1]) for r in rows if len(r) == 2 and r[0] != "total"}


def test_paper_dag_dry_runs_with_distilled_and_released_students(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    out = snakemake("-n", "-p", "paper_tables/cifar10.csv", cwd=work)
    assert out.returncode == 0, out.stderr[-3000:]
    cells = get_setting("cifar10").cells(
        resolve(load_config(DEFAULT_CONFIG), "cifar10", "paper")
    )
    assert _job_counts(out.stdout) == {
        "fetch_model": 1,  # the published tauLDR teacher; nothing trained at paper scale
        "prepare_data": 1,
        "distill": 1,
        "reference": 1,
        "sample": len(cells),
        "score": len(cells),
        "make_paper_table": 1,
    }
    assert len(cells) == 9  # 3 teacher, 3 student, 3 hybrid cells (Table 1)
    assert '"weights_path":null' in out.stdout  # Inception weights: downloaded
    extra = tmp_path / "released.yaml"
    extra.write_text(
        "cifar10:\n  paper:\n"
        "    sweep: {students: [released_student], hybrid: {student: released_student}}\n"
        "    metrics: {weights_path: /w/incep tion.pth}\n"
    )
    out = snakemake(
        "-n", "-p", "paper_tables/cifar10.csv",
        "--configfile", "workflows/config/default.yaml", str(extra), cwd=work,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    jobs = _job_counts(out.stdout)
    assert "distill" not in jobs and jobs["fetch_model"] == 2  # teacher + released
    assert "results/cifar10/paper/fetched/released_student/model.json" in out.stdout
    # every job that extracts features is given the local weights (9 cells + reference)
    assert out.stdout.count('"weights_path":"/w/incep tion.pth"') == 10


# ------------------------------------------------------------------ the smoke run
def test_smoke_dag_mini_branch(smoke_workflow):
    """The CIFAR-10 branch of the shared smoke run: table, notes, model cards, samples,
    seeds, per-job benchmarks and logs."""
    work = smoke_workflow
    cfg = resolve(load_config(DEFAULT_CONFIG), "cifar10", "smoke")
    run = work / "results/smoke/cifar10/smoke"
    tables = work / "results/smoke/paper_tables/mini"
    cells = get_setting("cifar10").cells(cfg)
    with open(tables / "cifar10.csv") as f:
        header = next(csv.reader(f))
        f.seek(0)
        rows = list(csv.DictReader(f))
    assert header == list(LAYOUTS["cifar10"].columns)
    got = {(r["model"], int(r["steps"]), int(r["teacher_last"] or 0)) for r in rows}
    assert got == {(c.model, c.steps, c.teacher_last) for c in cells} | {("real", 0, 0)}
    for r in rows:
        assert float(r["fid"]) >= 0 and float(r["is"]) >= 1 - 1e-6
        assert r["fid_clean"] == ""  # clean_fid_extractor none below paper scale
        if r["model"] != "real":
            assert float(r["fid_sd"]) >= 0 and int(r["num_samples"]) == 24
    students = [r for r in rows if r["model"] in ("student", "hybrid")]
    assert students and all(r["teacher"] == "teacher" for r in students)
    md = (tables / "cifar10.md").read_text()
    meta = json.loads((tables / "cifar10.meta.json").read_text())
    assert (
        "## Notes" in md
        and meta["notes"]
        and all(f"- {n}" in md for n in meta["notes"])
    )
    assert meta["config"]["teacher_of"] == {"student": "teacher", "hybrid": "teacher"}
    assert "git_commit" in meta and (tables / "cifar10.png").stat().st_size > 1000
    # model cards: the trained teacher and classifier, the distilled student
    cards = {m: json.loads((run / f / m / "model.json").read_text())
             for f, m in (("trained", "teacher"), ("trained", "classifier"),
                          ("distilled", "student"))}  # fmt: skip
    assert (cards["teacher"]["kind"], cards["student"]["kind"]) == (
        "product",
        "mixture",
    )
    assert cards["classifier"]["kind"] == "classifier"
    assert cards["student"]["extra"]["teacher"] == "teacher"
    assert cards["student"]["provenance"]["config"]["rules"]["K"] == 4
    teacher_json = run / "trained/teacher/model.json"
    assert cards["student"]["provenance"]["inputs"]["teacher"]["sha256"] == sha256_file(
        teacher_json
    )
    assert (
        json.loads((run / "teacher_check.json").read_text())["config"]["min_steps"] == 2
    )
    # samples: seeds seed + i, the cell's models per step, NFE = N
    seed, n = cfg["sample"]["seed"], cfg["sample"]["num_samples"]
    for cell in cells:
        s = torch.load(run / f"samples/{cell.id}.pt", weights_only=True)
        assert s["seeds"].tolist() == list(range(seed, seed + n)), cell.id
        assert s["x"].shape == (n, 64) and int(s["x"].max()) < cfg["process"]["S"]
        assert s["cell"] == cell.record() and s["nfe"] == cell.steps
        first = "student" if cell.model == "hybrid" else cell.model
        want = [first] * (cell.steps - cell.teacher_last) + [
            "teacher"
        ] * cell.teacher_last
        assert s["models"] == want, cell.id
        rec = json.loads((run / f"metrics/{cell.id}.json").read_text())
        assert (rec["cell"], rec["nfe"], rec["num_samples"]) == (cell.id, cell.steps, n)
    # every distill / sample / score job wrote its benchmark (time, peak memory) and log
    jobs = ["distill_student", "train_teacher", "train_classifier", "reference"]
    jobs += [f"{step}_{c.id}" for c in cells for step in ("sample", "score")]
    for job in jobs:
        bench = (run / f"benchmarks/{job}.tsv").read_text().splitlines()
        assert re.match(r"s\th:m:s\tmax_rss", bench[0]) and len(bench) == 2, job
        assert (run / f"logs/{job}.log").stat().st_size > 0, job
    assert "done in" in (run / "logs/distill_student.log").read_text()
