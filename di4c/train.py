"""The training loop shared by Di4C distillation and mini-teacher training.

- Optimiser from the setting's rules (Adam / AdamW, betas, weight decay, linear
  warm-up then constant, as the authors), gradient clipping by global norm.
- EMA with the authors' warm-up decay min(decay, (1 + n) / (10 + n))
  (authors' ``tauldr/lib/models/models.py::EMA.update_ema``).
- Deterministic data order: the batch at step k is a function of (seed, k) only,
  so a resumed run sees exactly the batches an uninterrupted run would.
- Resumable: ``<out_dir>/checkpoint.pt`` (written atomically every ``ckpt_every``
  steps) holds model, optimiser, EMA, step, the loss generator's RNG state and
  torch's global generator states (dropout), so a resumed run equals an uninterrupted one.
- Finite or nothing: every loss term and the gradient norm are checked before the
  optimiser step; a non-finite one stops the run (:class:`NonFiniteError`, naming the
  term and the step) with the step unapplied, and no checkpoint with non-finite
  weights is ever written, so the last good checkpoint stays and a rerun resumes from it.
- Progress: a log line every ``log_every`` steps with rate and ETA, and
  ``log.jsonl`` with the loss parts.
- Data parallel (torchrun, any backend incl. gloo on CPU): each process takes
  its contiguous shard of the global batch and gradients are averaged with an
  all-reduce. With ``per_example_rng`` the loss gets an
  :class:`~di4c.samplers.noise.ExampleRNG` whose draws depend only on (seed,
  step, position in the global batch), so N processes reproduce the 1-process
  run up to float summation order.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import Tensor, nn

from di4c.artifacts import save_torch
from di4c.checkpoints import load_container
from di4c.samplers.noise import ExampleRNG

CHECKPOINT_NAME = "checkpoint.pt"


@dataclass(frozen=True)
class TrainConfig:
    iters: int = 1000
    batch_size: int = 8
    optimizer: str = "adam"  # "adam" | "adamw"
    lr: float = 2e-4
    betas: tuple = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    grad_clip: float = 1.0
    ema_decay: float | None = None
    log_every: int = 50
    ckpt_every: int = 500
    seed: int = 0
    per_example_rng: bool = (
        False  # loss gets an ExampleRNG (needed for exact DDP equivalence)
    )

    def __post_init__(self):
        if self.iters < 0 or self.batch_size < 1:
            raise ValueError(
                f"need iters >= 0 and batch_size >= 1; got {self.iters}, {self.batch_size}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"unknown optimizer {self.optimizer!r}; allowed: {sorted(OPTIMIZERS)}"
            )
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0; got {self.lr}")

    @classmethod
    def from_run(cls, run, **overrides) -> TrainConfig:
        """The loop config of a CLI's run dataclass: each field of ``run`` that has a
        namesake here, then ``overrides`` (what the CLI fixes or derives itself)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise TypeError(
                f"not TrainConfig fields: {unknown}; allowed: {sorted(names)}"
            )
        shared = {f.name: getattr(run, f.name) for f in fields(run) if f.name in names}
        return cls(**(shared | overrides))


OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


class NonFiniteError(FloatingPointError):
    """A loss term, the gradient norm or the weights went non-finite; says which,
    at which step, and which checkpoint a rerun resumes from."""


class EMA:
    """Exponential moving average of a module's parameters with the tauLDR/SDTT warm-up."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.num_updates = 0
        self.shadow = [
            p.detach().clone() for p in model.parameters() if p.requires_grad
        ]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.num_updates += 1
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        for s, p in zip(
            self.shadow, (p for p in model.parameters() if p.requires_grad)
        ):
            s.mul_(d).add_(p.detach(), alpha=1 - d)

    @contextlib.contextmanager
    def swapped_in(self, model: nn.Module):
        """Temporarily load the EMA weights into ``model``."""
        params = [p for p in model.parameters() if p.requires_grad]
        backup = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, s in zip(params, self.shadow):
                p.copy_(s)
        try:
            yield model
        finally:
            with torch.no_grad():
                for p, b in zip(params, backup):
                    p.copy_(b)

    def state_dict(self) -> dict:
        return {
            "decay": self.decay,
            "num_updates": self.num_updates,
            "shadow_params": self.shadow,
        }

    def load_state_dict(self, sd: dict) -> None:
        self.decay, self.num_updates = sd["decay"], sd["num_updates"]
        self.shadow = [s.clone() for s in sd["shadow_params"]]


def batch_indices(n: int, batch_size: int, step: int, seed: int) -> Tensor:
    """Indices of the batch at ``step``: epoch-wise permutations seeded by (seed, epoch)."""
    if n < 1:
        raise ValueError(
            "the training set is empty: no examples to draw a batch from; check the "
            "dataset files and the split sizes in the config"
        )
    per_epoch = max(1, n // batch_size)
    epoch, pos = divmod(step, per_epoch)
    perm = torch.randperm(
        n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    )
    idx = perm[pos * batch_size : (pos + 1) * batch_size]
    if (
        idx.numel() < batch_size
    ):  # fewer examples than one batch: sample with wrap-around
        idx = perm[torch.arange(pos * batch_size, (pos + 1) * batch_size) % n]
    return idx


@dataclass
class TrainResult:
    model: nn.Module
    ema: EMA | None
    history: list[dict]
    wall_time_s: float
    resumed_from: int


def _dist() -> tuple[int, int]:
    """(rank, world size) of an initialised process group, else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _average_gradients(params, world: int) -> None:
    import torch.distributed as dist

    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)
        p.grad.div_(world)


def _lr_lambda(warmup: int):
    return lambda step: min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0


def _global_rng() -> dict:
    """torch's global generator states (dropout draws from them), CPU and CUDA."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    return {"cpu": torch.get_rng_state(), "cuda": cuda}


def _set_global_rng(state: dict | None) -> None:
    if not state:  # checkpoints written before the global state was saved
        return
    torch.set_rng_state(state["cpu"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# TrainConfig fields a resumed run may change (a longer run continues a shorter one)
RESUMABLE_FIELDS = frozenset({"iters", "log_every", "ckpt_every"})


def _digest(tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(
            t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        )
    return h.hexdigest()


def _run_key(model: nn.Module, data: dict, cfg: TrainConfig, extra) -> dict:
    """What a checkpoint must share with this run to be resumed from.

    The training config (but its length), the model's parameter shapes and initial
    weights (a student's init is its teacher), the training data, and whatever the
    caller adds (``run_key``: loss rules, teacher checksums). Without it a work
    folder left by an earlier config would be resumed silently.
    """
    sd = model.state_dict()
    return {
        "config": {k: v for k, v in asdict(cfg).items() if k not in RESUMABLE_FIELDS},
        "shapes": {k: list(v.shape) for k, v in sd.items()},
        "init": _digest(sd[k] for k in sorted(sd)),
        "data": _digest(data[k] for k in sorted(data)),
        "extra": json.loads(json.dumps(extra or {}, sort_keys=True, default=str)),
    }


def _non_finite_weights(model: nn.Module, ema: EMA | None) -> list[str]:
    """Names of the model's (and the EMA's) tensors holding NaN or inf."""
    bad = [
        k
        for k, v in model.state_dict().items()
        if v.is_floating_point() and not bool(torch.isfinite(v).all())
    ]
    if ema is not None:
        bad += [
            f"ema[{i}]"
            for i, s in enumerate(ema.shadow)
            if not bool(torch.isfinite(s).all())
        ]
    return bad


def _loss_terms(loss: Tensor, out) -> dict[str, float]:
    """The total and the logged parts of a loss, as floats (checked before a step)."""
    terms = {"total": float(loss.detach())}
    if not torch.is_tensor(out):
        terms.update({k: v for k, v in vars(out).items() if isinstance(v, float)})
    return terms


def train(
    model: nn.Module,
    loss_fn: Callable[[dict, torch.Generator], object],
    data: dict[str, Tensor],
    cfg: TrainConfig,
    out_dir: str | Path | None = None,
    label: str = "train",
    on_step: Callable[[int, nn.Module], None] | None = None,
    run_key: dict | None = None,
) -> TrainResult:
    """Optimise ``model`` for ``cfg.iters`` steps of ``loss_fn(batch, generator)``.

    ``data`` maps names (e.g. ``x0``, ``cond``) to tensors sharing the first
    axis; each step passes the same rows of every tensor. ``loss_fn`` returns a
    scalar tensor (the mean over its batch) or an object with a ``total`` tensor
    (extra float fields are logged). Its second argument is a torch.Generator,
    or an ExampleRNG with ``cfg.per_example_rng``. With ``out_dir`` set, the run
    resumes from its checkpoint if present. Under torch.distributed each
    process takes its shard of the global batch (``cfg.batch_size``); only rank
    0 writes checkpoints and logs.
    """
    rank, world = _dist()
    if world > 1 and (not cfg.per_example_rng or cfg.batch_size % world):
        raise ValueError(
            f"data-parallel training over {world} processes needs per_example_rng=True and a "
            f"batch_size divisible by {world}; got per_example_rng={cfg.per_example_rng}, "
            f"batch_size={cfg.batch_size}"
        )
    shard = cfg.batch_size // world
    positions = torch.arange(rank * shard, (rank + 1) * shard)
    n = next(iter(data.values())).shape[0]
    if any(v.shape[0] != n for v in data.values()):
        raise ValueError("all data tensors must share the first (example) axis")
    params = [p for p in model.parameters() if p.requires_grad]
    opt_kw = dict(lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    opt = OPTIMIZERS[cfg.optimizer](params, **opt_kw)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg.warmup_steps))
    ema = EMA(model, cfg.ema_decay) if cfg.ema_decay else None
    gen = torch.Generator().manual_seed(cfg.seed)
    start, history = 0, []
    ckpt = Path(out_dir) / CHECKPOINT_NAME if out_dir else None
    log_file = Path(out_dir) / "log.jsonl" if out_dir and rank == 0 else None
    key = _run_key(model, data, cfg, run_key)
    if ckpt and ckpt.is_file():
        state = load_container(ckpt, "training checkpoint")  # weights-only data
        changed = sorted(k for k in key if state.get("run_key", {}).get(k) != key[k])
        if changed:  # a checkpoint of another run: never resume from it
            print(
                f"[{label}] {ckpt} was written by a different run (changed: "
                f"{', '.join(changed)}); starting from step 0",
                flush=True,
            )
            state = None
            if rank == 0:
                ckpt.unlink()
                if log_file and log_file.exists():
                    log_file.unlink()
    else:
        state = None
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if ema is not None and state.get("ema"):
            ema.load_state_dict(state["ema"])
        gen.set_state(state["generator"])
        _set_global_rng(state.get("global_rng"))
        start = state["step"]
        print(f"[{label}] resumed from step {start} ({ckpt})", flush=True)
    if log_file:
        log_file.parent.mkdir(parents=True, exist_ok=True)
    last_good = start if state is not None else None  # step of the checkpoint on disk

    def stop(step: int, what: str, hint: str, applied: bool = False):
        """Stop at step ``step`` (0-based): unapplied, or applied but not written."""
        if ckpt is None:
            kept = "no checkpoint is kept (no out_dir)"
        elif last_good is None:
            kept = f"no checkpoint was written yet; a rerun starts from step 0 ({ckpt})"
        else:
            kept = (
                f"the last good checkpoint (step {last_good}) is kept at {ckpt}; a "
                "rerun resumes from it"
            )
        done = "its weights were not written" if applied else "the step was not applied"
        raise NonFiniteError(
            f"[{label}] {what} at step {step + 1} of {cfg.iters}; {done} and {kept}. "
            + hint
        )

    def save(step):
        nonlocal last_good
        if ckpt is None or rank != 0:
            return
        bad = _non_finite_weights(model, ema)
        if bad:  # never overwrite a good checkpoint with non-finite weights
            stop(
                step - 1,
                f"non-finite weights {bad[:3]}{' ...' if len(bad) > 3 else ''}",
                "Lower the learning rate (or set grad_clip) and rerun.",
                applied=True,
            )
        save_torch(
            ckpt,
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "ema": ema.state_dict() if ema else None,
                "generator": gen.get_state(),
                "global_rng": _global_rng(),
                "run_key": key,
                "step": step,
                "config": asdict(cfg),
            },
        )
        last_good = step

    t0 = time.time()
    window: list[dict] = []
    model.train()
    for step in range(start, cfg.iters):
        idx = batch_indices(n, cfg.batch_size, step, cfg.seed)[positions]
        batch = {k: v[idx] for k, v in data.items()}
        rng = ExampleRNG(cfg.seed, step, positions) if cfg.per_example_rng else gen
        try:
            out = loss_fn(batch, rng)
        except NonFiniteError:
            raise
        except FloatingPointError as e:  # the loss refused an input (a NaN teacher)
            stop(
                step,
                str(e),
                "Check the model it names (its checkpoint) and the data; the learning "
                "rate is not the cause.",
            )
        loss = out if torch.is_tensor(out) else out.total
        terms = _loss_terms(loss, out)
        bad = [k for k, v in terms.items() if not math.isfinite(v)]
        if bad:
            stop(
                step,
                "non-finite loss term " + ", ".join(f"{k} = {terms[k]}" for k in bad),
                "If the loss was growing before this step, lower the learning rate; "
                "otherwise check the inputs and the models the loss evaluates.",
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if world > 1:
            _average_gradients(params, world)
        # the global norm (clipped to grad_clip if set); checked before it is applied
        gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip or math.inf)
        if not bool(torch.isfinite(gnorm)):
            parts = ", ".join(f"{k} {v:.4g}" for k, v in terms.items())
            stop(
                step,
                f"non-finite gradient norm {float(gnorm)} (loss terms finite: {parts})",
                "A finite loss with a non-finite gradient points at the inputs or a "
                "model the loss evaluates (e.g. a teacher with NaN outputs), not at "
                "the learning rate.",
            )
        opt.step()
        sched.step()
        if ema is not None:
            ema.update(model)
        loss_val = loss.detach().clone()
        if world > 1:
            import torch.distributed as dist

            dist.all_reduce(loss_val)
            loss_val /= world
        rec = {"step": step + 1, "loss": float(loss_val)}
        if not torch.is_tensor(out):
            rec.update({k: v for k, v in vars(out).items() if isinstance(v, float)})
        if cfg.grad_clip:
            rec["grad_norm"] = float(gnorm)
        window.append(rec)
        if on_step:
            on_step(step + 1, model)
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.iters:
            mean = {
                k: sum(r[k] for r in window) / len(window)
                for k in window[-1]
                if k != "step"
            }
            mean["step"] = done
            history.append(mean)
            if log_file:
                with open(log_file, "a") as f:
                    f.write(json.dumps(mean) + "\n")
            rate = (done - start) / max(time.time() - t0, 1e-9)
            eta = (cfg.iters - done) / max(rate, 1e-9)
            parts = " ".join(f"{k} {v:.4g}" for k, v in mean.items() if k != "step")
            if rank == 0:
                print(
                    f"[{label}] step {done}/{cfg.iters} {parts} ({rate:.2f} it/s, "
                    f"ETA {eta / 60:.1f} min)",
                    flush=True,
                )
            window = []
        if ckpt and (done % cfg.ckpt_every == 0 or done == cfg.iters):
            save(done)
    bad = _non_finite_weights(model, ema)
    if bad:
        stop(
            cfg.iters - 1,
            f"non-finite weights {bad[:3]}",
            "Lower the learning rate (or set grad_clip) and rerun.",
            applied=True,
        )
    return TrainResult(model, ema, history, time.time() - t0, start)


def weights_for_sampling(result: TrainResult, use_ema: bool) -> dict:
    """State dict to save for sampling: EMA weights (swapped in) or the raw ones."""
    if use_ema and result.ema is not None:
        with result.ema.swapped_in(result.model) as m:
            return copy.deepcopy(m.state_dict())
    return copy.deepcopy(result.model.state_dict())
