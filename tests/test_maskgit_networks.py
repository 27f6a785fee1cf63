"""MaskGIT transformer / Di4C student / VQGAN: layout, equivalence, containers.

- Layout: paper-config networks built on the meta device have exactly the keys,
  order, shapes and parameter counts of the reference manifests.
- Equivalence: the fixtures ``tests/fixtures/maskgit_ref.pt`` and ``vqgan_ref.pt``
  hold small-config weights, inputs and outputs of the AUTHORS' MaskTransformer
  and VQModel (eval mode; produced out of tree). Our networks must reproduce
  them (logits / images to 1e-4, code indices exactly).
- Containers: our writers produce the authors' formats, loaders read them back
  exactly, and wrong/truncated/missing files fail with clear errors.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch
import yaml

from di4c.artifacts import sha256_file
from di4c.checkpoints import (
    NETWORK_KEY,
    CheckpointFormatError,
    UnsafeCheckpointError,
)
from di4c.denoiser import Denoiser
from di4c.download import MissingWeightsError, RemoteFile
from di4c.networks.maskgit import (
    PAPER_STUDENT_CONFIG,
    PAPER_TEACHER_CONFIG,
    MaskGITConfig,
    MaskGITDenoiser,
    MaskTransformer,
    sinusoidal_embedding,
)
from di4c.networks.vqgan import PAPER_VQGAN_CONFIG, VQGANConfig, VQModel
from di4c.teachers import maskgit as mg

MANIFESTS = (
    Path(__file__).parent / "fixtures" / "manifests"
)  # copies of the reference manifests
FIXTURES = Path(__file__).parent / "fixtures"
TOL = 1e-4

SMALL = MaskGITConfig(
    img_size=64,
    hidden_dim=32,
    codebook_size=16,
    depth=2,
    heads=2,
    mlp_dim=64,
    nclass=10,
)
SMALL_VQ = VQGANConfig(
    embed_dim=4,
    n_embed=8,
    ch=32,
    ch_mult=(1, 1),
    num_res_blocks=1,
    attn_resolutions=(16,),
    resolution=32,
    z_channels=4,
)


def _unpack(packed: dict) -> dict[str, torch.Tensor]:
    """Fixture weights are int8 * 2**e per tensor (exact in float32)."""
    return {k: q.float() * 2.0**e for k, (q, e) in packed.items()}


def _maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


# ------------------------------------------------------------------ manifests
def _manifest(name: str) -> dict:
    path = MANIFESTS / name
    if not path.is_file():
        pytest.skip(f"reference manifest not available: {path}")
    return json.loads(path.read_text())


@pytest.mark.parametrize(
    "name, build",
    [
        (
            "maskgit_imagenet256_teacher.json",
            lambda: MaskTransformer(PAPER_TEACHER_CONFIG),
        ),
        (
            "maskgit_imagenet256_di4c_student.json",
            lambda: MaskTransformer(PAPER_STUDENT_CONFIG),
        ),
        ("maskgit_vqgan_f16_1024.json", lambda: VQModel(PAPER_VQGAN_CONFIG)),
    ],
)
def test_paper_config_matches_manifest(name, build):
    ref = _manifest(name)
    with torch.device("meta"):
        net = build()
    sd = net.state_dict()
    assert list(sd) == ref["state_dict_keys"]
    assert [(k, list(v.shape)) for k, v in net.named_parameters()] == [
        (k, v) for k, v in ref["parameters"].items()
    ]
    assert dict(net.named_buffers()) == {} == ref["buffers"]
    assert sum(p.numel() for p in net.parameters()) == ref["num_parameters"]


def test_manifest_configs_build_the_paper_networks():
    t = _manifest("maskgit_imagenet256_teacher.json")["config"]
    s = _manifest("maskgit_imagenet256_di4c_student.json")["config"]
    v = _manifest("maskgit_vqgan_f16_1024.json")["config"]
    assert MaskGITConfig.from_dict(t) == PAPER_TEACHER_CONFIG
    assert MaskGITConfig.from_dict(s) == PAPER_STUDENT_CONFIG
    # the manifest config has the shape of a model.yaml's model.params
    assert VQGANConfig.from_params(v) == PAPER_VQGAN_CONFIG
    assert PAPER_TEACHER_CONFIG.vocab_size == 2026
    assert PAPER_TEACHER_CONFIG.num_tokens == 256
    assert PAPER_TEACHER_CONFIG.num_out_classes == 1025
    assert PAPER_VQGAN_CONFIG.grid == 16


# ------------------------------------------------------------------ equivalence
@pytest.fixture(scope="module")
def tref():
    return torch.load(FIXTURES / "maskgit_ref.pt", weights_only=True)


@pytest.fixture(scope="module")
def vref():
    return torch.load(FIXTURES / "vqgan_ref.pt", weights_only=True)


def _ref_net(tref, student: bool) -> MaskTransformer:
    cfg = MaskGITConfig(**tref["config"], is_student=student)
    net = MaskTransformer(cfg).eval()
    key = "student" if student else "teacher"
    assert list(net.state_dict()) == tref[f"{key}_keys"]
    net.load_state_dict(_unpack(tref[f"{key}_state"]), strict=True)
    return net


def test_teacher_matches_authors(tref):
    net = _ref_net(tref, student=False)
    with torch.no_grad():
        out = net(tref["tokens"], tref["labels"], tref["drop_label"])
    assert out.shape == (6, 16, 17)  # 4x4 tokens, codebook 16 + mask class
    assert _maxdiff(out, tref["teacher_logits"]) < TOL


def test_student_matches_authors_with_and_without_lambda(tref):
    net = _ref_net(tref, student=True)
    with torch.no_grad():
        out = net(tref["tokens"], tref["labels"], tref["drop_label"], tref["z"])
        out_flat = net(
            tref["tokens"].reshape(6, 16),
            tref["labels"],
            tref["drop_label"],
            tref["z"][:, 0],
        )
        out_nolam = net(tref["tokens"], tref["labels"], tref["drop_label"])
    assert _maxdiff(out, tref["student_logits"]) < TOL
    assert _maxdiff(out_flat, tref["student_logits"]) < TOL
    assert _maxdiff(out_nolam, tref["student_logits_no_lambda"]) < TOL
    # the lambda token changes the prediction
    assert _maxdiff(out, out_nolam) > 1e-2


def test_lambda_features_match_authors(tref):
    feats = sinusoidal_embedding(tref["z"].view(-1) * 1000.0, 128)
    assert _maxdiff(feats, tref["lambda_features"]) < 1e-5


def test_vqgan_matches_authors(vref):
    cfg = VQGANConfig.from_params(vref["params"])
    net = VQModel(cfg).eval()
    assert list(net.state_dict()) == vref["keys"]
    net.load_state_dict(_unpack(vref["state"]), strict=True)
    with torch.no_grad():
        idx = net.encode(vref["x"])
        grid = net.encode_grid(vref["x"])
        rec = net.decode_code(vref["indices"].view(2, 16, 16))
        rnd = net.decode_code(vref["codes_random"])
    assert idx.shape == (2 * 16 * 16,)
    assert torch.equal(idx, vref["indices"])
    assert torch.equal(grid, vref["indices"].view(2, 16, 16))
    assert _maxdiff(rec, vref["decoded"]) < TOL
    assert _maxdiff(rnd, vref["decoded_random"]) < TOL


# ------------------------------------------------------------------ network API
def test_network_argument_errors():
    torch.manual_seed(0)
    teacher, student = (
        MaskTransformer(SMALL).eval(),
        MaskTransformer(SMALL.as_student()),
    )
    tok = torch.full((2, 16), 16)
    y = torch.tensor([1, 2])
    with pytest.raises(ValueError, match="lam was given"):
        teacher(tok, y, None, torch.rand(2))
    with pytest.raises(ValueError, match="16 tokens"):
        teacher(torch.zeros(2, 15, dtype=torch.long), y)
    with pytest.raises(ValueError, match="lam must have shape"):
        student(tok, y, None, torch.rand(2, 3))
    with pytest.raises(ValueError, match="heads"):
        MaskGITConfig(hidden_dim=30, heads=4)
    with pytest.raises(ValueError, match="multiple of 32"):
        VQGANConfig(ch=8)


def test_drop_label_equals_null_label():
    torch.manual_seed(0)
    net = MaskTransformer(SMALL).eval()
    tok = torch.randint(0, 17, (3, 4, 4))
    y = torch.tensor([3, 4, 5])
    drop = torch.tensor([True, False, True])
    with torch.no_grad():
        a = net(tok, y, drop)
        b = net(tok, torch.where(drop, torch.tensor(SMALL.null_label), y))
    assert torch.equal(a, b)


# ------------------------------------------------------------------ containers
def _small_teacher(seed=0) -> MaskTransformer:
    torch.manual_seed(seed)
    net = MaskTransformer(SMALL)
    with torch.no_grad():
        net.bias.normal_()  # make every tensor non-trivial
    return net.eval()


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module, skip: str = "~"):
    sa, sb = a.state_dict(), b.state_dict()
    for k, v in sa.items():
        if not k.startswith(skip):
            assert torch.equal(v, sb[k]), k


def test_transformer_pth_roundtrip(tmp_path):
    net = _small_teacher()
    path = mg.save_transformer_checkpoint(
        tmp_path / "t.pth", net, iter=7, global_epoch=3
    )
    raw = torch.load(path, weights_only=True)
    assert list(raw) == [  # the authors' four entries, plus our network config
        "iter",
        "global_epoch",
        "model_state_dict",
        "optimizer_state_dict",
        NETWORK_KEY,
    ]
    assert raw[NETWORK_KEY] == SMALL.to_dict()
    assert list(raw["model_state_dict"]) == list(net.state_dict())
    assert set(raw["optimizer_state_dict"]) == {"state", "param_groups"}
    ck = mg.read_transformer_checkpoint(path)
    assert (ck.iter, ck.global_epoch, ck.is_student) == (7, 3, False)
    back = mg.teacher_from_checkpoint(path, SMALL)
    _assert_same_weights(net, back)
    assert not back.training
    # the loader: a file path, a folder holding the published file name, a mapping
    path.rename(tmp_path / "MaskGIT_ImageNet_256.pth")
    for local in (tmp_path / "MaskGIT_ImageNet_256.pth", tmp_path):
        _assert_same_weights(net, mg.load_teacher(local, config=SMALL))
    local = {mg.CONFIG_KEY_TEACHER: tmp_path / "MaskGIT_ImageNet_256.pth"}
    _assert_same_weights(net, mg.load_teacher(local, config=SMALL))


def test_student_pth_roundtrip_and_loader(tmp_path):
    torch.manual_seed(1)
    student = MaskTransformer(SMALL.as_student()).eval()
    path = mg.save_transformer_checkpoint(tmp_path / "current.pth", student, iter=10000)
    back = mg.student_from_checkpoint(path, SMALL)
    _assert_same_weights(student, back)
    # folder + current.pth (the authors' resume convention) and mapping forms
    for local in (tmp_path, path, {mg.CONFIG_KEY_STUDENT: path}):
        _assert_same_weights(student, mg.load_student(local, config=SMALL))


def test_student_init_from_teacher(tmp_path):
    teacher = _small_teacher()
    path = mg.save_transformer_checkpoint(tmp_path / "t.pth", teacher)
    s1 = mg.init_student_from_teacher(path, SMALL, seed=5)
    s2 = mg.init_student_from_teacher(path, SMALL, seed=5)
    s3 = mg.init_student_from_teacher(path, SMALL, seed=6)
    _assert_same_weights(teacher, s1)  # every teacher tensor copied
    lp = [k for k in s1.state_dict() if k.startswith("latent_projection.")]
    assert len(lp) == 4
    sd1, sd2, sd3 = s1.state_dict(), s2.state_dict(), s3.state_dict()
    for k in lp:
        assert sd1[k].abs().sum() > 0  # random, not zero-initialised
        assert torch.equal(sd1[k], sd2[k]) and not torch.equal(sd1[k], sd3[k])
    tok, y = torch.randint(0, 17, (2, 16)), torch.tensor([0, 9])
    with torch.no_grad():
        t_out = teacher(tok, y)
        assert torch.equal(s1(tok, y), t_out)  # no lambda token: the teacher
        assert _maxdiff(s1(tok, y, None, torch.rand(2)), t_out) > 1e-3  # perturbed


def test_vqgan_ckpt_and_yaml_roundtrip(tmp_path):
    torch.manual_seed(0)
    net = VQModel(SMALL_VQ).eval()
    loss = {"loss.discriminator.main.0.weight": torch.randn(4, 3, 4, 4)}
    mg.save_vqgan_checkpoint(
        tmp_path / "last.ckpt", net, global_step=5, extra_state=loss
    )
    mg.write_vqgan_yaml(tmp_path / "model.yaml", SMALL_VQ)
    raw = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert "loss.discriminator.main.0.weight" in raw["state_dict"]
    assert raw["global_step"] == 5
    params = mg.read_vqgan_yaml(tmp_path / "model.yaml")
    assert set(params) >= {"embed_dim", "n_embed", "ddconfig", "lossconfig"}
    assert VQGANConfig.from_params(params) == SMALL_VQ
    for local in (
        tmp_path,
        {
            mg.CONFIG_KEY_VQGAN_CKPT: tmp_path / "last.ckpt",
            mg.CONFIG_KEY_VQGAN_YAML: tmp_path / "model.yaml",
        },
    ):
        back = mg.load_vqgan(local)
        _assert_same_weights(net, back)
        assert not back.training
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(back.encode(x), net.encode(x))


def test_lightning_ckpt_with_objects_of_uninstalled_packages(tmp_path, monkeypatch):
    """Real Lightning files pickle callback classes / configs; only state_dict
    is needed, so bookkeeping classes of packages that are not installed are
    read as inert placeholders, and a class of an unknown package is refused."""
    import sys
    import types

    class ModelCheckpoint:
        pass

    class DictConfig:
        def __init__(self, d):
            self.d = d

    def pickled_as(cls, module):
        parts = module.split(".")
        for i in range(1, len(parts) + 1):  # the package and its parents
            name = ".".join(parts[:i])
            if name not in sys.modules:
                monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
        cls.__module__, cls.__qualname__ = module, cls.__name__
        setattr(sys.modules[module], cls.__name__, cls)

    pickled_as(ModelCheckpoint, "pytorch_lightning.callbacks.model_checkpoint")
    pickled_as(DictConfig, "omegaconf.dictconfig")
    torch.manual_seed(0)
    net = VQModel(SMALL_VQ)
    ckpt = {
        "epoch": 3,
        "callbacks": {ModelCheckpoint: {"best_model_score": torch.tensor(0.5)}},
        "hyper_parameters": DictConfig({"lr": 4.5e-6}),
        "state_dict": net.state_dict(),
    }
    torch.save(ckpt, tmp_path / "last.ckpt")
    pickled_as(DictConfig, "fake_lightning_pkg")
    torch.save(ckpt, tmp_path / "other.ckpt")
    monkeypatch.undo()
    sd = mg.read_vqgan_checkpoint(tmp_path / "last.ckpt")
    assert all(torch.equal(sd[k], v) for k, v in net.state_dict().items())
    with pytest.raises(UnsafeCheckpointError, match=r"other\.ckpt.*fake_lightning_pkg"):
        mg.read_vqgan_checkpoint(tmp_path / "other.ckpt")


def test_vqgan_yaml_of_taming_form(tmp_path):
    """A taming-style model.yaml (target, base_learning_rate, lossconfig)."""
    cfg = _manifest("maskgit_vqgan_f16_1024.json")["config"]
    doc = {
        "model": {
            "base_learning_rate": 4.5e-6,
            "target": "taming.models.vqgan.VQModel",
            "params": cfg,
        }
    }
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(doc))
    params = mg.read_vqgan_yaml(tmp_path / "model.yaml")
    assert VQGANConfig.from_params(params) == PAPER_VQGAN_CONFIG
    doc["model"]["target"] = "taming.models.vqgan.GumbelVQ"
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(CheckpointFormatError, match="g.yaml.*GumbelVQ"):
        mg.read_vqgan_yaml(tmp_path / "g.yaml")


def test_wrong_family_truncated_and_mismatched_files(tmp_path):
    teacher = _small_teacher()
    t_path = mg.save_transformer_checkpoint(tmp_path / "t.pth", teacher)
    s_path = mg.save_transformer_checkpoint(
        tmp_path / "s.pth", MaskTransformer(SMALL.as_student())
    )
    v_path = mg.save_vqgan_checkpoint(tmp_path / "last.ckpt", VQModel(SMALL_VQ))
    E = CheckpointFormatError
    with pytest.raises(E, match=r"last\.ckpt.*model_state_dict.*Lightning"):
        mg.teacher_from_checkpoint(v_path, SMALL)
    with pytest.raises(E, match=r"t\.pth.*no 'state_dict'.*MaskGIT transformer"):
        mg.vqgan_from_files(t_path, config=SMALL_VQ)
    with pytest.raises(E, match=r"s\.pth.*Di4C student"):
        mg.teacher_from_checkpoint(s_path, SMALL)
    with pytest.raises(E, match=r"t\.pth.*teacher file"):
        mg.student_from_checkpoint(t_path, SMALL)
    _assert_same_weights(teacher, mg.teacher_from_checkpoint(t_path))  # embedded
    bare = torch.load(t_path, weights_only=True)  # as a file of the authors' code
    del bare[NETWORK_KEY]
    torch.save(bare, tmp_path / "bare.pth")
    with pytest.raises(
        E, match=r"bare\.pth: no network configuration was given .*shapes do not match"
    ):
        mg.teacher_from_checkpoint(tmp_path / "bare.pth")  # paper config assumed
    with pytest.raises(E, match=r"last\.ckpt.*shapes do not match"):
        mg.vqgan_from_files(v_path, config=dataclasses.replace(SMALL_VQ, n_embed=9))
    trunc = tmp_path / "trunc.pth"
    trunc.write_bytes(t_path.read_bytes()[: t_path.stat().st_size // 2])
    with pytest.raises(E, match=r"trunc\.pth.*truncated or corrupt"):
        mg.read_transformer_checkpoint(trunc)
    other = tmp_path / "other.pth"
    torch.save({"model_state_dict": {"w": torch.zeros(1)}}, other)
    with pytest.raises(E, match=r"other\.pth.*not a MaskTransformer state_dict"):
        mg.read_transformer_checkpoint(other)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        mg.read_transformer_checkpoint(tmp_path / "nope.pth")
    with pytest.raises(MissingWeightsError, match=mg.CONFIG_KEY_TEACHER):
        mg.load_teacher(tmp_path / "nope.pth")


def test_offline_fetch_names_config_key(tmp_path, monkeypatch):
    monkeypatch.setenv("DI4C_CACHE_DIR", str(tmp_path / "cache"))
    dead = dict(url="http://127.0.0.1:9/x")
    with pytest.raises(MissingWeightsError, match=mg.CONFIG_KEY_TEACHER):
        mg.load_teacher(
            remote=RemoteFile(name="t", config_key=mg.CONFIG_KEY_TEACHER, **dead)
        )
    with pytest.raises(MissingWeightsError, match=mg.CONFIG_KEY_STUDENT):
        mg.load_student(
            remote=RemoteFile(name="s", config_key=mg.CONFIG_KEY_STUDENT, **dead)
        )
    with pytest.raises(MissingWeightsError, match=mg.CONFIG_KEY_VQGAN_YAML):
        mg.load_vqgan(
            remote_yaml=RemoteFile(
                name="y", config_key=mg.CONFIG_KEY_VQGAN_YAML, **dead
            )
        )


def _config_has(dotted: str) -> bool:
    """Whether a config key named by an error exists in the resolved ImageNet config."""
    from di4c.config import DEFAULT_CONFIG, load_config, resolve

    setting, scale, *path = dotted.split(".")
    node = resolve(load_config(DEFAULT_CONFIG), setting, scale)
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def test_fetch_step_local_copies_kinds_and_config_keys(tmp_path, monkeypatch, capsys):
    """The fetch step: local copies are checked and named by their model cards; a
    file of the wrong family or kind fails at the fetch, naming the config key."""
    from di4c.cli import fetch as fetch_step
    from di4c.models import read_card

    monkeypatch.setenv("DI4C_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "src"
    src.mkdir()
    # ImageNet's 1000 classes and the paper's 16 heads: what the shapes do not give
    small = dataclasses.replace(SMALL, nclass=1000, heads=16)
    torch.manual_seed(0)
    teacher = MaskTransformer(small).eval()
    torch.manual_seed(1)
    student = MaskTransformer(small.as_student()).eval()
    t = mg.save_transformer_checkpoint(src / "MaskGIT_ImageNet_256.pth", teacher)
    s = mg.save_transformer_checkpoint(src / "maskgit-di4c-d.pth", student)
    ck = mg.save_vqgan_checkpoint(src / "last.ckpt", VQModel(SMALL_VQ).eval())
    ym = mg.write_vqgan_yaml(src / "model.yaml", SMALL_VQ)
    local = {
        "models.teacher.local": t,
        "models.released.local": s,
        "models.vq.local_ckpt": ck,
        "models.vq.local_yaml": ym,
        "hf_revision": "abc123",
    }

    def fetch(model, **over):
        sets = [f"{k}={v}" for k, v in (local | over).items()]
        fetch_step.cli(
            ["--setting", "imagenet", "--scale", "paper", "--model", model]
            + [a for x in sets for a in ("--set", x)]
            + ["--out-dir", str(tmp_path / "fetched" / model)]
        )
        return read_card(tmp_path / "fetched" / model)

    def refused(model, pattern, **over):
        with pytest.raises(SystemExit) as e:
            fetch(model, **over)
        err = capsys.readouterr().err.strip().splitlines()
        assert e.value.code == 1 and len(err) == 1, err
        assert re.search(pattern, err[0]), err[0]

    cards = {m: fetch(m) for m in ("teacher", "released", "vq")}
    assert [cards[m].kind for m in cards] == ["product", "mixture", "tokenizer"]
    for m, role, f in [
        ("teacher", "weights", t),
        ("released", "weights", s),
        ("vq", "weights", ck),
        ("vq", "config", ym),
    ]:
        assert cards[m].path(role) == f.resolve()
        assert cards[m].sha256[role] == sha256_file(f)
    # the fetched cards carry the network read off the files
    assert cards["teacher"].network == small.to_dict()
    assert cards["released"].network == small.as_student().to_dict()
    assert cards["vq"].network is None
    _assert_same_weights(student, mg.load_student(cards["released"].path()))
    assert not (tmp_path / "cache").exists()  # local copies are used in place
    # a missing local copy names the workflow config key
    key = r"imagenet\.paper\.models\.released\.local"
    refused("released", key, **{"models.released.local": src / "no.pth"})
    # a file of the wrong family or kind fails at the fetch step, not hours later
    refused("vq", r"ImageNet_256\.pth: not a VQGAN", **{"models.vq.local_ckpt": t})
    refused("teacher", r"expected a product checkpoint.*models\.teacher\.local",
            **{"models.teacher.local": s})  # fmt: skip
    refused("released", r"expected a mixture checkpoint.*models\.released\.local",
            **{"models.released.local": t})  # fmt: skip
    # every key an error names is a key of the workflow config
    for k in (mg.CONFIG_KEY_TEACHER, mg.CONFIG_KEY_STUDENT, mg.CONFIG_KEY_VQGAN_CKPT,
              mg.CONFIG_KEY_VQGAN_YAML, mg.CONFIG_KEY_HF_REVISION):  # fmt: skip
        assert _config_has(k), k
    # revisions: default untouched, another one gets its own cache name; URLs keep
    assert mg.at_revision(mg.TEACHER_FILE, mg.HF_REVISION) is mg.TEACHER_FILE
    r = mg.at_revision(mg.VQGAN_CKPT_FILE, "0123abcd")
    assert r.hf_revision == "0123abcd" and r.name != mg.VQGAN_CKPT_FILE.name
    assert mg.at_revision(mg.STUDENT_FILE, "0123abcd") is mg.STUDENT_FILE
    with pytest.raises(ValueError, match=mg.CONFIG_KEY_HF_REVISION):
        mg.at_revision(mg.TEACHER_FILE, "main; rm -rf")


def test_pinned_descriptors():
    for rf, fname in [
        (mg.TEACHER_FILE, "pretrained_maskgit/MaskGIT/MaskGIT_ImageNet_256.pth"),
        (mg.VQGAN_CKPT_FILE, "pretrained_maskgit/VQGAN/last.ckpt"),
        (mg.VQGAN_YAML_FILE, "pretrained_maskgit/VQGAN/model.yaml"),
    ]:
        assert (rf.hf_repo, rf.hf_filename) == ("llvictorll/Maskgit-pytorch", fname)
        assert rf.hf_revision == mg.HF_REVISION and rf.sha256 is None
    assert mg.STUDENT_FILE.url == (
        "https://zenodo.org/records/15124163/files/maskgit-di4c-d.pth?download=1"
    )
    assert mg.STUDENT_FILE.sha256 is None
    names = [f.name for f in (mg.TEACHER_FILE, mg.VQGAN_CKPT_FILE, mg.VQGAN_YAML_FILE)]
    assert len({*names, mg.STUDENT_FILE.name}) == 4  # distinct cache files


# ------------------------------------------------------------------ denoiser
def test_denoiser_adapter():
    torch.manual_seed(0)
    teacher = MaskTransformer(SMALL).eval()
    student = MaskTransformer(SMALL.as_student()).eval()
    dt, ds = MaskGITDenoiser(teacher), MaskGITDenoiser(student)
    assert isinstance(dt, Denoiser) and isinstance(ds, Denoiser)
    assert (dt.num_classes, dt.mask_id, dt.null_label) == (17, 16, 10)
    assert (dt.is_mixture, ds.is_mixture) == (False, True)
    x = torch.randint(0, 17, (3, 16))
    y = torch.tensor([0, 10, 4])  # 10 = unconditional
    lam = torch.rand(3)
    with torch.no_grad():
        lp = dt(x, torch.rand(3), None, y)
        assert lp.shape == (3, 16, 17)
        assert torch.allclose(lp.logsumexp(-1), torch.zeros(3, 16), atol=1e-5)
        assert torch.equal(lp, dt(x, torch.rand(3), lam, y))  # t and lam unused
        drop = torch.tensor([False, True, False])
        ref = teacher(x, y.clamp(max=9), drop).log_softmax(-1)
        assert _maxdiff(lp, ref) < 1e-6
        # student: explicit lambda is deterministic, None draws a fresh one
        a = ds(x, torch.zeros(3), lam, y)
        assert torch.equal(a, ds(x, torch.zeros(3), lam, y))
        assert not torch.equal(a, ds(x, torch.zeros(3), None, y))
        # CFG pair: one batched pass, same lambda in both halves
        lc, lu = ds.cfg_logits(x, y, lam)
        assert _maxdiff(lc, student(x, y.clamp(max=9), y == 10, lam)) < 1e-5
        assert (
            _maxdiff(
                lu,
                student(x, torch.zeros_like(y), torch.ones(3, dtype=torch.bool), lam),
            )
            < 1e-5
        )
        g = ds.guided_logits(x, y, 2.0, lam)
        assert _maxdiff(g, 3 * lc - 2 * lu) < 1e-5
        un = dt(x, torch.zeros(3), None, None)
        assert _maxdiff(un, dt(x, torch.zeros(3), None, torch.full((3,), 10))) < 1e-6
    with pytest.raises(ValueError, match="cond labels"):
        dt(x, torch.zeros(3), None, torch.tensor([0, 11, 1]))
    with pytest.raises(ValueError, match="t must have shape"):
        dt(x, torch.zeros(2), None, y)


@pytest.mark.parametrize(
    "name, want",
    [
        ("maskgit_imagenet256_teacher.json", PAPER_TEACHER_CONFIG),
        ("maskgit_imagenet256_di4c_student.json", PAPER_STUDENT_CONFIG),
    ],
)
def test_config_read_off_the_published_shapes(name, want):
    """The authors' key/shape manifests give back the paper network config."""
    shapes = _manifest(name)["parameters"]
    sd = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    assert mg.config_from_state_dict(sd) == want


@pytest.mark.parametrize("student", [False, True])
def test_config_read_off_a_reduced_file(tmp_path, student):
    """A file of another depth, width, grid and codebook (1000 classes) loads without
    a config: every shape-given field is recovered; heads come from the paper."""
    cfg = MaskGITConfig(img_size=32, hidden_dim=32, codebook_size=7, depth=3,
                        heads=16, mlp_dim=48, is_student=student,
                        latent_feature_dim=8 if student else 128)  # fmt: skip
    torch.manual_seed(0)
    net = MaskTransformer(cfg)
    path = mg.save_transformer_checkpoint(tmp_path / "r.pth", net)
    assert mg.read_transformer_checkpoint(path).config == cfg
    load = mg.student_from_checkpoint if student else mg.teacher_from_checkpoint
    back = load(path)
    assert back.config == cfg
    for k, v in net.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
