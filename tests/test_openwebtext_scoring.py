"""OpenWebText scoring and paper-scale models (paper Sec. 5.3; sony/di4c
sdtt/src/sdtt/run_eval.py): the fetch step on local copies in the published formats,
the judge (trained or fetched HF folder), the reference and score steps with their
bootstrap noise and the optional MAUVE, and the refusal of too few samples.

A randomly initialised GPT-2 with the real GPT-2 vocabulary (50,257 tokens) stands in
for GPT-2 Large, saved as a Hugging Face folder and registered by the fetch step
exactly as the paper-scale DAG registers a local copy offline.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from di4c.artifacts import save_torch, write_json
from di4c.cli import fetch as fetch_step
from di4c.cli import judge as judge_step
from di4c.cli import reference as reference_step
from di4c.cli import score as score_step
from di4c.cli import table as table_step
from di4c.config import DEFAULT_CONFIG, deep_merge, load_config, resolve
from di4c.metrics.counts import InsufficientSamplesError
from di4c.metrics.entropy import entropy_summary, unigram_entropy
from di4c.metrics.genppl import (
    MissingJudgeError,
    genppl_summary,
    load_judge,
    per_sample_nll,
)
from di4c.metrics.mauve import compute_mauve, featurize
from di4c.metrics.scoring import BOOTSTRAP_SEED, bootstrap_sd, text_record
from di4c.models import read_card
from di4c.networks.dit import DIT
from di4c.networks.mini_text import build_judge, judge_config, mini_denoiser_config
from di4c.settings.base import Cell
from di4c.settings.openwebtext import OpenWebText
from di4c.teachers.sdtt import ema_state, save_lightning_ckpt, save_safetensors

ROOT = Path(__file__).resolve().parent.parent
SMOKE_LAYERS = [DEFAULT_CONFIG, ROOT / "workflows/config/smoke.yaml"]
OWT = OpenWebText()
GPT2_VOCAB = 50257
L = 12


def owt_cfg(scale: str, over: dict | None = None) -> dict:
    layers = SMOKE_LAYERS if scale == "smoke" else [DEFAULT_CONFIG]
    return deep_merge(resolve(load_config(layers), "openwebtext", scale), over)


def step_argv(scale: str, cfg: dict) -> list[str]:
    return ["--setting", "openwebtext", "--scale", scale, "--config", json.dumps(cfg)]


def one_line_error(capsys, call) -> str:
    """Run a step expected to fail: exit 1, no traceback, one ``error: ...`` line."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        call()
    assert e.value.code == 1
    err = capsys.readouterr().err  # (transformers may print progress bars before)
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and err.count("error: ") == 1, err
    return last


@pytest.fixture(scope="module")
def judge_dir(tmp_path_factory):
    """A random GPT-2-vocabulary causal LM saved as a local HF model folder."""
    folder = tmp_path_factory.mktemp("judge") / "gpt2-random"
    model = build_judge(
        judge_config(GPT2_VOCAB, 16, n_embd=8, n_layer=1, n_head=2), seed=7
    )
    model.save_pretrained(folder)
    return folder


def _ids(seed: int, n: int = 6, high: int = GPT2_VOCAB) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, high, (n, L), generator=g)


def fetch(tmp_path, model: str, local, scale="paper") -> Path:
    """The fetch step at paper scale with ``models.<model>.local`` set; the card's folder."""
    cfg = owt_cfg(scale, {"models": {model: {"local": str(local)}}})
    out = tmp_path / "fetched" / model
    fetch_step.cli(step_argv(scale, cfg) + ["--model", model, "--out-dir", str(out)])
    return out


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def random_dit(is_di4c: bool, seed: int) -> DIT:
    torch.manual_seed(seed)
    net = DIT(mini_denoiser_config(11, 8, 16, 1, 2, 8, is_di4c=is_di4c))
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g))
    return net


# ------------------------------------------------------------------ paper-scale fetch


def with_hparams(path: Path, monkeypatch) -> None:
    """Add Lightning's ``hyper_parameters`` to a checkpoint: an OmegaConf
    ``DictConfig`` (pickled under its real module name; omegaconf need not be
    installed), which the loader keeps inert."""
    import sys
    import types

    class DictConfig:
        def __init__(self, content):
            self._content = content

    with monkeypatch.context() as m:
        for name in ("omegaconf", "omegaconf.dictconfig"):
            if name not in sys.modules:
                m.setitem(sys.modules, name, types.ModuleType(name))
        DictConfig.__module__, DictConfig.__qualname__ = (
            "omegaconf.dictconfig",
            "DictConfig",
        )
        m.setattr(
            sys.modules["omegaconf.dictconfig"], "DictConfig", DictConfig, raising=False
        )
        obj = torch.load(path, weights_only=True)
        obj["hyper_parameters"] = {"config": DictConfig({"lr": 3e-5})}
        torch.save(obj, path)


def test_fetch_sdtt_and_released_files_from_local_copies(tmp_path, capsys, monkeypatch):
    """SDTT teachers as HF ``model.safetensors`` (+ the ``config.json`` beside it, or
    its shapes alone) and a released di4c^2 student as the authors' Lightning file
    (``backbone._orig_mod.`` keys, ``ema`` entry): each card loads the same weights."""
    teacher = random_dit(False, 0)
    save_safetensors(teacher, tmp_path / "sdtt6" / "model.safetensors")
    card = read_card(fetch(tmp_path, "sdtt6", tmp_path / "sdtt6" / "model.safetensors"))
    assert card.kind == "product" and card.source == "published"
    assert set(card.files) == {"weights", "config"} and card.network is None
    assert card.path("config") == (tmp_path / "sdtt6" / "config.json").resolve()
    assert same_weights(OWT.load_net(card, "cpu"), teacher)

    save_safetensors(
        teacher, tmp_path / "bare" / "model.safetensors", write_config=False
    )
    bare = read_card(fetch(tmp_path, "sdtt7", tmp_path / "bare" / "model.safetensors"))
    assert set(bare.files) == {"weights"}  # the network is read from the shapes
    assert same_weights(OWT.load_net(bare, "cpu"), teacher)

    student = random_dit(True, 3)
    shadow = [p.detach() + 1.0 for p in student.parameters()]
    ema = ema_state(student, decay=0.9999, num_updates=5, shadow_params=shadow)
    path = tmp_path / "zenodo" / "sdtt6-di4c2.ckpt"
    save_lightning_ckpt(student, path, ema=ema, compiled=True, global_step=70000)
    with_hparams(path, monkeypatch)  # as Lightning writes it: pickled OmegaConf
    released = read_card(fetch(tmp_path, "sdtt6_di4c2", path))
    assert released.kind == "mixture" and released.source == "released"
    raw = OWT.load_net(released, "cpu")
    assert same_weights(raw, student) and raw.use_lambda
    got = [p for p in OWT.load_net(released, "cpu", "ema").parameters()]
    assert all(torch.equal(a, b) for a, b in zip(got, shadow))
    meta = json.loads((tmp_path / "fetched/sdtt6_di4c2/model.json").read_text())
    assert meta["sha256"]["weights"] == released.sha256["weights"]
    assert meta["provenance"]["config"]["local"] == str(path)

    # a missing local copy: one line naming the key, no card
    err = one_line_error(
        capsys, lambda: fetch(tmp_path, "sdtt7_di4c2", tmp_path / "no.ckpt")
    )
    assert "openwebtext.paper.models.sdtt7_di4c2.local" in err
    assert not (tmp_path / "fetched/sdtt7_di4c2/model.json").exists()


def test_offline_fetch_names_the_config_key(tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants as hf_constants

    monkeypatch.setenv("DI4C_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    cfg = owt_cfg("paper")
    for model in ("sdtt7", "judge"):
        out = tmp_path / model
        argv = step_argv("paper", cfg) + ["--model", model, "--out-dir", str(out)]
        err = one_line_error(capsys, lambda argv=argv: fetch_step.cli(argv))
        assert f"openwebtext.paper.models.{model}.local" in err and "offline" in err
        assert not (out / "model.json").exists()


def test_fetch_judge_folder_and_load_it(judge_dir, tmp_path, capsys):
    card = read_card(fetch(tmp_path, "judge", judge_dir))
    assert card.kind == "judge" and card.extra["hf_name"] == "gpt2-large"
    assert card.path() == (judge_dir / "model.safetensors").resolve()
    model = OWT._judge({"judge": card}, "cpu")
    assert not model.training and model.config.vocab_size == GPT2_VOCAB
    assert next(model.parameters()).dtype == torch.float32
    assert same_weights(model, load_judge(judge_dir))
    for missing in ("model.safetensors", "config.json"):
        partial = tmp_path / f"no_{missing}"
        partial.mkdir()
        for f in judge_dir.iterdir():
            if f.name != missing:
                (partial / f.name).write_bytes(f.read_bytes())
        err = one_line_error(capsys, lambda p=partial: fetch(tmp_path, "judge", p))
        assert f"no {missing}" in err and "openwebtext.paper.models.judge.local" in err
    with pytest.raises(MissingJudgeError, match="openwebtext.paper.models.judge.local"):
        load_judge(tmp_path / "no_such_judge")


def test_judge_step_trains_a_loadable_hf_folder(tmp_path):
    """The mini twin's judge: a GPT-2-architecture LM saved as an HF folder, trained on
    the judge texts only; its card records the reference perplexity it reaches."""
    g = torch.Generator().manual_seed(0)

    def cyclic(n):  # character i + 1 follows character i: learnable in a few steps
        return (torch.randint(0, 9, (n, 1), generator=g) + torch.arange(10)) % 9

    data = {
        "judge": cyclic(40),
        "reference": cyclic(12),
        "train": torch.randint(0, 9, (8, 10), generator=g),
        "vocab": "abcdefghi",
    }
    save_torch(tmp_path / "data" / "data.pt", data)
    write_json(tmp_path / "data" / "data.json", {"setting": "openwebtext"})
    train = {"iters": 8, "lr": 0.01, "warmup_steps": 0}
    cfg = owt_cfg("smoke", {"models": {"judge": {"train": train}}})
    out = tmp_path / "judge"
    argv = ["--scale", "smoke", "--config", json.dumps(cfg)]  # the setting is fixed
    argv += ["--data-dir", str(tmp_path / "data")]
    judge_step.cli(argv + ["--out-dir", str(out)])
    card = read_card(out)
    assert card.kind == "judge" and card.source == "train"
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == [
        "config.json",
        "model.json",
        "model.safetensors",
    ]
    model = OWT._judge({"judge": card}, "cpu")
    n = cfg["models"]["judge"]["network"]
    assert model.config.vocab_size == 9 and model.config.n_embd == n["n_embd"]
    nll = per_sample_nll(model, data["reference"], batch_size=5)
    assert card.extra["reference_ppl"] == pytest.approx(
        math.exp(float(nll.mean())), rel=1e-5
    )
    assert card.extra["reference_ppl"] < 7  # it learnt the cycle (uniform: 9)


# ------------------------------------------------------------------ noise of a cell


def test_text_record_bootstrap_matches_enumeration():
    """Gen PPL = exp(mean NLL), entropy = mean entropy; their sds are the bootstrap sd
    over resampled samples, checked against all 27 resamples of 3 samples."""
    nll = torch.tensor([2.0, 3.0, 3.5], dtype=torch.float64)
    ent = torch.tensor([1.0, 1.5, 2.5], dtype=torch.float64)
    rec = text_record(nll, ent, bootstrap=4000)
    assert rec["gen_ppl"] == pytest.approx(math.exp(17 / 6), rel=1e-12)
    assert rec["entropy"] == pytest.approx(5 / 3, rel=1e-12)
    assert rec["nll"] == pytest.approx(17 / 6) and rec["num_samples"] == 3
    exact = {"gen_ppl": [], "entropy": []}
    for idx in itertools.product(range(3), repeat=3):
        i = list(idx)
        exact["gen_ppl"].append(math.exp(float(nll[i].mean())))
        exact["entropy"].append(float(ent[i].mean()))
    for k, vals in exact.items():
        assert rec[f"{k}_sd"] == pytest.approx(float(np.std(vals)), rel=0.04), k
    # the same resamples every time, and no sd from fewer than 2 of anything
    assert text_record(nll, ent, bootstrap=4000) == rec
    assert set(text_record(nll, ent, bootstrap=1)) == {
        "gen_ppl",
        "entropy",
        "nll",
        "num_samples",
    }
    const = text_record(torch.full((5,), 2.0), torch.full((5,), 1.0), bootstrap=20)
    assert const["gen_ppl_sd"] == 0.0 and const["entropy_sd"] == 0.0
    assert bootstrap_sd(lambda i: {"x": 1.0}, 1, 50, BOOTSTRAP_SEED) == {}
    with pytest.raises(ValueError, match="one NLL and one entropy"):
        text_record(nll, ent[:2], bootstrap=10)


# ------------------------------------------------------------------ reference and score


def write_sample_file(path: Path, ids: torch.Tensor, cell: Cell) -> Path:
    """A sample file in the sample step's format."""
    n = ids.shape[0]
    save_torch(
        path,
        {
            "x": ids.to(torch.int32),
            "seeds": torch.arange(100, 100 + n),
            "cell": cell.record(),
            "models": [cell.model] * cell.steps,
            "nfe": float(cell.steps),
            "cond": None,
            "shape": [ids.shape[1]],
        },
    )
    return path


@pytest.fixture
def scored_run(judge_dir, tmp_path):
    """Reference split of GPT-2 ids, a fetched judge, and a step runner."""
    ref_ids = _ids(1, n=8)
    save_torch(tmp_path / "data" / "data.pt", {"reference": ref_ids, "vocab": "gpt2"})
    judge = fetch(tmp_path, "judge", judge_dir)
    cfg = owt_cfg(
        "paper",
        {
            "sample": {"num_samples": 8},
            "metrics": {
                "protocol": "smoke",
                "batch_size": 4,
                "mauve": True,
                "mauve_max_len": 8,
                "bootstrap": 50,
            },
        },
    )

    def reference(cfg=cfg):
        reference_step.cli(
            step_argv("paper", cfg)
            + ["--data-dir", str(tmp_path / "data"), "--card", f"judge={judge}"]
            + ["--out-dir", str(tmp_path / "reference")]
        )

    def score(cell: Cell, ids, cfg=cfg):
        samples = write_sample_file(tmp_path / "samples" / f"{cell.id}.pt", ids, cell)
        out = tmp_path / "metrics" / f"{cell.id}.json"
        score_step.cli(
            step_argv("paper", cfg)
            + ["--samples", str(samples), "--card", f"judge={judge}"]
            + ["--reference", str(tmp_path / "reference"), "--out", str(out)]
        )
        return json.loads(out.read_text()), out

    return {"cfg": cfg, "ref_ids": ref_ids, "reference": reference, "score": score}


def test_reference_and_score_steps_with_mauve(scored_run, judge_dir, tmp_path):
    """Gen PPL with the first token unscored, unigram entropy, bootstrap sds and MAUVE
    against the reference text, end to end through the steps and the table."""
    run = scored_run
    run["reference"]()
    judge = load_judge(judge_dir)
    ref_ids = run["ref_ids"]
    feats = torch.load(tmp_path / "reference/features.pt", weights_only=True)
    assert feats["mauve"].shape == (8, 8)
    idx = torch.randperm(8, generator=torch.Generator().manual_seed(0))  # its subset
    want = featurize(judge, ref_ids[idx], 8)
    assert np.allclose(feats["mauve"].numpy(), want, atol=1e-5)
    (row,) = json.loads((tmp_path / "reference/rows.json").read_text())
    assert row["model"] == "data" and row["steps"] == 0 and row["num_samples"] == 8
    ref_nll = per_sample_nll(judge, ref_ids, batch_size=8)
    assert row["gen_ppl"] == pytest.approx(math.exp(float(ref_nll.mean())), rel=1e-6)
    assert 0.0 <= row["mauve"] <= 1.0  # real text against itself (8 points: not 1)

    ids = _ids(0, n=6, high=20)  # repeated tokens: entropies differ between samples
    rec, out = run["score"](Cell("sdtt6", 4, noise="fp64"), ids)
    nll = per_sample_nll(judge, ids, batch_size=6)
    assert rec["cell"] == "sdtt6_n4_fp64" and rec["noise"] == "fp64"
    assert rec["model"] == "sdtt6" and rec["steps"] == 4 and rec["nfe"] == 4.0
    assert rec["num_samples"] == 6 and rec["setting"] == "openwebtext"
    assert rec["nll"] == pytest.approx(float(nll.mean()), rel=1e-6)
    assert rec["gen_ppl"] == pytest.approx(math.exp(float(nll.mean())), rel=1e-6)
    assert rec["entropy"] == pytest.approx(float(unigram_entropy(ids).mean()))
    want = text_record(nll, unigram_entropy(ids), 50)
    for k in ("gen_ppl_sd", "entropy_sd"):
        assert rec[k] == pytest.approx(want[k], rel=1e-5) and rec[k] > 0
    assert 0.0 <= rec["mauve"] <= 1.0 and rec["mauve_sd"] >= 0.0  # over 5 seeds
    want = compute_mauve(featurize(judge, ids, 8, 4), feats["mauve"].numpy())
    assert (rec["mauve"], rec["mauve_sd"]) == pytest.approx(
        (want["mauve"], want["mauve_sd"]), abs=1e-6
    )
    assert out.with_name(out.stem + ".meta.json").is_file()

    rec2, out2 = run["score"](Cell("sdtt6_di4c", 2, noise="fp64"), ids[:4])
    argv = ["--setting", "openwebtext", "--scale", "paper"]
    argv += ["--metrics", str(out), str(out2)]
    argv += ["--rows", str(tmp_path / "reference/rows.json")]
    argv += ["--teacher-of", json.dumps({"sdtt6_di4c": "sdtt6"})]
    table_step.main(argv + ["--out", str(tmp_path / "t.csv")])
    rows = {r["model"]: r for r in csv.DictReader(open(tmp_path / "t.csv"))}
    assert set(rows) == {"sdtt6", "sdtt6_di4c", "data"}
    assert float(rows["sdtt6"]["mauve"]) == pytest.approx(rec["mauve"], rel=1e-5)
    assert float(rows["sdtt6_di4c"]["mauve"]) == pytest.approx(rec2["mauve"], rel=1e-5)
    assert rows["sdtt6_di4c"]["teacher"] == "sdtt6"


def test_mauve_needs_its_reference_features(scored_run, capsys):
    run = scored_run
    run["reference"](deep_merge(run["cfg"], {"metrics": {"mauve": False}}))
    err = one_line_error(
        capsys, lambda: run["score"](Cell("sdtt6", 4, noise="fp64"), _ids(0))
    )
    assert "rerun the reference rule with metrics.mauve: true" in err


@pytest.mark.parametrize("protocol, n, need", [("mini", 6, 256), ("smoke", 1, 2)])
def test_score_step_refuses_too_few_samples(
    scored_run, tmp_path, capsys, protocol, n, need
):
    """Too few sequences for the protocol: InsufficientSamplesError as one line and
    exit 1, no metric record (never a record with NaN metrics)."""
    run = scored_run
    run["reference"]()
    cfg = deep_merge(run["cfg"], {"metrics": {"protocol": protocol, "mauve": False}})
    cell = Cell("sdtt6", 4, noise="fp64")
    err = one_line_error(capsys, lambda: run["score"](cell, _ids(0, n=n), cfg))
    assert (
        f"{n} generated sequences, but the {protocol} protocol needs >= {need}" in err
    )
    assert "sample.num_samples" in err
    assert not (tmp_path / "metrics" / f"{cell.id}.json").exists()


def test_mauve_features_and_known_extremes(judge_dir):
    judge = load_judge(judge_dir)
    ids = _ids(2, n=5)
    feats = featurize(judge, ids, max_len=8, batch_size=2)
    with torch.no_grad():
        want = judge(ids[:, :8], output_hidden_states=True).hidden_states[-1][:, -1]
    assert feats.shape == (5, 8) and np.allclose(feats, want.numpy(), atol=1e-5)
    later = ids.clone()
    later[:, 8:] = (later[:, 8:] + 1) % GPT2_VOCAB  # tokens past max_len are ignored
    assert np.allclose(featurize(judge, later, max_len=8), feats, atol=1e-6)

    rng = np.random.default_rng(0)
    p = rng.normal(size=(60, 4)).astype(np.float32)
    same = compute_mauve(p, p.copy())
    assert same["mauve"] == pytest.approx(1.0, abs=1e-6)
    far = compute_mauve(p, p + 100.0)
    assert same["mauve_sd"] == pytest.approx(0.0, abs=1e-9)
    assert far["mauve"] < 0.1 and far["mauve_sd"] >= 0.0
    with pytest.raises(InsufficientSamplesError, match="1 generated feature vectors"):
        compute_mauve(p[:1], p)


@pytest.mark.parametrize("n", [0, 1])
def test_text_metrics_of_too_few_sequences_are_refused_never_nan(n):
    """Issue 13 item 3: 0 or 1 sequences give InsufficientSamplesError (the rule of
    the image metrics), not a NaN gen_ppl or standard error; 2 give finite values."""
    ids = torch.arange(3 * 5).view(3, 5) % 4
    nll = torch.tensor([2.0, 3.0, 2.5], dtype=torch.float64)
    calls = {
        "text_record": lambda k: text_record(nll[:k], unigram_entropy(ids[:k]), 3),
        "genppl_summary": lambda k: genppl_summary(nll[:k]),
        "entropy_summary": lambda k: entropy_summary(ids[:k]),
    }
    for name, call in calls.items():
        with pytest.raises(InsufficientSamplesError) as info:
            call(n)
        assert f"{n} generated sequences, but the requested protocol needs >= 2" in str(
            info.value
        ), name
        record = call(2)
        assert all(math.isfinite(v) for v in record.values() if isinstance(v, float)), (
            name,
            record,
        )
    with pytest.raises(
        InsufficientSamplesError, match="the mini protocol needs >= 256"
    ):
        text_record(nll, unigram_entropy(ids), 3, 256, "mini")
