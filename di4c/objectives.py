"""Training objectives of the teachers the DAG trains for the mini twins.

Each returns the mean loss of a batch of clean states; the randomness comes from
the training loop's generator.

- :func:`x0_cross_entropy`: the x0-prediction cross-entropy of a tauLDR-family
  network under the Gaussian-target rate process (the auxiliary term of tauLDR's
  objective, andrew-cr/tauLDR lib/losses/losses.py ``GenericAux``; both it and the
  CTMC ELBO have the true posterior marginals as optimum, and Di4C uses only the
  x0-predictor).
- :func:`maskgit_cross_entropy`: the MaskGIT objective (valeoai/Maskgit-pytorch
  Trainer/vit.py): progress r ~ U(0, 1), each code masked with probability
  arccos(r) / (pi / 2), the label dropped with probability ``label_drop``,
  cross-entropy of every position with label smoothing.
- :func:`mdlm_nelbo`: MDLM's continuous-time NELBO for the log-linear schedule
  (kuleshov-group/mdlm diffusion.py, SUBS parameterisation, antithetic times).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


def x0_cross_entropy(net, process, x0: Tensor, gen, min_time: float = 0.01) -> Tensor:
    """Mean over pixels of -log p(x0 | x_t), t ~ U(min_time, 1), x_t ~ q_t(. | x0)."""
    t = min_time + (1.0 - min_time) * torch.rand(x0.shape[0], generator=gen)
    x_t = process.sample_forward(x0, t, gen)
    logits = net(x_t, t)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x0.reshape(-1))


@dataclass
class MaskGITLoss:
    total: Tensor
    masked_ce: float  # cross-entropy on the masked positions only (monitoring)


def maskgit_cross_entropy(
    net,
    process,
    x0: Tensor,
    labels: Tensor,
    gen,
    label_drop: float,
    label_smoothing: float,
) -> MaskGITLoss:
    from di4c.samplers.confidence import UNCOND

    B, D = x0.shape
    r = torch.rand(B, generator=gen)
    x_t = process.sample_forward(x0, 1 - r, gen)
    drop = torch.rand(B, generator=gen) < label_drop
    cond = torch.where(drop, torch.full_like(labels, UNCOND), labels)
    null = torch.full_like(cond, net.config.null_label)
    cond = torch.where(cond < 0, null, cond)
    logits = net(x_t, cond, cond == net.config.null_label)
    ce = F.cross_entropy(
        logits.reshape(B * D, -1), x0.reshape(-1), label_smoothing=label_smoothing
    )
    with torch.no_grad():
        m = (x_t == process.mask_id).reshape(-1)
        mce = F.cross_entropy(logits.reshape(B * D, -1)[m], x0.reshape(-1)[m])
    return MaskGITLoss(ce, float(mce) if m.any() else 0.0)


def mdlm_nelbo(den, process, x0: Tensor, gen, sampling_eps: float = 1e-3) -> Tensor:
    """Per-token NELBO: t = (1 - eps) u + eps with antithetic u; a masked token's
    -log p(x0 | x_t) weighs 1/t (= -alpha'(t) / (1 - alpha(t)), log-linear)."""
    B, D = x0.shape
    u0 = torch.rand(1, generator=gen)
    u = (u0 + torch.arange(B) / B) % 1
    t = ((1 - sampling_eps) * u + sampling_eps).to(x0.device)
    x_t = process.sample_forward(x0, t, gen)
    logp = den(x_t, t)
    ll = torch.gather(logp, -1, x0[..., None])[..., 0]
    masked = (x_t == process.mask_id).to(ll.dtype)
    return (-(ll * masked) / t[:, None]).sum() / (B * D)
