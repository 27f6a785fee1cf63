"""The openwebtext branch of the DAG: the paper-scale dry run and the configs its
jobs get, a bad setting layer refused by key, and the smoke run's outputs (table,
cells, notes, cards, samples, logs, benchmarks), re-checked against the steps."""

from __future__ import annotations

import csv
import json
import math
import re
import shlex
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from conftest import copy_workflow, snakemake

from di4c.artifacts import sha256_file
from di4c.cli import sample as sample_step
from di4c.cli import score as score_step
from di4c.config import DEFAULT_CONFIG, ConfigError, load_config, resolve
from di4c.models import read_card
from di4c.settings.openwebtext import OpenWebText
from di4c.tables import LAYOUTS
from di4c.workflow import Workflow

ROOT = Path(__file__).resolve().parent.parent
SMOKE = "workflows/config/smoke.yaml"
OWT = OpenWebText()
PAPER_RUN = "results/openwebtext/paper"


@pytest.fixture(scope="module")
def paper_dry_run(tmp_path_factory):
    work = copy_workflow(tmp_path_factory.mktemp("owt") / "wf")
    return snakemake("-n", "-p", "paper_tables/openwebtext.csv", cwd=work, check=True)


def test_paper_dag_dry_run(paper_dry_run):
    """Fig. 4 at paper scale: 2 SDTT teachers, 2 released di4c^2 students and the
    judge fetched, round-1 Di4C distilled from each teacher, 6 models x 5 step counts
    sampled and scored at both noise precisions (fp32: the paper's; fp64), one
    reference and one table."""
    out = paper_dry_run.stdout
    stats = dict(re.findall(r"(?m)^(\w+)\s+(\d+)$", out))
    assert stats == {
        "fetch_model": "5",
        "prepare_data": "1",
        "distill": "2",
        "reference": "1",
        "sample": "60",
        "score": "60",
        "make_paper_table": "1",
        "total": "130",
    }
    models = set(re.findall(r"scale=paper, model=(\w+)\n", out))  # fetch, distill
    assert models == {
        "sdtt6",
        "sdtt7",
        "sdtt6_di4c2",
        "sdtt7_di4c2",
        "judge",
        "sdtt6_di4c",
        "sdtt7_di4c",
    }
    commands = [shlex.split(c) for c in re.findall(r"(?m)^Shell command: (.*)$", out)]
    assert len(commands) == 130
    distill = [c for c in commands if c[2] == "di4c.cli.distill"]
    assert len(distill) == 2
    for c in distill:
        model, teacher = c[c.index("--model") + 1], c[c.index("--teacher") + 1]
        assert model in ("sdtt6_di4c", "sdtt7_di4c")
        assert teacher == f"{PAPER_RUN}/fetched/{model[:5]}/model.json"
        assert c[c.index("--init") + 1] == teacher
    cells = {c[c.index("--cell") + 1] for c in commands if c[2] == "di4c.cli.sample"}
    assert len(cells) == 60
    for noise in ("fp32", "fp64"):
        same = {c.removesuffix(f"_{noise}") for c in cells if c.endswith(f"_{noise}")}
        assert len(same) == 30 and "sdtt7_di4c2_n128" in same and "sdtt6_n8" in same
    released = [c for c in commands if "--cell" in c and "sdtt6_di4c2_n8_fp64" in c]
    card = f"sdtt6_di4c2={PAPER_RUN}/fetched/sdtt6_di4c2/model.json"
    assert card in released[0]  # the released student is sampled as it was published
    assert "gpu=1" in out  # device auto: the jobs ask for the accelerator


def test_paper_step_configs_are_the_published_settings():
    """What the paper-scale jobs are given (sony/di4c sdtt configs and run_eval.py)."""
    wf = Workflow(load_config([DEFAULT_CONFIG]))

    def view(step, **ids):
        return json.loads(
            shlex.split(wf.step_config("openwebtext", "paper", step, **ids))[0]
        )

    s = view("sample", cell="sdtt6_di4c2_n16_fp64")
    assert s["sample"] == {
        "sampler": "ancestral",
        "t_end": 1e-5,
        "num_samples": 1024,
        "batch_size": 16,
        "seed": 100,
        "noise": "fp64",
        "precision": "bf16",
    }
    assert s["data"]["length"] == 1024 and s["process"] == {"schedule": "loglinear"}
    assert sorted(s["models"]) == ["sdtt6", "sdtt6_di4c", "sdtt6_di4c2"]
    d = view("distill", model="sdtt7_di4c")
    assert sorted(d["models"]) == ["sdtt7", "sdtt7_di4c"]
    r = d["distill"]
    assert (r["K"], r["batch_x"], r["lr"], r["warmup_steps"]) == (16, 2, 3e-5, 2500)
    assert r["time_kwargs"] == {"T": 1024, "distil_prob": 0.3, "distil_delta": 0.02}
    assert r["precision"] == "bf16" and r["sample_from_ema"] is False
    assert r["ema_decay"] == 0.9999 and r["grad_clip"] == 1.0
    m = view("score")["metrics"]
    assert (m["batch_size"], m["protocol"], m["mauve"]) == (8, "paper", False)
    assert view("fetch", model="judge")["models"]["judge"]["name"] == "gpt2-large"


def test_bad_openwebtext_layer_names_the_key(tmp_path):
    settings = tmp_path / "settings"
    shutil.copytree(ROOT / "workflows/config/settings", settings)
    path = settings / "openwebtext.yaml"
    layers = yaml.safe_load(path.read_text())
    layers["mini"]["sample"]["noise"] = "fp16"
    path.write_text(yaml.safe_dump(layers))
    top = yaml.safe_load(DEFAULT_CONFIG.read_text()) | {"settings_dir": str(settings)}
    (tmp_path / "top.yaml").write_text(yaml.safe_dump(top))
    config = load_config([tmp_path / "top.yaml"])
    with pytest.raises(ConfigError) as e:
        resolve(config, "openwebtext", "mini")
    msg = str(e.value)
    assert "openwebtext (mini): sample.noise: 'fp16' is not allowed" in msg
    assert resolve(config, "openwebtext", "paper")["sample"]["noise"] == "fp64"


# ------------------------------------------------------------------ the smoke run

RUN = "results/smoke/openwebtext/smoke"
TABLE = "results/smoke/paper_tables/mini/openwebtext"
CELLS = {
    *(f"teacher_n{n}_fp64" for n in (1, 2, 4)),
    *(f"{m}_n{n}_fp64" for m in ("di4c", "di4c2", "k1") for n in (1, 2)),
    "hybrid_n2_l1_fp64",
}


def smoke_config(work: Path) -> dict:
    cfg = load_config([work / "workflows/config/default.yaml", work / SMOKE])
    return resolve(cfg, "openwebtext", "smoke")


def test_smoke_table_cells_and_notes(smoke_workflow):
    work = smoke_workflow
    with open(work / f"{TABLE}.csv") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames) == LAYOUTS["openwebtext"].columns
    got = {
        (r["model"], int(r["steps"]), int(r["teacher_last"] or 0), r["noise"])
        for r in rows
    }
    want = {("teacher", n, 0, "fp64") for n in (1, 2, 4)} | {
        (m, n, 0, "fp64") for m in ("di4c", "di4c2", "k1") for n in (1, 2)
    }
    want |= {("hybrid", 2, 1, "fp64"), ("data", 0, 0, "")}
    assert got == want and len(rows) == len(want)
    max_entropy = math.log(24)  # 24 characters per sample
    for r in rows:
        assert r["num_samples"] == "16" and r["paper_gen_ppl"] == ""
        assert float(r["gen_ppl"]) > 1 and float(r["gen_ppl_sd"]) >= 0
        assert 0 < float(r["entropy"]) <= max_entropy + 1e-9
        if r["model"] == "data":
            continue
        n = int(r["steps"])
        assert n <= float(r["nfe"]) <= n + 1
        if r["model"] != "teacher":  # di4c2 compared with the root teacher
            assert r["teacher"] == "teacher" and r["vs_teacher_n"] and r["speedup"]
    md = (work / f"{TABLE}.md").read_text()
    meta = json.loads((work / f"{TABLE}.meta.json").read_text())
    assert meta["config"]["teacher_of"] == {
        "di4c": "teacher",
        "di4c2": "teacher",
        "hybrid": "teacher",
        "k1": "teacher",
    }
    assert "git_commit" in meta and meta["config"]["setting"] == "openwebtext"
    assert meta["notes"][0].startswith("Noise rule:")
    for r in rows:
        if r["model"] in ("teacher", "data"):
            continue
        label = f"[noise fp64] {r['model']} N={r['steps']}"
        label += f" (L={r['teacher_last']})" if r["model"] == "hybrid" else ":"
        (line,) = [x for x in meta["notes"] if x.startswith(label)]
        assert f"- {line}" in md and "vs teacher 2N=" in line
    assert "| di4c2 | 2 | 0 | fp64 |" in md
    assert (work / f"{TABLE}.png").stat().st_size > 5000


def test_smoke_cards_samples_logs_and_benchmarks(smoke_workflow):
    work = smoke_workflow
    run = work / RUN
    cards = {
        m: read_card(run / f"{folder}/{m}/model.json")
        for folder, names in (
            ("trained", ("teacher", "judge")),
            ("distilled", ("di4c", "di4c2", "k1")),
        )
        for m in names
    }
    assert cards["teacher"].kind == "product"
    assert cards["teacher"].files == {
        "weights": "model.safetensors",
        "config": "config.json",
    }
    assert cards["judge"].kind == "judge"
    for m in ("di4c", "di4c2", "k1"):
        c = cards[m]
        assert c.kind == "mixture" and c.files == {"weights": "model.ckpt"}
        assert c.extra["sample_weights"] == "raw"  # from_ema False
        assert "ema" in torch.load(c.path(), map_location="cpu", weights_only=True)
    assert cards["di4c2"].extra["teacher"] == cards["di4c2"].extra["init"] == "di4c"
    for c in cards.values():
        for role in c.files:
            assert c.sha256[role] == sha256_file(c.path(role))
    teacher = OWT.load_net(cards["teacher"], "cpu")
    assert teacher.config.vocab_size - 1 == len(OWT.read_data(run / "data")["vocab"])

    vocab = teacher.config.vocab_size - 1
    for cell in CELLS:
        s = torch.load(run / f"samples/{cell}.pt", weights_only=True)
        assert s["x"].shape == (16, 24) and int(s["x"].max()) < vocab
        assert s["seeds"].tolist() == list(range(100, 116))
        assert s["cell"]["cell"] == cell
        rec = json.loads((run / f"metrics/{cell}.json").read_text())
        assert rec["cell"] == cell and rec["num_samples"] == 16
    hybrid = torch.load(run / "samples/hybrid_n2_l1_fp64.pt", weights_only=True)
    assert hybrid["models"] == ["di4c2", "teacher"]

    assert "mixture teacher (di4c^2)" in (run / "logs/distill_di4c2.log").read_text()
    assert "mixture teacher" not in (run / "logs/distill_di4c.log").read_text()
    jobs = ["prepare_data", "train_teacher", "train_judge", "reference"]
    jobs += [f"distill_{m}" for m in ("di4c", "di4c2", "k1")]
    jobs += [f"{step}_{cell}" for step in ("sample", "score") for cell in CELLS]
    for job in jobs:
        assert "] done in " in (run / f"logs/{job}.log").read_text(), job
        with open(run / f"benchmarks/{job}.tsv") as f:
            (bench,) = list(csv.DictReader(f, delimiter="\t"))
        assert float(bench["s"]) > 0 and float(bench["max_rss"]) > 0, job
    # the table rule writes its benchmark too (it has no "done in" line of a step)
    assert sorted(p.stem for p in (run / "benchmarks").glob("*.tsv")) == sorted(
        [*jobs, "table"]
    )
    assert "wrote" in (run / "logs/table.log").read_text()


def test_smoke_cells_reproduce_through_the_steps(smoke_workflow, tmp_path):
    """One cell sampled and scored again by the steps, in this process: the same
    samples (seed 100 + i) and the same metric record as the DAG's."""
    work = smoke_workflow
    run = work / RUN
    cfg = smoke_config(work)
    argv = ["--setting", "openwebtext", "--scale", "smoke", "--config", json.dumps(cfg)]
    cell = "di4c2_n2_fp64"
    sample_step.cli(
        argv
        + ["--cell", cell, "--card", f"di4c2={run}/distilled/di4c2/model.json"]
        + ["--data-dir", str(run / "data"), "--out", str(tmp_path / f"{cell}.pt")]
    )
    again = torch.load(tmp_path / f"{cell}.pt", weights_only=True)
    dag = torch.load(run / f"samples/{cell}.pt", weights_only=True)
    assert torch.equal(again["x"], dag["x"]) and again["nfe"] == dag["nfe"]
    score_step.cli(
        argv
        + ["--samples", str(run / f"samples/{cell}.pt")]
        + ["--card", f"judge={run}/trained/judge/model.json"]
        + ["--reference", str(run / "reference"), "--out", str(tmp_path / "m.json")]
    )
    got = json.loads((tmp_path / "m.json").read_text())
    want = json.loads((run / f"metrics/{cell}.json").read_text())
    assert got.keys() == want.keys()
    for k, v in want.items():  # (float sums may differ in the last bits across threads)
        assert got[k] == (pytest.approx(v, rel=1e-9) if isinstance(v, float) else v)
