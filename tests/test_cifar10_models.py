"""CIFAR-10 setting (paper Sec. 5.1, Table 1) through its adapter and the generic steps.

The adapter :class:`di4c.settings.cifar10.Cifar10` and the steps ``teacher``,
``distill``, ``sample`` and ``fetch`` on a tiny smoke-scale run (8 x 8 digits, S = 8):

- data: the prepared splits, the training states and their decoding back to the
  reference images; random flips;
- the teacher objective (tauLDR's x0 cross-entropy) and the teacher step's card;
- model cards: save_model -> read_card -> load_net gives the saved raw and EMA
  weights (the tauLDR container keeps both);
- a fresh student equals the teacher at every lambda (zero-initialised ``dense1``);
- the sample step: hybrid cells (student for N - L steps, the teacher for the last L
  and the final argmax), identical samples at any batch size, seeds ``seed + i``;
- the distill step resumes bit-exactly; the fetch step checks the container kind and
  names the config key of a local copy.
"""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
import torch

from di4c.artifacts import meta_path_for, sha256_file
from di4c.cli import distill as distill_step
from di4c.cli import fetch as fetch_step
from di4c.cli import sample as sample_step
from di4c.cli import teacher as teacher_step
from di4c.config import DEFAULT_CONFIG, deep_merge, load_config, resolve
from di4c.models import read_card, write_card
from di4c.settings import get_setting
from di4c.settings.base import Cell
from di4c.settings.cifar10 import Cifar10
from di4c.teachers.tauldr import read_checkpoint
from di4c.train import EMA

C10 = Cifar10()
SHAPE, S = (1, 8, 8), 8  # the smoke layer: 8 x 8 digits at 8 grey levels


def smoke_cfg(**over) -> dict:
    cfg = resolve(load_config(DEFAULT_CONFIG), "cifar10", "smoke")
    return deep_merge(cfg, over)


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A smoke-scale run folder: prepared digits and a teacher trained 3 steps by the step."""
    root = tmp_path_factory.mktemp("c10")
    cfg = smoke_cfg()
    data = root / "data"
    data.mkdir()
    info = C10.prepare_data(cfg, data)
    (data / "data.json").write_text(json.dumps(info))
    teacher = root / "trained" / "teacher"
    teacher_step.cli(
        ["--scale", "smoke", "--setting", "cifar10", "--data-dir", str(data)]
        + ["--out-dir", str(teacher), "--set", "models.teacher.train.iters=3"]
        + ["--set", "models.teacher.train.lr=0.01"]
    )
    return {"root": root, "cfg": cfg, "data": data, "teacher": teacher, "info": info}


def _perturbed_student(card, scale=0.5, seed=1):
    """A student from the teacher with a live lambda path (dense1 drawn, not zero)."""
    net = C10.init_student(card, dataclasses.replace(_rules(), seed=seed), "cpu")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for k, p in net.named_parameters():
            if ".dense1." in k:
                p.copy_(scale * torch.randn(p.shape, generator=g))
    return net


def _rules(**over):
    from di4c.cli.distill import student_rules

    return student_rules(smoke_cfg(**over), "student")


# ------------------------------------------------------------------ data
def test_prepared_data_training_states_and_decoding(run):
    cfg, data, info = run["cfg"], run["data"], run["info"]
    assert info["image_shape"] == list(SHAPE) and info["num_heldout"] == 200
    assert sum(info["heldout_class_counts"]) == 200
    assert C10.image_shape(cfg, data) == SHAPE
    x0 = C10.training_set(cfg, data)["x0"]
    assert x0.shape == (info["num_train"], 64) and x0.dtype == torch.uint8
    assert int(x0.max()) == S - 1 and int(x0.min()) == 0
    # a sample file's states decode to exactly the reference images of those states
    samples = {"x": x0, "shape": list(SHAPE)}
    decoded = torch.cat(list(C10.decode(cfg, samples, {}, "cpu")))
    real = C10.real_images(cfg, data, "train")
    assert decoded.dtype == torch.uint8 and torch.equal(decoded, real)
    assert real.shape == (info["num_train"], *SHAPE)
    assert C10.real_images(cfg, data, "heldout").shape[0] == 200
    # the data's levels must be the process's S
    bad = deep_merge(cfg, {"process": {"S": 16}})
    with pytest.raises(ValueError, match="data.levels 8 must equal process.S 16"):
        C10.prepare_data(bad, run["root"] / "bad")


def test_batch_inputs_flip_images_only_when_the_rules_say():
    x = torch.arange(4 * 64, dtype=torch.uint8).view(4, 64)
    g = torch.Generator().manual_seed(0)
    same, cond = C10.batch_inputs({}, _rules(), {"x0": x}, g, SHAPE)
    assert cond is None and same.dtype == torch.long and torch.equal(same, x.long())
    flips = _rules(distill={"hflip": True})
    assert flips.hflip
    out, _ = C10.batch_inputs(
        {}, flips, {"x0": x}, torch.Generator().manual_seed(0), SHAPE
    )
    imgs, got = x.view(-1, *SHAPE), out.view(-1, *SHAPE)
    flipped = [not torch.equal(a.long(), b) for a, b in zip(imgs, got)]
    for a, b, f in zip(imgs, got, flipped):
        assert torch.equal((a.flip(-1) if f else a).long(), b)
    assert 0 < sum(flipped) < 4  # this seed flips some images, not all


def test_cifar10_loader_offline_names_the_config_key(tmp_path):
    from di4c.data.cifar10 import CIFAR10Unavailable, load_cifar10, random_hflip

    with pytest.raises(CIFAR10Unavailable, match=r"cifar10\.paper\.data\.root"):
        load_cifar10(tmp_path, download=False)
    assert "root" in smoke_cfg()["data"]  # the key the message names exists
    x = torch.arange(2 * 3 * 2 * 4).view(2, 3, 2, 4)
    y = random_hflip(x, torch.Generator().manual_seed(0))
    for a, b in zip(x, y):
        assert torch.equal(a, b) or torch.equal(a.flip(-1), b)


def test_paper_process_and_its_scaled_twins():
    """The tauLDR rate matrix of the paper (S = 256, rate_sigma 6, Q_sigma 512,
    time_base 3, time_exponential 100); the twins keep the jump width relative to
    the range (rate_sigma = 6 S / 256)."""
    cfg = load_config(DEFAULT_CONFIG)
    paper = resolve(cfg, "cifar10", "paper")["process"]
    assert paper == {
        "S": 256,
        "rate_sigma": 6.0,
        "Q_sigma": 512.0,
        "time_base": 3.0,
        "time_exponential": 100.0,
    }
    for scale in ("mini", "smoke"):
        p = resolve(cfg, "cifar10", scale)["process"]
        assert p["rate_sigma"] == pytest.approx(6.0 * p["S"] / 256)
        assert {k: p[k] for k in ("Q_sigma", "time_base", "time_exponential")} == {
            k: paper[k] for k in ("Q_sigma", "time_base", "time_exponential")
        }
    proc = C10.process(resolve(cfg, "cifar10", "smoke"), "cpu")
    assert proc.num_states == S


# ------------------------------------------------------------------ teacher
def test_teacher_objective_is_the_x0_cross_entropy(run):
    """tauLDR's x0 cross-entropy: t ~ U(min_time, 1) drawn from the loop's generator,
    x_t ~ q_t(. | x0); an uninformative network scores exactly log S."""
    cfg = run["cfg"]
    seen = []

    class Uniform(torch.nn.Module):
        def forward(self, x_t, t):
            seen.append((x_t.clone(), t.clone()))
            return torch.zeros(*x_t.shape, S, requires_grad=True)

    loss = C10.teacher_objective(cfg, Uniform())
    x0 = C10.training_set(cfg, run["data"])["x0"][:32]
    value = loss({"x0": x0}, torch.Generator().manual_seed(3)).detach()
    assert float(value) == pytest.approx(torch.log(torch.tensor(float(S))).item())
    (x_t, t), min_time = seen[0], cfg["models"]["teacher"]["train"]["min_time"]
    assert x_t.shape == x0.shape and int(x_t.max()) < S and int(x_t.min()) >= 0
    assert bool(((t >= min_time) & (t <= 1)).all()) and t.unique().numel() == 32
    loss({"x0": x0}, torch.Generator().manual_seed(3))
    assert torch.equal(seen[1][0], x_t) and torch.equal(seen[1][1], t)  # seeded

    class Oracle(torch.nn.Module):  # all mass on the clean pixel: the optimum, 0
        def forward(self, x_t, t):
            return 50.0 * torch.nn.functional.one_hot(x0.long(), S).float()

    assert (
        float(C10.teacher_objective(cfg, Oracle())({"x0": x0}, torch.Generator()))
        < 1e-6
    )


def test_teacher_step_writes_the_container_and_its_card(run):
    card = read_card(run["teacher"])
    assert (card.name, card.kind, card.source, card.setting) == (
        "teacher",
        "product",
        "train",
        "cifar10",
    )
    assert card.sha256["weights"] == sha256_file(card.path())
    assert card.network["image_shape"] == list(SHAPE) and card.network["S"] == S
    assert not card.network["lam_embed"]
    ckpt = read_checkpoint(card.path())
    assert ckpt.n_iter == 3 and ckpt.ema is not None and not ckpt.is_student
    assert not _same_weights(ckpt.raw, ckpt.ema)  # both kept, and they differ
    # the card's network and weights: EMA by default (what samplers use), raw on request
    ema = C10.load_net(card, "cpu")
    assert _same_weights(
        {k: v for k, v in ema.state_dict().items() if k in ckpt.ema}, ckpt.ema
    )
    raw = C10.load_net(card, "cpu", "raw")
    assert _same_weights(
        {k: v for k, v in raw.state_dict().items() if k in ckpt.raw}, ckpt.raw
    )
    sampling = C10.load_sampling_net(card, "cpu")
    assert not sampling.training and not any(
        p.requires_grad for p in sampling.parameters()
    )
    assert _same_weights(sampling.state_dict(), ema.state_dict())
    prov = json.loads((run["teacher"] / "model.json").read_text())["provenance"]
    assert prov["seeds"] == {"train": 0} and prov["config"]["train"]["iters"] == 3
    assert prov["inputs"]["data"]["sha256"] == sha256_file(run["data"] / "data.json")


def test_model_card_round_trip_keeps_raw_and_ema(run, tmp_path):
    """save_model -> write_card -> read_card -> load_net: the same weights, both sets."""
    teacher = read_card(run["teacher"])
    net = _perturbed_student(teacher)
    ema = EMA(net, 0.9)
    with torch.no_grad():
        for s in ema.shadow:
            s.add_(0.25)
    ema.num_updates = 7
    out = tmp_path / "student"
    card = C10.save_model(
        net, out, "student", "distill", ema=ema, step=5, sample_weights="ema"
    )
    write_card(out, card)
    back = read_card(out)
    assert back.is_mixture and back.extra["sample_weights"] == "ema"
    assert C10.net_config(back) == net.config.as_teacher()
    raw = C10.load_net(back, "cpu", "raw").state_dict()
    assert _same_weights(raw, net.state_dict())
    shadow = dict(zip((k for k, _ in net.named_parameters()), ema.shadow))
    got = C10.load_sampling_net(back, "cpu").state_dict()
    assert all(torch.equal(got[k], v) for k, v in shadow.items())
    ckpt = read_checkpoint(back.path())
    assert (ckpt.n_iter, ckpt.ema_num_updates, ckpt.ema_decay) == (
        5,
        7,
        pytest.approx(0.9),
    )
    # a card that calls a product container a mixture is refused with the file named
    from di4c.checkpoints import CheckpointError

    wrong = dataclasses.replace(teacher, kind="mixture")
    with pytest.raises(
        CheckpointError, match=r"model\.pt.*teacher \(product\) checkpoint"
    ):
        C10.load_net(wrong, "cpu")


@pytest.mark.parametrize("weights", ["raw", "ema"])
def test_fresh_student_equals_its_init_for_every_lambda(run, weights):
    """init_student: the init's tensors (raw by the paper's rules) plus zero dense1 layers,
    so the student is the teacher's function for every lambda."""
    card = read_card(run["teacher"])
    rules = _rules(distill={"init_weights": weights})
    student = C10.init_student(card, rules, "cpu").eval()
    assert student.is_mixture
    dense1 = [k for k in student.state_dict() if ".dense1." in k]
    assert dense1 and all(not student.state_dict()[k].any() for k in dense1)
    teacher = C10.load_net(card, "cpu", weights)
    x, t = torch.randint(0, S, (6, 64)), torch.rand(6)
    with torch.no_grad():
        ref = teacher(x, t)
        for lam in (torch.zeros(6), torch.rand(6), torch.ones(6)):
            assert torch.equal(student(x, t, lam), ref)
        other = C10.load_net(card, "cpu", "ema" if weights == "raw" else "raw")
        assert not torch.equal(other(x, t), ref)  # raw and EMA are different functions
        student.get_parameter(dense1[0]).normal_()
        out = student(x, t, torch.rand(6))
        assert not torch.allclose(out, ref)
        assert not torch.allclose(out, student(x, t, torch.rand(6)))  # lambda matters


# ------------------------------------------------------------------ sample step
@pytest.fixture(scope="module")
def student_card(run):
    """A student card whose lambda path is live (so student != teacher)."""
    teacher = read_card(run["teacher"])
    out = run["root"] / "distilled" / "student"
    net = _perturbed_student(teacher)
    write_card(
        out, C10.save_model(net, out, "student", "distill", sample_weights="raw")
    )
    return out / "model.json"


def _sample(run, student_card, cell, out, *sets, cards=("student", "teacher")):
    paths = {"student": student_card, "teacher": run["teacher"] / "model.json"}
    argv = ["--setting", "cifar10", "--scale", "smoke", "--cell", cell]
    argv += [a for m in cards for a in ("--card", f"{m}={paths[m]}")]
    argv += ["--data-dir", str(run["data"]), "--out", str(out)]
    argv += [a for s in ("sample.num_samples=5", *sets) for a in ("--set", s)]
    sample_step.cli(argv)
    return torch.load(out, weights_only=True)


def test_sample_step_hybrid_cells_and_batch_size_invariance(
    run, student_card, tmp_path
):
    r = {}
    for cell, bs in [
        ("teacher_n4", 5),
        ("student_n4", 5),
        ("hybrid_n4_l1", 5),
        ("hybrid_n4_l1", 2),
        ("hybrid_n4_l4", 3),
        ("hybrid_n4", 4),
    ]:
        out = tmp_path / f"{cell}_bs{bs}.pt"
        r[cell, bs] = _sample(run, student_card, cell, out, f"sample.batch_size={bs}")
    h = r["hybrid_n4_l1", 5]
    assert h["models"] == ["student"] * 3 + ["teacher"]  # the teacher's final argmax
    assert h["nfe"] == 4 and h["cell"] == Cell("hybrid", 4, 1).record()
    assert h["x"].dtype == torch.uint8 and h["x"].shape == (5, 64)
    assert int(h["x"].max()) < S and h["shape"] == list(SHAPE) and h["cond"] is None
    seed = smoke_cfg()["sample"]["seed"]
    assert h["seeds"].tolist() == [seed + i for i in range(5)]
    # same seeds -> the same samples at any batch size
    assert torch.equal(h["x"], r["hybrid_n4_l1", 2]["x"])
    # L = N is the teacher, L = 0 the student (the same per-sample streams)
    assert torch.equal(r["hybrid_n4_l4", 3]["x"], r["teacher_n4", 5]["x"])
    assert r["hybrid_n4", 4]["models"] == ["student"] * 4
    assert torch.equal(r["hybrid_n4", 4]["x"], r["student_n4", 5]["x"])
    assert not torch.equal(r["teacher_n4", 5]["x"], r["student_n4", 5]["x"])
    assert not torch.equal(h["x"], r["student_n4", 5]["x"])
    meta = json.loads(meta_path_for(tmp_path / "hybrid_n4_l1_bs5.pt").read_text())
    assert meta["inputs"]["teacher"]["sha256"] == sha256_file(
        run["teacher"] / "model.json"
    )
    assert meta["inputs"]["student"]["sha256"] == sha256_file(student_card)
    assert meta["seeds"] == {
        "rule": "sample i uses seed + i",
        "first": seed,
        "last": seed + 4,
    }
    assert meta["step_models"] == h["models"]
    other = _sample(
        run, student_card, "hybrid_n4_l1", tmp_path / "s3.pt", "sample.seed=3"
    )
    assert not torch.equal(other["x"], h["x"]) and other["seeds"].tolist()[0] == 3


def test_sample_step_names_a_missing_card(run, student_card, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        _sample(
            run, student_card, "hybrid_n4_l1", tmp_path / "x.pt", cards=("student",)
        )
    assert e.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: cell hybrid_n4_l1 needs --card for ['teacher']"]
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.slow  # five FIDs of 2048-d Inception features (a 2048 x 2048 sqrtm each)
def test_reference_and_score_give_the_clean_fid_column(run, student_card, tmp_path):
    """The paper table's second FID (``fid_clean``, clean-fid's resize and Inception):
    the reference step stores clean-fid features of the reference images, the score
    step compares a cell's (first ``clean_fid_max_samples``) images against them.
    Here with the offline fid-helper Inception on 16 held-out digits; the mini and
    smoke scales (clean_fid_extractor none) leave the column empty
    (test_cifar10_workflow.py)."""
    from di4c.metrics.image_quality import clean_fid

    cfg = smoke_cfg(
        metrics={
            "feature_extractor": "inception-v3-fidhelper",
            "metrics": ["fid"],
            "reference": "heldout",
            "clean_fid_extractor": "fidhelper",
            "clean_fid_max_samples": 10,
            "bootstrap": 0,
        }
    )
    data = tmp_path / "data"
    data.mkdir()
    C10.prepare_data(deep_merge(cfg, {"data": {"heldout": 16}}), data)
    real, rows = C10.reference(cfg, data, {}, "cpu")
    assert real["clean_fid"].shape == (10, 2048) and real["2048"].shape == (16, 2048)
    assert rows[0]["model"] == "real" and "fid_clean" not in rows[0]
    samples = _sample(run, student_card, "student_n2", tmp_path / "s.pt",
                      "sample.num_samples=12")  # fmt: skip
    record = C10.score(cfg, samples, {}, real, "cpu")
    assert record["num_samples"] == 12 and record["fid_clean_samples"] == 10
    fake = torch.cat(list(C10.decode(cfg, samples, {}, "cpu")))
    heldout = C10.real_images(cfg, data, "heldout")
    want = clean_fid(fake[:10], heldout[:10], feature_extractor="fidhelper")
    assert record["fid_clean"] == pytest.approx(want, rel=1e-6)
    assert record["fid_clean"] > 0 and record["fid"] > 0


# ------------------------------------------------------------------ distill step
def _distill(run, out, iters):
    card = str(run["teacher"])
    distill_step.cli(
        ["--setting", "cifar10", "--scale", "smoke", "--model", "student"]
        + ["--data-dir", str(run["data"]), "--teacher", card, "--init", card]
        + ["--out-dir", str(out)]
        + [a for s in (f"distill.iters={iters}", "distill.K=2", "distill.lr=0.01",
                       "distill.ckpt_every=1", "distill.log_every=1")
           for a in ("--set", s)]
    )  # fmt: skip
    return json.loads((out / "model.json").read_text())


def test_distill_step_writes_a_loadable_student_and_resumes_exactly(run, tmp_path):
    """A run stopped after 2 steps and resumed to 3 ends bit-identical to an
    uninterrupted 3-step run; the student card loads for sampling (EMA weights) and
    its lambda path has left zero."""
    from di4c.cli.distill import loss_rng

    _distill(run, tmp_path / "a", 2)
    meta = _distill(run, tmp_path / "a", 3)
    prov = meta["provenance"]
    assert prov["resumed_from"] == 2
    assert prov["config"]["rules"]["K"] == 2 and prov["config"]["rules"]["iters"] == 3
    assert meta["extra"] == {
        "teacher": "teacher",
        "init": "teacher",
        "sample_weights": "ema",
    }
    _distill(run, tmp_path / "b", 3)
    a = read_checkpoint(tmp_path / "a" / "model.pt")
    b = read_checkpoint(tmp_path / "b" / "model.pt")
    assert a.is_student and a.n_iter == 3
    assert _same_weights(a.raw, b.raw) and _same_weights(a.ema, b.ema)
    assert any(a.raw[k].any() for k in a.raw if ".dense1." in k)  # lambda path live
    card = read_card(tmp_path / "a")
    net = C10.load_sampling_net(card, "cpu")
    assert net.is_mixture and net.config.image_shape == SHAPE
    assert all(torch.equal(net.state_dict()[k], v) for k, v in a.ema.items())
    # on the CPU the loss draws from the loop's generator itself
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(
        loss_rng(g1, torch.device("cpu")).rand(3, 4), torch.rand(3, 4, generator=g2)
    )


# ------------------------------------------------------------------ fetch step
def test_fetch_step_checks_the_kind_and_names_the_config_key(
    run, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("DI4C_CACHE_DIR", str(tmp_path / "cache"))
    local = read_card(run["teacher"]).path()
    out = tmp_path / "fetched" / "teacher"

    def fetch(model, path, dest):
        fetch_step.cli(
            ["--setting", "cifar10", "--scale", "paper", "--model", model]
            + ["--set", f"models.{model}.local={path}", "--out-dir", str(dest)]
        )

    fetch("teacher", local, out)
    card = read_card(out)
    # a mini checkpoint given without its model.json (issue 13 item 13): the card
    # takes the network the file embeds, and the right network loads from it
    trained = read_card(run["teacher"])
    assert (card.kind, card.source) == ("product", "published")
    assert card.network == trained.network is not None
    assert _same_weights(
        C10.load_net(card, "cpu").state_dict(),
        C10.load_net(trained, "cpu").state_dict(),
    )
    assert card.path() == local.resolve() and card.sha256["weights"] == sha256_file(
        local
    )
    assert card.extra == {"n_iter": 3}
    assert not (tmp_path / "cache").exists()  # a local copy is used in place
    key = "cifar10.paper.models.released_student.local"
    for path, message in [
        (local, f"expected a mixture checkpoint for model 'released_student'.*{key}"),
        (tmp_path / "nope.pt", f"config key '{key}'"),
    ]:
        with pytest.raises(SystemExit) as e:
            fetch("released_student", path, tmp_path / "fetched" / "released_student")
        err = capsys.readouterr().err.strip().splitlines()
        assert e.value.code == 1 and len(err) == 1, err
        assert re.search(message, err[0]), err[0]
    assert not (tmp_path / "fetched" / "released_student" / "model.json").exists()


# ------------------------------------------------------------------ cells
def test_cells_round_trip_and_teacher_of():
    cfg = load_config(DEFAULT_CONFIG)
    setting = get_setting("cifar10")
    mini = resolve(cfg, "cifar10", "mini")
    cells = setting.cells(mini)
    assert len(cells) == 7 + 2 * 5 + 3 and len({c.id for c in cells}) == len(cells)
    assert all(Cell.parse(c.id) == c for c in cells)
    assert (
        Cell("hybrid", 16, 4) in cells and Cell.parse("hybrid_n16_l4").teacher_last == 4
    )
    assert setting.teacher_of(mini) == {
        "student": "teacher",
        "student_k1": "teacher",
        "hybrid": "teacher",
    }
    paper = resolve(cfg, "cifar10", "paper")
    assert [c.id for c in setting.cells(paper)] == [
        "teacher_n10", "teacher_n20", "teacher_n40",
        "student_n10", "student_n20", "student_n40",
        "hybrid_n10_l3", "hybrid_n20_l6", "hybrid_n40_l12",
    ]  # fmt: skip
    assert setting.teacher_of(paper) == {"student": "teacher", "hybrid": "teacher"}


@pytest.mark.gpu
def test_sample_step_on_cuda(run, student_card, tmp_path):
    """On a GPU: the sample step runs there, at any batch size the same samples."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    a = _sample(run, student_card, "hybrid_n4_l1", tmp_path / "a.pt", "device=cuda",
                "sample.batch_size=5")  # fmt: skip
    b = _sample(run, student_card, "hybrid_n4_l1", tmp_path / "b.pt", "device=cuda",
                "sample.batch_size=2")  # fmt: skip
    assert torch.equal(a["x"], b["x"]) and int(a["x"].max()) < S
    assert a["models"] == ["student"] * 3 + ["teacher"]
