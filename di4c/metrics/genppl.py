"""Generative perplexity of unconditional samples under an autoregressive judge LM.

Exactly as the authors evaluate OpenWebText samples
(``sdtt/src/sdtt/run_eval.py::uncond_eval``; docs/algorithm.md#openwebtext-evaluation,
docs/implementation-notes.md#genppl-definition): the sampled token ids are fed to the judge as they are
(no re-tokenisation, no BOS prepended), in fp32, batch 8; the first token is
not scored, so the per-sample NLL is the mean over positions 2..L of
-log p(x_j | x_<j); Gen PPL = exp(mean over samples of the per-sample NLL).

Judges: HF ``gpt2-large`` at paper scale (any ``transformers`` causal LM,
loaded once by :func:`load_judge`); at mini scale a small GPT-2-architecture
model the DAG trains on held-out text.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch
from torch import Tensor

from di4c.metrics.counts import require_samples

PAPER_JUDGE = "gpt2-large"
# the judge's architecture (HF gpt2-large config.json: n_embd, n_layer, n_head; GPT-2
# vocabulary and context), for the cost benchmark's random-weight stand-in
PAPER_JUDGE_SHAPE = {"n_embd": 1280, "n_layer": 36, "n_head": 20}
JUDGE_KEY = "openwebtext.paper.models.judge.local"  # config key of a local copy


class MissingJudgeError(FileNotFoundError):
    """The judge LM is neither local nor downloadable; says how to point at a copy."""


def load_judge(
    name_or_path: str | os.PathLike, device: str | torch.device = "cpu", cache_dir=None
):
    """A causal LM in eval mode, fp32: a local folder or a Hugging Face model id."""
    from transformers import AutoModelForCausalLM

    local = Path(name_or_path)
    looks_local = os.sep in str(name_or_path) or str(name_or_path).startswith(".")
    if looks_local and not local.is_dir():
        raise MissingJudgeError(
            f"judge LM folder {str(local)!r} does not exist; train it first (mini: the "
            "DAG's train_judge rule) or point config key "
            f"{JUDGE_KEY} at a folder holding config.json and the weights"
        )
    if local.is_dir() and not (local / "config.json").is_file():
        raise MissingJudgeError(
            f"judge LM folder {str(local)!r} has no config.json (an empty or partial "
            "copy); train it again (mini: the DAG's train_judge rule) or point config "
            f"key {JUDGE_KEY} at a folder holding config.json and the weights"
        )
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(name_or_path),
            cache_dir=cache_dir,
            dtype=torch.float32,
            local_files_only=local.is_dir(),
        )
    except OSError as e:
        raise MissingJudgeError(
            f"judge LM {str(name_or_path)!r} could not be loaded ({str(e).splitlines()[0]}). "
            "If this machine is offline, download it elsewhere (e.g. "
            "`huggingface-cli download gpt2-large`) and set config key "
            f"{JUDGE_KEY} to its local folder."
        ) from e
    return model.to(device).eval()


@torch.no_grad()
def per_sample_nll(
    model, ids: Tensor, batch_size: int = 8, start: int = 1, progress: bool = False
) -> Tensor:
    """Mean NLL (nats) of positions ``start..L-1`` of each sequence, shape (n,) float64.

    ``start = 1`` skips the first token (unconditional samples); the
    prefix-conditional protocol would pass the prefix length.
    """
    if ids.dim() != 2 or ids.dtype.is_floating_point:
        raise ValueError(
            f"ids must be an integer tensor (n, L); got {ids.dtype} {tuple(ids.shape)}"
        )
    n, L = ids.shape
    if not 1 <= start < L:
        raise ValueError(f"start must be in [1, L={L}); got {start}")
    vocab = model.config.vocab_size
    if ids.numel() and (ids.min() < 0 or ids.max() >= vocab):
        raise ValueError(
            f"token ids outside the judge's vocabulary [0, {vocab}): min {int(ids.min())}, "
            f"max {int(ids.max())} (a mask token left in a sample, or the wrong judge?)"
        )
    device = next(model.parameters()).device
    out = torch.empty(n, dtype=torch.float64)
    t0 = time.time()
    for b in range(0, n, batch_size):
        x = ids[b : b + batch_size].to(device)
        logits = model(x).logits[:, start - 1 : -1].float()
        logp = torch.log_softmax(logits, dim=-1)
        tok = torch.gather(logp, -1, x[:, start:, None])[..., 0]
        out[b : b + x.shape[0]] = (-tok).mean(-1).double().cpu()
        if progress and (b // batch_size) % 20 == 0:
            done = b + x.shape[0]
            rate = done / max(time.time() - t0, 1e-9)
            print(
                f"[genppl] {done}/{n} samples ({rate:.1f}/s, ETA {(n - done) / rate:.0f}s)",
                flush=True,
            )
    return out


def gen_ppl(nll: Tensor) -> float:
    """exp(mean of the per-sample mean NLL)."""
    return math.exp(float(nll.double().mean()))


def genppl_summary(nll: Tensor, min_samples: int | None = None) -> dict:
    """Gen PPL, its delta-method standard error and the two split-half values, of at
    least ``min_samples`` (>= 2) sequences (:func:`~di4c.metrics.counts.require_samples`)."""
    n = nll.numel()
    require_samples(n, min_samples, unit="sequences")
    ppl = gen_ppl(nll)
    half = n // 2
    return {
        "gen_ppl": ppl,
        "gen_ppl_se": ppl * float(nll.double().std()) / math.sqrt(n),
        "gen_ppl_half_a": gen_ppl(nll[:half]),
        "gen_ppl_half_b": gen_ppl(nll[half:]),
        "nll": float(nll.double().mean()),
    }
