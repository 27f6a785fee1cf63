"""OpenWebText scoring path (docs/method.md#openwebtext-evaluation): judge loading, score CLI, MAUVE option.

A randomly initialised GPT-2 with the real GPT-2 vocabulary (50,257 tokens) stands
in for GPT-2 Large: it is saved as a local Hugging Face folder, registered by the
fetch CLI's ``--local`` path and loaded back through the pointer file, exactly
as the paper-scale ``score_paper`` rule does offline.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from di4c.cli import openwebtext_common as owc
from di4c.cli import openwebtext_fetch, openwebtext_score
from di4c.download import MissingWeightsError
from di4c.metrics.entropy import entropy_summary
from di4c.metrics.genppl import MissingJudgeError, load_judge, per_sample_nll
from di4c.metrics.mauve import compute_mauve, featurize
from di4c.networks.mini_text import build_judge, judge_config

GPT2_VOCAB = 50257
L = 12


@pytest.fixture(scope="module")
def judge_dir(tmp_path_factory):
    """A random GPT-2-vocabulary causal LM saved as a local HF model folder."""
    folder = tmp_path_factory.mktemp("judge") / "gpt2-random"
    model = build_judge(
        judge_config(GPT2_VOCAB, 16, n_embd=8, n_layer=1, n_head=2), seed=7
    )
    model.save_pretrained(folder)
    return folder


def _ids(seed: int, n: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, GPT2_VOCAB, (n, L), generator=g)


def test_load_judge_local_folder_and_missing_one(judge_dir, tmp_path):
    model = load_judge(judge_dir)
    assert not model.training and model.config.vocab_size == GPT2_VOCAB
    assert next(model.parameters()).dtype == torch.float32
    with pytest.raises(MissingJudgeError, match="openwebtext.paper.local.judge"):
        load_judge(tmp_path / "no_such_judge")
    with pytest.raises(MissingWeightsError, match="no config.json"):
        openwebtext_fetch.main(
            ["judge", "--local", str(tmp_path), "--out", str(tmp_path / "j.json")]
        )


def test_score_cli_through_pointer_with_mauve(judge_dir, tmp_path):
    pointer = tmp_path / "judge.json"
    openwebtext_fetch.main(["judge", "--local", str(judge_dir), "--out", str(pointer)])
    assert json.loads(pointer.read_text())["path"] == str(judge_dir.resolve())
    ids, ref_ids = _ids(0), _ids(1)
    seeds = list(range(100, 106))
    samples = owc.write_samples(
        tmp_path / "m_steps4.pt", ids, seeds, model="m", steps=4, noise_dtype="float64"
    )
    ref = owc.write_samples(tmp_path / "data_steps0.pt", ref_ids, seeds, model="data")
    out = tmp_path / "metrics.json"
    openwebtext_score.main(
        [
            "--samples",
            str(samples),
            "--judge",
            str(pointer),
            "--out",
            str(out),
            "--batch-size",
            "4",
            "--device",
            "cpu",
            "--mauve",
            "true",
            "--mauve-reference",
            str(ref),
            "--mauve-max-len",
            "8",
        ]
    )
    (rec,) = json.loads(out.read_text())
    judge = load_judge(judge_dir)
    nll = per_sample_nll(judge, ids, batch_size=6)
    assert rec["model"] == "m" and rec["steps"] == 4 and rec["n_samples"] == 6
    assert rec["gen_ppl"] == pytest.approx(math.exp(float(nll.mean())), rel=1e-6)
    assert rec["entropy"] == pytest.approx(entropy_summary(ids)["entropy"])
    assert len(rec["mauve_values"]) == 5 and 0.0 <= rec["mauve"] <= 1.0
    assert rec["mauve"] == pytest.approx(float(np.mean(rec["mauve_values"])))
    assert (tmp_path / "metrics.meta.json").is_file()
    with pytest.raises(SystemExit):  # --mauve true needs a reference sample file
        openwebtext_score.main(
            ["--samples", str(samples), "--judge", str(pointer), "--out", str(out)]
            + ["--mauve", "true"]
        )


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
    assert far["mauve"] < 0.1 and len(far["mauve_values"]) == 5
    with pytest.raises(ValueError, match="at least 2"):
        compute_mauve(p[:1], p)
