"""ImageNet slice (paper Sec. 5.2, Fig. 3): mini network, label drop, CLI sampling, table, DAG.

The paper-scale networks and containers are covered by test_maskgit_networks.py;
here:

- the mini MaskGIT is the paper network: lambda token, class token and the
  dropped-label token behave as the authors' (student without lambda = teacher);
- the 10% label drop reaches teacher, student and the stop-grad target alike,
  and the target pass runs in eval mode (docs/method.md#imagenet-times,
  docs/implementation-notes.md#target-branch-dropout,
  docs/implementation-notes.md#cfg-details);
- the sampling CLI records the Di4C unmask schedule and the CFG ramp, is
  batch-size invariant, and runs CFG as one pass with the same lambda and the
  dropped label in the second half;
- per-image min-max preprocessing and the val labels in loader order;
- the speed-up note only claims what is beyond the split-half noise;
- the mini branch of the DAG runs end to end in a copy of the workflow (smoke
  config) and the paper branch dry-runs.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

import pytest
import torch
from conftest import snakemake
from di4c.cli.imagenet_common import (
    drop_labels,
    load_network,
    masked_process,
    network_config_of,
    save_network,
)
from di4c.cli.imagenet_distill import DistillConfig, make_loss_fn, rules_from

from di4c.checkpoints import CheckpointFormatError
from di4c.cli import imagenet_sample, imagenet_table
from di4c.data.imagenet import (
    CONFIG_KEY_IMAGENET_DIR,
    MinMaxImages,
    imagenet_folder,
    minmax_uint8,
    val_labels_in_loader_order,
)
from di4c.networks.maskgit import MaskGITDenoiser
from di4c.networks.mini_maskgit import MiniMaskGITConfig, build_mini_maskgit
from di4c.networks.mini_vq import MiniVQConfig, build_mini_vq, vq_forward
from di4c.samplers.confidence import UNCOND

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TINY = MiniMaskGITConfig(
    grid=4, codebook_size=6, nclass=3, hidden_dim=16, depth=1, heads=2, mlp_dim=32
)


def _teacher_and_student(seed=0, cfg=TINY):
    torch.manual_seed(seed)
    teacher = build_mini_maskgit(cfg).eval()
    student = build_mini_maskgit(cfg, is_student=True).eval()
    missing, unexpected = student.load_state_dict(teacher.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("latent_projection") for k in missing)
    return teacher, student


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


def test_network_files_round_trip_and_roles(tmp_path):
    teacher, _ = _teacher_and_student()
    path = save_network(tmp_path / "t.pth", teacher, iters=7)
    assert network_config_of(path) == teacher.config
    back = load_network(path)  # keys say: a teacher
    for k, v in teacher.state_dict().items():
        assert torch.equal(back.state_dict()[k], v)
    init = load_network(path, "student_init", seed=3)
    again = load_network(path, "student_init", seed=3)
    assert init.is_student and torch.equal(
        init.latent_projection[0].weight, again.latent_projection[0].weight
    )
    with pytest.raises(CheckpointFormatError, match="teacher file"):
        load_network(path, "student")
    spath = save_network(tmp_path / "s.pth", init)
    assert load_network(spath).is_student
    with pytest.raises(ValueError, match="unknown network role"):
        load_network(path, "judge")


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


# ------------------------------------------------------------------ label drop
def test_drop_labels_exact():
    y = torch.tensor([3, 1, 4, 1, 5])
    u = torch.tensor([0.05, 0.5, 0.09, 0.1, 0.99])
    assert drop_labels(y, 0.1, u).tolist() == [UNCOND, 1, UNCOND, 1, 5]
    assert torch.equal(drop_labels(y, 0.0, u), y)
    assert (drop_labels(y, 1.0, u) == UNCOND).all()
    with pytest.raises(ValueError, match="one uniform per label"):
        drop_labels(y, 0.1, u[:3])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        drop_labels(y, 1.5, u)


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


def test_label_drop_is_shared_by_teacher_student_and_target():
    """One drop per image reaches every pass; the target pass is in eval mode."""
    teacher_net, student_net = _teacher_and_student(1)
    student_net.train()
    rec_t, rec_s = _Recorder(teacher_net), _Recorder(student_net)
    K, B = 3, 8
    cfg = DistillConfig(K=K, batch_x=B, label_drop=0.5)
    loss_fn = make_loss_fn(
        MaskGITDenoiser(student_net),
        MaskGITDenoiser(teacher_net),
        masked_process(teacher_net.config),
        rules_from(cfg),
        cfg.label_drop,
        torch.device("cpu"),
        "fp32",
    )
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    batch = {"x0": torch.randint(0, 6, (B, 16)), "y": y}
    loss_fn(batch, torch.Generator().manual_seed(5)).total.backward()
    null = TINY.nclass
    (t_call,) = rec_t.calls  # product teacher: one pass at x_t
    dropped = t_call["drop"]
    assert 0 < int(dropped.sum()) < B  # this seed drops some labels, not all
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


# ------------------------------------------------------------------ sampling CLI
def test_sample_cli_schedule_cfg_ramp_and_batch_invariance(tmp_path, monkeypatch):
    cfg = MiniMaskGITConfig(
        grid=16, codebook_size=5, nclass=3, hidden_dim=16, depth=1, heads=2, mlp_dim=16
    )
    torch.manual_seed(0)
    student = build_mini_maskgit(cfg, is_student=True).eval()
    model = save_network(tmp_path / "s.pth", student)
    labels = tmp_path / "labels.pt"
    torch.save({"labels": torch.tensor([0, 1, 2, 2, 1, 0])}, labels)
    calls = []
    orig = MaskGITDenoiser.logits

    def spy(self, x_t, lam=None, cond=None):
        calls.append((x_t.shape[0], None if lam is None else lam.clone(), cond.clone()))
        return orig(self, x_t, lam, cond)

    monkeypatch.setattr(MaskGITDenoiser, "logits", spy)
    outs = []
    for bs in (6, 4):
        out = tmp_path / f"samples_bs{bs}.pt"
        imagenet_sample.main(
            [
                "--model",
                str(model),
                "--labels",
                str(labels),
                "--out",
                str(out),
                "--steps",
                "4",
                "--cfg",
                "6",
                "--num-samples",
                "6",
                "--batch-size",
                str(bs),
                "--seed",
                "11",
                "--device",
                "cpu",
            ]
        )
        outs.append(torch.load(out, weights_only=True))
    a, b = outs
    assert torch.equal(a["tokens"], b["tokens"])  # same seeds, any batch size
    assert a["tokens"].shape == (6, 256) and int(a["tokens"].max()) < 5
    assert a["seeds"].tolist() == list(range(11, 17)) and a["nfe"] == 4
    meta = json.loads((tmp_path / "samples_bs6.meta.json").read_text())
    assert meta["unmask_schedule"] == [41, 44, 53, 118]  # the Di4C schedule, D = 256
    assert meta["cfg_ramp"] == [0.0, 2.0, 4.0, 6.0]  # linear ramp, first step unguided
    # first run (batch 6): step 0 unguided (one pass of 6), then 2 x 6 rows per step
    first = calls[:4]
    assert [c[0] for c in first] == [6, 12, 12, 12]
    for _, lam, cond in first[1:]:
        assert torch.equal(lam[:6], lam[6:])  # the same lambda in both halves
        assert (cond[6:] == UNCOND).all() and torch.equal(cond[:6], a["labels"])


def _sample_cli(tmp_path, model, labels, name, steps, extra=()):
    out = tmp_path / f"{name}.pt"
    imagenet_sample.main(
        [
            *("--model", str(model), "--labels", str(labels), "--out", str(out)),
            *("--steps", str(steps), "--cfg", "2", "--num-samples", "5"),
            *("--batch-size", "3", "--seed", "4", "--device", "cpu", *extra),
        ]
    )
    meta = json.loads(out.with_suffix(".meta.json").read_text())
    return torch.load(out, weights_only=True)["tokens"], meta


def test_hybrid_sampler_runs_the_teacher_for_the_last_steps(tmp_path, monkeypatch):
    """Hybrid rows: the student's N - L steps, then the teacher's L.

    See docs/mini-twins.md#cost-of-fine-tuning-at-many-steps.
    """
    torch.manual_seed(0)
    teacher = build_mini_maskgit(TINY).eval()  # independent weights: other logits
    student = build_mini_maskgit(TINY, is_student=True).eval()
    t_path = save_network(tmp_path / "t.pth", teacher)
    s_path = save_network(tmp_path / "s.pth", student)
    labels = tmp_path / "labels.pt"
    torch.save({"labels": torch.tensor([0, 1, 2, 2, 1])}, labels)
    seen = []  # (model, x_t) of every network call
    orig = MaskGITDenoiser.logits

    def spy(self, x_t, lam=None, cond=None):
        role = "student" if self.is_mixture else "teacher"
        seen.append((role, x_t.clone()))
        return orig(self, x_t, lam, cond)

    monkeypatch.setattr(MaskGITDenoiser, "logits", spy)
    hyb = ("--hybrid-teacher", str(t_path))
    runs = {}
    for name, model, extra in [
        ("student", s_path, ()),
        ("teacher", t_path, ()),
        ("hyb1", s_path, (*hyb, "--teacher-last", "1")),
        ("hyb0", s_path, (*hyb, "--teacher-last", "0")),
        ("hyb4", s_path, (*hyb, "--teacher-last", "4")),
    ]:
        seen.clear()
        tokens, meta = _sample_cli(tmp_path, model, labels, name, 4, extra)
        runs[name] = (tokens, meta, list(seen))
    tok, meta, calls = runs["hyb1"]
    assert meta["step_models"] == ["student"] * 3 + ["teacher"]
    assert meta["inputs"]["hybrid_teacher"]["path"] == str(t_path)
    # 2 batches (3 + 2 samples) x 4 steps; the teacher makes the 4th call of each
    assert [c[0] for c in calls] == (["student"] * 3 + ["teacher"]) * 2
    # before the last step the hybrid state is the student's (same seeds) ...
    s_tok, _, s_calls = runs["student"]
    for b in (3, 7):
        assert torch.equal(calls[b][1], s_calls[b][1])
    # CFG halves share x_t: the first rows of the last call are the batch's state
    committed = torch.cat([calls[3][1][:3], calls[7][1][:2]]) != TINY.codebook_size
    assert torch.equal(tok[committed], s_tok[committed])
    # ... and the last step (unmask schedule of D = 16: 3, 2, 4, 7) is the teacher's
    assert (~committed).sum(1).tolist() == [7] * 5
    assert not torch.equal(tok, s_tok)
    # the two ends: L = 0 is the student, L = N the teacher (lambda draws unused)
    assert runs["hyb0"][1]["step_models"] == ["student"] * 4
    assert torch.equal(runs["hyb0"][0], s_tok)
    assert runs["hyb4"][1]["step_models"] == ["teacher"] * 4
    assert torch.equal(runs["hyb4"][0], runs["teacher"][0])
    with pytest.raises(ValueError, match="teacher_last must be in"):
        _sample_cli(tmp_path, s_path, labels, "bad", 4, (*hyb, "--teacher-last", "5"))


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
    from di4c.cli.imagenet_images import chunked_prc, score_features

    g = torch.Generator().manual_seed(0)
    a = torch.randn(20, 8, generator=g)  # cluster A
    b = torch.randn(20, 8, generator=g) + 100.0  # cluster B, far away
    real = {"pool": torch.cat([a, b]), "logits": torch.zeros(40, 10)}
    swapped = {"pool": torch.cat([b, a]), "logits": torch.zeros(40, 10)}
    # full sets: the same points -> precision = recall = 1; chunk-aligned: each
    # generated chunk lies in the other cluster -> 0
    full = score_features(swapped, real, "digit-classifier", ("prc",))
    assert (full["precision"], full["recall"]) == (1.0, 1.0)
    res = chunked_prc(swapped, real, "digit-classifier", 2)
    assert res["precision_chunks"] == [0.0, 0.0] == res["recall_chunks"]
    assert (res["precision"], res["recall"], res["f_score"]) == (0.0, 0.0, 0.0)
    same = score_features(real, real, "digit-classifier", ("prc",), prc_chunks=2)
    assert same["precision_chunks"] == [1.0, 1.0] and same["recall"] == 1.0
    half = {"pool": torch.cat([a, a]), "logits": torch.zeros(40, 10)}
    res = chunked_prc(half, real, "digit-classifier", 2)  # chunk 2 misses cluster B
    assert res["precision_chunks"] == [1.0, 0.0] and res["precision"] == 0.5
    with pytest.raises(ValueError, match="lower prc_chunks"):
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


def test_encode_cli_one_seeded_augmentation_per_image(tmp_path):
    """imagenet_encode: the same codes at any batch size / worker count; seeded."""
    from PIL import Image

    from di4c.cli import imagenet_encode
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
    save_vqgan_checkpoint(tmp_path / "last.ckpt", VQModel(cfg).eval())
    write_vqgan_yaml(tmp_path / "model.yaml", cfg)

    def encode(name, *flags):
        out = tmp_path / f"{name}.pt"
        imagenet_encode.main(
            ["--imagenet-dir", str(root), "--limit", "4", "--device", "cpu"]
            + ["--vq-ckpt", str(tmp_path / "last.ckpt"), "--out", str(out)]
            + ["--vq-yaml", str(tmp_path / "model.yaml"), *flags]
        )
        return torch.load(out, weights_only=True)

    a = encode("a", "--batch-size", "4", "--workers", "0")
    b = encode("b", "--batch-size", "3", "--workers", "1")
    c = encode("c", "--batch-size", "4", "--workers", "0", "--seed", "1")
    assert a["train_tokens"].shape == (4, 256) and a["grid"] == 16
    assert a["train_labels"].tolist() == [0, 1, 2, 3] and a["codebook_size"] == 8
    assert torch.equal(a["train_tokens"], b["train_tokens"])
    assert not torch.equal(a["train_tokens"], c["train_tokens"])
    # one image, four classes: each index draws its own crop / flip
    assert len({tuple(t.tolist()) for t in a["train_tokens"]}) > 1


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
    with pytest.raises(FileNotFoundError, match=CONFIG_KEY_IMAGENET_DIR):
        imagenet_folder(tmp_path / "nowhere", "val")


@pytest.mark.slow  # the 87 MB Inception on CPU: about a minute
def test_paper_metric_path_offline_inception(fake_imagenet, tmp_path):
    """Reference features of val images and a scored cell through the paper path
    (decode with a VQGAN-family tokenizer, per-image min-max, Inception) with the
    offline fid-helper Inception, which gives FID and precision / recall, no IS."""
    from di4c.cli import imagenet_eval, imagenet_reference
    from di4c.teachers.maskgit import save_vqgan_checkpoint, write_vqgan_yaml

    cfg = MiniVQConfig(resolution=16, in_channels=3, n_embed=8, embed_dim=4)
    torch.manual_seed(0)
    vq = build_mini_vq(cfg)
    save_vqgan_checkpoint(tmp_path / "last.ckpt", vq)
    write_vqgan_yaml(tmp_path / "model.yaml", cfg.to_vqgan())
    ref = tmp_path / "ref.pt"
    ext = ["--feature-extractor", "inception-v3-fidhelper"]
    imagenet_reference.main(
        ["paper", "--imagenet-dir", str(fake_imagenet), "--num", "10", "--workers", "0"]
        + ["--out", str(ref)]
        + ext
    )
    feats = torch.load(ref, weights_only=True)
    assert list(feats) == ["2048"] and feats["2048"].shape == (10, 2048)
    samples = tmp_path / "s.pt"
    tokens = torch.randint(0, 8, (10, 64), generator=torch.Generator().manual_seed(1))
    torch.save({"tokens": tokens, "steps": 4, "cfg": 3.0, "nfe": 4}, samples)
    out = tmp_path / "m.json"
    imagenet_eval.main(
        ["--samples", str(samples), "--vq-ckpt", str(tmp_path / "last.ckpt")]
        + ["--vq-yaml", str(tmp_path / "model.yaml"), "--reference", str(ref)]
        + ["--protocol", "smoke", "--device", "cpu", "--out", str(out)]
        + ["--model", "teacher", "--prc-chunks", "2"]
        + ext
    )
    res = json.loads(out.read_text())
    assert res["fid"] > 0 and "is" not in res and 0 <= res["precision"] <= 1
    assert res["precision"] == sum(res["precision_chunks"]) / 2  # the protocol's mean
    assert (res["model"], res["steps"], res["cfg"]) == ("teacher", 4, 3.0)
    with pytest.raises(ValueError, match="needs >= 50000"):
        imagenet_eval.main(
            ["--samples", str(samples), "--vq-ckpt", str(tmp_path / "last.ckpt")]
            + ["--vq-yaml", str(tmp_path / "model.yaml"), "--reference", str(ref)]
            + ["--out", str(tmp_path / "x.json")]
            + ext
        )


# ------------------------------------------------------------------ table notes
def _rec(model, steps, fid, spread, cfg=2.0):
    return {
        "model": model,
        "steps": steps,
        "cfg": cfg,
        "fid": fid,
        "fid_spread": spread,
    }


def test_speedup_note_only_beyond_noise():
    recs = [
        _rec("teacher", 2, 20.0, 0.3),
        _rec("teacher", 4, 12.0, 0.3),
        _rec("teacher", 8, 8.0, 0.3),
        _rec("teacher", 16, 6.0, 0.3),
        _rec("di4c-d", 4, 8.2, 0.3),  # matches teacher@8 within noise
        _rec("k1", 4, 11.8, 0.4),  # = teacher@4 within noise
        _rec("di4c", 2, 11.0, 0.3),  # beats teacher@4: >= 2x, < 4x
    ]
    notes = imagenet_table.speedup_notes(recs, 2.0)
    assert notes[0].startswith("Teacher FID vs steps (CFG 2): N=2: 20")
    assert notes[0].endswith("improves beyond noise up to N=16.")
    pattern = re.compile(r"(\S+) @ (\d+) steps")
    text = {pattern.match(n).groups(): n for n in notes[1:] if pattern.match(n)}
    assert "speed-up >= 2x" in text["di4c-d", "4"] and "< 4x" in text["di4c-d", "4"]
    assert "no gain beyond noise" in text["k1", "4"]
    assert "speed-up >= 2x" in text["di4c", "2"] and "< 4x" in text["di4c", "2"]
    # the equal-compute K = 1 ablation at the same steps
    assert "di4c-d vs k1 @ 4 steps (CFG 2): FID 8.2 vs 11.8: better." in notes
    assert imagenet_table.speedup_notes(recs, 3.0)[0].startswith("CFG 3: no teacher")
    # with bootstrap sds the band is 2 sd of the difference: 2 * hypot(1.5, 1.5) = 4.24
    sd = [
        {**_rec("teacher", 4, 30.0, 0.1), "fid_sd": 1.5},
        {**_rec("teacher", 8, 26.0, 0.1), "fid_sd": 1.5},
        {**_rec("di4c-d", 4, 26.5, 0.1), "fid_sd": 1.5},  # 3.5 better than teacher@4
    ]
    (note,) = imagenet_table.speedup_notes(sd, 2.0)[1:]
    assert "no gain beyond noise" in note


def test_curve_notes_compare_fid_and_is_per_cfg():
    def cell(model, steps, fid, is_):
        return {
            **_rec(model, steps, fid, 0.0, 3.0),
            "is": is_,
            "fid_sd": 0.2,
            "is_sd": 1.0,
        }

    recs = [cell("teacher", 4, 10.0, 100.0), cell("teacher", 8, 8.0, 110.0)]
    recs.append(cell("di4c-d", 4, 8.1, 109.0))
    (note,) = imagenet_table.curve_notes(recs, {"teacher": [4, 8], "student": [4]})
    assert note == (
        "CFG 3: di4c-d @ 4 (FID 8.1, IS 109) vs teacher @ 4: FID better, IS better; "
        "vs teacher @ 8: FID within noise, IS within noise."
    )


# ------------------------------------------------------------------ the DAG
_smk = snakemake


def test_smoke_dag_mini_branch_end_to_end(smoke_workflow):
    """The mini branch in the shared smoke run (smoke sizes); the paper branch dry-runs."""
    work = smoke_workflow
    smoke = ("--configfile", "workflows/config/smoke.yaml")
    tables = "results/smoke/paper_tables"
    dry = _smk(f"{tables}/imagenet.csv", "-n", "--cores", "2", *smoke, cwd=work)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert (
        "make_imagenet_table" in dry.stdout and "fetch_imagenet_weights" in dry.stdout
    )
    rows = list(csv.DictReader(open(work / tables / "mini/imagenet.csv")))
    cells = {(r["model"], r["steps"], r["cfg"]) for r in rows}
    assert cells == {
        ("teacher", "2", "2"),
        ("di4c-d", "2", "2"),
        ("hybrid", "2", "2"),
        ("data (training digits)", "0", ""),
        ("vq reconstruction", "0", ""),
    }
    for r in rows:
        assert float(r["fid"]) >= 0 and r["paper_fid"] == ""
    assert (work / tables / "mini/imagenet.png").stat().st_size > 1000
    assert "Closing notes" in (work / tables / "mini/imagenet.md").read_text()
    meta = json.loads((work / tables / "mini/imagenet.meta.json").read_text())
    assert "git_commit" in meta and meta["config"]["scale"] == "mini"
    smeta = json.loads(
        (
            work / "results/smoke/imagenet/mini/samples/teacher_steps2_cfg2.meta.json"
        ).read_text()
    )
    # D = 16 codes: round(16 arccos(1/2) / (pi/2)) = 11 masked after step 1
    assert smeta["unmask_schedule"] == [5, 11] and smeta["cfg_ramp"] == [0.0, 2.0]
    hmeta = json.loads(
        (
            work / "results/smoke/imagenet/mini/samples/hybrid_steps2_cfg2.meta.json"
        ).read_text()
    )
    assert hmeta["step_models"] == ["student", "teacher"]
    log = work / "results/smoke/logs/imagenet/distill_imagenet_mini_di4c-d.log"
    assert "lambda_spread" in log.read_text()
    again = _smk(f"{tables}/mini/imagenet.csv", "-n", "--cores", "2", *smoke, cwd=work)
    assert "Nothing to be done" in again.stdout + again.stderr
