"""The rehearsal (``paper_scale: rehearsal``): the paper DAGs on stand-ins.

Fast: the ``{results_dir}`` placeholder of the rehearsal layers, the guard that keeps
rehearsal tables out of ``paper_tables/``, the stand-in dependency of the jobs that
read local copies (rehearsal only), the CIFAR-10 stand-ins in their published formats.
Slow: the CIFAR-10 rehearsal end to end from the repository alone (``.ci/run`` runs it).
"""

from __future__ import annotations

import csv
import json
import pickle
import re
import time
from pathlib import Path

import pytest
import torch
from conftest import copy_workflow, snakemake

from di4c.config import ConfigError, load_config, resolve, substitute, validate_top
from di4c.workflow import SAMPLING_SETTINGS, Workflow

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "workflows/config/default.yaml"
REHEARSAL_YAML = "workflows/config/rehearsal.yaml"
REHEARSAL = ROOT / REHEARSAL_YAML


def rehearsal_config(results_dir: str | None = None) -> dict:
    config = load_config([DEFAULT, REHEARSAL])
    if results_dir is not None:
        config["results_dir"] = results_dir
    return config


# ------------------------------------------------------------------ placeholder
def test_results_dir_placeholder_points_the_local_copies_into_the_standins():
    cfg = resolve(rehearsal_config("/x/run"), "cifar10", "rehearsal")
    standins = Path("/x/run/cifar10/rehearsal/standins")
    local = [
        cfg["data"]["root"],
        cfg["models"]["teacher"]["local"],
        cfg["models"]["released_student"]["local"],
        cfg["metrics"]["weights_path"],
    ]
    for value in local:
        assert Path(value).is_relative_to(standins), value
    assert "{results_dir}" not in repr(cfg)


def test_placeholder_is_replaced_in_any_string_of_any_layer():
    config = load_config(DEFAULT) | {"results_dir": "out"}
    config["cifar10"]["paper"] = {"data": {"root": "{results_dir}/c/{results_dir}"}}
    assert resolve(config, "cifar10", "paper")["data"]["root"] == "out/c/out"
    nested = {"a": ["{results_dir}/x", 3, {"b": "keep {other}"}]}
    assert substitute(nested, {"results_dir": "r"}) == {
        "a": ["r/x", 3, {"b": "keep {other}"}]
    }
    with pytest.raises(ConfigError, match="no results_dir"):
        substitute("{results_dir}/x", {})


def test_no_other_scale_uses_the_placeholder():
    config = load_config(DEFAULT)
    for setting in SAMPLING_SETTINGS:
        for scale in ("paper", "mini", "smoke"):
            layer = config[setting].get(scale) or {}
            assert "{results_dir}" not in repr(layer), (setting, scale)


# ------------------------------------------------------------------ tables folder
def test_rehearsal_tables_never_go_into_paper_tables():
    config = rehearsal_config()
    for key in ("tables_dir", "mini_tables_dir"):
        assert Path(config[key]).parts[0] == "results", key
    bad = dict(config, tables_dir="paper_tables")
    with pytest.raises(ConfigError, match="must not go into paper_tables"):
        validate_top(bad)
    with pytest.raises(ConfigError, match="must not go into paper_tables"):
        validate_top(dict(config, tables_dir="paper_tables/sub"))
    validate_top(dict(config, paper_scale="paper", tables_dir="paper_tables"))


# ------------------------------------------------------------------ DAG inputs
def test_only_the_rehearsal_depends_on_standins():
    wf = Workflow(rehearsal_config())
    for setting in SAMPLING_SETTINGS:
        for scale in ("paper", "mini", "smoke"):
            assert wf.standins_inputs(setting, scale) == {}, (setting, scale)
    assert wf.standins_inputs("cifar10", "rehearsal") == {
        "standins": "results/cifar10/rehearsal/standins/manifest.json"
    }


# ------------------------------------------------------------------ CIFAR-10 stand-ins
def _cifar_cfg(results_dir: Path) -> dict:
    return resolve(rehearsal_config(str(results_dir)), "cifar10", "rehearsal")


def _standins_dir(results_dir: Path) -> Path:
    return results_dir / "cifar10/rehearsal/standins"


def test_cifar10_batches_read_by_torchvision_as_written(tmp_path):
    from di4c.data.cifar10 import CIFAR10Unavailable, load_cifar10
    from di4c.standins.cifar10 import BATCHES, LABEL_NAMES, write_batches

    cfg = _cifar_cfg(tmp_path)
    files = write_batches(cfg, _standins_dir(tmp_path), seed=3)
    assert sorted(f.name for f in files) == sorted(
        [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
    )
    root = cfg["data"]["root"]
    n = cfg["standins"]["train_per_batch"]
    x, y = load_cifar10(root, train=True, check_md5=False)
    assert x.shape == (5 * n, 3, 32, 32) and x.dtype == torch.uint8
    xt, yt = load_cifar10(root, train=False, check_md5=False)
    assert xt.shape == (cfg["standins"]["test"], 3, 32, 32)
    assert 0 <= int(y.min()) and int(y.max()) < len(LABEL_NAMES)
    # the rows are channel-major 3072-vectors, as in the published batches
    batch = pickle.loads((Path(root) / BATCHES / "data_batch_1").read_bytes())
    assert set(batch) == {"batch_label", "labels", "data", "filenames"}
    assert torch.equal(x[:n].reshape(n, -1), torch.from_numpy(batch["data"]))
    assert batch["labels"] == y[:n].tolist()
    # the published checksums refuse them (and offline, nothing is downloaded)
    with pytest.raises(CIFAR10Unavailable, match="cifar10.paper.data.root"):
        load_cifar10(root, train=True, download=False)


def test_cifar10_checkpoints_in_the_published_containers(tmp_path):
    from di4c.checkpoints import CheckpointFormatError
    from di4c.settings import get_setting
    from di4c.standins.cifar10 import (
        STUDENT_ITER,
        TEACHER_ITER,
        write_released_student,
        write_teacher,
    )
    from di4c.teachers.tauldr import read_checkpoint

    cfg = _cifar_cfg(tmp_path)
    out = _standins_dir(tmp_path)
    [teacher] = write_teacher(cfg, out, seed=0)
    [student] = write_released_student(cfg, out, seed=0)
    assert str(teacher) == cfg["models"]["teacher"]["local"]
    assert teacher.name == "ckpt_0001999999.pt"
    t = read_checkpoint(teacher)
    assert t.distributed and not t.is_student and t.n_iter == TEACHER_ITER
    assert t.ema is not None and set(t.ema) == set(t.raw)
    assert any(not torch.equal(t.ema[k], t.raw[k]) for k in t.raw)
    s = read_checkpoint(student)
    assert not s.distributed and s.is_student and s.n_iter == STUDENT_ITER
    assert any(".dense1." in k and s.ema[k].abs().sum() > 0 for k in s.ema)
    # the fetch step's reader takes them as the teacher and the released student
    c10 = get_setting("cifar10")
    for name, kind in (("teacher", "product"), ("released_student", "mixture")):
        card = c10.fetch(cfg, name, pins=None)
        assert card.kind == kind and card.network["ch"] == 16  # embedded in the file
        net = c10.load_net(card, "cpu")
        own = dict(net.named_parameters())
        ckpt = t if name == "teacher" else s
        assert all(torch.equal(own[k], ckpt.ema[k]) for k in own)  # EMA weights
    swapped = dict(cfg, models=dict(cfg["models"]))
    swapped["models"]["teacher"] = dict(cfg["models"]["teacher"], local=str(student))
    with pytest.raises(CheckpointFormatError, match="expected a product checkpoint"):
        c10.fetch(swapped, "teacher", pins=None)


def test_standins_must_go_into_the_standins_folder(tmp_path):
    from di4c.standins.cifar10 import write_teacher

    cfg = _cifar_cfg(tmp_path)
    cfg["models"]["teacher"]["local"] = str(tmp_path / "elsewhere.pt")
    with pytest.raises(ConfigError, match="models.teacher.local .* outside"):
        write_teacher(cfg, _standins_dir(tmp_path), seed=0)


# ------------------------------------------------------------------ the whole rehearsal
def _job_counts(text: str) -> dict[str, int]:
    """``{rule: jobs}`` of the first "Job stats" table of a snakemake output."""
    stats = text.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {m[0]: int(m[1]) for m in re.findall(r"^(\w+)\s+(\d+)$", stats, re.M)}


@pytest.mark.slow  # about 5 min on 2 idle cores (README, Rehearsal)
def test_cifar10_rehearsal_runs_every_paper_job_from_the_repository_alone(tmp_path):
    """``snakemake --cores 2 --configfile workflows/config/rehearsal.yaml`` on the
    CIFAR-10 table, in a copy of the workflow: every job of the paper DAG (plus the
    stand-ins) runs; the table has the paper table's columns and says it is a
    rehearsal; a second build of the stand-ins with the seed is byte-identical."""
    from di4c import standins, tables
    from di4c.artifacts import sha256_file

    work = copy_workflow(tmp_path / "wf")
    config = rehearsal_config()
    table = Path(config["tables_dir"]) / "cifar10.csv"
    paper = snakemake("-n", "--forceall", "paper_tables/cifar10.csv", cwd=work)
    assert paper.returncode == 0, paper.stderr[-3000:]
    t0 = time.monotonic()
    run = snakemake(
        "--cores", "2", str(table), "--configfile", REHEARSAL_YAML, cwd=work
    )
    minutes = (time.monotonic() - t0) / 60
    assert run.returncode == 0, run.stderr[-4000:]
    print(f"CIFAR-10 rehearsal: {minutes:.1f} min")
    text = run.stdout + run.stderr
    ran = _job_counts(text)
    want = _job_counts(paper.stdout + paper.stderr)
    assert ran == want | {"make_standins": 1, "total": want["total"] + 1}
    assert f"{ran['total']} of {ran['total']} steps (100%) done" in text
    assert not (work / "paper_tables").exists()  # nothing written beside the paper's

    # the paper table's columns, marked as a rehearsal
    with open(work / table) as f:
        header = next(csv.reader(f))
    assert header == list(tables.get_layout("cifar10").columns)
    meta = json.loads((work / table).with_suffix(".meta.json").read_text())
    assert meta["config"]["scale"] == "rehearsal" and meta["config"]["rehearsal"]
    assert "Rehearsal" in (work / table).with_suffix(".md").read_text()

    # the stand-ins: a second build with the seed gives the same bytes
    folder = work / config["results_dir"] / "cifar10/rehearsal/standins"
    manifest = json.loads((folder / "manifest.json").read_text())
    again = tmp_path / "again"
    cfg = resolve(rehearsal_config(str(again)), "cifar10", "rehearsal")
    out = again / "cifar10/rehearsal/standins"
    files = standins.build("cifar10", cfg, out, cfg["standins"]["seed"])
    rebuilt = {f.relative_to(out).as_posix(): sha256_file(f) for f in files}
    assert rebuilt == {k: v["sha256"] for k, v in manifest["files"].items()}

    # the Inception weights: torch-fidelity's pool features are fid-helper's
    from torch_fidelity.feature_extractor_inceptionv3 import (
        FeatureExtractorInceptionV3,
    )

    from di4c.metrics.image_quality import _resize_like_fidelity, fidhelper_inception

    weights = cfg["metrics"]["weights_path"]
    net = FeatureExtractorInceptionV3(
        "inception-v3-compat", ["2048"], feature_extractor_weights_path=weights
    )
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    (ours,) = net(x)
    theirs = fidhelper_inception()((_resize_like_fidelity(x) - 128.0) / 128.0)
    assert torch.allclose(ours, theirs, atol=1e-4)
