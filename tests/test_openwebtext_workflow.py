"""The openwebtext branch of the DAG: paper-scale dry run, config refusal, smoke run end to end."""

from __future__ import annotations

import csv
import json
import shutil
import sys
from functools import partial
from pathlib import Path

import pytest
import torch
from conftest import snakemake

from di4c.config import ConfigError, assemble_config

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
INCLUDE = 'include: "workflows/rules/openwebtext.smk"'
SMOKE = "workflows/config/smoke.yaml"


_smk = partial(snakemake, check=True)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A copy of the workflow whose Snakefile includes the openwebtext rules."""
    work = tmp_path_factory.mktemp("owt") / "wf"
    work.mkdir()
    shutil.copy(ROOT / "Snakefile", work / "Snakefile")
    shutil.copytree(ROOT / "workflows", work / "workflows")
    snakefile = work / "Snakefile"
    if INCLUDE not in snakefile.read_text():
        snakefile.write_text(snakefile.read_text() + f"\n{INCLUDE}\n")
    return work


def test_paper_dag_dry_run(work):
    out = _smk("-n", "-p", "paper_tables/openwebtext.csv", cwd=work).stdout
    for rule, count in [
        ("fetch_sdtt_teacher", 2),
        ("fetch_released_di4c2", 2),
        ("fetch_gpt2_judge", 1),
        ("distill_paper_student", 2),
        ("sample_paper", 30),
        ("score_paper", 31),
    ]:
        assert any(
            line.split()[:2] == [rule, str(count)] for line in out.splitlines()
        ), (
            rule,
            out[-2000:],
        )
    assert "--num-samples 1024 --length 1024 --batch-size 16 --seed 100" in out
    assert "--noise-dtype float64 --weights-kind raw" in out
    assert "--name gpt2-large" in out and "--T 1024" in out


def test_bad_openwebtext_config_names_the_key(tmp_path):
    sections = tmp_path / "sections"
    shutil.copytree(ROOT / "workflows/config/sections", sections)
    cfg = sections / "openwebtext.yaml"
    cfg.write_text(
        cfg.read_text().replace("noise_dtype: float64", "noise_dtype: float16", 1)
    )
    top = {
        "scale": "mini",
        "tables_dir": "t",
        "mini_tables_dir": "m",
        "results_dir": "r",
        "sections_dir": str(sections),
        "targets": ["openwebtext_mini"],
    }
    with pytest.raises(
        ConfigError,
        match=r"openwebtext.mini.sample.noise_dtype: 'float16' is not allowed",
    ):
        assemble_config(top)


def test_smoke_dag_end_to_end(smoke_workflow):
    work = smoke_workflow
    target = "results/smoke/paper_tables/mini/openwebtext.csv"
    rows = list(csv.DictReader(open(work / target)))
    cells = {(r["model"], int(r["steps"])) for r in rows}
    want = {("data", 0), ("hybrid", 2)}
    want |= {("teacher", n) for n in (1, 2, 4)}
    want |= {(m, n) for m in ("di4c", "di4c2", "k1") for n in (1, 2)}
    assert cells == want
    for r in rows:
        assert float(r["gen_ppl"]) > 1 and float(r["entropy"]) > 0
        assert r["n_samples"] == "16" and r["paper_gen_ppl"] == ""
        if r["model"] == "teacher":
            assert float(r["nfe"]) == int(r["steps"])
    meta = json.loads((work / target.replace(".csv", ".meta.json")).read_text())
    assert "2x speed-up" in meta["claim"] and "git_commit" in meta
    assert (work / target.replace(".csv", ".png")).stat().st_size > 5000
    note = (work / target.replace(".csv", ".md")).read_text()
    assert "| di4c2 | 2 |" in note and "Against the teacher at 2N" in note
    s = torch.load(
        work / "results/smoke/openwebtext/mini/samples/di4c2_steps2.pt",
        weights_only=True,
    )
    assert s["seeds"] == list(range(100, 116)) and s["noise_dtype"] == "float64"
    assert s["ids"].shape == (16, 24) and int(s["ids"].max()) < 35
    logs = work / "results/smoke/logs/openwebtext"
    assert "mixture teacher" in (logs / "distill_mini_di4c2.log").read_text()
    again = _smk(target, "-n", "--configfile", SMOKE, cwd=work)
    assert "Nothing to be done" in again.stdout + again.stderr
