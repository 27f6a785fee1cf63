"""ImageNet setting (paper Sec. 5.2, Fig. 3) through its adapter and the generic steps.

The paper-scale networks and containers are covered by test_maskgit_networks.py;
here, on a tiny smoke-scale run (8 x 8 digits at 4 grey levels, a mini VQ with
16 codes on a 4 x 4 grid, a one-layer MaskGIT):

- the mini MaskGIT is the paper network: lambda token, class token and the
  dropped-label token behave as the authors' (student without lambda = teacher);
- the mini VQ, the encode step (codes of the training digits; at paper scale one
  seeded crop / flip per image, the same codes at any batch size or worker count)
  and the decoding of codes to judged images (per-image min-max, re-quantised);
- model cards: save_model -> read_card -> load_net, student initialisation;
- the label drop (probability ``label_drop``, sony/di4c maskgit-pytorch/Trainer/vit.py
  ``train_di4c``) reaches teacher, student and the stop-grad target alike, and the
  target pass runs in eval mode;
- the sample step: class labels as conditions at both scales, CFG as one pass with
  the same lambda and the unconditional label in the second half, identical samples
  at any batch size, hybrid cells (student for N - L steps, the teacher for the last L);
- cells, ids and the speed-up reference of each student (teacher_of).
"""

from __future__ import annotations

import csv
import dataclasses
import json

import pytest
import torch

from di4c.artifacts import sha256_file
from di4c.checkpoints import CheckpointError
from di4c.cli import encode as encode_step
from di4c.cli import mini_vq as mini_vq_step
from di4c.cli import sample as sample_step
from di4c.cli import teacher as teacher_step
from di4c.cli.distill import loss_rng, student_rules
from di4c.config import DEFAULT_CONFIG, deep_merge, load_config, resolve
from di4c.data.imagenet import (
    CONFIG_KEY_IMAGENET_DIR,
    MinMaxImages,
    imagenet_folder,
    minmax_uint8,
    val_labels_in_loader_order,
)
from di4c.data.images import levels_to_uint8, load_splits, quantize
from di4c.distill import di4c_loss
from di4c.models import read_card, write_card
from di4c.networks.mini_maskgit import MiniMaskGITConfig, build_mini_maskgit
from di4c.networks.mini_vq import MiniVQConfig, build_mini_vq, vq_forward
from di4c.samplers.confidence import UNCOND
from di4c.settings.base import Cell
from di4c.settings.imagenet import (
    ImageNet,
    decoded_chunks,
    heldout_labels_in_loader_order,
    load_tokenizer,
    to_judge,
)

IN = ImageNet()
TINY = MiniMaskGITConfig(
    grid=4, codebook_size=6, nclass=3, hidden_dim=16, depth=1, heads=2, mlp_dim=32
)
LEVELS, D, CODES = 4, 16, 16  # the smoke layer: 4 grey levels, 4 x 4 codes of 16


def smoke_cfg(**over) -> dict:
    return deep_merge(resolve(load_config(DEFAULT_CONFIG), "imagenet", "smoke"), over)


def _teacher_and_student(seed=0, cfg=TINY):
    torch.manual_seed(seed)
    teacher = build_mini_maskgit(cfg).eval()
    student = build_mini_maskgit(cfg, is_student=True).eval()
    missing, unexpected = student.load_state_dict(teacher.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("latent_projection") for k in missing)
    return teacher, student


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------ mini network
def test_mini_network_is_the_paper_network_with_a_lambda_token():
    teacher, student = _teacher_and_student()
    D, S = TINY.num_tokens, TINY.codebook_size
    assert teacher.config.mask_id == S and teacher.config.num_tokens == D
    assert teacher.pos_emb.shape == (1, D + 1, 16)  # image tokens + class token only
    assert teacher.tok_emb.num_embeddings == S + 1 + 3 + 1  # codes, mask, classes, null
    assert student.latent_projection[0].in_features == 128
    x = torch.randint(0, S + 1, (5, D))
    y = torch.tensor([0, 1, 2, 0, 1])
    with torch.no_grad():
        out_t = teacher(x, y)
        assert out_t.shape == (5, D, S + 1)
        # without lambda the student runs the teacher's function exactly
        assert torch.equal(student(x, y), out_t)
        lam = torch.tensor([0.1, 0.5, 0.9, 0.3, 0.7])
        a, b = student(x, y, None, lam), student(x, y, None, lam)
        assert torch.equal(a, b) and not torch.allclose(a, out_t)
        assert not torch.allclose(a, student(x, y, None, 1 - lam))
        # the lambda token is per sample: changing one lambda changes one row only
        lam2 = lam.clone()
        lam2[2] = 0.0
        c = student(x, y, None, lam2)
        assert torch.equal(c[[0, 1, 3, 4]], a[[0, 1, 3, 4]]) and not torch.equal(
            c[2], a[2]
        )
        # class token: the label matters; drop_label = the null label nclass
        drop = torch.tensor([True, False, True, False, False])
        null = torch.where(drop, torch.full_like(y, 3), y)
        assert torch.equal(teacher(x, y, drop), teacher(x, null))
        assert not torch.allclose(teacher(x, y), teacher(x, (y + 1) % 3))


def test_mini_config_maps_to_the_paper_config_and_refuses_bad_sizes():
    cfg = MiniMaskGITConfig(grid=6, codebook_size=64)
    m = cfg.to_maskgit(is_student=True)
    assert (m.num_tokens, m.mask_id, m.is_student, m.img_size) == (36, 64, True, 96)
    assert MiniMaskGITConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="divisible by heads"):
        MiniMaskGITConfig(hidden_dim=30, heads=4)
    with pytest.raises(ValueError, match="unknown keys"):
        MiniMaskGITConfig.from_dict({"grid": 4, "width": 3})


def test_mini_vq_straight_through_and_codes():
    torch.manual_seed(0)
    vq = build_mini_vq(MiniVQConfig(resolution=8, n_embed=8, embed_dim=4))
    x = torch.rand(3, 1, 8, 8) * 2 - 1
    out = vq_forward(vq, x)
    assert out.codes.shape == (3, 4, 4) and out.recon.shape == x.shape
    assert torch.equal(out.codes, vq.encode_grid(x))
    # the forward value is the decoded codes (straight-through changes only gradients)
    assert torch.allclose(out.recon, vq.decode_code(out.codes), atol=1e-5)
    (out.recon.square().mean() + out.commit_loss).backward()
    assert vq.encoder.conv_in.weight.grad.abs().sum() > 0


# ------------------------------------------------------------------ a smoke run
@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Prepared digits, the mini VQ (mini_vq step), their codes (encode step) and a
    teacher trained 3 steps (teacher step), as the DAG makes them."""
    root = tmp_path_factory.mktemp("imagenet")
    cfg = smoke_cfg()
    data = root / "data"
    data.mkdir()
    (data / "data.json").write_text(json.dumps(IN.prepare_data(cfg, data)))
    common = ["--scale", "smoke", "--data-dir", str(data)]
    vq = root / "trained" / "vq"
    mini_vq_step.cli(
        [*common, "--out-dir", str(vq), "--set", "models.vq.train.iters=4"]
    )
    encode_step.cli([*common, "--vq", str(vq), "--out", str(data / "tokens.pt")])
    teacher = root / "trained" / "teacher"
    teacher_step.cli(
        [*common, "--setting", "imagenet", "--out-dir", str(teacher)]
        + [
            "--set",
            "models.teacher.train.iters=3",
            "--set",
            "models.teacher.train.lr=0.01",
        ]
    )
    # a Di4C student whose lambda path differs from the teacher (random latent_projection)
    student = root / "distilled" / "di4c-d"
    net = IN.init_student(read_card(teacher), student_rules(cfg, "di4c-d"), "cpu")
    write_card(student, IN.save_model(net, student, "di4c-d", "distill"))
    return {"root": root, "cfg": cfg, "data": data, "vq": vq, "teacher": teacher,
            "student": student}  # fmt: skip


def test_encode_step_codes_the_training_digits_through_the_vq_card(run):
    cfg, data = run["cfg"], run["data"]
    card = read_card(run["vq"])
    assert (card.kind, card.source, sorted(card.files)) == (
        "tokenizer",
        "train",
        ["config", "weights"],
    )
    tok = torch.load(data / "tokens.pt", weights_only=True)
    splits = load_splits(data / "data.pt")
    assert (tok["grid"], tok["codebook_size"]) == (4, CODES)
    assert tok["train_tokens"].shape == (len(splits.train_y), D)
    assert tok["train_tokens"].dtype == torch.int16
    assert torch.equal(tok["train_labels"], splits.train_y)
    # the card's tokenizer gives exactly these codes (save -> card -> load round trip)
    vq = load_tokenizer(card)
    x = 2 * splits.train_x[:8].float() / (LEVELS - 1) - 1
    assert torch.equal(vq.encode_grid(x).flatten(1), tok["train_tokens"][:8].long())
    train = IN.training_set(cfg, data)
    assert torch.equal(train["x0"], tok["train_tokens"])
    assert torch.equal(train["y"], tok["train_labels"])
    prov = json.loads((data / "tokens.meta.json").read_text())
    assert prov["inputs"]["vq"]["sha256"] == sha256_file(run["vq"] / "model.json")


def test_decoding_codes_to_judged_images(run):
    """Codes -> tokenizer -> per-image min-max uint8, re-quantised to the digits'
    levels (what the digit classifier saw); the same images in any chunking."""
    cfg = run["cfg"]
    vq = load_tokenizer(read_card(run["vq"]))
    codes = torch.randint(0, CODES, (7, D), generator=torch.Generator().manual_seed(0))
    chunks = list(decoded_chunks(vq, codes.to(torch.int16), 3, LEVELS))
    assert [c.shape[0] for c in chunks] == [3, 3, 1]
    images = torch.cat(chunks)
    assert images.dtype == torch.uint8 and images.shape == (7, 1, 8, 8)
    with torch.no_grad():
        want = to_judge(vq.decode_code(codes.view(-1, 4, 4)).float(), LEVELS)
    assert torch.equal(images, want)
    assert torch.equal(torch.cat(list(decoded_chunks(vq, codes, 5, LEVELS))), images)
    # re-quantised: only the LEVELS grey values, each image spanning black to white
    grey = levels_to_uint8(torch.arange(LEVELS), LEVELS)
    assert set(images.unique().tolist()) <= set(grey.tolist())
    assert (images.flatten(1).amin(1) == 0).all() and (
        images.flatten(1).amax(1) == 255
    ).all()
    # the adapter's decode is this path with the card named by the metrics
    samples = {"x": codes, "shape": [D]}
    got = torch.cat(list(IN.decode(cfg, samples, {"vq": read_card(run["vq"])}, "cpu")))
    assert torch.equal(got, images)
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 16\)"):
        next(decoded_chunks(vq, codes + CODES, 3, LEVELS))
    with pytest.raises(ValueError, match="square grid"):
        next(decoded_chunks(vq, codes[:, :15], 3, LEVELS))
    # paper path: no re-quantisation, min-max to the full 8-bit range
    x = torch.tensor([[[[-1.0, 0.0], [1.0, 3.0]]]])
    assert to_judge(x).tolist() == minmax_uint8(x).tolist() == [[[[0, 63], [127, 255]]]]
    assert to_judge(x, 2).unique().tolist() == [0, 255]
    assert torch.equal(
        quantize(torch.tensor([0.0, 0.49, 0.51, 1.0]), 2), torch.tensor([0, 0, 1, 1])
    )


def test_model_cards_round_trip_and_student_init(run, tmp_path):
    teacher_card = read_card(run["teacher"])
    assert (teacher_card.kind, teacher_card.source) == ("product", "train")
    assert teacher_card.sha256["weights"] == sha256_file(teacher_card.path())
    teacher = IN.load_net(teacher_card, "cpu")
    assert (
        teacher.config == IN.net_config(teacher_card) and not teacher.config.is_student
    )
    assert (teacher.config.codebook_size, teacher.config.num_tokens) == (CODES, D)
    # save_model -> card -> load_net: the same weights; with an EMA, the EMA ones,
    # and the network keeps its own weights after saving
    from di4c.train import EMA

    net = build_mini_maskgit(MiniMaskGITConfig(grid=4, codebook_size=CODES, hidden_dim=16,
                                               depth=1, heads=2, mlp_dim=32))  # fmt: skip
    own = {k: v.clone() for k, v in net.state_dict().items()}
    ema = EMA(net, 0.9)
    for s in ema.shadow:
        s.add_(0.5)
    card = IN.save_model(net, tmp_path / "m", "teacher", "train", ema=ema, step=4)
    write_card(tmp_path / "m", card)
    back = IN.load_net(read_card(tmp_path / "m"), "cpu")
    assert _same_weights(net.state_dict(), own)
    names = [k for k, p in net.named_parameters() if p.requires_grad]
    shadow = dict(zip(names, ema.shadow))
    assert all(torch.equal(back.state_dict()[k], v) for k, v in shadow.items())
    # a student starts from the teacher: every teacher tensor, a seeded lambda MLP
    rules = student_rules(run["cfg"], "di4c-d")
    s1 = IN.init_student(teacher_card, rules, "cpu")
    s2 = IN.init_student(teacher_card, rules, "cpu")
    s3 = IN.init_student(teacher_card, rules.with_overrides(lambda_init_seed=1), "cpu")
    assert s1.training and s1.config.is_student
    lp = [k for k in s1.state_dict() if k.startswith("latent_projection.")]
    assert lp and all(torch.equal(s1.state_dict()[k], s2.state_dict()[k]) for k in lp)
    assert not all(torch.equal(s1.state_dict()[k], s3.state_dict()[k]) for k in lp)
    x = torch.randint(0, CODES + 1, (3, D))
    y = torch.tensor([0, 5, 9])
    with torch.no_grad():
        s1.eval()
        assert torch.equal(s1(x, y), teacher(x, y))  # without lambda: the teacher
        assert not torch.allclose(s1(x, y, None, torch.rand(3)), teacher(x, y))
    # the distilled student's card round-trips as a mixture
    scard = read_card(run["student"])
    assert scard.is_mixture and _same_weights(
        IN.load_net(scard, "cpu").state_dict(), s1.state_dict()
    )
    wrong = dataclasses.replace(teacher_card, kind="mixture")
    with pytest.raises(CheckpointError, match="teacher file"):
        IN.load_net(wrong, "cpu")


# ------------------------------------------------------------------ label drop
def test_batch_inputs_drop_labels_exactly():
    """Label i is dropped (UNCOND) when the i-th uniform of the loop's generator is
    below label_drop: the draw the teacher, the student and the target then share."""
    y = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6])
    batch = {"x0": torch.zeros(8, D, dtype=torch.int16), "y": y}
    rules = student_rules(smoke_cfg(), "di4c-d")
    assert rules.label_drop == 0.1  # the paper's 10%
    for p in (0.0, 0.3, 0.7, 1.0):
        x0, cond = IN.batch_inputs({}, rules.with_overrides(label_drop=p), batch,
                                   torch.Generator().manual_seed(4), None)  # fmt: skip
        u = torch.rand(8, generator=torch.Generator().manual_seed(4))
        assert torch.equal(cond, torch.where(u < p, torch.full_like(y, UNCOND), y))
        assert x0.dtype == torch.long and x0.shape == (8, D)
    _, some = IN.batch_inputs({}, rules.with_overrides(label_drop=0.5), batch,
                              torch.Generator().manual_seed(4), None)  # fmt: skip
    assert 0 < int((some == UNCOND).sum()) < 8


class _Recorder:
    """Forward pre-hook recording labels, drop flags, lambda and the train flag."""

    def __init__(self, net):
        self.calls = []
        net.register_forward_pre_hook(self.hook)

    def hook(self, module, args):
        _, labels, drop, lam = (list(args) + [None, None])[:4]
        self.calls.append(
            {
                "labels": labels.clone(),
                "drop": None if drop is None else drop.clone(),
                "lam": None if lam is None else lam.clone(),
                "training": module.training,
            }
        )


def test_label_drop_is_shared_by_teacher_student_and_target(run):
    """One drop per image reaches every pass; the target pass is in eval mode."""
    cfg = run["cfg"]
    teacher_card = read_card(run["teacher"])
    teacher_net = IN.load_net(teacher_card, "cpu").eval()
    rules = student_rules(cfg, "di4c-d").with_overrides(K=3, batch_x=8, label_drop=0.5)
    assert not rules.target_train_mode  # ImageNet: the target pass in eval mode
    student_net = IN.init_student(teacher_card, rules, "cpu")
    rec_t, rec_s = _Recorder(teacher_net), _Recorder(student_net)
    K, B = rules.K, rules.batch_x
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    batch = {"x0": torch.randint(0, CODES, (B, D)), "y": y}
    gen = torch.Generator().manual_seed(5)
    # what the distill step does per optimiser step
    x0, cond = IN.batch_inputs(cfg, rules, batch, gen, None)
    di4c_loss(
        IN.denoiser(student_net, cfg), IN.denoiser(teacher_net, cfg),
        IN.process(cfg, "cpu", teacher_card), x0, rules, cond=cond,
        rng=loss_rng(gen, torch.device("cpu")),
    ).total.backward()  # fmt: skip
    null = teacher_net.config.null_label
    (t_call,) = rec_t.calls  # product teacher: one pass at x_t
    dropped = t_call["drop"]
    assert 0 < int(dropped.sum()) < B  # this seed drops some labels, not all
    assert torch.equal(dropped, cond == UNCOND)
    assert torch.equal(t_call["labels"][~dropped], y[~dropped])
    assert (t_call["labels"][dropped] == null).all()
    s_t, s_u = rec_s.calls  # student at x_t (K lambdas), then the stop-grad target
    assert s_t["training"] and not s_u["training"] and student_net.training
    assert torch.equal(s_t["drop"], dropped.repeat_interleave(K))
    assert torch.equal(s_t["labels"], t_call["labels"].repeat_interleave(K))
    # the target pass covers the images outside the distillation region, each K times
    n_u = s_u["labels"].numel() // K
    assert s_u["labels"].numel() == n_u * K and n_u >= 1
    for i in range(n_u):
        row = s_u["labels"][i * K : (i + 1) * K]
        assert (row == row[0]).all()
    assert torch.equal(s_u["drop"], s_u["labels"] == null)
    assert s_t["lam"].unique().numel() == B * K  # a fresh lambda per copy


# ------------------------------------------------------------------ sample step
def _sample(run, cell, out, *sets, cards=("di4c-d", "teacher")):
    paths = {"di4c-d": run["student"], "teacher": run["teacher"]}
    argv = ["--setting", "imagenet", "--scale", "smoke", "--cell", cell]
    argv += [a for m in cards for a in ("--card", f"{m}={paths[m] / 'model.json'}")]
    argv += ["--data-dir", str(run["data"]), "--out", str(out)]
    argv += [a for s in ("sample.num_samples=6", *sets) for a in ("--set", s)]
    sample_step.cli(argv)
    return torch.load(out, weights_only=True)


class _Calls:
    """Spy on MaskGITDenoiser.logits: (model kind, x_t, lambda, labels) of every pass."""

    def __init__(self, monkeypatch):
        from di4c.networks.maskgit import MaskGITDenoiser

        self.calls, orig = [], MaskGITDenoiser.logits

        def spy(den, x_t, lam=None, cond=None):
            kind = "student" if den.is_mixture else "teacher"
            self.calls.append((kind, x_t.clone(), None if lam is None else lam.clone(),
                               None if cond is None else cond.clone()))  # fmt: skip
            return orig(den, x_t, lam, cond)

        monkeypatch.setattr(MaskGITDenoiser, "logits", spy)


def test_sample_step_conditions_cfg_and_batch_size_invariance(
    run, tmp_path, monkeypatch
):
    spy = _Calls(monkeypatch)
    out = {}
    for bs in (6, 4):
        spy.calls.clear()
        out[bs] = _sample(
            run, "di4c-d_n4_w6", tmp_path / f"bs{bs}.pt", f"sample.batch_size={bs}"
        )
        if bs == 6:
            first = list(spy.calls)
    a, b = out[6], out[4]
    assert torch.equal(a["x"], b["x"])  # same seeds, any batch size
    assert (
        a["x"].shape == (6, D) and int(a["x"].max()) < CODES and int(a["x"].min()) >= 0
    )
    assert a["seeds"].tolist() == list(range(6)) and a["nfe"] == 4
    assert a["models"] == ["di4c-d"] * 4 and a["shape"] == [D]
    # the labels: the held-out digits' labels in a seeded shuffled order
    held = load_splits(run["data"] / "data.pt").heldout_y
    seed = run["cfg"]["data"]["label_seed"]
    assert torch.equal(a["cond"], heldout_labels_in_loader_order(held, 6, seed))
    # step 0 unguided (one pass of 6), then both CFG halves in one pass of 12
    assert [c[1].shape[0] for c in first] == [6, 12, 12, 12]
    for _, x_t, lam, cond in first[1:]:
        assert torch.equal(x_t[:6], x_t[6:]) and torch.equal(lam[:6], lam[6:])
        assert (cond[6:] == UNCOND).all() and torch.equal(cond[:6], a["cond"])
    meta = json.loads((tmp_path / "bs6.meta.json").read_text())
    assert meta["config"]["options"] == {
        "guidance": "6.0", "sm_temp": "1.0", "r_temp": "4.5", "schedule": "arccos",
    }  # fmt: skip
    c = _sample(run, "di4c-d_n4_w6", tmp_path / "seed.pt", "sample.seed=9")
    assert not torch.equal(c["x"], a["x"]) and torch.equal(c["cond"], a["cond"])


def test_sample_step_hybrid_runs_the_teacher_for_the_last_steps(
    run, tmp_path, monkeypatch
):
    """Hybrid cells: the student's N - L steps, then the teacher's L."""
    spy = _Calls(monkeypatch)
    runs = {}
    for cell in ("di4c-d_n4_w2", "teacher_n4_w2", "hybrid_n4_l1_w2", "hybrid_n4_w2",
                 "hybrid_n4_l4_w2", "di4c-d_n4_l1_w2"):  # fmt: skip
        spy.calls.clear()
        cards = ("teacher",) if cell.startswith("teacher") else ("di4c-d", "teacher")
        rec = _sample(
            run, cell, tmp_path / f"{cell}.pt", "sample.batch_size=4", cards=cards
        )
        runs[cell] = (rec, list(spy.calls))
    rec, calls = runs["hybrid_n4_l1_w2"]
    assert rec["models"] == ["di4c-d"] * 3 + ["teacher"]
    assert rec["cell"] == Cell("hybrid", 4, 1, 2.0).record()
    # 2 batches (4 + 2 samples) x 4 steps; the teacher makes the 4th call of each
    assert [c[0] for c in calls] == (["student"] * 3 + ["teacher"]) * 2
    s_rec, s_calls = runs["di4c-d_n4_w2"]
    for k in (3, 7):  # before the last step the hybrid state is the student's
        assert torch.equal(calls[k][1], s_calls[k][1])
    assert not torch.equal(rec["x"], s_rec["x"])
    # the two ends: L = 0 is the student, L = N the teacher; any student's MODEL_nN_lL
    assert runs["hybrid_n4_w2"][0]["models"] == ["di4c-d"] * 4
    assert torch.equal(runs["hybrid_n4_w2"][0]["x"], s_rec["x"])
    assert runs["hybrid_n4_l4_w2"][0]["models"] == ["teacher"] * 4
    assert torch.equal(runs["hybrid_n4_l4_w2"][0]["x"], runs["teacher_n4_w2"][0]["x"])
    assert torch.equal(runs["di4c-d_n4_l1_w2"][0]["x"], rec["x"])
    with pytest.raises(ValueError, match="teacher_last L must be in"):
        Cell.parse("hybrid_n4_l5_w2")


# ------------------------------------------------------------------ conditions
def test_conditions_at_both_scales(run, fake_imagenet):
    """Mini: the held-out labels, reshuffled (one fresh permutation per pass); paper:
    ImageNet val labels in the seeded shuffled-loader order."""
    cfg = run["cfg"]
    held = load_splits(run["data"] / "data.pt").heldout_y
    n = len(held)
    labels = IN.conditions(cfg, run["data"], 2 * n + 5)
    assert labels.shape == (2 * n + 5,)
    for part in (labels[:n], labels[n : 2 * n]):  # each pass a permutation
        assert torch.equal(part.sort().values, held.sort().values)
    assert not torch.equal(labels[:n], labels[n : 2 * n])
    assert torch.equal(IN.conditions(cfg, run["data"], 7), labels[:7])
    other = deep_merge(cfg, {"data": {"label_seed": 1}})
    assert not torch.equal(IN.conditions(other, run["data"], n), labels[:n])
    paper = resolve(load_config(DEFAULT_CONFIG), "imagenet", "paper")
    paper = deep_merge(paper, {"data": {"root": str(fake_imagenet)}})
    got = IN.conditions(paper, None, 20)
    assert torch.equal(
        got, val_labels_in_loader_order(fake_imagenet, paper["data"]["label_seed"], 20)
    )
    assert got.unique().numel() == 20  # 20 distinct val images of 1000 classes


# ------------------------------------------------------------------ cells
def test_cells_round_trip_and_teacher_of():
    cfg = load_config(DEFAULT_CONFIG)
    mini = resolve(cfg, "imagenet", "mini")
    cells = IN.cells(mini)
    assert len({c.id for c in cells}) == len(cells)
    assert all(Cell.parse(c.id) == c for c in cells)
    for cell in (
        Cell("hybrid", 8, 2, 1.5),
        Cell("di4c-d", 4, 0, 0.0),
        Cell("k1", 1, 1, 6.0),
    ):
        assert Cell.parse(cell.id) == cell
    assert Cell("hybrid", 8, 2, 1.5).id == "hybrid_n8_l2_w1.5"
    ids = {c.id for c in cells}
    assert {"teacher_n32_w0", "di4c-d_n4_w3", "k1_n1_w0", "hybrid_n8_l1_w0"} <= ids
    students = ("di4c-d", "di4c", "k1")
    assert IN.teacher_of(mini) == dict.fromkeys((*students, "hybrid"), "teacher")
    paper = resolve(cfg, "imagenet", "paper")
    pcells = IN.cells(paper)
    # Fig. 3 curves: teacher 4 / 8 and each student at 4 steps over the CFG grid
    for w in (0, 1, 2, 3, 4, 6):
        assert {
            Cell("teacher", 4, 0, float(w)),
            Cell("teacher", 8, 0, float(w)),
        } <= set(pcells)
        assert Cell("released", 4, 0, float(w)) in pcells
    assert all(c.guidance is not None and c.teacher_last == 0 for c in pcells)
    assert IN.teacher_of(paper) == dict.fromkeys(
        ("di4c-d", "di4c", "released"), "teacher"
    )
    smoke = resolve(cfg, "imagenet", "smoke")
    assert [c.id for c in IN.cells(smoke)] == [
        "di4c-d_n2_w2",
        "hybrid_n2_l1_w2",
        "teacher_n2_w2",
    ]


# ------------------------------------------------------------------ ImageNet data
def test_minmax_uint8_per_image():
    x = torch.tensor([[[[-1.0, 0.0], [1.0, 3.0]]], [[[2.0, 2.0], [2.0, 2.0]]]])
    out = minmax_uint8(x)
    assert out.dtype == torch.uint8
    assert out[0, 0].tolist() == [[0, 63], [127, 255]]  # (x + 1) / 4 * 255, truncated
    assert (out[1] == 0).all()  # a constant image maps to 0
    # each image is rescaled on its own: scaling one image leaves the other unchanged
    y = x.clone()
    y[0] *= 10
    assert torch.equal(minmax_uint8(y), out)


def test_precision_recall_over_aligned_chunks():
    """The protocol's 5-chunk precision / recall: chunk i against chunk i."""
    from di4c.metrics.image_quality import metrics_from_features
    from di4c.metrics.scoring import chunked_prc, image_record

    g = torch.Generator().manual_seed(0)
    a = torch.randn(20, 8, generator=g)  # cluster A
    b = torch.randn(20, 8, generator=g) + 100.0  # cluster B, far away
    real = {"pool": torch.cat([a, b]), "logits": torch.zeros(40, 10)}
    swapped = {"pool": torch.cat([b, a]), "logits": torch.zeros(40, 10)}
    # full sets: the same points -> precision = recall = 1; chunk-aligned: each
    # generated chunk lies in the other cluster -> 0
    full = metrics_from_features(swapped, real, "digit-classifier", ("prc",))
    assert (full["precision"], full["recall"]) == (1.0, 1.0)
    res = chunked_prc(swapped, real, "digit-classifier", 2)
    assert (res["precision"], res["recall"]) == (0.0, 0.0)
    rec = image_record(swapped, real, "digit-classifier", ("prc",), 0, prc_chunks=2)
    assert (rec["precision"], rec["recall"], rec["num_samples"]) == (0.0, 0.0, 40)
    same = chunked_prc(real, real, "digit-classifier", 2)
    assert same == {"precision": 1.0, "recall": 1.0}
    half = {"pool": torch.cat([a, a]), "logits": torch.zeros(40, 10)}
    res = chunked_prc(half, real, "digit-classifier", 2)  # chunk 2 misses cluster B
    assert res["precision"] == 0.5
    with pytest.raises(ValueError, match="lower metrics.prc_chunks"):
        chunked_prc(real, real, "digit-classifier", 11)


@pytest.fixture(scope="module")
def fake_imagenet(tmp_path_factory):
    """ImageFolder val/ with 1000 class folders of one tiny image each."""
    from PIL import Image

    root = tmp_path_factory.mktemp("imagenet")
    for c in range(1000):
        d = root / "val" / f"n{c:08d}"
        d.mkdir(parents=True)
        Image.new("RGB", (4, 3), (c % 256, 7, 9 + c % 7)).save(d / "a.png")
    return root


def test_val_labels_in_loader_order_and_minmax_dataset(fake_imagenet, tmp_path):
    root = fake_imagenet
    labels = val_labels_in_loader_order(root, seed=3, num=1000)
    assert sorted(labels.tolist()) == list(range(1000))  # every val image once
    assert torch.equal(labels, val_labels_in_loader_order(root, seed=3, num=1000))
    assert not torch.equal(labels, val_labels_in_loader_order(root, seed=4, num=1000))
    assert torch.equal(labels[:10], val_labels_in_loader_order(root, seed=3, num=10))
    ds = MinMaxImages(imagenet_folder(root, "val"), limit=2)
    img = ds[1]
    assert len(ds) == 2 and img.dtype == torch.uint8 and img.shape == (3, 256, 256)
    assert int(img.min()) == 0 and int(img.max()) == 255
    assert CONFIG_KEY_IMAGENET_DIR == "imagenet.paper.data.root"  # the key that exists
    with pytest.raises(FileNotFoundError, match=CONFIG_KEY_IMAGENET_DIR):
        imagenet_folder(tmp_path / "nowhere", "val")


def test_encode_step_paper_one_seeded_augmentation_per_image(tmp_path):
    """Paper scale: the same codes at any batch size / worker count; seeded."""
    from PIL import Image

    from di4c.networks.vqgan import VQGANConfig, VQModel
    from di4c.teachers.maskgit import save_vqgan_checkpoint, write_vqgan_yaml

    root = tmp_path / "imagenet"
    noise = torch.randint(
        0, 256, (24, 32, 3), generator=torch.Generator().manual_seed(0)
    )
    img = tmp_path / "noise.png"
    Image.fromarray(noise.to(torch.uint8).numpy()).save(img)
    for c in range(1000):  # ImageFolder needs the 1000 class folders
        (root / "train" / f"n{c:08d}").mkdir(parents=True)
        (root / "train" / f"n{c:08d}" / "a.png").symlink_to(img)
    cfg = VQGANConfig(
        embed_dim=4,
        n_embed=8,
        ch=32,
        ch_mult=(1, 1, 1, 1, 1),  # f16, as the paper's VQGAN: 16 x 16 codes
        num_res_blocks=1,
        attn_resolutions=(),
        resolution=256,
        z_channels=4,
    )
    torch.manual_seed(0)
    vq = tmp_path / "vq"
    save_vqgan_checkpoint(vq / "last.ckpt", VQModel(cfg).eval())
    write_vqgan_yaml(vq / "model.yaml", cfg)
    from di4c.models import ModelCard

    write_card(vq, ModelCard(name="vq", setting="imagenet", kind="tokenizer",
                             source="published",
                             files={"weights": "last.ckpt", "config": "model.yaml"}))  # fmt: skip

    def encode(name, batch, workers, seed=0):
        out = tmp_path / f"{name}.pt"
        sets = [f"data.root={root}", "data.encode.limit=4", "device=cpu",
                f"data.encode.batch_size={batch}", f"data.encode.workers={workers}",
                f"data.encode.seed={seed}"]  # fmt: skip
        encode_step.cli(
            ["--scale", "paper", "--data-dir", str(tmp_path), "--vq", str(vq)]
            + ["--out", str(out), *(a for s in sets for a in ("--set", s))]
        )
        return torch.load(out, weights_only=True)

    a = encode("a", 4, 0)
    b = encode("b", 3, 1)
    c = encode("c", 4, 0, seed=1)
    assert a["train_tokens"].shape == (4, 256) and a["grid"] == 16
    assert a["train_labels"].tolist() == [0, 1, 2, 3] and a["codebook_size"] == 8
    assert torch.equal(a["train_tokens"], b["train_tokens"])
    assert not torch.equal(a["train_tokens"], c["train_tokens"])
    # one image, four classes: each index draws its own crop / flip
    assert len({tuple(t.tolist()) for t in a["train_tokens"]}) > 1


@pytest.mark.slow  # Inception on CPU and two 2048-d FIDs
def test_paper_metric_path_offline_inception(fake_imagenet, tmp_path, capsys):
    """The paper path of the reference and score steps: val images (per-image min-max)
    and decoded codes through a VQGAN-family tokenizer card, scored with the offline
    fid-helper Inception (FID and 2-chunk precision / recall, no IS)."""
    from di4c.cli import reference as reference_step
    from di4c.cli import score as score_step
    from di4c.models import ModelCard
    from di4c.teachers.maskgit import save_vqgan_checkpoint, write_vqgan_yaml

    cfg = MiniVQConfig(resolution=16, in_channels=3, n_embed=8, embed_dim=4)
    torch.manual_seed(0)
    vq = tmp_path / "vq"
    save_vqgan_checkpoint(vq / "last.ckpt", build_mini_vq(cfg))
    write_vqgan_yaml(vq / "model.yaml", cfg.to_vqgan())
    files = {"weights": "last.ckpt", "config": "model.yaml"}
    write_card(vq, ModelCard("vq", "imagenet", "tokenizer", "published", files))
    sets = [f"data.root={fake_imagenet}", "sample.num_samples=10", "device=cpu",
            "metrics.feature_extractor=inception-v3-fidhelper", "metrics.workers=0",
            "metrics.prc_chunks=2", "metrics.bootstrap=0", "metrics.protocol=smoke"]  # fmt: skip
    common = [
        "--setting",
        "imagenet",
        "--scale",
        "paper",
        "--card",
        f"vq={vq}/model.json",
    ]
    common += [a for x in sets for a in ("--set", x)]
    ref = tmp_path / "reference"
    reference_step.cli([*common, "--data-dir", str(tmp_path), "--out-dir", str(ref)])
    feats = torch.load(ref / "features.pt", weights_only=True)
    assert list(feats) == ["2048"] and feats["2048"].shape == (10, 2048)
    assert json.loads((ref / "rows.json").read_text()) == []  # no floor rows at paper
    samples = tmp_path / "s.pt"
    tokens = torch.randint(0, 8, (10, 64), generator=torch.Generator().manual_seed(1))
    cell = Cell("teacher", 4, 0, 3.0)
    torch.save({"x": tokens.to(torch.int16), "cell": cell.record(), "nfe": 4.0,
                "shape": [64]}, samples)  # fmt: skip
    out = tmp_path / "m.json"
    argv = [*common, "--samples", str(samples), "--reference", str(ref)]
    score_step.cli([*argv, "--out", str(out)])
    res = json.loads(out.read_text())
    assert res["fid"] > 0 and "is" not in res and 0 <= res["precision"] <= 1
    assert (res["cell"], res["guidance"], res["nfe"], res["num_samples"]) == (
        "teacher_n4_w3",
        3.0,
        4.0,
        10,
    )
    with pytest.raises(SystemExit):  # the paper protocol needs 50,000 images
        score_step.cli(
            [*argv, "--set", "metrics.protocol=paper", "--out", str(out) + "x"]
        )
    assert "needs >= 50000" in capsys.readouterr().err


# ------------------------------------------------------------------ the DAG
def _job_counts(stdout: str) -> dict[str, int]:
    """The first 'Job stats' table of a dry run: rule -> number of jobs."""
    table = stdout.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    rows = (line.split() for line in table.splitlines()[3:])
    return {r[0]: int(r[1]) for r in rows if len(r) == 2 and r[0] != "total"}


def test_paper_dag_dry_run(tmp_path):
    """The paper branch: published teacher, VQGAN and released student fetched,
    ImageNet encoded once, two students distilled, one job per cell."""
    from conftest import copy_workflow, snakemake

    work = copy_workflow(tmp_path / "wf")
    out = snakemake("-n", "-p", "paper_tables/imagenet.csv", cwd=work)
    assert out.returncode == 0, out.stderr[-3000:]
    cells = IN.cells(resolve(load_config(DEFAULT_CONFIG), "imagenet", "paper"))
    assert _job_counts(out.stdout) == {
        "fetch_model": 3,
        "prepare_data": 1,
        "encode_images": 1,
        "distill": 2,
        "reference": 1,
        "sample": len(cells),
        "score": len(cells),
        "make_paper_table": 1,
    }
    for model in ("teacher", "vq", "released"):
        assert f"results/imagenet/paper/fetched/{model}/model.json" in out.stdout
    for model in ("di4c-d", "di4c"):
        assert f"results/imagenet/paper/distilled/{model}/model.json" in out.stdout


def test_smoke_dag_mini_branch(smoke_workflow):
    """The ImageNet branch of the shared smoke run: table with the reference rows,
    notes, model cards, samples with their labels and seeds, benchmarks and logs."""
    from di4c.tables import LAYOUTS

    work = smoke_workflow
    cfg = resolve(load_config(DEFAULT_CONFIG), "imagenet", "smoke")
    run = work / "results/smoke/imagenet/smoke"
    tables = work / "results/smoke/paper_tables/mini"
    cells = IN.cells(cfg)
    with open(tables / "imagenet.csv") as f:
        header = next(csv.reader(f))
        f.seek(0)
        rows = list(csv.DictReader(f))
    assert header == list(LAYOUTS["imagenet"].columns)
    got = {(r["model"], r["steps"], r["teacher_last"], r["guidance"]) for r in rows}
    want = {
        (c.model, str(c.steps), str(c.teacher_last), f"{c.guidance:g}") for c in cells
    }
    floors = {r["model"] for r in rows if r["steps"] == "0"}
    assert got - {g for g in got if g[1] == "0"} == want
    assert floors == {"data (training digits)", "vq reconstruction"}
    for r in rows:
        assert float(r["fid"]) >= 0 and 0 <= float(r["precision"]) <= 1
        assert r["paper_fid"] == ""  # no published values at the twin's scale
    md = (tables / "imagenet.md").read_text()
    meta = json.loads((tables / "imagenet.meta.json").read_text())
    assert "## Notes" in md and all(f"- {n}" in md for n in meta["notes"])
    assert meta["config"]["teacher_of"] == {"di4c-d": "teacher", "hybrid": "teacher"}
    assert (tables / "imagenet.png").stat().st_size > 1000
    # model cards of everything the twin trains
    kinds = {
        m: json.loads((run / "trained" / m / "model.json").read_text())["kind"]
        for m in ("vq", "teacher", "classifier")
    }
    assert kinds == {
        "vq": "tokenizer",
        "teacher": "product",
        "classifier": "classifier",
    }
    student = json.loads((run / "distilled/di4c-d/model.json").read_text())
    assert student["kind"] == "mixture" and student["extra"]["teacher"] == "teacher"
    tok = torch.load(run / "data/tokens.pt", weights_only=True)
    assert (tok["grid"], tok["codebook_size"]) == (4, CODES)
    # samples: seeds seed + i, labels of the held-out digits, the cell's models per step
    seed, n = cfg["sample"]["seed"], cfg["sample"]["num_samples"]
    labels = IN.conditions(cfg, run / "data", n)
    for cell in cells:
        s = torch.load(run / f"samples/{cell.id}.pt", weights_only=True)
        assert s["seeds"].tolist() == list(range(seed, seed + n)), cell.id
        assert torch.equal(s["cond"], labels) and s["x"].shape == (n, D)
        assert int(s["x"].max()) < CODES and s["cell"] == cell.record()
        first = "di4c-d" if cell.model == "hybrid" else cell.model
        want = [first] * (cell.steps - cell.teacher_last) + [
            "teacher"
        ] * cell.teacher_last
        assert s["models"] == want, cell.id
    # every job that trains, samples or scores wrote its benchmark and its log
    jobs = ["train_vq", "encode_images", "train_teacher", "train_classifier"]
    jobs += ["distill_di4c-d", "reference"]
    jobs += [f"{step}_{c.id}" for c in cells for step in ("sample", "score")]
    for job in jobs:
        bench = (run / f"benchmarks/{job}.tsv").read_text().splitlines()
        assert bench[0].startswith("s\th:m:s\tmax_rss") and len(bench) == 2, job
        assert (run / f"logs/{job}.log").stat().st_size > 0, job
