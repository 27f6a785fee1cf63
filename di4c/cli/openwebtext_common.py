"""Shared pieces of the OpenWebText CLIs (paper Sec. 5.3, Fig. 4; method.md §5).

- model files: product DiTs (teacher, HF ``model.safetensors`` layout with a
  sibling ``config.json``) and Di4C students (Lightning ``.ckpt`` with an
  ``ema`` entry), read and written with :mod:`di4c.teachers.sdtt` so the mini
  twin and the paper scale share one container code path;
- pointer files (``*.json`` written by the fetch rules) naming a cached download;
- the MDLM training loss of the mini teacher (log-linear NELBO);
- sample files: token ids, per-sample seeds and the sampling options.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor

from di4c.artifacts import save_torch, sha256_file
from di4c.networks.dit import DIT, DiTDenoiser
from di4c.processes.masked import MaskedProcess
from di4c.teachers.sdtt import (
    ema_state,
    infer_config,
    load_into,
    read_checkpoint,
    save_lightning_ckpt,
    save_safetensors,
)

KINDS = ("product", "student")
NOISE_DTYPES = {"float64": torch.float64, "float32": torch.float32}
PRECISIONS = ("fp32", "bf16")


def write_pointer(path: str | Path, target: str | Path, **info) -> Path:
    """A small JSON naming a cached file (and its sha256) for the DAG to track."""
    from di4c.artifacts import write_json

    target = Path(target).resolve()
    return write_json(
        path, {"path": str(target), "sha256": sha256_file(target), **info}
    )


def resolve_pointer(path: str | Path) -> tuple[Path, Path | None]:
    """``(target, config)`` behind ``path``: the path itself, or what a pointer JSON names."""
    path = Path(path)
    if path.suffix != ".json":
        return path, None
    info = json.loads(path.read_text())
    target = Path(info["path"])
    if not target.exists():
        raise FileNotFoundError(
            f"{path} points at {target}, which no longer exists (cache cleared?); "
            f"delete {path} and rerun the fetch rule"
        )
    config = info.get("config")
    return target, Path(config) if config else None


def load_dit(
    path: str | Path,
    kind: str,
    weights: str = "raw",
    device: str | torch.device = "cpu",
) -> DIT:
    """A DIT from a file: ``kind="product"`` (lambda token off) or ``"student"`` (on)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
    target, config = resolve_pointer(path)
    ckpt = read_checkpoint(target, config_path=config)
    is_di4c = kind == "student"
    if is_di4c and "latent_projection.0.weight" not in ckpt.state_dict:
        raise ValueError(
            f"{path}: no latent_projection.* entries, so this is a product model; "
            "load it with kind='product'"
        )
    net = DIT(infer_config(ckpt, is_di4c=is_di4c))
    load_into(net, ckpt, weights=weights)
    return net.to(device)


def denoiser(net: DIT, precision: str = "fp32") -> DiTDenoiser:
    """Suite denoiser of ``net``; ``bf16`` runs the blocks under bf16 autocast (authors' GPU runs)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; got {precision!r}")
    net.autocast_bf16 = precision == "bf16"
    return DiTDenoiser(net)


def save_product(net: DIT, path: str | Path) -> Path:
    """Product model in the HF layout (``model.safetensors`` + ``config.json`` beside it)."""
    return save_safetensors(net, path)


def save_student(net: DIT, path: str | Path, ema=None, step: int = 0) -> Path:
    """Di4C student as a Lightning-style checkpoint with its EMA (the authors' container)."""
    entry = None
    if ema is not None:
        entry = ema_state(
            net, decay=ema.decay, num_updates=ema.num_updates, shadow_params=ema.shadow
        )
    return save_lightning_ckpt(net, path, ema=entry, global_step=step)


def masked_process(
    num_classes: int, dtype: torch.dtype = torch.float32
) -> MaskedProcess:
    """The log-linear absorbing process of MDLM/SDTT (eps 1e-3; method.md §5.1)."""
    return MaskedProcess(num_classes, "loglinear", dtype=dtype)


def mdlm_loss(
    den, process: MaskedProcess, x0: Tensor, generator, sampling_eps: float = 1e-3
) -> Tensor:
    """MDLM's continuous-time NELBO for the log-linear schedule, per token.

    t = (1 - eps) u + eps with antithetic (stratified) u over the batch, as MDLM;
    x_t masks each token with probability (1 - 1e-3) t; the weight of a masked
    token's -log p(x0 | x_t) is -alpha'(t) / (1 - alpha(t)) = 1/t for this
    schedule. SUBS makes unmasked positions contribute 0.
    """
    B, D = x0.shape
    u0 = torch.rand(1, generator=generator)
    u = (u0 + torch.arange(B) / B) % 1
    t = ((1 - sampling_eps) * u + sampling_eps).to(x0.device)
    x_t = process.sample_forward(x0, t, generator)
    logp = den(x_t, t)
    ll = torch.gather(logp, -1, x0[..., None])[..., 0]
    masked = (x_t == process.mask_id).to(ll.dtype)
    return (-(ll * masked) / t[:, None]).sum() / (B * D)


def write_samples(path: str | Path, ids: Tensor, seeds: list[int], **info) -> Path:
    """Sample file: token ids (n, L) int32, their per-sample seeds and the sampling options."""
    return save_torch(
        path, {"ids": ids.to(torch.int32).cpu(), "seeds": list(seeds), **info}
    )


def read_samples(path: str | Path) -> dict:
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or "ids" not in obj:
        raise ValueError(
            f"{path}: not a sample file (no 'ids'); regenerate it with the sample rule"
        )
    obj["ids"] = obj["ids"].long()
    return obj


def read_data(path: str | Path) -> dict:
    """A prepared data file (``prepare-shakespeare`` or ``prepare-owt`` output)."""
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or "train" not in obj:
        raise ValueError(f"{path}: not a prepared text data file (no 'train' split)")
    return obj


def num_classes_of(data: dict) -> int:
    """S: characters of the mini vocabulary, or the 50,257 GPT-2 tokens."""
    return len(data["vocab"]) if data["vocab"] != "gpt2" else 50257
