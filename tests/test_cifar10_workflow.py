"""CIFAR-10 slice: table logic (speed-up note, paper values), teacher gate, the DAG (smoke, dry runs)."""

import csv
import json
import shutil
import sys
from pathlib import Path

import pytest
from conftest import snakemake
from di4c.cli.cifar10_check import check_curve
from di4c.cli.cifar10_table import equivalent_teacher_steps, load_records, speedup_note

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SNAKEFILE = """
configfile: "workflows/config/default.yaml"


include: "workflows/rules/common.smk"
include: "workflows/rules/cifar10.smk"
"""


def _rec(model, steps, fid, spread=0.1, last=0):
    return {
        "model": model,
        "steps": steps,
        "teacher_last": last,
        "nfe": steps,
        "fid": fid,
        "fid_spread": spread,
    }


TEACHER = {1: 40.0, 2: 30.0, 4: 20.0, 8: 12.0, 16: 8.0, 32: 6.0}


def test_equivalent_teacher_steps_interpolates_in_log_n():
    assert equivalent_teacher_steps(20.0, TEACHER) == pytest.approx(4.0)
    assert equivalent_teacher_steps(16.0, TEACHER) == pytest.approx(2**2.5)
    assert equivalent_teacher_steps(50.0, TEACHER) == 1.0
    assert equivalent_teacher_steps(5.0, TEACHER) is None


def test_speedup_note_needs_a_gain_beyond_the_noise():
    recs = [_rec("teacher", n, f) for n, f in TEACHER.items()]
    recs += [
        _rec("student", 1, 39.95),
        _rec("student", 2, 29.0),
        _rec("student", 4, 12.5),
    ]
    recs += [
        _rec("student_k1", 1, 39.9),
        _rec("student_k1", 2, 29.95),
        _rec("student_k1", 4, 19.5),
    ]
    note, summary = speedup_note(recs)
    # N=1: gain 0.05 < noise 0.14; N=2: 29.0 > teacher@4 + noise; N=4: 12.5 <= 12.0 + 0.14? no
    assert summary["student"]["first_N_matching_teacher_2N"] is None
    recs[-4] = _rec("student", 4, 12.1)
    note, summary = speedup_note(recs)
    assert summary["student"]["first_N_matching_teacher_2N"] == 4
    assert summary["student_k1"]["first_N_matching_teacher_2N"] is None
    assert "N=4" in note and ">= 2x" in note
    assert summary["student"]["equivalent_teacher_steps"][4] == pytest.approx(
        2 ** (2 + (20 - 12.1) / 8)
    )


def test_table_rows_carry_only_transcribed_paper_values(tmp_path):
    m = tmp_path / "m.json"
    recs = [
        _rec("teacher", 10, 30.0, last=10),
        _rec("student", 20, 10.0),
        _rec("released_student", 10, 21.0),  # tldr-di4c.pt is the paper's student
        _rec("hybrid", 10, 25.0, last=3),
    ]
    m.write_text(json.dumps({"records": [r | {"num_fake": 50000} for r in recs]}))
    rows = {(r["model"], r["steps"]): r for r in load_records([m])}
    assert rows[("teacher", 10)]["paper_fid"] == 32.61
    assert rows[("student", 20)]["paper_fid"] == 9.77
    assert rows[("released_student", 10)]["paper_fid"] == 20.64
    assert rows[("hybrid", 10)]["paper_fid"] is None
    assert all(r["paper_is"] is None for r in rows.values())  # IS not transcribed


def test_teacher_gate():
    recs = [_rec("teacher", n, f, spread=0.5) for n, f in TEACHER.items()]
    assert check_curve(recs, 32)["passed"]  # 8.0 -> 6.0, noise 0.71
    flat = [
        _rec("teacher", n, f if n < 16 else 8.0, spread=0.5) for n, f in TEACHER.items()
    ]
    assert not check_curve(flat, 32)["passed"]
    assert not check_curve(recs, 64)["passed"]  # no row at 64


_smk = snakemake


@pytest.fixture
def workflow(tmp_path):
    """A copy of the workflow whose Snakefile includes the CIFAR-10 rules."""
    work = tmp_path / "wf"
    shutil.copytree(ROOT / "workflows", work / "workflows")
    (work / "Snakefile").write_text(SNAKEFILE)
    return work


def test_paper_dag_dry_runs_both_student_sources(workflow):
    out = _smk("-n", "-p", "paper_tables/cifar10.csv", cwd=workflow)
    assert out.returncode == 0, out.stderr[-3000:]
    for rule in ("fetch_cifar10_teacher", "distill_cifar10_paper", "download_cifar10"):
        assert rule in out.stdout
    assert (
        out.stdout.count("rule sample_cifar10_paper:") == 9
    )  # 3 models x 3 step counts
    assert "--weights-path" not in out.stdout  # Inception weights: downloaded
    sec = (workflow / "workflows/config/sections/cifar10.yaml").read_text()
    (workflow / "workflows/config/sections/cifar10.yaml").write_text(
        sec.replace("student_source: distill", "student_source: released").replace(
            "weights_path: null", "weights_path: /w/incep tion.pth"
        )
    )
    out = _smk("-n", "-p", "paper_tables/cifar10.csv", cwd=workflow)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "fetch_cifar10_released_student" in out.stdout
    assert "distill_cifar10_paper" not in out.stdout
    assert out.stdout.count("--weights-path '/w/incep tion.pth'") == 9  # every cell


def test_paper_metrics_offline_names_the_weights_key(tmp_path, monkeypatch):
    """Without network, torch-fidelity's Inception download fails with the config key."""
    import urllib.error

    import torch_fidelity.feature_extractor_inceptionv3 as inception

    from di4c.cli import cifar10_metrics
    from di4c.data.images import ImageDataConfig, load_image_splits, save_splits

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(inception, "load_state_dict_from_url", offline)
    data = tmp_path / "data.pt"
    save_splits(load_image_splits(ImageDataConfig(source="digits", size=8)), data)
    out = tmp_path / "m.json"
    with pytest.raises(SystemExit, match="cifar10.paper.metrics.weights_path"):
        cifar10_metrics.main(
            ["--samples", str(tmp_path / "s.pt"), "--reference-data", str(data),
             "--feature-extractor", "inception-v3-compat", "--protocol", "smoke",
             "--out", str(out)]
        )  # fmt: skip
    assert not out.exists()


def test_bad_cifar10_config_names_the_key(workflow):
    bad = workflow / "bad.yaml"
    bad.write_text((ROOT / "workflows/config/smoke.yaml").read_text())
    sec = workflow / "workflows/config/smoke/cifar10.yaml"
    sec.write_text(
        sec.read_text().replace("student_source: distill", "student_source: zenodo")
    )
    out = _smk("-n", "--configfile", str(bad), cwd=workflow)
    assert out.returncode != 0
    assert (
        "cifar10.paper.student_source: 'zenodo' is not allowed"
        in out.stdout + out.stderr
    )


def test_smoke_dag_end_to_end(smoke_workflow):
    workflow = smoke_workflow
    tables = workflow / "results/smoke/paper_tables/mini"
    rows = list(csv.DictReader(open(tables / "cifar10.csv")))
    models = {(r["model"], int(r["steps"]), int(r["teacher_last"])) for r in rows}
    assert {
        ("teacher", 4, 4),
        ("student", 2, 0),
        ("hybrid", 2, 1),
        ("real", 0, 0),
    } <= models
    assert all(float(r["fid"]) >= 0 for r in rows if r["fid"])
    assert (tables / "cifar10.png").stat().st_size > 1000
    assert "Speed-up at equal quality" in (tables / "cifar10.md").read_text()
    meta = json.loads((tables / "cifar10.meta.json").read_text())
    assert "git_commit" in meta and "speedup" in meta
    run = workflow / "results/smoke/cifar10/mini"
    assert json.loads((run / "teacher_check.json").read_text())["min_steps"] == 2
    assert (
        json.loads((run / "students/student.meta.json").read_text())["rules"]["K"] == 4
    )
    again = _smk(
        "results/smoke/paper_tables/mini/cifar10.csv", "-n",
        "--configfile", "workflows/config/smoke.yaml", cwd=workflow,
    )  # fmt: skip
    assert "Nothing to be done" in again.stdout + again.stderr


def test_paper_table_layout_plot_and_note(tmp_path):
    """Paper scale: Table 1 columns beside the published values, the plot and the note."""
    from di4c.cli import cifar10_table

    recs = []
    for n, (ft, fs) in {10: (33.0, 21.0), 20: (12.0, 5.9), 40: (6.0, 5.5)}.items():
        recs += [
            _rec("teacher", n, ft, spread=None, last=n) | {"is": 7.0},
            _rec("student", n, fs, spread=None) | {"is": 8.0},
        ]
    recs.append(_rec("hybrid", 10, 18.0, spread=None, last=3) | {"is": 8.1})
    for r in recs:
        r.update(num_fake=50000, fid_clean=r["fid"] + 0.5)
    m = tmp_path / "m.json"
    m.write_text(json.dumps({"records": recs}))
    out = tmp_path / "cifar10.csv"
    cifar10_table.main(["--scale", "paper", "--metrics", str(m), "--out", str(out)])
    rows = list(csv.DictReader(open(out)))
    need = {"model", "steps", "fid", "is", "paper_fid", "paper_is", "fid_clean"}
    assert need <= set(rows[0])
    got = {(r["model"], int(r["steps"])): r for r in rows}
    assert float(got[("teacher", 10)]["paper_fid"]) == 32.61
    assert float(got[("student", 10)]["paper_fid"]) == 20.64
    assert got[("student", 40)]["paper_fid"] == "" == got[("hybrid", 10)]["paper_fid"]
    assert float(got[("hybrid", 10)]["fid_clean"]) == 18.5
    assert [r["model"] for r in rows][:3] == ["teacher"] * 3  # paper order
    assert out.with_suffix(".png").stat().st_size > 1000
    md = out.with_suffix(".md").read_text()
    assert "clean-fid" in md and "with split-half spreads" not in md
    assert "Row `real`" not in md  # no real-vs-real floor at paper scale
    assert "N=20" in md  # student@20 (5.9) matches teacher@40 (6.0); @10 does not
    meta = json.loads(out.with_name("cifar10.meta.json").read_text())
    assert meta["speedup"]["student"]["first_N_matching_teacher_2N"] == 20
