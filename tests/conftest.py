"""Shared fixtures: one run of the whole smoke DAG, reused by every slice's DAG test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SMOKE = "workflows/config/smoke.yaml"

# Subprocesses (snakemake jobs, torchrun workers, CLIs) import this checkout's di4c,
# also when the venv's editable install points at another checkout.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
)


def snakemake(*args, cwd=ROOT, check=False):
    """Run the venv's snakemake in ``cwd``; output captured as text."""
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}")
    return subprocess.run(
        [str(BIN / "snakemake"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        check=check,
    )


def copy_workflow(dest: Path) -> Path:
    """A copy of the Snakefile and workflows/ (rules, configs with their scale layers
    in config/settings/, schemas, report captions, profiles, pins) so runs leave the
    repository clean."""
    dest.mkdir(parents=True)
    shutil.copy(ROOT / "Snakefile", dest / "Snakefile")
    shutil.copytree(
        ROOT / "workflows",
        dest / "workflows",
        ignore=shutil.ignore_patterns("__pycache__", ".snakemake"),
    )
    for needed in ("rules", "config/settings", "schemas", "report", "profiles"):
        assert (dest / "workflows" / needed).is_dir(), needed
    return dest


@pytest.fixture(scope="session")
def smoke_workflow(tmp_path_factory):
    """The whole smoke DAG (theory + the three mini twins), run once per session.

    ``snakemake --cores 2 --configfile workflows/config/smoke.yaml`` in a copy of the
    workflow: 60 jobs, every rule of the CPU DAG at least once (the smoke layers of
    workflows/config/settings/*.yaml: one theory experiment, the CIFAR-10 teacher at
    N = 1, 2 with one student and one hybrid cell, ImageNet's three cells, the OWT
    cells its tests name). fetch_model and make_paper_table need the published weights;
    their steps and DAGs are tested offline (test_pins.py, test_workflow.py dry runs).
    Local executor; the cluster-generic executor runs the theory branch in
    test_workflow.py (and the whole smoke DAG under ``pytest -m slow``). Returns the
    workflow copy; a failed run fails every test that uses it with its stderr.
    """
    work = copy_workflow(tmp_path_factory.mktemp("smoke") / "wf")
    out = snakemake("--cores", "2", "--configfile", SMOKE, cwd=work)
    if out.returncode != 0:
        pytest.fail(f"smoke DAG failed:\n{out.stderr[-4000:]}")
    return work
