"""tauLDR UNet teacher / Di4C student and their checkpoint containers (paper Sec. 5.1).

See docs/algorithm.md#tauldr-unet-teacher and docs/checkpoints.md#tauldr-checkpoint.

The fixture ``tests/fixtures/tauldr_ref.pt`` was computed with the authors'
code (Di4C ``tauldr/lib/networks/networks.py`` and ``lib/models/models.py``) on
small configs with random weights: their containers (raw weights + a distinct
EMA shadow list), inputs, eval-mode logits (EMA weights) and train-mode trunk
outputs under a fixed seed (raw weights, dropout on). It also carries the
paper-config key/shape lists of the reference manifests.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch

from di4c.checkpoints import NETWORK_KEY, CheckpointFormatError
from di4c.download import MissingWeightsError, RemoteFile, fetch
from di4c.networks.tauldr_unet import TauLDRDenoiser, TauLDRUNet, TauLDRUNetConfig
from di4c.teachers import tauldr as tl

FIXTURE = Path(__file__).parent / "fixtures" / "tauldr_ref.pt"
MANIFESTS = (
    Path(__file__).parent / "fixtures" / "manifests"
)  # copies of the reference manifests
TOL = 1e-4
PROB_TOL = 1e-5  # bin probabilities exp(logits): well-conditioned
LOGIT_TOL = 0.05  # far-tail logits: log of a ~1e-6 bin mass amplifies kernel rounding
CASES = ["teacher_s256", "student_s256", "teacher_s17", "student_s17"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """The networks here are tiny: intra-op threads only add overhead."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def ref():
    return torch.load(FIXTURE, map_location="cpu", weights_only=True)


def _cfg(case) -> TauLDRUNetConfig:
    return TauLDRUNetConfig(**case["config"])


def _write(obj, path: Path) -> Path:
    torch.save(obj, path)
    return path


def _bare_raw(case) -> dict[str, torch.Tensor]:
    if "state_dict" in case:
        return case["state_dict"]
    model = case["container"]["model"]
    return {
        k.replace("net.module.", "").replace("net.", "", 1): v
        for k, v in model.items()
        if k.startswith("net.")
    }


def _bare_ema(case) -> dict[str, torch.Tensor]:
    raw = _bare_raw(case)
    if "state_dict" in case:
        return raw
    return dict(zip(raw, case["container"]["model"]["ema_shadow_params"], strict=True))


def _assert_logits_close(got: torch.Tensor, want: torch.Tensor) -> None:
    """The head's bin probabilities match tightly, its logits loosely.

    A logit is the log of a truncated-logistic bin mass (paper Sec. 5.1 teacher);
    where that mass is ~1e-6 a rounding change of the CPU kernels (e.g.
    ``ATEN_CPU_CAPABILITY=default``) moves the logit by ~1e-2 while the probability
    moves by ~1e-6, so the well-conditioned comparison is in probability space.
    """
    assert got.shape == want.shape
    assert (got.exp() - want.exp()).abs().max() < PROB_TOL
    assert (got - want).abs().max() < LOGIT_TOL


def _net(cfg, weights) -> TauLDRUNet:
    net = TauLDRUNet(cfg)
    net.load_state_dict(weights, strict=True)
    return net


def _randomize_(net: TauLDRUNet, seed: int) -> TauLDRUNet:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
    return net


# ----------------------------------------------------------------------------------
# 1. Paper configs: key names, order and shapes of the manifests
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,cfg,count",
    [
        ("teacher", TauLDRUNetConfig.paper_teacher(), 35_749_766),
        ("di4c_student", TauLDRUNetConfig.paper_student(), 39_066_630),
    ],
)
def test_paper_config_matches_manifest(ref, name, cfg, count):
    with torch.device("meta"):
        net = TauLDRUNet(cfg)
    got = [(k, tuple(v.shape)) for k, v in net.state_dict().items()]
    man = ref["manifest"][name]
    assert got == list(zip(man["keys"], man["shapes"], strict=True))
    assert man["buffers"] == [] and list(net.buffers()) == []
    assert [k for k, _ in net.named_parameters()] == man["keys"]  # EMA list order
    assert sum(p.numel() for p in net.parameters()) == count == man["num_parameters"]
    json_path = MANIFESTS / f"tauldr_cifar10_{name}.json"
    if json_path.is_file():  # the fixture copy must equal the shared manifest
        j = json.loads(json_path.read_text())
        assert got == [(k, tuple(v)) for k, v in j["module_parameters"].items()]
        assert j["module_buffers"] == {}


# ----------------------------------------------------------------------------------
# 2. Same function as the authors' code
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_eval_logits_match_authors(ref, name):
    case = ref[name]
    net = _net(_cfg(case), _bare_ema(case)).eval()
    x, t, lam = case["x"], case["t"], case.get("lam")
    with torch.no_grad():
        logits = net(x, t, lam)
        feats = net.features(x, t, lam)
        logits4 = net(x.view(x.shape[0], *net.config.image_shape), t, lam)
    _assert_logits_close(logits, case["eval_logits"])
    assert (feats - case["eval_features"]).abs().max() < TOL
    assert torch.equal(logits4.reshape(logits.shape), logits)
    if lam is not None:  # (B,) and (B, 1) lambdas are the same input
        with torch.no_grad():
            assert torch.equal(net(x, t, lam.view(-1)), logits)


@pytest.mark.parametrize("name", CASES)
def test_train_mode_dropout_matches_authors(ref, name):
    case = ref[name]
    net = _net(_cfg(case), _bare_raw(case)).train()
    x = case["x"].view(case["x"].shape[0], *net.config.image_shape)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(case["train_features_seed"])
        feats = net.features(x, case["t"], case.get("lam"))
        eval_feats = net.eval().features(x, case["t"], case.get("lam"))
    assert (feats - case["train_features"]).abs().max() < TOL
    assert (feats - eval_feats).abs().max() > 1e-3  # dropout really was active


def test_fix_logistic_head_matches_authors(ref):
    case = ref["teacher_s17"]
    cfg = TauLDRUNetConfig(**case["config"], fix_logistic=True)
    net = _net(cfg, _bare_raw(case)).eval()
    with torch.no_grad():
        logits = net(case["x"], case["t"])
    _assert_logits_close(logits, case["eval_logits_fix_logistic"])


def test_head_mass_telescopes(ref):
    """sum_k exp(logit_k) = sig((1-mu)s) - sig((-1-mu)s) + 1e-6 sum_k sig(right_k s).

    The head is a logistic truncated to [-1, 1] without renormalisation; each bin
    is exp(a) (1 - exp(b - a) + 1e-6) = sig(right) - sig(left) + 1e-6 sig(right).
    """
    case = ref["teacher_s256"]
    net = _net(_cfg(case), _bare_ema(case)).eval()
    with torch.no_grad():
        total = net(case["x"], case["t"]).double().exp().sum(-1)
        feats = net.features(case["x"], case["t"]).double()
    c, S = net.config.input_channels, net.config.S
    mu, s = feats[:, :c].flatten(1), torch.exp(2 - feats[:, c:]).flatten(1)
    right = torch.linspace(-1 + 2 / S, 1, S, dtype=torch.float64)
    expect = (
        torch.sigmoid((1 - mu) * s)
        - torch.sigmoid((-1 - mu) * s)
        + 1e-6 * torch.sigmoid((right - mu[..., None]) * s[..., None]).sum(-1)
    )
    assert (total - expect).abs().max() < 1e-5
    assert total.min() < 0.9  # truncation mass really is missing somewhere


# ----------------------------------------------------------------------------------
# 3. Containers
# ----------------------------------------------------------------------------------


def test_teacher_container_loads_ema_and_raw(ref, tmp_path):
    case = ref["teacher_s256"]
    path = _write(case["container"], tmp_path / "ckpt_0001999999.pt")
    ckpt = tl.read_checkpoint(path)
    assert ckpt.distributed and not ckpt.is_student and ckpt.n_iter == 4321
    assert ckpt.ema_num_updates == 1234 and ckpt.ema_decay == pytest.approx(0.9999)
    cfg = _cfg(case)
    teacher = tl.load_teacher_file(path, config=cfg)
    assert not teacher.training
    assert not any(p.requires_grad for p in teacher.parameters())
    ema, raw = _bare_ema(case), _bare_raw(case)
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, ema[k]), k
    assert any(not torch.equal(ema[k], raw[k]) for k in raw)  # EMA really differs
    teacher_raw = tl.load_teacher_file(path, config=cfg, weights="raw")
    for k, v in teacher_raw.state_dict().items():
        assert torch.equal(v, raw[k]), k
    # load_teacher with a local copy goes through fetch and gives the same net
    via_fetch = tl.load_teacher(path, config=cfg)
    assert all(
        torch.equal(a, b)
        for a, b in zip(via_fetch.parameters(), teacher.parameters(), strict=True)
    )


def test_student_container_from_authors_loads_ema(ref, tmp_path):
    case = ref["student_s256"]
    path = _write(case["container"], tmp_path / "tldr-di4c.pt")
    student = tl.load_student(path, config=_cfg(case))
    assert student.is_mixture and not student.training
    ema = _bare_ema(case)
    for k, v in student.state_dict().items():
        assert torch.equal(v, ema[k]), k
    with torch.no_grad():
        logits = student(case["x"], case["t"], case["lam"])
    _assert_logits_close(logits, case["eval_logits"])


@pytest.mark.parametrize("weights", ["raw", "ema"])
def test_init_student_from_teacher_file(ref, tmp_path, weights):
    case = ref["teacher_s256"]
    path = _write(case["container"], tmp_path / "teacher.pt")
    student = tl.init_student(path, config=_cfg(case), weights=weights, seed=0)
    assert student.is_mixture and student.training
    src = _bare_raw(case) if weights == "raw" else _bare_ema(case)
    sd = student.state_dict()
    fresh = tl.student_only_keys(list(sd))
    assert set(sd) - set(fresh) == set(src)
    for k in src:
        assert torch.equal(sd[k], src[k]), k
    dense1 = [k for k in fresh if ".dense1." in k]
    assert dense1 and all(torch.count_nonzero(sd[k]) == 0 for k in dense1)
    lam_w = [k for k in fresh if ".dense1." not in k and k.endswith("weight")]
    assert lam_w and all(sd[k].abs().sum() > 0 for k in lam_w)  # fresh, not zero
    again = tl.init_student(path, config=_cfg(case), weights=weights, seed=0)
    assert all(torch.equal(sd[k], again.state_dict()[k]) for k in sd)


def test_student_round_trip_exact(ref, tmp_path):
    cfg = _cfg(ref["student_s17"])
    net = _randomize_(TauLDRUNet(cfg), seed=1)
    ema = [p.detach() + 0.01 * (i + 1) for i, p in enumerate(net.parameters())]
    for distributed in (False, True):
        path = tl.save_checkpoint(
            net,
            tmp_path / f"ckpt_{distributed}.pt",
            ema_params=ema,
            ema_num_updates=7,
            n_iter=11,
            distributed=distributed,
        )
        raw_obj = torch.load(path, weights_only=True)
        # the authors' three entries, plus the network configuration (ours only)
        assert list(raw_obj) == ["model", "optimizer", "n_iter", NETWORK_KEY]
        assert raw_obj[NETWORK_KEY] == cfg.to_dict()
        prefix = "net.module." if distributed else "net."
        keys = [prefix + k for k in net.state_dict()] + list(tl.EMA_KEYS)
        assert list(raw_obj["model"]) == keys
        assert len(raw_obj["model"]["ema_shadow_params"]) == len(ema)
        assert set(raw_obj["optimizer"]) == {"state", "param_groups"}
        back_ema = tl.load_student_file(path, config=cfg)
        back_raw = tl.load_student_file(path, config=cfg, weights="raw")
        names = [k for k, _ in net.named_parameters()]
        for k, p, e in zip(names, net.parameters(), ema, strict=True):
            assert torch.equal(back_raw.state_dict()[k], p.detach()), k
            assert torch.equal(back_ema.state_dict()[k], e), k
        alone = tl.load_student_file(path)  # no config given: the embedded one
        assert alone.config == cfg and all(
            torch.equal(v, back_ema.state_dict()[k])
            for k, v in alone.state_dict().items()
        )
        ckpt = tl.read_checkpoint(path)
        assert (ckpt.n_iter, ckpt.ema_num_updates, ckpt.distributed) == (
            11,
            7,
            distributed,
        )


def test_dropbox_folder_zip_is_unpacked(ref, tmp_path):
    case = ref["teacher_s17"]
    net = _net(_cfg(case), case["state_dict"])
    ckpt = tl.save_checkpoint(net, tmp_path / "inner.pt")
    archive = tmp_path / "folder.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(ckpt, "cifar10/ckpt_0001999999.pt")
        zf.writestr("cifar10/config_001.yaml", "model: {}\n")
    teacher = tl.load_teacher(archive, config=_cfg(case))
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, case["state_dict"][k]), k


# ----------------------------------------------------------------------------------
# Errors name the file and the problem
# ----------------------------------------------------------------------------------


def test_wrong_family_errors(ref, tmp_path):
    t_case, s_case = ref["teacher_s256"], ref["student_s256"]
    teacher = _write(t_case["container"], tmp_path / "teacher.pt")
    student = _write(s_case["container"], tmp_path / "student.pt")
    with pytest.raises(CheckpointFormatError, match="teacher.pt.*teacher"):
        tl.load_student_file(teacher, config=_cfg(t_case))
    with pytest.raises(CheckpointFormatError, match="student.pt.*Di4C student"):
        tl.load_teacher_file(student, config=_cfg(s_case))
    with pytest.raises(CheckpointFormatError, match="already a Di4C student"):
        tl.init_student(student, config=_cfg(s_case))
    other = _write(
        {"model_state_dict": {"tok_emb.weight": torch.zeros(2)}}, tmp_path / "m.pth"
    )
    with pytest.raises(CheckpointFormatError, match="m.pth.*not a tauLDR checkpoint"):
        tl.load_teacher_file(other)
    sdtt = _write({"model": {"backbone.x": torch.zeros(2)}}, tmp_path / "dit.pt")
    with pytest.raises(CheckpointFormatError, match="dit.pt.*not a tauLDR"):
        tl.read_checkpoint(sdtt)
    with pytest.raises(CheckpointFormatError, match="shapes do not match.*input_conv"):
        tl.load_teacher_file(
            teacher, config=TauLDRUNetConfig(**t_case["config"] | {"ch": 8})
        )


def test_truncated_and_misaligned_files(ref, tmp_path):
    good = _write(ref["teacher_s256"]["container"], tmp_path / "good.pt")
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointFormatError, match="cut.pt.*truncated"):
        tl.read_checkpoint(cut)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointFormatError, match="empty.pt.*empty"):
        tl.read_checkpoint(empty)
    container = ref["teacher_s256"]["container"]
    model = dict(container["model"])
    model["ema_shadow_params"] = model["ema_shadow_params"][1:]
    short = _write(dict(container, model=model), tmp_path / "short.pt")
    with pytest.raises(CheckpointFormatError, match="short.pt.*ema_shadow_params"):
        tl.read_checkpoint(short)


def test_offline_fetch_names_config_key(tmp_path, monkeypatch):
    monkeypatch.setenv("DI4C_CACHE_DIR", str(tmp_path / "cache"))
    key = tl.TAULDR_TEACHER_FILE.config_key
    dead = RemoteFile(
        name="teacher.zip", url="http://127.0.0.1:9/nothing", config_key=key
    )
    with pytest.raises(MissingWeightsError, match=key):
        fetch(dead, retries=1)
    with pytest.raises(MissingWeightsError, match=key):
        tl.load_teacher(remote=dead)
    with pytest.raises(MissingWeightsError, match=tl.DI4C_STUDENT_FILE.config_key):
        tl.load_student(tmp_path / "not_there.pt")
    # the published files are pinned without invented checksums
    assert tl.DI4C_STUDENT_FILE.sha256 is None and tl.TAULDR_TEACHER_FILE.sha256 is None
    assert "records/15124163/files/tldr-di4c.pt" in tl.DI4C_STUDENT_FILE.url


# ----------------------------------------------------------------------------------
# 4. Zero-initialised dense1: a fresh student equals its source for every lambda
# ----------------------------------------------------------------------------------


def test_fresh_student_equals_teacher_for_any_lambda(ref, tmp_path):
    case = ref["teacher_s256"]
    path = _write(case["container"], tmp_path / "teacher.pt")
    teacher = tl.load_teacher_file(path, config=_cfg(case), weights="raw")
    student = tl.init_student(path, config=_cfg(case), seed=3).eval()
    x, t = case["x"], case["t"]
    with torch.no_grad():
        ref_logits = teacher(x, t)
        for lam in (torch.zeros(2), torch.tensor([0.3, 0.9]), torch.rand(2, 1)):
            assert (student(x, t, lam) - ref_logits).abs().max() < 1e-5
        # ... and the lambda path is live once dense1 is non-zero
        for m in student.modules():
            if hasattr(m, "dense1"):
                m.dense1.weight.normal_()
        assert (
            student(x, t, torch.zeros(2)) - student(x, t, torch.ones(2))
        ).abs().max() > 1e-3


# ----------------------------------------------------------------------------------
# Denoiser adapter and input validation
# ----------------------------------------------------------------------------------


def test_denoiser_adapter(ref):
    t_case, s_case = ref["teacher_s17"], ref["student_s17"]
    teacher = TauLDRDenoiser(_net(_cfg(t_case), t_case["state_dict"]).eval())
    student = TauLDRDenoiser(_net(_cfg(s_case), s_case["state_dict"]).eval())
    x, t = t_case["x"], t_case["t"]
    assert (teacher.num_classes, teacher.is_mixture, student.is_mixture) == (
        17,
        False,
        True,
    )
    with torch.no_grad():
        lp = teacher(x, t)
        assert lp.shape == (3, 64, 17)
        assert torch.allclose(lp.logsumexp(-1), torch.zeros(3, 64), atol=1e-5)
        assert torch.equal(teacher(x, t, torch.rand(3)), lp)  # a teacher ignores lam
        lam = s_case["lam"].view(-1)
        s_lp = student(x, t, lam)
        assert torch.allclose(
            s_lp, torch.log_softmax(student.net(x, t, lam), -1), atol=0, rtol=0
        )
        torch.manual_seed(0)
        a = student(x, t)
        torch.manual_seed(0)
        b = student(x, t)
        c = student(x, t)
    assert torch.equal(a, b) and not torch.equal(a, c)  # fresh lam per call
    with pytest.raises(ValueError, match="cond"):
        teacher(x, t, cond=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="lam"):
        student(x, t, torch.rand(2))


def test_input_validation_names_the_argument(ref):
    case = ref["student_s17"]
    net = _net(_cfg(case), case["state_dict"]).eval()
    x, t, lam = case["x"], case["t"], case["lam"]
    with pytest.raises(ValueError, match="S = 17"):
        net(x + 17, t, lam)
    with pytest.raises(ValueError, match="x must be an integer"):
        net(x.float(), t, lam)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 64\)"):
        net(x[:, :10], t, lam)
    with pytest.raises(ValueError, match="times must have shape"):
        net(x, t[:2], lam)
    with pytest.raises(ValueError, match="lam is required"):
        net(x, t)
    with pytest.raises(ValueError, match="lam must have shape"):
        net(x, t, lam[:2])
    teacher = TauLDRUNet(_cfg(case).as_teacher())
    with pytest.raises(ValueError, match="no lambda embedding"):
        teacher(x, t, lam)
    with pytest.raises(ValueError, match="divisible"):
        TauLDRUNetConfig(image_shape=(3, 6, 6), ch_mult=(1, 2, 2))
    with pytest.raises(ValueError, match="GroupNorm"):
        TauLDRUNet(TauLDRUNetConfig(ch=2, ch_mult=(1,), image_shape=(1, 4, 4)))
