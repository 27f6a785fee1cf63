"""Shared pieces of the ImageNet-slice CLIs (paper Sec. 5.2; method.md §4), both scales.

Both scales run one code path: a :class:`~di4c.networks.maskgit.MaskTransformer`
(paper size, or the mini size of :mod:`di4c.networks.mini_maskgit`) stored in the
authors' transformer ``.pth`` container, a VQGAN-family tokenizer stored as a
Lightning ``last.ckpt`` + ``model.yaml``, the arccos masking process, the
MaskGIT confidence sampler and the Di4C loss.

- :func:`save_network` / :func:`load_network`: a ``.pth`` plus its
  ``.meta.json``; the meta records the network config (the authors' container
  has none); a file without meta (a downloaded paper checkpoint) is the paper
  network.
- :func:`drop_labels`: the 10% label drop of Di4C training; the dropped labels
  are passed as ``cond`` to the loss, so the teacher, the student and every
  lambda copy see the same drop (method.md §4.3, pitfall 21).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import Tensor

from di4c.artifacts import meta_path_for, write_meta
from di4c.networks.maskgit import (
    PAPER_STUDENT_CONFIG,
    PAPER_TEACHER_CONFIG,
    MaskGITConfig,
    MaskTransformer,
)
from di4c.processes.masked import MaskedProcess
from di4c.samplers.confidence import UNCOND
from di4c.teachers.maskgit import (
    init_student_from_teacher,
    read_transformer_checkpoint,
    save_transformer_checkpoint,
    student_from_checkpoint,
    teacher_from_checkpoint,
)

__all__ = [
    "drop_labels",
    "format_cfg",
    "load_network",
    "masked_process",
    "network_config_of",
    "save_network",
]

SCHEDULE = "arccos"  # MaskGIT masking schedule gamma(r) = arccos(r) / (pi / 2)


def format_cfg(w: float) -> str:
    """CFG weight as it appears in file names (``3``, ``0.5``)."""
    return f"{float(w):g}"


def network_config_of(path: str | os.PathLike) -> MaskGITConfig:
    """Network config recorded in ``<path>.meta.json`` (``network``), else the paper's.

    The paper teacher / released student files carry no meta: they are the
    paper network, teacher or student as the file's keys say.
    """
    meta = meta_path_for(path)
    if meta.is_file():
        net = json.loads(meta.read_text()).get("network")
        if net is not None:
            return MaskGITConfig.from_dict(net)
    ckpt = read_transformer_checkpoint(path)
    return PAPER_STUDENT_CONFIG if ckpt.is_student else PAPER_TEACHER_CONFIG


def save_network(
    path: str | os.PathLike, net: MaskTransformer, *, iters: int = 0, **meta
) -> Path:
    """Write ``net`` in the authors' ``.pth`` format and its meta (with the network config)."""
    save_transformer_checkpoint(path, net, iter=iters)
    extra = dict(meta.pop("extra", {}) or {})
    extra["network"] = net.config.to_dict()
    write_meta(path, extra=extra, **meta)
    return Path(path)


LOADERS = {
    "teacher": lambda path, cfg, seed: teacher_from_checkpoint(path, cfg),
    "student": lambda path, cfg, seed: student_from_checkpoint(path, cfg),
    "student_init": lambda path, cfg, seed: init_student_from_teacher(
        path, cfg, seed=seed
    ),
}


def load_network(
    path: str | os.PathLike,
    role: str | None = None,
    *,
    seed: int | None = None,
    device: torch.device | str | None = None,
) -> MaskTransformer:
    """Network from a ``.pth``: ``role`` "teacher", "student" (a Di4C file),
    "student_init" (a student initialised from a teacher file, as the authors),
    or None (teacher or student, as the file's keys say). Eval mode."""
    cfg = network_config_of(path)
    if role is None:
        role = "student" if read_transformer_checkpoint(path).is_student else "teacher"
    if role not in LOADERS:
        raise ValueError(f"unknown network role {role!r}; allowed: {sorted(LOADERS)}")
    net = LOADERS[role](path, cfg, seed)
    return net.to(device) if device is not None else net


def masked_process(config: MaskGITConfig) -> MaskedProcess:
    """The arccos absorbing-mask process over the network's codes (mask id = codebook size)."""
    return MaskedProcess(config.codebook_size, SCHEDULE)


def drop_labels(labels: Tensor, p: float, u: Tensor) -> Tensor:
    """Replace ``labels`` by the unconditional label where ``u < p`` (one ``u`` per image)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"label-drop probability must be in [0, 1]; got {p}")
    if u.shape != labels.shape:
        raise ValueError(
            f"one uniform per label needed: u {tuple(u.shape)} vs labels "
            f"{tuple(labels.shape)}"
        )
    return torch.where(u.to(labels.device) < p, torch.full_like(labels, UNCOND), labels)
