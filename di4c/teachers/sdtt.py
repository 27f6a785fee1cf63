"""Checkpoint containers of the OpenWebText networks (setting C).

Formats: docs/checkpoints.md#sdtt-hugging-face-files and
docs/checkpoints.md#di4c-sdtt-student.

Two published containers hold :class:`~di4c.networks.dit.DIT` weights:

- **SDTT teachers** (docs/algorithm.md#dit-teacher-and-subs): Hugging Face ``jdeschena/sdtt`` at
  revision ``baselines_kld_step_{10000 * round}`` (round 6 and 7), files
  ``model.safetensors`` (a flat tensor map with ``backbone.<DIT key>`` entries,
  including the buffer ``backbone.rotary_emb.inv_freq``; no EMA) and
  ``config.json`` (the OmegaConf training config; ``model.*`` describes the DIT).
- **Di4C students** (docs/algorithm.md#iterated-distillation-di4c2): Lightning checkpoints (Zenodo record
  15124163: ``sdtt6-di4c2.ckpt``, ``sdtt7-di4c2.ckpt``) with ``state_dict``
  (``backbone.<DIT key>``, ``backbone._orig_mod.<DIT key>`` after
  ``torch.compile``, including ``latent_projection.*``) and ``ema`` =
  ``{decay, num_updates, shadow_params}`` (shadow list over the trainable
  parameters in ``parameters()`` order).

Loading follows the authors' non-strict rule: every ``_orig_mod.`` and
``backbone.`` is removed from the keys and the tensors are copied into the
network; entries the network lacks are ignored and network entries the file
lacks keep their current values. The only entries allowed to be missing are the
student's ``latent_projection.*``: a student built from an SDTT file keeps a
fresh random lambda projection (docs/implementation-notes.md#lambda-path-init).
A file lacking any other
DIT entry, or holding one with the wrong shape, is rejected with an error naming
the file (the authors' loader would silently skip it).

Which weights: the authors sample from the raw weights (``from_ema: False``;
docs/implementation-notes.md#weights-for-sampling), so ``weights="raw"`` is the default everywhere;
``weights="ema"`` uses the shadow list instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from di4c.artifacts import atomic_path
from di4c.checkpoints import (
    CheckpointFormatError,
    MissingCheckpointError,
    load_container,
)
from di4c.download import RemoteFile, fetch
from di4c.networks.dit import DIT, DiTConfig

HF_REPO = "jdeschena/sdtt"
ZENODO_RECORD = 15124163
SDTT_ROUNDS = (6, 7)
BACKBONE_PREFIX = "backbone."
COMPILE_INFIX = "_orig_mod."
OPTIONAL_PREFIXES = ("latent_projection.",)  # may be missing (module docstring)
# a local model.safetensors is read with the config.json beside it


def local_key(model: str) -> str:
    """The workflow config key that takes a local copy of ``model`` (named in offline
    errors): ``models.<name>.local`` of the openwebtext paper scale
    (di4c/settings/openwebtext.py)."""
    return f"openwebtext.paper.models.{model}.local"


Weights = Literal["raw", "ema"]


# ----------------------------------------------------------------------------------
# Pinned published files
# ----------------------------------------------------------------------------------


def _check_round(round: int) -> int:
    if round not in SDTT_ROUNDS:
        raise ValueError(
            f"round must be one of {SDTT_ROUNDS} (sdtt-6 / sdtt-7); got {round!r}"
        )
    return round


def sdtt_revision(round: int) -> str:
    """HF revision of the SDTT KL student after ``round`` rounds (docs/algorithm.md#dit-teacher-and-subs)."""
    return f"baselines_kld_step_{10_000 * _check_round(round)}"


def sdtt_weights_file(round: int) -> RemoteFile:
    """``model.safetensors`` of the sdtt-``round`` teacher, at its pinned revision."""
    rev = sdtt_revision(round)
    return RemoteFile(
        name=f"sdtt-{rev}-model.safetensors",
        hf_repo=HF_REPO,
        hf_filename="model.safetensors",
        hf_revision=rev,
        sha256=None,
        config_key=local_key(f"sdtt{round}"),
        size_hint="~0.7 GB (est.)",
    )


def sdtt_config_file(round: int) -> RemoteFile:
    """``config.json`` of the sdtt-``round`` teacher, at its pinned revision."""
    rev = sdtt_revision(round)
    return RemoteFile(
        name=f"sdtt-{rev}-config.json",
        hf_repo=HF_REPO,
        hf_filename="config.json",
        hf_revision=rev,
        sha256=None,
        config_key=local_key(f"sdtt{round}"),  # config.json beside the weights
        size_hint="a few kB",
    )


def di4c2_student_file(round: int) -> RemoteFile:
    """Released Di4C² student ``sdtt{round}-di4c2.ckpt`` (Zenodo, Fig. 4)."""
    name = f"sdtt{_check_round(round)}-di4c2.ckpt"
    return RemoteFile(
        name=name,
        url=f"https://zenodo.org/records/{ZENODO_RECORD}/files/{name}?download=1",
        sha256=None,
        config_key=local_key(f"sdtt{round}_di4c2"),
        size_hint="size unknown",
    )


# ----------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------


@dataclass
class DiTCheckpoint:
    """The DIT content of one file.

    Attributes:
        path: the file read.
        format: ``"safetensors"`` (HF layout) or ``"lightning"``.
        state_dict: tensors under bare DIT keys (prefixes removed as the authors do).
        ema: ``{decay, num_updates, shadow_params}`` or None.
        config: the training config dict (``config.json``) if one was found.
        extra_keys: file keys that are not under ``backbone.`` (ignored).
    """

    path: Path
    format: str
    state_dict: dict[str, Tensor]
    ema: dict | None = None
    config: dict | None = None
    extra_keys: list[str] = field(default_factory=list)


def strip_key(key: str) -> str:
    """Remove every ``_orig_mod.`` and ``backbone.`` from a key (docs/checkpoints.md#di4c-sdtt-student)."""
    return key.replace(COMPILE_INFIX, "").replace(BACKBONE_PREFIX, "")


def _sniff(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(9)
    if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":
        return "torch"
    if len(head) == 9 and head[8:9] == b"{":
        return "safetensors"
    raise CheckpointFormatError(
        f"{path}: neither a safetensors file nor a torch/Lightning checkpoint "
        f"(first bytes {head!r}); the file is corrupt, truncated or of another kind"
    )


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointFormatError(
            f"{path}: cannot read the safetensors file; it is truncated or corrupt "
            f"({e})"
        ) from e


def _split_backbone(path: Path, flat: Mapping[str, Any]) -> tuple[dict, list[str]]:
    ours = {strip_key(k): v for k, v in flat.items() if BACKBONE_PREFIX in k}
    extra = [k for k in flat if BACKBONE_PREFIX not in k]
    if not ours:
        sample = ", ".join(list(flat)[:5]) or "none"
        raise CheckpointFormatError(
            f"{path}: no 'backbone.*' entries, so this is not an SDTT/Di4C DiT "
            f"checkpoint (first keys: {sample})"
        )
    bad = [k for k, v in ours.items() if not isinstance(v, Tensor)]
    if bad:
        raise CheckpointFormatError(f"{path}: entries {bad[:3]} are not tensors")
    return ours, extra


def read_checkpoint(
    path: str | os.PathLike,
    *,
    config_path: str | os.PathLike | None = None,
) -> DiTCheckpoint:
    """Read a safetensors (HF) or Lightning DiT checkpoint; the format is sniffed.

    ``config_path`` names a ``config.json``; for a file named
    ``model.safetensors`` (HF layout) a sibling ``config.json`` is used if
    present. A Lightning file is read with
    :func:`di4c.checkpoints.load_container`: its bookkeeping (hyper-parameters,
    callback states) becomes inert placeholders, never running code.
    """
    path = Path(path)
    if not path.exists():
        raise MissingCheckpointError(f"DiT checkpoint not found: {path}")
    if not path.is_file():
        raise CheckpointFormatError(f"{path}: a DiT checkpoint must be a file")
    kind = _sniff(path)
    ema = None
    if kind == "safetensors":
        sd, extra = _split_backbone(path, _read_safetensors(path))
        fmt = "safetensors"
        sibling = path.parent / "config.json"  # the HF repository layout
        if (
            config_path is None
            and path.name == "model.safetensors"
            and sibling.is_file()
        ):
            config_path = sibling
    else:
        obj = load_container(path, "Lightning DiT checkpoint", allow_objects=True)
        if not isinstance(obj, Mapping) or "state_dict" not in obj:
            top = ", ".join(map(str, list(obj)[:8])) if isinstance(obj, Mapping) else ""
            raise CheckpointFormatError(
                f"{path}: not a Lightning checkpoint of the SDTT/Di4C DiT: no "
                f"'state_dict' entry (top-level: {top or type(obj).__name__})"
            )
        sd, extra = _split_backbone(path, obj["state_dict"])
        fmt = "lightning"
        ema = obj.get("ema")
        if ema is not None and not (
            isinstance(ema, Mapping) and isinstance(ema.get("shadow_params"), list)
        ):
            raise CheckpointFormatError(
                f"{path}: the 'ema' entry is not {{decay, num_updates, shadow_params}}"
            )
    config = None
    if config_path is not None:
        try:
            config = json.loads(Path(config_path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise CheckpointFormatError(
                f"{config_path}: unreadable config.json ({e})"
            ) from e
    return DiTCheckpoint(path, fmt, sd, dict(ema) if ema else None, config, extra)


# ----------------------------------------------------------------------------------
# Configuration of the network a file needs
# ----------------------------------------------------------------------------------


def infer_config(ckpt: DiTCheckpoint, *, is_di4c: bool | None = None) -> DiTConfig:
    """DiTConfig for a checkpoint: tensor shapes, refined by ``config.json``.

    ``config.model.{hidden_size, cond_dim, n_blocks, n_heads, dropout, length}``
    and ``time_conditioning`` are read when a config is present. Without one the
    head count comes from the stored ``rotary_emb.inv_freq`` (head_dim / 2
    entries). ``is_di4c`` defaults to whether the file holds
    ``latent_projection.*``.
    """
    sd = ckpt.state_dict
    need = ("vocab_embed.embedding", "sigma_map.mlp.0.weight", "blocks.0.mlp.0.weight")
    missing = [k for k in need if k not in sd]
    if missing:
        raise CheckpointFormatError(
            f"{ckpt.path}: not an SDTT/Di4C DiT checkpoint: missing {missing}"
        )
    vocab, hidden = sd["vocab_embed.embedding"].shape
    cond_dim, freq_dim = sd["sigma_map.mlp.0.weight"].shape
    n_blocks = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    kw: dict[str, Any] = dict(
        hidden_size=hidden,
        cond_dim=cond_dim,
        sigma_freq_dim=freq_dim,
        n_blocks=n_blocks,
        vocab_size=vocab,
        mlp_ratio=sd["blocks.0.mlp.0.weight"].shape[0] // hidden,
        is_di4c="latent_projection.0.weight" in sd if is_di4c is None else is_di4c,
    )
    if "latent_projection.0.weight" in sd:
        kw["latent_feature_dim"] = sd["latent_projection.0.weight"].shape[1]
    if "rotary_emb.inv_freq" in sd:
        kw["n_heads"] = hidden // (2 * sd["rotary_emb.inv_freq"].numel())
    model = (ckpt.config or {}).get("model") or {}
    for key in ("hidden_size", "cond_dim", "n_blocks", "n_heads", "dropout", "length"):
        if key in model:
            kw[key] = type(DiTConfig.__dataclass_fields__[key].default)(model[key])
    if ckpt.config and "time_conditioning" in ckpt.config:
        kw["time_conditioning"] = bool(ckpt.config["time_conditioning"])
    if "n_heads" not in kw:
        raise CheckpointFormatError(
            f"{ckpt.path}: cannot tell the number of heads: no config.json and no "
            "rotary_emb.inv_freq buffer; pass config_path"
        )
    return DiTConfig(**kw)


def config_json(cfg: DiTConfig) -> dict:
    """The part of the authors' config.json layout that describes the DIT."""
    return {
        "model": {
            "type": "ddit-orig",
            "hidden_size": cfg.hidden_size,
            "cond_dim": cfg.cond_dim,
            "length": cfg.length,
            "n_blocks": cfg.n_blocks,
            "n_heads": cfg.n_heads,
            "scale_by_sigma": True,
            "dropout": cfg.dropout,
            "tie_word_embeddings": False,
        },
        "is_di4c": cfg.is_di4c,
        "time_conditioning": cfg.time_conditioning,
    }


# ----------------------------------------------------------------------------------
# Loading into a network
# ----------------------------------------------------------------------------------


@dataclass
class LoadReport:
    """What a non-strict load did: network keys left as they were, file keys unused."""

    kept_fresh: list[str]
    unused: list[str]


def _ema_state_dict(net: DIT, ckpt: DiTCheckpoint) -> dict[str, Tensor]:
    if ckpt.ema is None:
        raise CheckpointFormatError(
            f"{ckpt.path}: weights='ema' requested but the file has no EMA "
            f"(format {ckpt.format}); use weights='raw'"
        )
    names = [n for n, p in net.named_parameters() if p.requires_grad]
    shadow = ckpt.ema["shadow_params"]
    if len(shadow) != len(names):
        raise CheckpointFormatError(
            f"{ckpt.path}: the EMA shadow list has {len(shadow)} tensors but the "
            f"network has {len(names)} trainable parameters"
        )
    sd = dict(ckpt.state_dict)  # buffers (inv_freq) come from the state_dict
    sd.update(zip(names, shadow, strict=True))
    return sd


def load_into(net: DIT, ckpt: DiTCheckpoint, *, weights: Weights = "raw") -> LoadReport:
    """Copy a checkpoint into ``net`` non-strictly, as the authors (module docstring).

    Raises :class:`CheckpointFormatError` naming the file if a DIT entry other
    than ``latent_projection.*`` is missing or any shape differs.
    """
    if weights not in ("raw", "ema"):
        raise ValueError(f"weights must be 'raw' or 'ema'; got {weights!r}")
    src = _ema_state_dict(net, ckpt) if weights == "ema" else ckpt.state_dict
    own = net.state_dict()
    missing = [k for k in own if k not in src]
    required = [k for k in missing if not k.startswith(OPTIONAL_PREFIXES)]
    if required:
        raise CheckpointFormatError(
            f"{ckpt.path}: not a checkpoint of this DiT: {len(required)} entries are "
            f"missing, e.g. {required[:4]} (wrong model family or truncated file?)"
        )
    wrong = [
        f"{k}: file {tuple(src[k].shape)} vs network {tuple(v.shape)}"
        for k, v in own.items()
        if k in src and tuple(src[k].shape) != tuple(v.shape)
    ]
    if wrong:
        raise CheckpointFormatError(
            f"{ckpt.path}: shapes do not match the network config: {wrong[:3]}"
        )
    with torch.no_grad():
        net.load_state_dict({k: v for k, v in src.items() if k in own}, strict=False)
    return LoadReport(kept_fresh=missing, unused=[k for k in src if k not in own])


def _build(ckpt: DiTCheckpoint, is_di4c: bool, seed: int | None) -> DIT:
    cfg = infer_config(ckpt, is_di4c=is_di4c)
    if seed is None:
        return DIT(cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return DIT(cfg)


def _frozen(net: DIT, device: torch.device | str) -> DIT:
    net.to(device).eval().requires_grad_(False)
    return net


def _resolve(rf: RemoteFile, local_path, remote: RemoteFile | None) -> Path:
    return fetch(remote or rf, local_path)


def load_teacher(
    round: int,
    local_path: str | os.PathLike | None = None,
    *,
    config_path: str | os.PathLike | None = None,
    remote: RemoteFile | None = None,
    device: torch.device | str = "cpu",
) -> DIT:
    """The sdtt-``round`` product teacher (round 6 or 7), frozen, in eval mode.

    ``local_path`` is a user copy of ``model.safetensors`` (a sibling
    ``config.json`` is used if present); otherwise the pinned HF files are
    fetched (``remote`` overrides the weights descriptor, e.g. for a mirror).
    """
    _check_round(round)
    path = _resolve(sdtt_weights_file(round), local_path, remote)
    if local_path is None and remote is None and config_path is None:
        config_path = fetch(sdtt_config_file(round))
    ckpt = read_checkpoint(path, config_path=config_path)
    net = _build(ckpt, is_di4c=False, seed=None)
    load_into(net, ckpt)
    return _frozen(net, device)


def init_student(
    source: int | str | os.PathLike,
    *,
    config_path: str | os.PathLike | None = None,
    seed: int | None = None,
    weights: Weights = "raw",
    remote: RemoteFile | None = None,
) -> DIT:
    """A Di4C student initialised from a checkpoint, ready to train (train mode).

    ``source`` is an SDTT round (6/7, fetched) or a file: an SDTT safetensors
    (``latent_projection`` starts from a fresh random init drawn with ``seed``,
    docs/implementation-notes.md#lambda-path-init) or a round-1 Di4C Lightning
    file (all weights loaded, as ``prepare_teacher_and_student`` does for round
    2; docs/algorithm.md#iterated-distillation-di4c2).
    """
    if isinstance(source, int):
        path = _resolve(sdtt_weights_file(source), None, remote)
        if config_path is None and remote is None:
            config_path = fetch(sdtt_config_file(source))
    else:
        path = Path(source)
    ckpt = read_checkpoint(path, config_path=config_path)
    net = _build(ckpt, is_di4c=True, seed=seed)
    load_into(net, ckpt, weights=weights)
    return net


def load_student(
    round: int | None = None,
    local_path: str | os.PathLike | None = None,
    *,
    weights: Weights = "raw",
    remote: RemoteFile | None = None,
    device: torch.device | str = "cpu",
) -> DIT:
    """A trained Di4C student for sampling (eval mode, lambda token on).

    With ``round`` (6/7) the released ``sdtt{round}-di4c2.ckpt`` is fetched from
    Zenodo unless ``local_path`` points at a copy; ``local_path`` alone loads any
    Di4C Lightning/safetensors file. ``weights="raw"`` (default) is what the
    authors sample from (docs/implementation-notes.md#weights-for-sampling). The file must hold ``latent_projection``.
    """
    if round is None and local_path is None:
        raise ValueError("load_student needs round (6 or 7) or local_path")
    path = (
        _resolve(di4c2_student_file(round), local_path, remote)
        if round is not None
        else Path(local_path)
    )
    ckpt = read_checkpoint(path)
    if not infer_config(ckpt).is_di4c:
        raise CheckpointFormatError(
            f"{path}: no latent_projection.* entries: this is a product (SDTT) "
            "checkpoint, not a Di4C student; use load_teacher or init_student"
        )
    net = _build(ckpt, is_di4c=True, seed=None)
    load_into(net, ckpt, weights=weights)
    return _frozen(net, device)


def load_di4c_teacher(
    local_path: str | os.PathLike,
    *,
    weights: Weights = "raw",
    device: torch.device | str = "cpu",
) -> DIT:
    """A round-1 Di4C student as the frozen mixture teacher of di4c²
    (docs/algorithm.md#iterated-distillation-di4c2).

    The authors load the round-1 ``state_dict`` (raw weights) into a
    student-architecture teacher and switch its lambda token on
    (``is_teacher_di4c``), so its one-step samples are mixture samples.
    """
    net = load_student(local_path=local_path, weights=weights, device=device)
    net.use_lambda = True
    return net


# ----------------------------------------------------------------------------------
# Writing our own weights in both container formats
# ----------------------------------------------------------------------------------


def _prefixed(net: DIT, compiled: bool) -> dict[str, Tensor]:
    prefix = BACKBONE_PREFIX + (COMPILE_INFIX if compiled else "")
    return {
        prefix + k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()
    }


def save_safetensors(
    net: DIT, path: str | os.PathLike, *, write_config: bool = True
) -> Path:
    """Write ``net`` in the HF layout: ``backbone.*`` tensors, sibling config.json."""
    from safetensors.torch import save_file

    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(_prefixed(net, compiled=False), str(tmp))
    if write_config:
        with atomic_path(path.parent / "config.json") as tmp:
            tmp.write_text(json.dumps(config_json(net.config), indent=2) + "\n")
    return path


def ema_state(
    net: DIT,
    *,
    decay: float = 0.9999,
    num_updates: int = 0,
    shadow_params: list[Tensor] | None = None,
) -> dict:
    """An ``ema`` entry ``{decay, num_updates, shadow_params}`` (trainable params)."""
    if shadow_params is None:
        shadow_params = [
            p.detach().clone() for p in net.parameters() if p.requires_grad
        ]
    return {"decay": decay, "num_updates": num_updates, "shadow_params": shadow_params}


def save_lightning_ckpt(
    net: DIT,
    path: str | os.PathLike,
    *,
    ema: Mapping | None = None,
    compiled: bool = False,
    global_step: int = 0,
    epoch: int = 0,
) -> Path:
    """Write ``net`` as a Lightning-2.x-style checkpoint (``torch.save``).

    ``state_dict`` keys are ``backbone.<key>`` (``backbone._orig_mod.<key>`` with
    ``compiled``); ``ema`` is stored under the top-level ``ema`` entry.
    """
    obj: dict[str, Any] = {
        "epoch": epoch,
        "global_step": global_step,
        "pytorch-lightning_version": "2.2.1",
        "state_dict": _prefixed(net, compiled),
        "loops": {},
        "callbacks": {},
        "optimizer_states": [],
        "lr_schedulers": [],
    }
    if ema is not None:
        obj["ema"] = dict(ema)
    path = Path(path)
    with atomic_path(path, keep_name=True) as tmp:  # torch.save records the name
        torch.save(obj, tmp)
    return path


__all__ = [
    "DiTCheckpoint",
    "LoadReport",
    "di4c2_student_file",
    "ema_state",
    "infer_config",
    "init_student",
    "load_di4c_teacher",
    "load_into",
    "load_student",
    "load_teacher",
    "read_checkpoint",
    "save_lightning_ckpt",
    "save_safetensors",
    "sdtt_config_file",
    "sdtt_revision",
    "sdtt_weights_file",
]
