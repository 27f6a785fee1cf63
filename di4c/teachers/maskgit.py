"""MaskGIT ImageNet-256 weights: published files, checkpoint containers, loaders.

Setting B of the paper (Sec. 5.2): a MaskGIT-pytorch transformer
teacher on VQGAN f16 tokens, and the Di4C student that adds a lambda token.
This module knows the files and their containers (``Trainer.save_network`` in
the authors' maskgit-pytorch/Trainer/trainer.py):

- transformer ``.pth`` (teacher ``MaskGIT_ImageNet_256.pth`` and Di4C student
  files such as ``maskgit-di4c-d.pth``): a ``torch.save``d dict with ``iter``,
  ``global_epoch``, ``model_state_dict`` (bare MaskTransformer keys) and
  ``optimizer_state_dict`` (AdamW);
- VQGAN Lightning ``last.ckpt``: the VQModel keys under ``state_dict``; any
  ``loss.*`` entries are ignored; the rest is Lightning bookkeeping;
- VQGAN ``model.yaml``: ``model.params`` holds the VQModel arguments.

The authors load everything with ``strict=False``, which would silently accept a
wrong file. The loaders here accept exactly the differences the authors' flow
produces (``latent_projection.*`` absent when a student starts from the teacher
file; ``loss.*`` present in a VQGAN file) and raise
:class:`~di4c.checkpoints.CheckpointFormatError`, naming the file, for anything
else. Files are read with :func:`di4c.checkpoints.load_container`.

:class:`~di4c.networks.maskgit.MaskGITDenoiser` adapts a network to the suite's
:class:`di4c.denoiser.Denoiser` convention.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor, nn

from di4c.artifacts import atomic_path, save_torch
from di4c.checkpoints import (
    NETWORK_KEY,
    CheckpointFormatError,
    MissingCheckpointError,
    embedded_network,
    load_container,
    unconfigured_hint,
    with_network,
)
from di4c.download import RemoteFile, fetch
from di4c.networks.maskgit import (
    PAPER_STUDENT_CONFIG,
    PAPER_TEACHER_CONFIG,
    MaskGITConfig,
    MaskTransformer,
)
from di4c.networks.vqgan import VQGANConfig, VQModel

__all__ = [
    "CONFIG_KEY_HF_REVISION",
    "CONFIG_KEY_STUDENT",
    "CONFIG_KEY_TEACHER",
    "CONFIG_KEY_VQGAN_CKPT",
    "CONFIG_KEY_VQGAN_YAML",
    "at_revision",
    "config_from_state_dict",
    "HF_REPO",
    "HF_REVISION",
    "STUDENT_FILE",
    "TEACHER_FILE",
    "VQGAN_CKPT_FILE",
    "VQGAN_YAML_FILE",
    "TransformerCheckpoint",
    "init_student_from_teacher",
    "load_student",
    "load_teacher",
    "load_vqgan",
    "read_transformer_checkpoint",
    "read_vqgan_checkpoint",
    "read_vqgan_yaml",
    "save_transformer_checkpoint",
    "save_vqgan_checkpoint",
    "student_from_checkpoint",
    "teacher_from_checkpoint",
    "vqgan_from_files",
    "write_vqgan_yaml",
]

# ---------------------------------------------------------------- published files
HF_REPO = "llvictorll/Maskgit-pytorch"
# The authors' download_models.py pins no revision, and no commit hash of the
# Hugging Face repo could be resolved on the (offline) machine this was written
# on, so the default is the branch head "main". The workflow pins it through the
# config key ``imagenet.paper.hf_revision`` (a commit hash there makes the
# inputs bit-exact; see :func:`at_revision`), and the fetch step records the
# sha256 of every file it used.
HF_REVISION = "main"
ZENODO_RECORD = 15124163

# The workflow config keys a user sets to local copies (named in every error).
CONFIG_KEY_TEACHER = "imagenet.paper.models.teacher.local"
CONFIG_KEY_VQGAN_CKPT = "imagenet.paper.models.vq.local_ckpt"
CONFIG_KEY_VQGAN_YAML = "imagenet.paper.models.vq.local_yaml"
CONFIG_KEY_STUDENT = "imagenet.paper.models.released.local"
CONFIG_KEY_HF_REVISION = "imagenet.paper.hf_revision"

TEACHER_FILE = RemoteFile(
    name="maskgit_MaskGIT_ImageNet_256.pth",
    hf_repo=HF_REPO,
    hf_filename="pretrained_maskgit/MaskGIT/MaskGIT_ImageNet_256.pth",
    hf_revision=HF_REVISION,
    sha256=None,
    config_key=CONFIG_KEY_TEACHER,
    size_hint="~0.7 GB of weights plus optimizer state",
)
VQGAN_CKPT_FILE = RemoteFile(
    name="maskgit_vqgan_last.ckpt",
    hf_repo=HF_REPO,
    hf_filename="pretrained_maskgit/VQGAN/last.ckpt",
    hf_revision=HF_REVISION,
    sha256=None,
    config_key=CONFIG_KEY_VQGAN_CKPT,
    size_hint="~0.3 GB of weights plus Lightning state",
)
VQGAN_YAML_FILE = RemoteFile(
    name="maskgit_vqgan_model.yaml",
    hf_repo=HF_REPO,
    hf_filename="pretrained_maskgit/VQGAN/model.yaml",
    hf_revision=HF_REVISION,
    sha256=None,
    config_key=CONFIG_KEY_VQGAN_YAML,
    size_hint="a few KB",
)
STUDENT_FILE = RemoteFile(
    name="maskgit-di4c-d.pth",
    url=(
        f"https://zenodo.org/records/{ZENODO_RECORD}/files/maskgit-di4c-d.pth"
        "?download=1"
    ),
    sha256=None,
    config_key=CONFIG_KEY_STUDENT,
    size_hint="~0.7 GB of weights plus optimizer state",
)


def at_revision(rf: RemoteFile, revision: str | None) -> RemoteFile:
    """``rf`` at another revision of its Hugging Face repo (URL files unchanged).

    A revision other than the default gets its own cache file name, so files of
    two revisions never stand in for each other.
    """
    if rf.hf_repo is None or not revision or revision == rf.hf_revision:
        return rf
    if not re.fullmatch(r"[A-Za-z0-9._/-]+", revision):
        raise ValueError(
            f"{CONFIG_KEY_HF_REVISION}: {revision!r} is not a git revision "
            "(a commit hash, branch or tag of the Hugging Face repo)"
        )
    return rf.at_revision(revision)


_TRANSFORMER_TOP_KEYS = (
    "iter",
    "global_epoch",
    "model_state_dict",
    "optimizer_state_dict",
)
_TRANSFORMER_SIGNATURE = ("pos_emb", "bias", "tok_emb.weight")
_STUDENT_ONLY_PREFIX = "latent_projection."
_VQGAN_SIGNATURE = ("quantize.embedding.weight", "quant_conv.weight")
_VQGAN_IGNORED_PREFIX = "loss."
# Authors' optimiser (``get_optim`` in maskgit-pytorch/Trainer/vit.py MaskGIT.__init__).
_ADAMW_KW = {"lr": 1e-5, "betas": (0.9, 0.96), "weight_decay": 1e-5}


def _guess_family(obj: Mapping) -> str:
    if "model_state_dict" in obj:
        return "a MaskGIT transformer .pth"
    if "state_dict" in obj:
        return "a Lightning checkpoint (such as the VQGAN last.ckpt)"
    if "model" in obj and "n_iter" in obj:
        return "a tauLDR checkpoint"
    return "an unknown container"


def _check_tensor_map(sd: Any, path: Path, what: str) -> dict[str, Tensor]:
    if not isinstance(sd, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in sd.items()
    ):
        raise CheckpointFormatError(
            f"{path}: {what} is not a mapping of name -> tensor"
        )
    sd = dict(sd)
    if sd and all(k.startswith("module.") for k in sd):  # a DDP-wrapped save
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def _build_and_load(
    factory: Callable[[], nn.Module],
    sd: Mapping[str, Tensor],
    source: str,
    allow_missing_prefix: str | None = None,
    assumed: str | None = None,
) -> nn.Module:
    """Build ``factory()`` and load ``sd`` non-strictly, tolerating only the
    expected missing keys (``allow_missing_prefix``) and nothing unexpected.

    Keys and shapes are checked on a meta-device copy first, so a wrong file
    fails before the real network is allocated. ``assumed`` names the (paper)
    network built for lack of any configuration; a file that does not fit it
    gets an error saying that no configuration was given or embedded.
    """
    try:
        return _build_and_load_checked(factory, sd, source, allow_missing_prefix)
    except CheckpointFormatError as e:
        if assumed is None:
            raise
        raise CheckpointFormatError(
            f"{unconfigured_hint(source, assumed)} ({e})"
        ) from e


def _build_and_load_checked(
    factory: Callable[[], nn.Module],
    sd: Mapping[str, Tensor],
    source: str,
    allow_missing_prefix: str | None,
) -> nn.Module:
    with torch.device("meta"):
        probe = factory()
    own = probe.state_dict()
    bad_shape = [
        f"{k}: file {tuple(sd[k].shape)} vs network {tuple(v.shape)}"
        for k, v in own.items()
        if k in sd and tuple(sd[k].shape) != tuple(v.shape)
    ]
    if bad_shape:
        raise CheckpointFormatError(
            f"{source}: {len(bad_shape)} tensor shapes do not match the network "
            f"config (first: {bad_shape[:3]}); build the network with the config "
            "the file was trained with"
        )
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    bad_missing = [
        k
        for k in missing
        if allow_missing_prefix is None or not k.startswith(allow_missing_prefix)
    ]
    if bad_missing or unexpected:
        raise CheckpointFormatError(
            f"{source}: does not match {type(probe).__name__}: {len(bad_missing)} "
            f"missing keys (first: {bad_missing[:5]}), {len(unexpected)} unexpected "
            f"keys (first: {unexpected[:5]})"
        )
    net = factory()
    net.load_state_dict(sd, strict=False)
    return net


# ---------------------------------------------------------------- transformer .pth
@dataclass
class TransformerCheckpoint:
    """Content of a MaskGIT transformer ``.pth`` (Trainer.save_network format)."""

    state_dict: dict[str, Tensor]
    iter: int | None
    global_epoch: int | None
    optimizer_state_dict: Any
    path: Path | None = None
    network: dict | None = None  # embedded by this project's saves; None if published

    @property
    def is_student(self) -> bool:
        """True when the weights include the Di4C ``latent_projection``."""
        return any(k.startswith(_STUDENT_ONLY_PREFIX) for k in self.state_dict)

    @property
    def config(self) -> MaskGITConfig:
        """The network configuration read off the tensor shapes
        (:func:`config_from_state_dict`; heads and nclass: the paper's)."""
        try:
            return config_from_state_dict(self.state_dict)
        except (CheckpointFormatError, ValueError) as e:
            raise CheckpointFormatError(f"{self.path}: {e}") from e


def read_transformer_checkpoint(path: str | os.PathLike) -> TransformerCheckpoint:
    """Read a transformer ``.pth`` dict; raise naming the file if it is not one.

    Read with :func:`di4c.checkpoints.load_container` (``allow_objects``: any
    pickled bookkeeping of the authors' trainer stays inert).
    """
    path = Path(path)
    obj = load_container(path, "MaskGIT transformer checkpoint", allow_objects=True)
    if not isinstance(obj, Mapping):
        raise CheckpointFormatError(
            f"{path}: expected a dict with keys {list(_TRANSFORMER_TOP_KEYS)}; got a "
            f"{type(obj).__name__}"
        )
    if "model_state_dict" not in obj:
        raise CheckpointFormatError(
            f"{path}: not a MaskGIT transformer checkpoint: no 'model_state_dict' "
            f"entry (top-level keys {sorted(map(str, obj))[:8]}; this looks like "
            f"{_guess_family(obj)})"
        )
    sd = _check_tensor_map(obj["model_state_dict"], path, "'model_state_dict'")
    absent = [k for k in _TRANSFORMER_SIGNATURE if k not in sd]
    if absent:
        raise CheckpointFormatError(
            f"{path}: 'model_state_dict' is not a MaskTransformer state_dict "
            f"(missing {absent}; first keys {list(sd)[:5]})"
        )
    return TransformerCheckpoint(
        state_dict=sd,
        iter=obj.get("iter"),
        global_epoch=obj.get("global_epoch"),
        optimizer_state_dict=obj.get("optimizer_state_dict"),
        path=path,
        network=embedded_network(obj, path),
    )


def _config(
    ckpt: TransformerCheckpoint, given: MaskGITConfig | None, paper: MaskGITConfig
) -> tuple[MaskGITConfig, str | None]:
    """(config to build, name of the paper network if it was assumed): ``given``,
    else the file's embedded configuration, else the paper's."""
    if given is not None:
        return given, None
    if ckpt.network is not None:
        try:
            return MaskGITConfig.from_dict(ckpt.network), None
        except (TypeError, ValueError) as e:
            raise CheckpointFormatError(
                f"{ckpt.path}: its embedded network configuration is invalid ({e})"
            ) from e
    try:  # read off the tensor shapes (heads and class count: the paper's)
        return ckpt.config, None
    except CheckpointFormatError:
        return paper, "the paper's MaskGIT transformer"


def config_from_state_dict(
    sd: Mapping[str, Tensor], base: MaskGITConfig = PAPER_TEACHER_CONFIG
) -> MaskGITConfig:
    """The :class:`MaskGITConfig` a transformer state_dict was built with.

    The shapes fix ``hidden_dim`` (``tok_emb``), ``depth`` (``transformer.layers.*``),
    ``mlp_dim``, the token grid and so ``img_size`` (``bias``: (N + 1, V)),
    ``latent_feature_dim`` and ``is_student`` (``latent_projection.*``). They do not
    fix ``heads`` (the packed in-projection is (3H, H) for any head count), the
    split of V = codebook + 1 + nclass + 1 (taken with ``base.nclass``) or
    ``dropout``: those come from ``base`` (the paper's values by default).
    """
    layers = {int(k.split(".")[2]) for k in sd if k.startswith("transformer.layers.")}
    v, h = sd["tok_emb.weight"].shape
    n = sd["bias"].shape[0] - 1
    grid = math.isqrt(n)
    mlp = sd.get("transformer.layers.0.1.fn.net.0.weight")
    lat = sd.get("latent_projection.0.weight")
    if grid * grid != n or not layers or mlp is None:
        raise CheckpointFormatError(
            f"not a MaskTransformer state_dict: {n} image tokens (not a square grid) "
            f"or no transformer layers"
        )
    if v - base.nclass - 2 < 1:
        raise CheckpointFormatError(
            f"the token table has {v} rows, too few for {base.nclass} classes; the "
            "class count is not in the file: pass the network config"
        )
    return replace(
        base,
        img_size=16 * grid,
        hidden_dim=int(h),
        codebook_size=int(v) - base.nclass - 2,
        depth=max(layers) + 1,
        mlp_dim=int(mlp.shape[0]),
        is_student=lat is not None,
        latent_feature_dim=int(lat.shape[1])
        if lat is not None
        else base.latent_feature_dim,
    )


def _as_checkpoint(
    src: str | os.PathLike | TransformerCheckpoint,
) -> TransformerCheckpoint:
    if isinstance(src, TransformerCheckpoint):
        return src
    return read_transformer_checkpoint(src)


def _to(net: nn.Module, device: torch.device | str | None) -> nn.Module:
    if device is not None:
        net = net.to(device)
    return net.eval()


def teacher_from_checkpoint(
    src: str | os.PathLike | TransformerCheckpoint,
    config: MaskGITConfig | None = None,
    *,
    device: torch.device | str | None = None,
) -> MaskTransformer:
    """Teacher network (eval mode) from a transformer ``.pth``; without ``config``
    the network is read off the file (:func:`config_from_state_dict`).

    A file holding ``latent_projection.*`` (a Di4C student) is refused: a teacher
    network would silently drop its lambda path.
    """
    ckpt = _as_checkpoint(src)
    cfg, assumed = _config(ckpt, config, PAPER_TEACHER_CONFIG)
    cfg = cfg.as_teacher()
    if ckpt.is_student:
        raise CheckpointFormatError(
            f"{ckpt.path}: holds a Di4C student (latent_projection.*); load it with "
            "student_from_checkpoint, not as a teacher"
        )
    net = _build_and_load(
        lambda: MaskTransformer(cfg), ckpt.state_dict, str(ckpt.path), None, assumed
    )
    return _to(net, device)


def student_from_checkpoint(
    src: str | os.PathLike | TransformerCheckpoint,
    config: MaskGITConfig | None = None,
    *,
    device: torch.device | str | None = None,
) -> MaskTransformer:
    """Di4C student (eval mode) from a student ``.pth`` (all keys required; the
    network read off the file unless ``config`` is given)."""
    ckpt = _as_checkpoint(src)
    cfg, assumed = _config(ckpt, config, PAPER_STUDENT_CONFIG)
    cfg = cfg.as_student()
    if not ckpt.is_student:
        raise CheckpointFormatError(
            f"{ckpt.path}: has no latent_projection.* entries, so it is a teacher "
            "file; use init_student_from_teacher to start a student from it"
        )
    net = _build_and_load(
        lambda: MaskTransformer(cfg), ckpt.state_dict, str(ckpt.path), None, assumed
    )
    return _to(net, device)


def init_student_from_teacher(
    src: str | os.PathLike | TransformerCheckpoint,
    config: MaskGITConfig | None = None,
    *,
    seed: int | None = None,
    device: torch.device | str | None = None,
) -> MaskTransformer:
    """Student initialised as the authors do (docs/algorithm.md#student-initialisation).

    Builds a student (fresh torch default init, seeded by ``seed`` without
    touching the global RNG when given), then loads the teacher file
    non-strictly: every teacher tensor is copied and ``latent_projection.*``
    keeps its random initialisation (not zero, so the student already differs
    from the teacher). Returned in eval mode; call ``.train()`` to train.
    """
    ckpt = _as_checkpoint(src)
    cfg, assumed = _config(ckpt, config, PAPER_STUDENT_CONFIG)
    cfg = cfg.as_student()
    if ckpt.is_student:
        raise CheckpointFormatError(
            f"{ckpt.path}: already a Di4C student; use student_from_checkpoint"
        )

    def factory() -> MaskTransformer:
        if seed is None:
            return MaskTransformer(cfg)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return MaskTransformer(cfg)

    net = _build_and_load(
        factory, ckpt.state_dict, str(ckpt.path), _STUDENT_ONLY_PREFIX, assumed
    )
    return _to(net, device)


def save_transformer_checkpoint(
    path: str | os.PathLike,
    model: MaskTransformer,
    *,
    iter: int = 0,
    global_epoch: int = 0,
    optimizer_state_dict: Any = None,
) -> Path:
    """Write ``model`` in the authors' transformer ``.pth`` format (atomically).

    Without ``optimizer_state_dict`` a fresh AdamW state over ``model``'s
    parameters (the authors' hyper-parameters) is stored, so the file has the
    same four entries as theirs, plus the network configuration
    (:data:`di4c.checkpoints.NETWORK_KEY`, which their loader never reads).
    """
    if optimizer_state_dict is None:
        optimizer_state_dict = torch.optim.AdamW(
            model.parameters(), **_ADAMW_KW
        ).state_dict()
    sd = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    container = {
        "iter": int(iter),
        "global_epoch": int(global_epoch),
        "model_state_dict": sd,
        "optimizer_state_dict": optimizer_state_dict,
    }
    return save_torch(path, with_network(container, model.config.to_dict()))


# ---------------------------------------------------------------- VQGAN files
def read_vqgan_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Return ``model.params`` of a taming/MaskGIT VQGAN ``model.yaml``."""
    path = Path(path)
    if not path.is_file():
        raise MissingCheckpointError(f"VQGAN model.yaml not found: {path}")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise CheckpointFormatError(f"{path}: not valid YAML: {e}") from e
    model = doc.get("model") if isinstance(doc, Mapping) else None
    if not isinstance(model, Mapping) or not isinstance(model.get("params"), Mapping):
        raise CheckpointFormatError(
            f"{path}: expected a VQGAN config with a 'model.params' mapping"
        )
    target = str(model.get("target", "VQModel"))
    if target.rsplit(".", 1)[-1] != "VQModel":
        raise CheckpointFormatError(
            f"{path}: model.target is {target!r}; only VQModel is supported"
        )
    return dict(model["params"])


def write_vqgan_yaml(path: str | os.PathLike, config: VQGANConfig) -> Path:
    """Write a ``model.yaml`` that :func:`read_vqgan_yaml` (and the authors' code,
    which needs a ``lossconfig`` entry but never builds it) read back."""
    params = config.to_params()
    params["lossconfig"] = {"target": "taming.modules.losses.vqperceptual.DummyLoss"}
    doc = {"model": {"target": "taming.models.vqgan.VQModel", "params": params}}
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def read_vqgan_checkpoint(path: str | os.PathLike) -> dict[str, Tensor]:
    """VQModel weights from a Lightning ``last.ckpt``, ``loss.*`` entries removed.

    The Lightning bookkeeping (callbacks, hyper-parameters) is read as inert
    placeholders by :func:`di4c.checkpoints.load_container` and ignored.
    """
    return _read_vqgan(path)[0]


def _read_vqgan(path: str | os.PathLike) -> tuple[dict[str, Tensor], dict | None]:
    """(weights, embedded ``model.params`` or None) of a VQGAN ``last.ckpt``."""
    path = Path(path)
    obj = load_container(path, "VQGAN Lightning checkpoint", allow_objects=True)
    if not isinstance(obj, Mapping) or "state_dict" not in obj:
        found = sorted(map(str, obj))[:8] if isinstance(obj, Mapping) else type(obj)
        family = _guess_family(obj) if isinstance(obj, Mapping) else "not a dict"
        raise CheckpointFormatError(
            f"{path}: not a VQGAN Lightning checkpoint: no 'state_dict' entry "
            f"(found {found}; this looks like {family})"
        )
    sd = _check_tensor_map(obj["state_dict"], path, "'state_dict'")
    sd = {k: v for k, v in sd.items() if not k.startswith(_VQGAN_IGNORED_PREFIX)}
    absent = [k for k in _VQGAN_SIGNATURE if k not in sd]
    if absent:
        raise CheckpointFormatError(
            f"{path}: 'state_dict' is not a VQModel state_dict (missing {absent})"
        )
    return sd, embedded_network(obj, path)


def vqgan_from_files(
    ckpt_path: str | os.PathLike,
    yaml_path: str | os.PathLike | None = None,
    *,
    config: VQGANConfig | None = None,
    device: torch.device | str | None = None,
) -> VQModel:
    """VQGAN (eval mode) from ``model.yaml`` (or ``config``) and ``last.ckpt``.

    Without either, the configuration the checkpoint embeds (files this project
    wrote) is used; a published ``last.ckpt`` needs its ``model.yaml``.
    """
    sd, embedded = _read_vqgan(ckpt_path)
    where, params = yaml_path, None
    if config is None and yaml_path is not None:
        params = read_vqgan_yaml(yaml_path)
    elif config is None:
        if embedded is None:
            raise CheckpointFormatError(
                f"{ckpt_path}: no VQGAN configuration: no model.yaml was given and "
                f"the file embeds none ('{NETWORK_KEY}'); keep the model.yaml that "
                "came with it beside it (or pass config)"
            )
        where, params = ckpt_path, embedded
    if params is not None:
        try:
            config = VQGANConfig.from_params(params)
        except (ValueError, NotImplementedError) as e:
            raise CheckpointFormatError(f"{where}: {e}") from e
    net = _build_and_load(lambda: VQModel(config), sd, str(ckpt_path))
    return _to(net, device)


def save_vqgan_checkpoint(
    path: str | os.PathLike,
    model: VQModel,
    *,
    epoch: int = 0,
    global_step: int = 0,
    extra_state: Mapping[str, Tensor] | None = None,
) -> Path:
    """Write ``model`` as a Lightning-1.0.8-style ``last.ckpt`` (atomically).

    ``extra_state`` adds entries to ``state_dict`` (e.g. ``loss.*`` tensors of a
    taming training run, which loaders ignore).
    The ``model.params`` of its ``model.yaml`` are embedded too
    (:data:`di4c.checkpoints.NETWORK_KEY`), so the file alone rebuilds the network.
    """
    sd = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    sd.update(extra_state or {})
    container = {
        "epoch": int(epoch),
        "global_step": int(global_step),
        "pytorch-lightning_version": "1.0.8",
        "callbacks": {},
        "optimizer_states": [],
        "lr_schedulers": [],
        "state_dict": sd,
    }
    return save_torch(path, with_network(container, model.config.to_params()))


# ---------------------------------------------------------------- fetch + build
def _local(
    local_paths: Mapping[str, Any] | str | os.PathLike | None,
    key: str,
    default_name: str | None = None,
):
    """A user's local copy for config ``key``: a mapping entry, or a single
    path (a directory is joined with ``default_name``, as the authors do)."""
    if local_paths is None:
        return None
    if isinstance(local_paths, Mapping):
        return local_paths.get(key)
    p = Path(local_paths)
    if p.is_dir() and default_name:
        return p / default_name
    return p


def load_teacher(
    local_paths: Mapping[str, Any] | str | os.PathLike | None = None,
    *,
    config: MaskGITConfig | None = None,
    device: torch.device | str | None = None,
    remote: RemoteFile = TEACHER_FILE,
) -> MaskTransformer:
    """The published MaskGIT ImageNet-256 teacher (eval mode).

    ``local_paths``: None (cache or download), a path to the ``.pth`` (a
    directory gets ``MaskGIT_ImageNet_256.pth`` appended), or a mapping with key
    ``imagenet.paper.models.teacher.local``. Offline and uncached raises
    :class:`di4c.download.MissingWeightsError` naming that key.
    """
    name = Path(TEACHER_FILE.hf_filename or "").name
    path = fetch(remote, _local(local_paths, remote.config_key, name))
    return teacher_from_checkpoint(path, config, device=device)


def load_student(
    local_paths: Mapping[str, Any] | str | os.PathLike | None = None,
    *,
    config: MaskGITConfig | None = None,
    device: torch.device | str | None = None,
    remote: RemoteFile = STUDENT_FILE,
) -> MaskTransformer:
    """The published Di4C-d MaskGIT student (Zenodo record 15124163; eval mode).

    ``local_paths``: None, a ``.pth`` path (a directory gets ``current.pth``
    appended, as in the authors' resume logic), or a mapping with key
    ``imagenet.paper.models.released.local``.
    """
    path = fetch(remote, _local(local_paths, remote.config_key, "current.pth"))
    return student_from_checkpoint(path, config, device=device)


def load_vqgan(
    local_paths: Mapping[str, Any] | str | os.PathLike | None = None,
    *,
    config: VQGANConfig | None = None,
    device: torch.device | str | None = None,
    remote_ckpt: RemoteFile = VQGAN_CKPT_FILE,
    remote_yaml: RemoteFile = VQGAN_YAML_FILE,
) -> VQModel:
    """The VQGAN tokenizer MaskGIT uses (eval mode).

    ``local_paths``: None, the VQGAN folder holding ``last.ckpt`` and
    ``model.yaml`` (the authors' ``vqgan_folder``), or a mapping with keys
    ``imagenet.paper.models.vq.local_ckpt`` / ``...local_yaml``. With ``config`` given the
    yaml is not needed.
    """
    if local_paths is not None and not isinstance(local_paths, Mapping):
        folder = Path(local_paths)
        if not folder.is_dir():
            raise ValueError(
                f"load_vqgan: local_paths must be the VQGAN folder or a mapping of "
                f"config keys; {folder} is not a directory"
            )
        local_paths = {
            remote_ckpt.config_key: folder / "last.ckpt",
            remote_yaml.config_key: folder / "model.yaml",
        }
    yaml_path = None
    if config is None:
        yaml_path = fetch(remote_yaml, _local(local_paths, remote_yaml.config_key))
    ckpt_path = fetch(remote_ckpt, _local(local_paths, remote_ckpt.config_key))
    return vqgan_from_files(ckpt_path, yaml_path, config=config, device=device)
