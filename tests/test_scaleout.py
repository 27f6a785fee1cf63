"""Scale-out: torchrun data parallel equals one process; SIGKILL + resume equals an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

BIN = Path(sys.executable).parent
ARGS = [
    "--experiment",
    "given_3x3",
    "--K",
    "4",
    "--batch-x",
    "8",
    "--hidden",
    "32",
    "--threads",
    "1",
]


def _cmd(out, iters, *extra, launcher=None):
    base = (
        [str(BIN / "torchrun"), "--nproc_per_node", "2"]
        if launcher == "torchrun"
        else [sys.executable]
    )
    return [
        *base,
        "-m",
        "di4c.cli.theory_student",
        *ARGS,
        "--out-dir",
        str(out),
        "--iters",
        str(iters),
        *extra,
    ]


def _load(p):
    return torch.load(p / "student.pt", map_location="cpu")


def test_ddp_two_processes_equal_one(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p1 = subprocess.Popen(
        _cmd(one, 12, "--per-example-rng", "true"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    p2 = subprocess.Popen(
        _cmd(two, 12, "--per-example-rng", "true", launcher="torchrun"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out1, out2 = p1.communicate(timeout=300)[0], p2.communicate(timeout=300)[0]
    assert p1.returncode == 0, out1[-2000:]
    assert p2.returncode == 0, out2[-2000:]
    a, b = _load(one), _load(two)
    assert (
        json.loads((two / "student.meta.json").read_text())["config"]["world_size"] == 2
    )
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert diff < 1e-5, diff
    moved = max(
        float((a[k] - torch.zeros_like(a[k])).abs().max())
        for k in a
        if "lam_dense" in k
    )
    assert moved > 0  # training actually changed the zero-initialised lambda path


def test_sigkill_then_resume_is_bit_identical(tmp_path):
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    iters = 60
    extra = ["--ckpt-every", "5"]
    r = subprocess.Popen(
        _cmd(ref, iters, *extra), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    k = subprocess.Popen(
        _cmd(killed, iters, *extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while (
        not (killed / "checkpoint.pt").exists()
        and time.time() < deadline
        and k.poll() is None
    ):
        time.sleep(0.05)
    k.send_signal(signal.SIGKILL)
    k.wait()
    assert k.returncode == -signal.SIGKILL
    assert not (killed / "student.pt").exists()
    state = torch.load(killed / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert 0 < state["step"] < iters  # killed mid-run
    res = subprocess.run(
        _cmd(killed, iters, *extra), capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert f"resumed from step {state['step']}" in res.stdout
    assert r.wait(timeout=300) == 0
    a, b = _load(ref), _load(killed)
    assert all(torch.equal(a[key], b[key]) for key in a)
