"""The Snakemake DAG: lint, formatting, dry runs, and the smoke DAG end to end."""

import csv
import json
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
from conftest import snakemake

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
    """The whole smoke DAG ran (cluster-generic executor); theory table, rerun, report."""
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
    again = _smk(
        "--profile", "workflows/profiles/cluster-generic",
        "--configfile", "workflows/config/smoke.yaml", "-n", cwd=work,
    )  # fmt: skip
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
