"""OpenWebText DiT teacher / Di4C student and their checkpoint containers (paper Sec. 5.3).

See docs/algorithm.md#dit-teacher-and-subs and docs/checkpoints.md#sdtt-hugging-face-files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from di4c.checkpoints import CheckpointFormatError, UnsafeCheckpointError
from di4c.download import MissingWeightsError, RemoteFile
from di4c.networks.dit import (
    DIT,
    MASK_INDEX,
    NEG_INF,
    DiTConfig,
    DiTDenoiser,
    dit_log_probs,
    subs_log_probs,
)
from di4c.teachers import sdtt

MANIFESTS = (
    Path(__file__).parent / "fixtures" / "manifests"
)  # copies of the reference manifests
FIXTURE = Path(__file__).parent / "fixtures" / "dit_ref.pt"
SMALL = dict(
    hidden_size=32, cond_dim=16, n_blocks=2, n_heads=2, vocab_size=50, length=12
)


def small_net(is_di4c: bool = False, seed: int = 0, **kw) -> DIT:
    """A small DIT with every weight random (adaLN and output are zero-init)."""
    torch.manual_seed(seed)
    net = DIT(DiTConfig(**{**SMALL, **kw}, is_di4c=is_di4c))
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g))
    return net.eval()


def small_batch(seed: int = 0, batch: int = 3, vocab: int = 50):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, vocab - 1, (batch, SMALL["length"]), generator=g)
    x[torch.rand(x.shape, generator=g) < 0.5] = vocab - 1
    return x


# ---------------------------------------------------------------- 1. manifests


def _manifest(name: str) -> dict:
    path = MANIFESTS / name
    if not path.is_file():
        pytest.skip(f"reference manifest not available: {path}")
    return json.loads(path.read_text())


@pytest.mark.parametrize(
    "name, is_di4c, count",
    [
        ("sdtt_dit_orig_small_teacher.json", False, 169_627_218),
        ("sdtt_dit_orig_small_di4c_student.json", True, 170_087_250),
    ],
)
def test_paper_config_matches_manifest(name, is_di4c, count):
    man = _manifest(name)
    with torch.device("meta"):
        net = DIT(DiTConfig(is_di4c=is_di4c))
    params = [(k, list(p.shape)) for k, p in net.named_parameters()]
    assert params == list(man["module_parameters"].items())
    buffers = {k: list(b.shape) for k, b in net.named_buffers()}
    assert buffers == man["module_buffers"] == {"rotary_emb.inv_freq": [32]}
    sd = net.state_dict()  # buffer interleaved in state_dict order, persistent
    assert ["backbone." + k for k in sd] == man["state_dict_keys"]
    assert sum(p.numel() for p in net.parameters()) == man["num_parameters"] == count
    assert man["config"]["vocab_size"] == net.config.vocab_size == MASK_INDEX + 1


# ------------------------------------------------ 2. equivalence with the authors


@pytest.fixture(scope="module")
def ref():
    return torch.load(FIXTURE, weights_only=True)


def _ref_net(ref, is_di4c: bool) -> DIT:
    mc = ref["model_config"]
    cfg = DiTConfig(
        hidden_size=mc["hidden_size"],
        cond_dim=mc["cond_dim"],
        n_blocks=mc["n_blocks"],
        n_heads=mc["n_heads"],
        dropout=mc["dropout"],
        length=mc["length"],
        vocab_size=ref["vocab_size"],
        is_di4c=is_di4c,
    )
    net = DIT(cfg)
    sd = {
        k: v
        for k, v in ref["state_dict"].items()
        if is_di4c or not k.startswith("latent_projection.")
    }
    net.load_state_dict(sd, strict=True)
    return net.eval()


@pytest.mark.parametrize("role", ["teacher", "student"])
def test_matches_authors_code(ref, role):
    net = _ref_net(ref, is_di4c=role == "student")
    assert net.config.mask_index == ref["mask_index"]
    with torch.no_grad():
        logits = net(ref["x"], ref["sigma"], ref["lam"])
        logp = dit_log_probs(net, ref["x"], ref["sigma"], ref["lam"])
    assert (logits - ref[f"{role}_logits"]).abs().max() < 1e-4
    assert (logp - ref[f"{role}_logp"]).abs().max() < 1e-4


def test_student_with_lambda_off_is_the_teacher(ref):
    net = _ref_net(ref, is_di4c=True)
    net.use_lambda = False
    with torch.no_grad():
        out = net(ref["x"], ref["sigma"])
    assert (out - ref["teacher_logits"]).abs().max() < 1e-4
    assert (ref["student_logits"] - ref["teacher_logits"]).abs().max() > 1e-1
    with pytest.raises(ValueError, match="is_di4c=True"):
        _ref_net(ref, is_di4c=False).use_lambda = True


def test_lambda_is_per_row_and_drawn_when_none():
    net = small_net(is_di4c=True)
    x, sigma = small_batch(), torch.zeros(3)
    lam = torch.tensor([0.1, 0.5, 0.9])
    lam2 = lam.clone()
    lam2[1] = 0.2
    with torch.no_grad():
        a, b = net(x, sigma, lam), net(x, sigma, lam2)
        torch.manual_seed(5)
        c = net(x, sigma)
        torch.manual_seed(5)
        d = net(x, sigma, torch.rand(3))
    changed = (a - b).abs().amax(dim=(1, 2))
    assert changed[1] > 1e-3 and changed[0] == 0 and changed[2] == 0
    assert torch.equal(c, d)
    with pytest.raises(ValueError, match="lam must have shape"):
        net(x, sigma, torch.rand(2))


def test_bf16_autocast_path_is_close_to_fp32():
    net = small_net(is_di4c=True)
    x, sigma, lam = small_batch(), torch.rand(3), torch.rand(3)
    with torch.no_grad():
        ref32 = net(x, sigma, lam)
        net.autocast_bf16 = True
        low = net(x, sigma, lam)
    assert low.dtype == torch.bfloat16
    rel = (low.float() - ref32).abs().max() / ref32.abs().max()
    assert torch.isfinite(low.float()).all() and rel < 0.05


# ------------------------------------------------------------------ 4. SUBS


def test_subs_properties():
    g = torch.Generator().manual_seed(0)
    logits = 5 * torch.randn(4, 9, 11, generator=g)
    x = torch.randint(0, 10, (4, 9), generator=g)
    x[torch.rand(x.shape, generator=g) < 0.5] = 10
    before = logits.clone()
    lp = subs_log_probs(logits, x, mask_index=10)
    assert torch.equal(logits, before)  # input untouched
    masked, observed = x == 10, x != 10
    # rows are normalised; the mask class has (numerically) zero probability
    assert torch.allclose(lp.exp().sum(-1), torch.ones(4, 9), atol=1e-6)
    assert lp[..., 10].max() <= NEG_INF / 2 and lp.exp()[..., 10].max() == 0
    # carry-over: log-prob 0 on the observed token, NEG_INF elsewhere
    obs = lp[observed]
    assert torch.equal(
        obs.gather(-1, x[observed][:, None]), torch.zeros(obs.shape[0], 1)
    )
    assert (obs.exp().sum(-1) == 1).all() and (
        obs == NEG_INF
    ).sum() == obs.numel() - len(obs)
    # masked positions: softmax of the logits with the mask class removed
    expect = before[..., :10].log_softmax(-1)
    assert torch.allclose(lp[masked][:, :10], expect[masked], atol=1e-5)
    with pytest.raises(ValueError, match="disagree"):
        subs_log_probs(logits, x[:, :3], mask_index=10)


def test_denoiser_adapter():
    net = small_net(is_di4c=True)
    den = DiTDenoiser(net)
    x = small_batch()
    t, lam = torch.rand(3), torch.rand(3)
    with torch.no_grad():
        out = den(x, t, lam)
        same = den(x, torch.rand(3), lam)  # time_conditioning False: t is ignored
        torch.manual_seed(3)
        drawn = den(x, t)
    assert out.shape == (3, SMALL["length"], 50) and out.dtype == torch.float32
    assert den.num_classes == 50 and den.is_mixture and den.mask_index == 49
    assert torch.equal(out, same) and not torch.equal(out, drawn)
    assert torch.allclose(out.exp().sum(-1), torch.ones(3, SMALL["length"]), atol=1e-5)
    with pytest.raises(ValueError, match="cond must be None"):
        den(x, t, lam, cond=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="t must have shape"):
        den(x, t[:2], lam)
    tc = DiTDenoiser(small_net(is_di4c=False, time_conditioning=True))
    with torch.no_grad():
        a, b = tc(x, torch.full((3,), 0.2)), tc(x, torch.full((3,), 0.8))
    assert not tc.is_mixture and not torch.equal(a, b)


# ------------------------------------------------------- 3. container round trips


def _same_weights(a: DIT, b: DIT, skip: tuple[str, ...] = ()) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa if not k.startswith(skip))


def test_safetensors_round_trip(tmp_path):
    from safetensors import safe_open

    net = small_net(is_di4c=False)
    path = sdtt.save_safetensors(net, tmp_path / "model.safetensors")
    with safe_open(str(path), "pt") as f:
        keys = set(f.keys())
    assert keys == {"backbone." + k for k in net.state_dict()}
    assert "backbone.rotary_emb.inv_freq" in keys
    cfg_json = json.loads((tmp_path / "config.json").read_text())
    assert cfg_json["model"]["n_heads"] == 2 and cfg_json["is_di4c"] is False
    ckpt = sdtt.read_checkpoint(path)
    assert ckpt.format == "safetensors" and ckpt.ema is None
    assert sdtt.infer_config(ckpt) == net.config
    teacher = sdtt.load_teacher(6, local_path=path)
    assert _same_weights(net, teacher) and not teacher.training
    assert not any(p.requires_grad for p in teacher.parameters())


def test_infer_config_from_shapes_and_from_an_authors_config(tmp_path):
    net = small_net(is_di4c=False)
    path = sdtt.save_safetensors(net, tmp_path / "model.safetensors")
    (tmp_path / "config.json").unlink()
    assert sdtt.infer_config(sdtt.read_checkpoint(path)) == net.config  # embedded
    from safetensors.torch import load_file, save_file

    save_file(load_file(path), path)  # a bare weights file: shapes + inv_freq
    bare = sdtt.infer_config(sdtt.read_checkpoint(path))
    assert bare == DiTConfig(**{**net.config.to_dict(), "length": 1024})
    full = {  # the authors' config.json: the whole training config, model.* inside
        "model": {"type": "ddit-orig", "hidden_size": 32, "cond_dim": 16}
        | {"length": 12, "n_blocks": 2, "n_heads": 2, "dropout": 0.0},
        "time_conditioning": True,
        "training": {"ema": 0.9999},
        "parameterization": {"num_distill_steps": 2},
    }
    (tmp_path / "config.json").write_text(json.dumps(full))
    cfg = sdtt.infer_config(sdtt.read_checkpoint(path))
    assert (cfg.length, cfg.dropout, cfg.time_conditioning) == (12, 0.0, True)
    want = {**net.config.to_dict(), "dropout": 0.0, "time_conditioning": True}
    assert cfg == DiTConfig(**want)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointFormatError, match="unreadable config.json"):
        sdtt.read_checkpoint(path)


@pytest.mark.parametrize("compiled", [False, True])
def test_lightning_round_trip_with_ema(tmp_path, compiled):
    net = small_net(is_di4c=True)
    shadow = [p.detach() + 1.0 for p in net.parameters()]
    ema = sdtt.ema_state(net, num_updates=7, shadow_params=shadow)
    path = sdtt.save_lightning_ckpt(
        net, tmp_path / "last.ckpt", ema=ema, compiled=compiled
    )
    raw = torch.load(path, weights_only=True)
    prefix = "backbone._orig_mod." if compiled else "backbone."
    assert list(raw["state_dict"]) == [prefix + k for k in net.state_dict()]
    assert raw["ema"]["decay"] == 0.9999 and raw["ema"]["num_updates"] == 7
    student = sdtt.load_student(local_path=path)  # raw weights by default
    assert _same_weights(net, student) and student.use_lambda and not student.training
    ema_net = sdtt.load_student(local_path=path, weights="ema")
    for (name, p), s in zip(ema_net.named_parameters(), shadow, strict=True):
        assert torch.equal(p, s), name
    assert torch.equal(ema_net.rotary_emb.inv_freq, net.rotary_emb.inv_freq)
    teacher2 = sdtt.load_di4c_teacher(path)  # round-1 student as di4c² teacher
    assert teacher2.use_lambda and _same_weights(net, teacher2)
    assert not any(p.requires_grad for p in teacher2.parameters())


def test_student_from_teacher_file(tmp_path):
    teacher = small_net(is_di4c=False, seed=3)
    path = sdtt.save_safetensors(teacher, tmp_path / "model.safetensors")
    a = sdtt.init_student(path, seed=11)
    b = sdtt.init_student(path, seed=11)
    c = sdtt.init_student(path, seed=12)
    assert a.config.is_di4c and a.use_lambda and a.training
    assert _same_weights(teacher, a, skip=("latent_projection.",))
    lp = "latent_projection.0.weight"
    assert torch.equal(a.state_dict()[lp], b.state_dict()[lp])  # seeded fresh init
    assert not torch.equal(a.state_dict()[lp], c.state_dict()[lp])
    assert a.state_dict()[lp].std() > 0
    # lambda off, the fresh student is exactly the teacher it came from
    x, sigma = small_batch(), torch.zeros(3)
    a.eval().use_lambda = False
    with torch.no_grad():
        assert torch.equal(a(x, sigma), teacher(x, sigma))
    with pytest.raises(CheckpointFormatError, match="not a Di4C student"):
        sdtt.load_student(local_path=path)


def test_wrong_family_and_damaged_files_are_named(tmp_path):
    net = small_net(is_di4c=True)
    # a MaskGIT-style file: bare keys, no backbone prefix
    mg = tmp_path / "maskgit.ckpt"
    torch.save({"state_dict": {"tok_emb.weight": torch.zeros(3, 2)}}, mg)
    with pytest.raises(CheckpointFormatError, match="no 'backbone") as e:
        sdtt.read_checkpoint(mg)
    assert str(mg) in str(e.value)
    # a tauLDR-style container: no state_dict entry
    tl = tmp_path / "tauldr.pt"
    torch.save({"model": {}, "optimizer": {}, "n_iter": 3}, tl)
    with pytest.raises(CheckpointFormatError, match="no 'state_dict'"):
        sdtt.load_student(local_path=tl)
    # backbone prefix but not a DIT
    odd = tmp_path / "odd.ckpt"
    torch.save({"state_dict": {"backbone.foo": torch.zeros(1)}}, odd)
    with pytest.raises(CheckpointFormatError, match="missing"):
        sdtt.load_student(local_path=odd)
    # a DIT of another size into this config
    other = sdtt.save_lightning_ckpt(
        small_net(True, hidden_size=64), tmp_path / "o.ckpt"
    )
    with pytest.raises(CheckpointFormatError, match="shapes do not match"):
        sdtt.load_into(net, sdtt.read_checkpoint(other))
    # truncated files of both formats
    st = sdtt.save_safetensors(net, tmp_path / "model.safetensors")
    ck = sdtt.save_lightning_ckpt(net, tmp_path / "last.ckpt")
    for path in (st, ck):
        data = path.read_bytes()
        cut = tmp_path / ("cut_" + path.name)
        cut.write_bytes(data[: len(data) // 2])
        with pytest.raises(CheckpointFormatError, match="truncated") as e:
            sdtt.read_checkpoint(cut)
        assert str(cut) in str(e.value)
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointFormatError, match="neither"):
        sdtt.read_checkpoint(empty)
    # EMA requested where the format has none
    with pytest.raises(CheckpointFormatError, match="no EMA"):
        sdtt.load_student(local_path=st, weights="ema")


def test_lightning_bookkeeping_objects_stay_inert(tmp_path, monkeypatch):
    import sys
    import types

    class DictConfig:
        def __init__(self, value):
            self.value = value

    def pickled_as(module):
        parts = module.split(".")
        for i in range(1, len(parts) + 1):  # the package and its parents
            name = ".".join(parts[:i])
            if name not in sys.modules:
                monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
        DictConfig.__module__, DictConfig.__qualname__ = module, "DictConfig"
        sys.modules[module].DictConfig = DictConfig

    net = small_net(is_di4c=True)
    path = sdtt.save_lightning_ckpt(net, tmp_path / "hp.ckpt")
    obj = torch.load(path, weights_only=True)
    obj["hyper_parameters"] = {"config": DictConfig(3)}
    pickled_as("omegaconf.dictconfig")  # an allowlisted bookkeeping class
    torch.save(obj, path)
    pickled_as("a_module_that_is_not_installed")
    torch.save(obj, tmp_path / "unknown.ckpt")
    monkeypatch.undo()
    student = sdtt.load_student(local_path=path)
    assert _same_weights(net, student)
    with pytest.raises(UnsafeCheckpointError, match="a_module_that_is_not_installed"):
        sdtt.load_student(local_path=tmp_path / "unknown.ckpt")


# -------------------------------------------------------- pinned files, offline


def test_pinned_descriptors():
    assert sdtt.sdtt_revision(6) == "baselines_kld_step_60000"
    w7, c7 = sdtt.sdtt_weights_file(7), sdtt.sdtt_config_file(7)
    assert (w7.hf_repo, w7.hf_revision, w7.hf_filename) == (
        "jdeschena/sdtt",
        "baselines_kld_step_70000",
        "model.safetensors",
    )
    assert c7.hf_filename == "config.json" and c7.hf_revision == w7.hf_revision
    z6 = sdtt.di4c2_student_file(6)
    assert (
        z6.url
        == "https://zenodo.org/records/15124163/files/sdtt6-di4c2.ckpt?download=1"
    )
    assert all(f.sha256 is None for f in (w7, c7, z6))
    assert len({w7.name, c7.name, sdtt.sdtt_weights_file(6).name}) == 3
    with pytest.raises(ValueError, match="round must be one of"):
        sdtt.sdtt_revision(5)


def test_offline_fetch_names_the_config_key(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    monkeypatch.setenv("DI4C_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(
        MissingWeightsError, match="openwebtext.paper.models.sdtt7.local"
    ):
        sdtt.load_teacher(7)
    dead = RemoteFile(
        name="sdtt6-di4c2.ckpt",
        url="http://127.0.0.1:9/x",
        config_key=sdtt.di4c2_student_file(6).config_key,
    )
    with pytest.raises(
        MissingWeightsError, match="openwebtext.paper.models.sdtt6_di4c2.local"
    ):
        sdtt.load_student(6, remote=dead)
    with pytest.raises(MissingWeightsError, match="does not exist"):
        sdtt.load_student(6, local_path=tmp_path / "nowhere.ckpt")
