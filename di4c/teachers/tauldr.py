"""Checkpoint containers of the CIFAR-10 tauLDR networks (setting A).

Formats: docs/checkpoints.md#tauldr-checkpoint and docs/checkpoints.md#di4c-tauldr-student.

Both published files use the tauLDR training container (``bookkeeping.save_checkpoint``
in the authors' code), a ``torch.save``\\ d dict:

- ``model``: the model's ``state_dict()``: UNet tensors under ``net.<key>``
  (``net.module.<key>`` after a distributed run, as in the teacher file) plus
  ``ema_decay`` (float), ``ema_num_updates`` (int) and ``ema_shadow_params`` (a
  list of tensors, one per parameter, in ``parameters()`` order);
- ``optimizer``: an Adam ``state_dict``; ``n_iter``: the iteration.

The ``net.*`` tensors are the raw training weights; sampling uses the EMA
shadow (the authors' ``eval()`` copies it in), so the loaders for sampling
default to ``weights="ema"``. Files:

- teacher: tauLDR ``ckpt_0001999999.pt`` (Dropbox folder of the tauLDR authors),
- student: the released Di4C student ``tldr-di4c.pt`` (Zenodo record 15124163).

Student initialisation (docs/algorithm.md#student-initialisation,
docs/implementation-notes.md#raw-weights-student-init): the authors load the
teacher file non-strictly into the student; because keys are missing, their EMA
loader skips the shadow list, so the student starts from the teacher's **raw**
weights, its lambda modules keep their fresh init and every ``dense1`` is zero.
:func:`init_student` does the same by default (``weights="raw"``);
``weights="ema"`` starts from the EMA weights instead (a deliberate deviation).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from di4c.artifacts import atomic_path
from di4c.checkpoints import CheckpointFormatError, load_container
from di4c.download import RemoteFile, fetch
from di4c.networks.tauldr_unet import TauLDRUNet, TauLDRUNetConfig
from di4c.pins import check_or_pin

__all__ = [
    "DI4C_STUDENT_FILE",
    "TAULDR_TEACHER_FILE",
    "TauLDRCheckpoint",
    "init_student",
    "load_into",
    "load_student",
    "load_student_file",
    "load_teacher",
    "load_teacher_file",
    "read_checkpoint",
    "save_checkpoint",
    "student_only_keys",
    "teacher_checkpoint_path",
]

Weights = Literal["raw", "ema"]

NET_PREFIX = "net."
DDP_INFIX = "module."
EMA_KEYS = ("ema_decay", "ema_num_updates", "ema_shadow_params")
TEACHER_CKPT_NAME = "ckpt_0001999999.pt"
_STUDENT_TOP = ("lemb_modules.", "hlemb_modules.", "tlam_mix.", "h_t_lam_mix.")

# The tauLDR authors publish a Dropbox *folder* (linked from the tauLDR and the
# Di4C ``tauldr/README.md``); ``dl=1`` downloads it as a zip, from which
# :func:`load_teacher` extracts ``ckpt_0001999999.pt``. No checksum is published.
# ``config_key``: the key that takes a local copy, named in offline errors; the
# CIFAR-10 adapter (di4c/settings/cifar10.py) sets the workflow's own keys
# (``cifar10.paper.models.<name>.local``) on the files it fetches.
TAULDR_TEACHER_FILE = RemoteFile(
    name="tauldr_cifar10_dropbox_folder.zip",
    url=(
        "https://www.dropbox.com/scl/fo/zmwsav82kgqtc0tzgpj3l/h"
        "?dl=1&rlkey=k6d2bp73k4ifavcg9ldjhgu0s"
    ),
    sha256=None,
    config_key="cifar10.paper.models.teacher.local",
    size_hint=f"folder zip, size unknown; holds {TEACHER_CKPT_NAME} (~0.6 GB est.)",
)

DI4C_STUDENT_FILE = RemoteFile(
    name="tldr-di4c.pt",
    url="https://zenodo.org/records/15124163/files/tldr-di4c.pt?download=1",
    sha256=None,
    config_key="cifar10.paper.models.released_student.local",
    size_hint="size unknown",
)


def student_only_keys(keys: Sequence[str]) -> list[str]:
    """The bare UNet keys only the Di4C student has (lambda modules, ``dense1``)."""
    return [k for k in keys if k.startswith(_STUDENT_TOP) or ".dense1." in k]


# ----------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------


@dataclass
class TauLDRCheckpoint:
    """The UNet content of one container file.

    Attributes:
        path: the file read.
        raw: bare UNet key -> tensor (the ``net.*`` entries), in file order.
        ema: bare UNet key -> EMA tensor (shadow list matched by position), or
            None when the file has no shadow list.
        ema_decay, ema_num_updates, n_iter: bookkeeping values (None if absent).
        distributed: the keys carried the ``net.module.`` prefix.
    """

    path: Path
    raw: dict[str, Tensor]
    ema: dict[str, Tensor] | None
    ema_decay: float | None
    ema_num_updates: int | None
    n_iter: int | None
    distributed: bool

    @property
    def is_student(self) -> bool:
        return bool(student_only_keys(list(self.raw)))

    def weights(self, which: Weights) -> dict[str, Tensor]:
        if which == "raw":
            return self.raw
        if which == "ema":
            if self.ema is None:
                raise CheckpointFormatError(
                    f"{self.path}: has no ema_shadow_params; use weights='raw'"
                )
            return self.ema
        raise ValueError(f"weights must be 'raw' or 'ema'; got {which!r}")


def _bare_key(key: str) -> str | None:
    """``net.[module.]<key>`` -> ``<key>``; None for entries outside the UNet."""
    if not key.startswith(NET_PREFIX):
        return None
    key = key[len(NET_PREFIX) :]
    return key[len(DDP_INFIX) :] if key.startswith(DDP_INFIX) else key


def read_checkpoint(path: str | os.PathLike) -> TauLDRCheckpoint:
    """Read a tauLDR container; raise a :class:`~di4c.checkpoints.CheckpointError` naming the file.

    Read with :func:`di4c.checkpoints.load_container` (``allow_objects``: the
    published files come from the authors' training code; any pickled
    bookkeeping stays inert).
    """
    path = Path(path)
    obj = load_container(path, "tauLDR checkpoint", allow_objects=True)
    model = obj.get("model") if isinstance(obj, Mapping) else None
    if not isinstance(model, Mapping):
        found = [str(k) for k in obj][:8] if isinstance(obj, Mapping) else type(obj)
        raise CheckpointFormatError(
            f"{path}: not a tauLDR checkpoint: expected a dict with a 'model' entry "
            f"holding 'net.*' tensors (and 'optimizer', 'n_iter'); found {found}"
        )
    raw: dict[str, Tensor] = {}
    distributed = False
    for key, value in model.items():
        bare = _bare_key(key)
        if bare is None or not torch.is_tensor(value):
            continue
        distributed |= key.startswith(NET_PREFIX + DDP_INFIX)
        raw[bare] = value
    unknown = [k for k in model if _bare_key(k) is None and k not in EMA_KEYS]
    if not raw or unknown:
        raise CheckpointFormatError(
            f"{path}: not a tauLDR checkpoint: its 'model' entry should hold 'net.*' "
            f"tensors and {list(EMA_KEYS)}; found {len(raw)} 'net.*' tensors and "
            f"other entries {unknown[:5]}"
        )
    shadow = model.get("ema_shadow_params")
    ema = None
    if shadow is not None:
        ema = _match_shadow(path, raw, shadow)
    return TauLDRCheckpoint(
        path=path,
        raw=raw,
        ema=ema,
        ema_decay=model.get("ema_decay"),
        ema_num_updates=model.get("ema_num_updates"),
        n_iter=obj.get("n_iter"),
        distributed=distributed,
    )


def _match_shadow(path: Path, raw: dict[str, Tensor], shadow: Any) -> dict[str, Tensor]:
    """Map the shadow list onto the raw keys by position (``parameters()`` order)."""
    if not isinstance(shadow, (list, tuple)) or len(shadow) != len(raw):
        n = len(shadow) if isinstance(shadow, (list, tuple)) else type(shadow).__name__
        raise CheckpointFormatError(
            f"{path}: ema_shadow_params should be a list of {len(raw)} tensors (one "
            f"per 'net.*' parameter); found {n}"
        )
    for i, ((key, value), s) in enumerate(zip(raw.items(), shadow, strict=True)):
        if not torch.is_tensor(s) or s.shape != value.shape:
            got = tuple(s.shape) if torch.is_tensor(s) else type(s).__name__
            raise CheckpointFormatError(
                f"{path}: ema_shadow_params[{i}] has shape {got} but the parameter at "
                f"that position, '{key}', has {tuple(value.shape)}; the shadow list "
                "does not follow the parameter order"
            )
    return dict(zip(raw, shadow, strict=True))


# ----------------------------------------------------------------------------------
# Loading into our networks
# ----------------------------------------------------------------------------------


def load_into(
    net: TauLDRUNet,
    ckpt: TauLDRCheckpoint,
    *,
    weights: Weights = "ema",
    allow_missing_student_keys: bool = False,
) -> list[str]:
    """Copy ``ckpt`` into ``net``; return the network keys left at their init.

    Every network key must be in the file with the same shape, except (with
    ``allow_missing_student_keys``) the student-only entries, which a teacher
    file lacks. File entries the network lacks are an error.
    """
    src = ckpt.weights(weights)
    own = net.state_dict()
    missing = [k for k in own if k not in src]
    allowed = set(student_only_keys(list(own))) if allow_missing_student_keys else set()
    bad_missing = [k for k in missing if k not in allowed]
    extra = [k for k in src if k not in own]
    family = "Di4C student" if ckpt.is_student else "teacher (product)"
    kind = "Di4C student" if net.is_mixture else "teacher"
    if extra or bad_missing:
        hint = ""
        if ckpt.is_student and not net.is_mixture:
            hint = " The file is a Di4C student checkpoint: use load_student_file."
        elif net.is_mixture and not ckpt.is_student:
            hint = " The file is a teacher checkpoint: use init_student to start one."
        raise CheckpointFormatError(
            f"{ckpt.path}: {family} checkpoint does not fit this {kind} network: "
            f"{len(bad_missing)} entries missing from the file (e.g. {bad_missing[:3]})"
            f", {len(extra)} file entries unknown to the network (e.g. {extra[:3]})."
            + hint
        )
    wrong = [
        f"'{k}': file {tuple(src[k].shape)} vs network {tuple(v.shape)}"
        for k, v in own.items()
        if k in src and src[k].shape != v.shape
    ]
    if wrong:
        raise CheckpointFormatError(
            f"{ckpt.path}: tensor shapes do not match the network built from "
            f"{net.config}: {wrong[:3]}; pass the config the file was trained with"
        )
    with torch.no_grad():
        for k, v in own.items():
            if k in src:
                v.copy_(src[k])
    return missing


def _frozen(net: TauLDRUNet, device: torch.device | str) -> TauLDRUNet:
    return net.to(device).eval().requires_grad_(False)


def load_teacher_file(
    path: str | os.PathLike,
    *,
    config: TauLDRUNetConfig | None = None,
    weights: Weights = "ema",
    device: torch.device | str = "cpu",
) -> TauLDRUNet:
    """The product teacher from a container file (EMA weights by default), frozen.

    ``config`` defaults to the paper teacher; its ``lam_embed`` is ignored.
    """
    ckpt = read_checkpoint(path)
    cfg = (config or TauLDRUNetConfig.paper_teacher()).as_teacher()
    with torch.device("meta"):
        net = TauLDRUNet(cfg)
    net = net.to_empty(device="cpu")
    load_into(net, ckpt, weights=weights)
    return _frozen(net, device)


def load_student_file(
    path: str | os.PathLike,
    *,
    config: TauLDRUNetConfig | None = None,
    weights: Weights = "ema",
    device: torch.device | str = "cpu",
) -> TauLDRUNet:
    """A trained Di4C student from a container file (EMA weights), frozen, eval."""
    ckpt = read_checkpoint(path)
    if not ckpt.is_student:
        raise CheckpointFormatError(
            f"{ckpt.path}: no lambda modules (lemb_modules, dense1, ...): this is a "
            "teacher (product) checkpoint, not a Di4C student; use load_teacher_file, "
            "or init_student to start a student from it"
        )
    cfg = (config or TauLDRUNetConfig.paper_student()).as_student()
    with torch.device("meta"):
        net = TauLDRUNet(cfg)
    net = net.to_empty(device="cpu")
    load_into(net, ckpt, weights=weights)
    return _frozen(net, device)


def init_student(
    source: str | os.PathLike | TauLDRCheckpoint,
    *,
    config: TauLDRUNetConfig | None = None,
    weights: Weights = "raw",
    seed: int | None = None,
) -> TauLDRUNet:
    """A Di4C student initialised from a teacher file, as the authors (train mode).

    Teacher tensors (``weights="raw"``, the authors' behaviour;
    docs/implementation-notes.md#raw-weights-student-init) are copied into the student; the lambda modules keep a fresh
    init (drawn under ``seed`` if given) and every ``dense1`` stays zero, so the
    student equals the source network for every lambda.
    """
    ckpt = source if isinstance(source, TauLDRCheckpoint) else read_checkpoint(source)
    if ckpt.is_student:
        raise CheckpointFormatError(
            f"{ckpt.path}: already a Di4C student checkpoint; use load_student_file "
            "(or load_into with the student's weights) to continue from it"
        )
    cfg = (config or TauLDRUNetConfig.paper_student()).as_student()
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        net = TauLDRUNet(cfg)
    load_into(net, ckpt, weights=weights, allow_missing_student_keys=True)
    return net.train()


# ----------------------------------------------------------------------------------
# Published files
# ----------------------------------------------------------------------------------


def _extract_teacher(archive: Path, config_key: str | None = None) -> Path:
    """If ``archive`` is the Dropbox folder zip, extract the CIFAR-10 checkpoint.

    A ``torch.save`` file is also a zip (members ``*/data.pkl``, ...); such a
    file, or any non-zip file, is returned unchanged.
    """
    if not zipfile.is_zipfile(archive):
        return archive
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        if any(n.endswith("data.pkl") for n in names):
            return archive
        hits = [n for n in names if n.rsplit("/", 1)[-1] == TEACHER_CKPT_NAME]
        if len(hits) > 1:
            hits = [n for n in hits if "cifar" in n.lower()] or hits
        if len(hits) != 1:
            raise CheckpointFormatError(
                f"{archive}: a zip archive that should hold exactly one "
                f"{TEACHER_CKPT_NAME}; found {hits or 'none'} among {names[:10]}. "
                f"Extract the checkpoint by hand and set config key "
                f"'{config_key or TAULDR_TEACHER_FILE.config_key}' to it."
            )
        dest = archive.with_name(f"tauldr_cifar10_{TEACHER_CKPT_NAME}")
        if not dest.is_file():
            with (
                atomic_path(dest) as tmp,
                zf.open(hits[0]) as src,
                open(tmp, "wb") as f,
            ):
                while block := src.read(1 << 20):
                    f.write(block)
        return dest


def teacher_checkpoint_path(
    local_path: str | os.PathLike | None = None,
    *,
    remote: RemoteFile | None = None,
    pin_file: str | os.PathLike | None = None,
) -> Path:
    """Local path of the tauLDR teacher container: the user's copy, or fetched and extracted.

    The file :func:`load_teacher` reads; callers that also need the raw
    weights (:func:`init_student`) start from it. With ``pin_file`` the
    extracted checkpoint is pinned, not the zip: Dropbox builds folder zips on
    request, so two downloads of the same folder need not be byte-identical.
    """
    remote = remote or TAULDR_TEACHER_FILE
    path = _extract_teacher(fetch(remote, local_path), remote.config_key)
    if not local_path:  # a user's copy is theirs; a download is pinned
        source = f"{remote.source} :: {TEACHER_CKPT_NAME}"
        check_or_pin(pin_file, TEACHER_CKPT_NAME, path, source)
    return path


def load_teacher(
    local_path: str | os.PathLike | None = None,
    *,
    config: TauLDRUNetConfig | None = None,
    weights: Weights = "ema",
    remote: RemoteFile | None = None,
    device: torch.device | str = "cpu",
) -> TauLDRUNet:
    """The tauLDR CIFAR-10 teacher on EMA weights, frozen, in eval mode.

    ``local_path``: a user copy of ``ckpt_0001999999.pt``; otherwise the pinned
    Dropbox folder is fetched (``remote`` overrides the descriptor).
    """
    path = _extract_teacher(fetch(remote or TAULDR_TEACHER_FILE, local_path))
    return load_teacher_file(path, config=config, weights=weights, device=device)


def load_student(
    local_path: str | os.PathLike | None = None,
    *,
    config: TauLDRUNetConfig | None = None,
    weights: Weights = "ema",
    remote: RemoteFile | None = None,
    device: torch.device | str = "cpu",
) -> TauLDRUNet:
    """The released Di4C CIFAR-10 student (``tldr-di4c.pt``) on EMA weights, eval."""
    path = fetch(remote or DI4C_STUDENT_FILE, local_path)
    return load_student_file(path, config=config, weights=weights, device=device)


# ----------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------


def _fresh_adam_state(num_params: int, lr: float = 2e-4) -> dict[str, Any]:
    """``state_dict()`` of a new ``torch.optim.Adam(params, lr)`` (no step taken).

    Built by hand: constructing an optimizer imports torch._dynamo (seconds).
    """
    group = {
        "lr": lr,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 0,
        "amsgrad": False,
        "maximize": False,
        "foreach": None,
        "capturable": False,
        "differentiable": False,
        "fused": None,
        "decoupled_weight_decay": False,
        "params": list(range(num_params)),
    }
    return {"state": {}, "param_groups": [group]}


def save_checkpoint(
    net: TauLDRUNet,
    path: str | os.PathLike,
    *,
    ema_params: Sequence[Tensor] | Mapping[str, Tensor] | None = None,
    ema_decay: float = 0.9999,
    ema_num_updates: int = 0,
    optimizer_state: Mapping[str, Any] | None = None,
    n_iter: int = 0,
    distributed: bool = False,
) -> Path:
    """Write ``net`` in the authors' container (readable by their loaders).

    ``net`` supplies the raw ``net.*`` tensors. ``ema_params`` (a list in
    ``parameters()`` order or a key -> tensor map) becomes ``ema_shadow_params``;
    None stores a copy of the raw weights. ``optimizer_state`` defaults to a
    fresh Adam (lr 2e-4) state. ``distributed`` writes ``net.module.`` keys.
    """
    names = [k for k, _ in net.named_parameters()]
    params = [p.detach().cpu().clone() for _, p in net.named_parameters()]
    if ema_params is None:
        shadow = [p.clone() for p in params]
    else:
        if isinstance(ema_params, Mapping):
            ema_params = [ema_params[k] for k in names]
        shadow = [s.detach().cpu().clone() for s in ema_params]
        if [s.shape for s in shadow] != [p.shape for p in params]:
            raise ValueError(
                "ema_params must match net.parameters() in number, order and shapes"
            )
    prefix = NET_PREFIX + (DDP_INFIX if distributed else "")
    model: dict[str, Any] = {
        prefix + k: v.detach().cpu().clone() for k, v in net.state_dict().items()
    }
    model.update(
        ema_decay=float(ema_decay),
        ema_num_updates=int(ema_num_updates),
        ema_shadow_params=shadow,
    )
    if optimizer_state is None:
        optimizer_state = _fresh_adam_state(len(params))
    container = {
        "model": model,
        "optimizer": dict(optimizer_state),
        "n_iter": int(n_iter),
    }
    path = Path(path)
    with atomic_path(path, keep_name=True) as tmp:  # zip records named after the file
        torch.save(container, tmp)
    return path
