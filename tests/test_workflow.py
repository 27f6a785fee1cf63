"""The Snakemake DAG: one rule shape over {setting}/{scale}, lint and formatting, dry runs
of every paper target (offline), and the smoke DAG end to end (conftest fixture)."""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
from conftest import SMOKE, copy_workflow, snakemake

from di4c.config import load_config, resolve
from di4c.settings import get_setting

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RULE_FILES = [ROOT / "Snakefile", *sorted((ROOT / "workflows/rules").glob("*.smk"))]
SAMPLING = ("cifar10", "imagenet", "openwebtext")
TABLE_RULES = ("make_paper_table", "make_cpu_table", "make_theory_table")
# the paper DAGs need no network to be planned: any download would hit a closed port
OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "http_proxy": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
}

_smk = partial(snakemake, check=True)


def _offline_smk(*args, cwd=ROOT):
    saved = {k: os.environ.get(k) for k in OFFLINE}
    os.environ.update(OFFLINE)
    try:
        return snakemake(*args, cwd=cwd)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ------------------------------------------------------------------ the rule files
def rule_blocks() -> dict[str, str]:
    """``{rule name: its text}`` from the Snakefile and workflows/rules/*.smk."""
    blocks = {}
    for f in RULE_FILES:
        parts = re.split(r"^rule (\w+):\n", f.read_text(), flags=re.M)
        for name, body in zip(parts[1::2], parts[2::2]):
            end = re.search(r"^\S", body, re.M)  # the next top-level statement
            blocks[name] = body[: end.start()] if end else body
    return blocks


def directive(block: str, name: str) -> str | None:
    """The text of one directive of a rule (None when the rule has not got it)."""
    m = re.search(rf"^    {name}:(.*?)(?=^    \w+:|\Z)", block, re.M | re.S)
    return m.group(1) if m else None


def test_rule_files_hold_every_rule():
    out = _smk("--list-rules")
    listed = {line.split()[0] for line in out.stdout.splitlines() if line.strip()}
    assert set(rule_blocks()) == listed


def test_every_rule_has_a_log_and_the_heavy_ones_a_benchmark():
    blocks = rule_blocks()
    for name, block in blocks.items():
        if name == "all":
            continue
        log = directive(block, "log")
        assert log and "logs/" in log, f"rule {name} has no log under logs/"
    with_benchmark = {n for n, b in blocks.items() if directive(b, "benchmark")}
    assert {"distill", "sample", "score"} <= with_benchmark
    assert with_benchmark == set(blocks) - {"all"}  # time and peak memory of every job
    for name in with_benchmark:
        assert "benchmarks/" in directive(blocks[name], "benchmark"), name
        assert directive(blocks[name], "benchmark").strip().endswith('.tsv"'), name


def test_fetch_rule_retries():
    retries = directive(rule_blocks()["fetch_model"], "retries")
    assert retries is not None and int(retries.strip()) >= 1


def test_every_table_plot_and_csv_is_in_the_report():
    blocks = rule_blocks()
    for name in TABLE_RULES:
        output = directive(blocks[name], "output")
        for kind in ("csv", "png"):
            assert re.search(rf"^\s+{kind}=report\(", output, re.M), (name, kind)


def test_device_comes_from_the_config():
    """No rule names a device; the steps read it from the config they are given."""
    for f in RULE_FILES:
        assert "--device" not in f.read_text(), f
        assert "cuda" not in f.read_text(), f


def test_rules_run_the_generic_steps_over_setting_and_scale():
    blocks = rule_blocks()
    for name in ("prepare_data", "fetch_model", "train_teacher", "distill", "sample"):
        shell = directive(blocks[name], "shell")
        assert "{params.flags}" in shell and "--config {params.config}" in shell, name
        for d in ("output", "log"):
            assert "{RUN}/" in directive(blocks[name], d), (name, d)
    steps = {
        re.search(r"-m (di4c\.cli\.\w+)", directive(b, "shell")).group(1)
        for n, b in blocks.items()
        if n != "all"
    }
    for step in steps:  # every step a rule runs exists and has a --help
        mod = ROOT / (step.replace(".", "/") + ".py")
        assert mod.is_file(), step
    assert not any(re.search(r"(cifar10|imagenet|openwebtext)_", s) for s in steps)


def _prose_files():
    """The package's sources and the docs: where messages and docs name steps and rules."""
    return [
        *sorted((ROOT / "di4c").rglob("*.py")),
        ROOT / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
        *RULE_FILES,
    ]


def test_messages_and_docs_name_steps_and_rules_that_exist():
    """An error that says "run `python -m di4c.cli.X`" or "rule X" must name a step
    module and a rule of this workflow (not one of the per-dataset ones removed)."""
    rules = set(rule_blocks())
    bad = []
    for f in _prose_files():
        text = f.read_text()
        for mod in re.findall(r"\bdi4c\.cli\.([a-z_0-9]+)\b", text):
            if not (ROOT / "di4c/cli" / f"{mod}.py").is_file():
                bad.append(f"{f.relative_to(ROOT)}: di4c.cli.{mod}")
        for rule in re.findall(r"\brule `?([a-z][a-z0-9]*_[a-z0-9_]+)", text):
            if rule not in rules:
                bad.append(f"{f.relative_to(ROOT)}: rule {rule}")
    assert not bad, bad


# ------------------------------------------------------------------ lint and format
def test_snakemake_lint():
    """The only lint is the one this workflow declines on purpose: rules run the
    interpreter of the project's venv (``sys.executable``), with no conda envs."""
    out = snakemake("--lint")
    text = out.stdout + out.stderr
    findings = re.findall(r"^    \* (.+?):?$", text, re.M)
    if out.returncode != 0:  # exit 1 when there are findings; anything else: a failure
        assert findings, text[-3000:]
    assert set(findings) <= {"Specify a conda environment or container for each rule."}
    assert not re.search(r"^Lints for snakefile", text, re.M), text
    assert "sys.executable" in (ROOT / "workflows/rules/common.smk").read_text()


def test_snakefmt():
    fmt = subprocess.run(
        [str(BIN / "snakefmt"), "--check", "Snakefile", "workflows/rules"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert fmt.returncode == 0, fmt.stderr


# ------------------------------------------------------------------ dry runs
def dry_run_jobs(text: str) -> list[tuple[str, str]]:
    """``[(rule, its printed block)]`` of a ``snakemake -n -p`` output."""
    parts = re.split(r"^(?:local)?rule (\w+):$", text, flags=re.M)
    return list(zip(parts[1::2], parts[2::2]))


def job_counts(text: str) -> dict[str, int]:
    """``{rule: jobs, ..., "total": jobs}`` of the first "Job stats" table."""
    stats = text.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {m[0]: int(m[1]) for m in re.findall(r"^(\w+)\s+(\d+)$", stats, re.M)}


def step_config_of(block: str) -> dict | None:
    m = re.search(r"^Shell command: (.*)$", block, re.M)
    if not m:
        return None
    argv = shlex.split(m.group(1).replace("$(", "").replace(")", ""))
    return json.loads(argv[argv.index("--config") + 1]) if "--config" in argv else None


# (target, the jobs planned): every cell is one sample and one score job
PAPER = {
    # 9 cells: teacher and student at N = 10, 20, 40, hybrids (10, 3), (20, 6), (40, 12)
    "cifar10": {
        "fetch_model": 1,  # the tauLDR teacher
        "prepare_data": 1,
        "distill": 1,
        "reference": 1,
        "sample": 9,
        "score": 9,
        "make_paper_table": 1,
    },
    # 38 cells: FID-IS curves over 6 CFG weights + step grids at w = 3
    "imagenet": {
        "fetch_model": 3,  # MaskGIT teacher, VQGAN, released di4c student
        "prepare_data": 1,
        "encode_images": 1,
        "distill": 2,  # di4c-d, di4c
        "reference": 1,
        "sample": 38,
        "score": 38,
        "make_paper_table": 1,
    },
    # 60 cells: sdtt6/7 teachers and 4 students at N = 8 .. 128, fp32 and fp64 noise
    "openwebtext": {
        "fetch_model": 5,  # sdtt6, sdtt7, the two released di4c^2 students, GPT-2 Large
        "prepare_data": 1,
        "distill": 2,  # the round-1 students sdtt6_di4c, sdtt7_di4c
        "reference": 1,
        "sample": 60,
        "score": 60,
        "make_paper_table": 1,
    },
}


@pytest.mark.parametrize("setting", SAMPLING)
def test_paper_target_dry_run_offline(setting):
    device = "cuda:1"
    out = _offline_smk(
        "-n", "-p", "--forceall", f"paper_tables/{setting}.csv",
        "--config", f"{setting}={{'paper': {{'device': '{device}'}}}}",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    counts = job_counts(text)
    assert counts == PAPER[setting] | {"total": sum(PAPER[setting].values())}
    cells = get_setting(setting).cells(resolve(load_config(), setting, "paper"))
    assert counts["sample"] == len(cells)
    jobs = dry_run_jobs(text)
    # the device of every step is the configured one; GPU jobs ask for a gpu unit
    seen = set()
    for rule, block in jobs:
        cfg = step_config_of(block)
        if cfg and "device" in cfg:
            assert cfg["device"] == device, rule
            seen.add(rule)
        if rule in ("distill", "sample", "score", "reference"):
            assert re.search(r"resources: .*\bgpu=1\b", block), rule
    assert {"distill", "sample", "score", "reference", "fetch_model"} <= seen


def test_default_dry_run():
    out = _offline_smk("-n", "-p", "--forceall")
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    counts = job_counts(text)
    cfg = load_config()
    cells = {s: len(get_setting(s).cells(resolve(cfg, s, "mini"))) for s in SAMPLING}
    theory = len(resolve(cfg, "theory", "mini")["experiments"])
    assert counts["sample"] == counts["score"] == sum(cells.values())
    assert counts["run_theory_experiment"] == theory == 4
    assert counts["make_cpu_table"] == 3 and counts["make_theory_table"] == 1
    assert counts["prepare_data"] == counts["train_teacher"] == counts["reference"] == 3
    assert (
        counts["train_classifier"] == 2
        and counts["train_vq"] == counts["train_judge"] == 1
    )
    assert (
        counts["distill"] == 2 + 3 + 3
    )  # student, student_k1; di4c, di4c-d, k1; di4c, di4c2, k1
    assert "fetch_model" not in counts and "make_paper_table" not in counts
    for rule, block in dry_run_jobs(text):  # the CPU twins ask for no GPU
        cfg_ = step_config_of(block)
        if cfg_ and "device" in cfg_:
            assert cfg_["device"] == "cpu", rule
            assert not re.search(r"\bgpu=[1-9]", block), rule


def test_partial_override_on_the_command_line():
    """``--config theory={mini: {...}}`` changes one key; the rest stays the table's."""
    out = _smk(
        "-n", "-p", "--forceall", "paper_tables/theory.csv",
        "--config", "theory={'mini': {'experiments': ['two_bit']}}",
    )  # fmt: skip
    text = out.stdout + out.stderr
    assert job_counts(text)["run_theory_experiment"] == 1
    [(_, block)] = [j for j in dry_run_jobs(text) if j[0] == "run_theory_experiment"]
    cfg = step_config_of(block)
    assert cfg["experiments"] == ["two_bit"]
    assert (cfg["teacher_steps"], cfg["distill_iters"], cfg["K"]) == (1024, 6000, 16)


def test_invalid_config_is_refused_with_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / SMOKE).read_text() + "theory: {smoke: {K: 0}}\n")
    out = _smk("-n", "--configfile", str(bad), check=False)
    assert out.returncode != 0
    assert "theory (smoke): K: 0 violates minimum 1" in out.stdout + out.stderr


def test_profiles_dry_run():
    # cluster-generic runs for real below
    for profile in ("local", "gpu-workstation", "slurm"):
        out = _smk(
            "-n",
            "paper_tables/theory.csv",
            "--forceall",
            "--profile",
            f"workflows/profiles/{profile}",
            check=False,
        )
        assert out.returncode == 0, (profile, out.stderr[-2000:])
        assert "make_theory_table" in out.stdout


# ------------------------------------------------------------------ executors
def _cluster_generic_run(tmp_path, *targets):
    """Run targets of the smoke DAG with every job submitted through cluster-generic."""
    work = copy_workflow(tmp_path / "wf")
    profile = ("--profile", "workflows/profiles/cluster-generic")
    smoke = ("--configfile", SMOKE)
    plan = _smk(*targets, "-n", *profile, *smoke, cwd=work)
    jobs = job_counts(plan.stdout + plan.stderr)["total"]
    out = _smk(*targets, *profile, *smoke, cwd=work, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    # each job ran as its own submitted process (a job script handed to `bash`)
    text = out.stdout + out.stderr
    assert text.count("Submitted job") == jobs >= 2
    again = _smk(*targets, "-n", *profile, *smoke, cwd=work)
    assert "Nothing to be done" in again.stdout + again.stderr
    return work


def test_cluster_generic_executor_runs_the_theory_branch(tmp_path):
    work = _cluster_generic_run(tmp_path, "results/smoke/paper_tables/theory.csv")
    rows = list(csv.DictReader(open(work / "results/smoke/paper_tables/theory.csv")))
    assert {r["experiment"] for r in rows} == {"two_bit"}
    assert (work / "results/smoke/theory/smoke/logs/two_bit.log").stat().st_size > 0


@pytest.mark.slow
def test_cluster_generic_executor_runs_the_whole_smoke_dag(tmp_path):
    work = _cluster_generic_run(tmp_path)
    tables = work / "results/smoke/paper_tables"
    for table in ("theory", "mini/cifar10", "mini/imagenet", "mini/openwebtext"):
        assert (tables / f"{table}.csv").is_file(), table


# ------------------------------------------------------------------ the smoke DAG
def _smoke_cfg():
    return load_config([ROOT / "workflows/config/default.yaml", ROOT / SMOKE])


def test_smoke_dag_makes_the_four_cpu_tables(smoke_workflow):
    work = smoke_workflow
    tables = work / "results/smoke/paper_tables"
    cfg = _smoke_cfg()
    for setting in SAMPLING:
        base = tables / "mini" / setting
        for ext in ("csv", "md", "meta.json"):
            assert base.with_suffix(f".{ext}").stat().st_size > 0, (setting, ext)
        assert base.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        rows = list(csv.DictReader(open(base.with_suffix(".csv"))))
        got = {(r["model"], int(r["steps"]), int(r["teacher_last"] or 0)) for r in rows}
        cells = get_setting(setting).cells(resolve(cfg, setting, "smoke"))
        assert {(c.model, c.steps, c.teacher_last) for c in cells} <= got, setting
        run = work / "results/smoke" / setting / "smoke"
        for cell in cells:  # one benchmark per sample and score job
            for step in ("sample", "score"):
                tsv = run / "benchmarks" / f"{step}_{cell.id}.tsv"
                assert tsv.read_text().startswith("s\th:m:s\tmax_rss"), tsv
            assert (run / "logs" / f"sample_{cell.id}.log").stat().st_size > 0
        distilled = sorted(p.name for p in (run / "distilled").iterdir())
        for model in distilled:
            assert (run / "benchmarks" / f"distill_{model}.tsv").is_file(), model
            assert (run / "logs" / f"distill_{model}.log").stat().st_size > 0
    # the theory table: exact TV of the product sampler on two_bit is 1 / (2N)
    rows = list(csv.DictReader(open(tables / "theory.csv")))
    exact = {
        int(r["steps"]): float(r["tv_to_data"])
        for r in rows
        if r["experiment"] == "two_bit" and r["model"] == "product_exact"
    }
    assert exact[1] == pytest.approx(0.5) and exact[256] == pytest.approx(1 / 512)
    assert (tables / "theory.png").stat().st_size > 1000
    meta = json.loads((tables / "theory.meta.json").read_text())
    assert [c["K"] for c in meta["config"]["experiments"]] == [8]
    assert "git_commit" in meta and set(meta["inputs"]) == {"two_bit"}


def test_smoke_dag_rerun_has_nothing_to_do(smoke_workflow):
    again = _smk("-n", "--configfile", SMOKE, cwd=smoke_workflow)
    assert "Nothing to be done" in again.stdout + again.stderr


def test_every_smoke_job_left_a_log_and_a_benchmark(smoke_workflow):
    plan = _smk("-n", "--forceall", "--configfile", SMOKE, cwd=smoke_workflow)
    jobs = job_counts(plan.stdout + plan.stderr)
    every = jobs["total"] - jobs.get("all", 0)
    results = smoke_workflow / "results/smoke"
    tsvs = list(results.rglob("benchmarks/*.tsv"))
    assert len(tsvs) == every, sorted(str(p.relative_to(results)) for p in tsvs)
    assert all(p.read_text().startswith("s\th:m:s\tmax_rss") for p in tsvs)
    logs = [p for p in results.rglob("logs/*.log") if p.stat().st_size > 0]
    assert len(logs) == every, sorted(str(p.relative_to(results)) for p in logs)


def test_smoke_report_holds_every_table(smoke_workflow):
    work = smoke_workflow
    rep = _smk("--configfile", SMOKE, "--report", "report.html", cwd=work)
    assert rep.returncode == 0
    html = (work / "report.html").read_text(errors="ignore")
    for table in ("theory", "cifar10", "imagenet", "openwebtext"):
        for ext in ("csv", "png"):
            assert f"{table}.{ext}" in html, (table, ext)
