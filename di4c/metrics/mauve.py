"""MAUVE between generated and reference text (optional, off by default).

The authors implement it but leave it off (``eval.mauve.run`` False;
docs/algorithm.md#openwebtext-evaluation); when run:
GPT-2 Large features of the first 100 tokens, 5 seeds, scaling factor 5.
Features follow mauve-text's featurizer: the last layer's hidden state at the
final position of each sequence. :func:`compute_mauve` hands precomputed
features to ``mauve.compute_mauve`` (``p_features`` / ``q_features``), which
then never loads a model, so it runs offline with any featurizer (the mini
twin uses its judge LM).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from di4c.metrics.counts import require_samples


@torch.no_grad()
def featurize(
    model, ids: Tensor, max_len: int | None = 100, batch_size: int = 8
) -> np.ndarray:
    """(n, hidden) float32 features: last hidden state at the last of the first ``max_len`` tokens."""
    if ids.dim() != 2:
        raise ValueError(f"ids must have shape (n, L); got {tuple(ids.shape)}")
    x_all = ids[:, :max_len] if max_len else ids
    device = next(model.parameters()).device
    feats = []
    for b in range(0, x_all.shape[0], batch_size):
        out = model(x_all[b : b + batch_size].to(device), output_hidden_states=True)
        feats.append(out.hidden_states[-1][:, -1].float().cpu())
    return torch.cat(feats).numpy()


def compute_mauve(
    p_features: np.ndarray,
    q_features: np.ndarray,
    seeds=(1, 2, 3, 4, 5),
    scaling: float = 5.0,
) -> dict:
    """MAUVE of generated (p) vs reference (q) features: the mean over ``seeds`` and
    its sd over them (MAUVE's own clustering noise; MAUVE decides no verdict)."""
    try:
        import mauve
    except ImportError as e:
        raise ImportError(
            "MAUVE needs the 'mauve-text' package: pip install mauve-text"
        ) from e
    require_samples(len(p_features), what="generated", unit="feature vectors (MAUVE)")
    require_samples(len(q_features), what="reference", unit="feature vectors (MAUVE)")
    vals = [
        float(
            mauve.compute_mauve(
                p_features=np.asarray(p_features),
                q_features=np.asarray(q_features),
                mauve_scaling_factor=scaling,
                seed=int(s),
                verbose=False,
                device_id=-1,
            ).mauve
        )
        for s in seeds
    ]
    return {"mauve": float(np.mean(vals)), "mauve_sd": float(np.std(vals, ddof=1))}
