"""Deterministic reruns: every training and sampling step, run twice, is bit-identical.

Per setting, the steps the rules run (workflows/rules/*.smk) are called by hand at
smoke scale, shrunk further with ``--set``, twice in separate folders, with torch's,
numpy's and Python's global generators left in a *different* state before each run
(as a step inherits whatever state its process has). Every tensor of every weights
file (model containers, training checkpoints, tokens) and every sample must be equal.
A step that draws from an unseeded global generator (dropout, a random init)
fails here.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

WEIGHTS = (".pt", ".pth", ".ckpt", ".safetensors")
SAMPLES = "samples.pt"
RUN = ["--scale", "smoke", "--threads", "1"]  # one thread, as the smoke rules run


@pytest.fixture(autouse=True)
def _restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def _scramble_global_rngs(i: int) -> None:
    torch.manual_seed(10_007 * (i + 1))
    np.random.seed(i + 1)
    random.seed(i + 1)
    torch.rand(i + 3)  # and advance it by a run-dependent amount


def _read(path: Path):
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    from di4c.checkpoints import load_container

    return load_container(path, "test file", allow_objects=True)


def _assert_same(a, b, where: str, leaves: bool) -> None:
    """Every tensor equal (and, with ``leaves``, every other value too)."""
    if torch.is_tensor(a):
        assert torch.is_tensor(b) and a.dtype == b.dtype, where
        assert a.shape == b.shape and torch.equal(a, b), f"{where}: tensors differ"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: keys differ"
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}", leaves)
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]", leaves)
    elif leaves:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _weights_files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.suffix in WEIGHTS)


def _assert_runs_equal(a: Path, b: Path, expected: list[str]) -> None:
    files = _weights_files(a)
    assert files == _weights_files(b)
    for name in expected:  # the steps really wrote what is compared
        assert Path(name) in files, (name, files)
    for rel in files:
        # sample files whole; weights files tensor by tensor (reports hold wall times)
        _assert_same(_read(a / rel), _read(b / rel), str(rel), rel.name == SAMPLES)


def _twice(tmp_path: Path, data: Path | None, steps) -> tuple[Path, Path]:
    """Run ``steps(root)`` (a list of ``(cli, argv)``) in two folders, each with its
    own copy of ``data``, the global generators scrambled differently before each step."""
    roots = []
    for i in range(2):
        root = tmp_path / f"run{i}"
        if data is not None:
            shutil.copytree(data, root / "data")
        for j, (cli, argv) in enumerate(steps(root)):
            _scramble_global_rngs(100 * i + j)
            cli(argv)
        roots.append(root)
    return roots[0], roots[1]


def _data(tmp_path: Path, setting: str) -> Path:
    from di4c.cli import data

    out = tmp_path / "shared_data"
    data.cli(["--setting", setting, *RUN, "--out-dir", str(out)])
    return out


def _distill(setting, sets, root, model, teacher="teacher"):
    from di4c.cli import distill

    return distill.cli, [
        *["--setting", setting, *RUN, *sets, "--model", model],
        *["--data-dir", str(root / "data"), "--out-dir", str(root / model)],
        *["--teacher", str(root / teacher), "--init", str(root / teacher)],
    ]


def _sample(setting, sets, root, cell, models):
    from di4c.cli import sample

    cards = [f"--card={m}={root / m / 'model.json'}" for m in models]
    return sample.cli, [
        *["--setting", setting, *RUN, *sets, "--cell", cell, *cards],
        *["--data-dir", str(root / "data"), "--out", str(root / SAMPLES)],
    ]


def _train(cli, setting, sets, root, out):
    flags = [] if setting is None else ["--setting", setting]
    return cli, [*flags, *RUN, *sets, "--data-dir", str(root / "data")] + [
        "--out-dir",
        str(root / out),
    ]


def _sets(*items: str) -> list[str]:
    return [a for item in items for a in ("--set", item)]


def test_cifar10_steps_are_reproducible(tmp_path):
    from di4c.cli import classifier, teacher

    sets = _sets("models.teacher.train.iters=3", "distill.iters=2")
    sets += _sets("sample.num_samples=6", "sample.batch_size=4")

    def steps(root):
        return [
            _train(teacher.cli, "cifar10", sets, root, "teacher"),
            _train(classifier.cli, "cifar10", sets, root, "classifier"),
            _distill("cifar10", sets, root, "student"),
            _sample("cifar10", sets, root, "hybrid_n2_l1", ["student", "teacher"]),
        ]

    a, b = _twice(tmp_path, _data(tmp_path, "cifar10"), steps)
    _assert_runs_equal(
        a,
        b,
        ["teacher/model.pt", "teacher/run/checkpoint.pt", "classifier/classifier.pt"]
        + ["student/model.pt", "student/run/checkpoint.pt", SAMPLES],
    )


def test_imagenet_steps_are_reproducible(tmp_path):
    from di4c.cli import encode, mini_vq, teacher

    sets = _sets("models.vq.train.iters=6", "models.teacher.train.iters=3")
    sets += _sets("distill.iters=2", "sample.num_samples=6", "sample.batch_size=4")

    def steps(root):
        tokens = ["--vq", str(root / "vq"), "--out", str(root / "data" / "tokens.pt")]
        return [
            _train(mini_vq.cli, None, sets, root, "vq"),
            (encode.cli, [*RUN, *sets, "--data-dir", str(root / "data"), *tokens]),
            _train(teacher.cli, "imagenet", sets, root, "teacher"),
            _distill("imagenet", sets, root, "di4c-d"),
            _sample("imagenet", sets, root, "hybrid_n2_l1_w2", ["di4c-d", "teacher"]),
        ]

    a, b = _twice(tmp_path, _data(tmp_path, "imagenet"), steps)
    _assert_runs_equal(
        a,
        b,
        ["vq/last.ckpt", "vq/run/checkpoint.pt", "data/tokens.pt"]
        + ["teacher/run/checkpoint.pt", "di4c-d/run/checkpoint.pt", SAMPLES],
    )


def test_openwebtext_steps_are_reproducible(tmp_path):
    from di4c.cli import judge, teacher

    sets = _sets("models.teacher.train.iters=3", "distill.iters=2")
    sets += _sets("models.judge.train.iters=3", "models.di4c2.distill.iters=2")
    sets += _sets("sample.num_samples=6", "sample.batch_size=4")
    sets += _sets("models.judge.network.dropout=0.1")  # dropout draws globally

    def steps(root):
        return [
            _train(teacher.cli, "openwebtext", sets, root, "teacher"),
            _train(judge.cli, None, sets, root, "judge"),
            _distill("openwebtext", sets, root, "di4c"),
            _distill("openwebtext", sets, root, "di4c2", teacher="di4c"),
            _sample(
                "openwebtext", sets, root, "hybrid_n2_l1_fp64", ["di4c2", "teacher"]
            ),
        ]

    a, b = _twice(tmp_path, _data(tmp_path, "openwebtext"), steps)
    _assert_runs_equal(
        a,
        b,
        ["teacher/run/checkpoint.pt", "judge/model.safetensors"]
        + ["judge/run/checkpoint.pt", "di4c/run/checkpoint.pt"]
        + ["di4c2/run/checkpoint.pt", SAMPLES],
    )


def test_theory_steps_are_reproducible(tmp_path):
    from di4c.cli import theory, theory_student

    student = ["--experiment", "two_bit", "--iters", "12", "--fit-iters", "6"]
    student += ["--K", "4", "--batch-x", "8", "--hidden", "16", "--threads", "1"]
    student += ["--train-examples", "200", "--ckpt-every", "5"]
    table = ["experiment", *RUN, *_sets("fit_iters=20", "distill_iters=20")]

    def steps(root):
        return [
            (theory_student.main, [*student, "--out-dir", str(root / "student")]),
            (
                theory.main,
                [*table, "--experiment", "two_bit", "--out", str(root / "tv.json")],
            ),
        ]

    a, b = _twice(tmp_path, None, steps)
    _assert_runs_equal(a, b, ["student/student.pt", "student/checkpoint.pt"])
    rows = [json.loads((r / "tv.json").read_text())["rows"] for r in (a, b)]
    assert any(r["model"] == "di4c_student" for r in rows[0])
    assert json.dumps(rows[0]) == json.dumps(rows[1])  # the exact TVs (NaN-safe)


def test_sampling_killed_mid_run_resumes_bit_identical(tmp_path, capsys):
    """SIGKILL after >= 1 shard; the rerun keeps the shards, computes the rest, and its
    sample file is byte-identical to an uninterrupted run's."""
    from di4c.cli import sample, teacher
    from di4c.shards import work_dir

    data = _data(tmp_path, "cifar10")
    sets = _sets("models.teacher.train.iters=1", "sample.num_samples=12")
    sets += _sets("sample.batch_size=2")  # 6 shards
    teacher.cli(
        ["--setting", "cifar10", *RUN, *sets, "--data-dir", str(data)]
        + [
            "--out-dir",
            str(tmp_path / "teacher"),
        ]
    )
    argv = ["--setting", "cifar10", *RUN, *sets, "--cell", "teacher_n20"]
    argv += [f"--card=teacher={tmp_path / 'teacher' / 'model.json'}"]
    argv += ["--data-dir", str(data)]
    ref, killed = tmp_path / "ref" / SAMPLES, tmp_path / "killed" / SAMPLES
    shards = work_dir(killed)
    k = subprocess.Popen(
        [sys.executable, "-m", "di4c.cli.sample", *argv, "--out", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while k.poll() is None and time.time() < deadline:
        if shards.is_dir() and any(shards.glob("0*.pt")):
            break
        time.sleep(0.02)
    k.send_signal(signal.SIGKILL)
    k.wait()
    assert k.returncode == -signal.SIGKILL
    done = sorted(p.name for p in shards.glob("0*.pt"))
    assert 1 <= len(done) < 6 and not killed.exists(), done  # killed mid-sampling
    capsys.readouterr()
    sample.cli([*argv, "--out", str(killed)])
    assert f"resuming; {len(done)}/6 shards done" in capsys.readouterr().out
    assert not shards.exists()  # assembled, then the shards are removed
    sample.cli([*argv, "--out", str(ref)])
    assert ref.read_bytes() == killed.read_bytes()
    meta = json.loads(killed.with_name("samples.meta.json").read_text())
    assert meta["resumed_shards"] == len(done)


def test_shards_of_another_run_are_discarded(tmp_path):
    from di4c.shards import ShardStore, shard_ranges

    assert shard_ranges(5, 2) == [(0, 2), (2, 2), (4, 1)]
    out = tmp_path / "samples.pt"
    first = ShardStore(out, {"seed": 0})
    first.save(0, 2, {"x": torch.arange(2)})
    assert torch.equal(ShardStore(out, {"seed": 0}).load(0, 2)["x"], torch.arange(2))
    assert ShardStore(out, {"seed": 1}).load(0, 2) is None  # another config
    assert ShardStore(out, {"seed": 0}).load(0, 2) is None  # and it is gone
