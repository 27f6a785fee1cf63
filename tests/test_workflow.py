"""The Snakemake DAG: lint, formatting, dry runs, and the smoke DAG end to end."""

import csv
import json
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
from conftest import copy_workflow, snakemake

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


_smk = partial(snakemake, check=True)


def test_snakemake_lint_and_snakefmt():
    out = _smk("--lint")
    assert "Congratulations" in out.stdout + out.stderr
    fmt = subprocess.run(
        [str(BIN / "snakefmt"), "--check", "Snakefile", "workflows/rules"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert fmt.returncode == 0, fmt.stderr


def test_default_dag_dry_run():
    out = _smk("-n", "--forceall")
    assert "make_theory_table" in out.stdout


def test_invalid_config_is_refused_with_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    smoke = (ROOT / "workflows/config/smoke.yaml").read_text()
    bad.write_text(smoke + "theory: {K: 0}\n")
    out = _smk("-n", "--configfile", str(bad), check=False)
    assert out.returncode != 0
    assert "theory.K: 0 violates minimum 1" in out.stdout + out.stderr


def test_smoke_dag_end_to_end(smoke_workflow):
    """The whole smoke DAG ran; theory table, nothing left to rerun, report."""
    work = smoke_workflow
    tables = work / "results/smoke/paper_tables"
    rows = list(csv.DictReader(open(tables / "theory.csv")))
    exps = {r["experiment"] for r in rows}
    assert exps == {"two_bit", "given_3x3"}
    two = {
        int(r["steps"]): float(r["tv_to_data"])
        for r in rows
        if r["experiment"] == "two_bit" and r["model"] == "product_exact"
    }
    assert two[1] == pytest.approx(0.5) and two[256] == pytest.approx(1 / 512)
    assert (tables / "theory.png").stat().st_size > 1000
    meta = json.loads((tables / "theory.meta.json").read_text())
    assert [c["K"] for c in meta["config"]["experiments"]] == [8, 8]
    assert "git_commit" in meta and set(meta["inputs"]) == {"two_bit", "given_3x3"}
    assert (work / "results/smoke/logs/theory.log").stat().st_size > 0
    again = _smk("--configfile", "workflows/config/smoke.yaml", "-n", cwd=work)
    assert "Nothing to be done" in again.stdout + again.stderr
    rep = _smk(
        "--configfile",
        "workflows/config/smoke.yaml",
        "--report",
        "report.html",
        cwd=work,
    )
    html = (work / "report.html").read_text(errors="ignore")
    assert rep.returncode == 0 and "theory.csv" in html and "theory.png" in html
    for table in ("cifar10", "imagenet", "openwebtext"):
        assert f"{table}.png" in html, table


def _cluster_generic_run(tmp_path, *targets):
    """Run targets of the smoke DAG with every job submitted through cluster-generic."""
    work = copy_workflow(tmp_path / "wf")
    profile = ("--profile", "workflows/profiles/cluster-generic")
    smoke = ("--configfile", "workflows/config/smoke.yaml")
    out = _smk(*targets, *profile, *smoke, cwd=work, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    # each job ran as its own submitted process (a job script handed to `bash`)
    assert out.stdout.count("Submitted job") + out.stderr.count("Submitted job") >= 3
    again = _smk(*targets, "-n", *profile, *smoke, cwd=work)
    assert "Nothing to be done" in again.stdout + again.stderr
    return work


def test_cluster_generic_executor_runs_the_theory_branch(tmp_path):
    work = _cluster_generic_run(tmp_path, "results/smoke/paper_tables/theory.csv")
    rows = list(csv.DictReader(open(work / "results/smoke/paper_tables/theory.csv")))
    assert {r["experiment"] for r in rows} == {"two_bit", "given_3x3"}


@pytest.mark.slow
def test_cluster_generic_executor_runs_the_whole_smoke_dag(tmp_path):
    work = _cluster_generic_run(tmp_path)
    for table in ("theory.csv", "mini/cifar10.csv", "mini/imagenet.csv"):
        assert (work / "results/smoke/paper_tables" / table).is_file(), table


def test_profiles_dry_run():
    for profile in ("local", "gpu-workstation", "slurm", "cluster-generic"):
        out = _smk(
            "-n",
            "--forceall",
            "--profile",
            f"workflows/profiles/{profile}",
            check=False,
        )
        assert out.returncode == 0, (profile, out.stderr[-2000:])
        assert "make_theory_table" in out.stdout
