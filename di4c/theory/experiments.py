"""The theory table: exact TV of product samplers (Theorem 1) and of Di4C students.

For each registered :class:`TheoryExperiment` (a data law on S^D and a forward
process):

- ``product_exact``: the N-step sampler whose factors are the exact
  per-dimension marginals of the true reverse conditional, on the grid
  t_k = k/N from t = 1 (started from the exact law of x_1) to t = 0; exact TV
  to the data for every N, and the fitted log-log slope over the large-N range.
- ``product_net``: a small product network fitted to the exact teacher.
- ``di4c_student``: that network plus a zero-initialised lambda path, trained
  with the suite's Di4C loss (:func:`di4c.distill.di4c_loss`) from the exact
  product teacher; ``product_student``: the same with K = 1 (plain product
  distillation, the ablation), at equal rows per step.

Students are evaluated exactly: lambda is integrated with a midpoint rule (the
network is smooth in lambda; the quadrature error is recorded), states are
enumerated, nothing is sampled.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from di4c.distill import di4c_loss
from di4c.loss import distillation_loss
from di4c.networks.small import MLPDenoiser
from di4c.processes import build_process
from di4c.settings import get_rules
from di4c.theory.exact import (
    ExactPosterior,
    embed,
    forward_marginal,
    midpoint_nodes,
    sampler_distribution,
    total_variation,
)

GIVEN_3X3 = [
    16,
    10,
    7,
    3,
    7,
    3,
    4,
    3,
    5,
    8,
    3,
    4,
    8,
    14,
    12,
    3,
    3,
    8,
    8,
    3,
    2,
    1,
    9,
    4,
    9,
    11,
    13,
]


def _normalise(w) -> torch.Tensor:
    w = torch.tensor(w, dtype=torch.float64)
    return w / w.sum()


def _two_bit():
    return _normalise([1, 0, 0, 1])


def _diagonal(S: int, D: int):
    w = torch.zeros(S**D, dtype=torch.float64)
    for v in range(S):
        w[sum(v * S**k for k in range(D))] = 1
    return w / w.sum()


@dataclass(frozen=True)
class TheoryExperiment:
    name: str
    S: int
    D: int
    process: str
    process_kwargs: dict
    data: Callable[[], torch.Tensor]
    teacher_step: str
    description: str


EXPERIMENTS: dict[str, TheoryExperiment] = {
    e.name: e
    for e in [
        TheoryExperiment(
            "two_bit",
            2,
            2,
            "masked",
            {"schedule": "linear"},
            _two_bit,
            "ancestral",
            "D=2, S=2, uniform on {(0,0),(1,1)}; absorbing mask, m(t)=t",
        ),
        TheoryExperiment(
            "given_3x3",
            3,
            3,
            "masked",
            {"schedule": "linear"},
            lambda: _normalise(GIVEN_3X3),
            "ancestral",
            "D=3, S=3, the issue's 27 weights (lexicographic); absorbing mask, m(t)=t",
        ),
        TheoryExperiment(
            "gauss_diag_4x2",
            4,
            2,
            "gaussian_rate",
            {},
            lambda: _diagonal(4, 2),
            "analytical",
            "D=2, S=4, x1 = x2 uniform; tauLDR Gaussian-target rate (paper constants)",
        ),
        TheoryExperiment(
            "gauss_given_3x3",
            3,
            3,
            "gaussian_rate",
            {},
            lambda: _normalise(GIVEN_3X3),
            "analytical",
            "given_3x3 data under the tauLDR Gaussian-target rate process (paper constants)",
        ),
    ]
}


@dataclass(frozen=True)
class TheoryConfig:
    """Sizes of the theory run (``paper``/``smoke`` presets in workflows/config)."""

    experiments: tuple = tuple(EXPERIMENTS)
    product_steps: tuple = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
    teacher_steps: int = 1024  # the many-step product teacher students are compared to
    fit_min_steps: int = 128  # slope fitted on N >= this
    student_steps: tuple = (1, 2, 4, 8)
    fit_iters: int = 1500  # product network fit to the exact teacher
    distill_iters: int = 3000  # Di4C / K=1 student iterations
    batch_x: int = 32  # conditioning states per Di4C step (K=1 uses batch_x * K)
    K: int = 16
    lr: float = 1e-3
    hidden: int = 128
    lam_nodes: int = 512
    seed: int = 0
    train_students: bool = True

    def __post_init__(self):
        unknown = set(self.experiments) - set(EXPERIMENTS)
        if unknown:
            raise ValueError(
                f"unknown theory experiment(s) {sorted(unknown)}; allowed: {sorted(EXPERIMENTS)}"
            )
        if min(self.product_steps) < 1 or min(self.student_steps) < 1:
            raise ValueError("step counts must be >= 1")
        if self.K < 1:
            raise ValueError(f"K must be >= 1; got {self.K}")


@dataclass
class Row:
    experiment: str
    model: str
    steps: int
    tv_to_data: float
    tv_to_teacher: float
    tv_to_teacher_same_steps: float
    loglog_slope: float = float("nan")
    slope_fit_range: str = ""


def loglog_slope(steps, tvs) -> float:
    """Least-squares slope of log TV against log N."""
    return float(
        np.polyfit(np.log(np.asarray(steps, float)), np.log(np.asarray(tvs, float)), 1)[
            0
        ]
    )


def _log(msg: str) -> None:
    print(f"[theory {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _train(net, loss_fn, iters: int, lr: float, label: str) -> list[float]:
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    t0 = time.time()
    hist = []
    for it in range(1, iters + 1):
        loss = loss_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        hist.append(float(loss.detach()))
        if it % max(1, iters // 5) == 0 or it == iters:
            rate = it / (time.time() - t0)
            _log(
                f"{label}: iter {it}/{iters} loss {np.mean(hist[-50:]):.4f} ({rate:.1f} it/s, ETA {(iters - it) / rate:.0f}s)"
            )
    return hist


def run_experiment(exp: TheoryExperiment, cfg: TheoryConfig) -> tuple[list[Row], dict]:
    """All rows of one experiment plus diagnostics for the meta sidecar."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    proc = build_process(
        exp.process,
        S=exp.S,
        dtype=torch.float64,
        **({"clamp_below": 0.0} if exp.process != "masked" else {}),
        **exp.process_kwargs,
    )
    data = exp.data()
    teacher = ExactPosterior(proc, data, exp.D)
    target = embed(data, exp.S, proc.num_states, exp.D)
    start = forward_marginal(proc, data, exp.D, 1.0)
    diag: dict = {
        "description": exp.description,
        "prior_tv_to_exact_x1": total_variation(start, _prior_law(proc, exp.D)),
    }

    def law(den, n, nodes=None):
        return sampler_distribution(proc, den, n, exp.D, start, lam_nodes=nodes)

    _log(f"{exp.name}: exact product sampler over N = {list(cfg.product_steps)}")
    product = {
        n: law(teacher, n)
        for n in sorted(
            set(cfg.product_steps) | set(cfg.student_steps) | {cfg.teacher_steps}
        )
    }
    ref = product[cfg.teacher_steps]
    tvs = {n: total_variation(product[n], target) for n in cfg.product_steps}
    fit_n = [n for n in cfg.product_steps if n >= cfg.fit_min_steps]
    slope = (
        loglog_slope(fit_n, [tvs[n] for n in fit_n])
        if len(fit_n) >= 2
        else float("nan")
    )
    rng_txt = f"{min(fit_n)}-{max(fit_n)}" if fit_n else ""
    rows = [
        Row(
            exp.name,
            "product_exact",
            n,
            tvs[n],
            total_variation(product[n], ref),
            total_variation(product[n], product[n]),
            slope,
            rng_txt,
        )
        for n in cfg.product_steps
    ]
    diag["slope"] = {"value": slope, "fit_steps": fit_n}
    if not cfg.train_students:
        return rows, diag

    S, D = exp.S, exp.D

    def batch_x0(b):
        idx = torch.multinomial(data.float(), b, replacement=True, generator=gen)
        digits = [(idx // S ** (D - 1 - d)) % S for d in range(D)]
        return torch.stack(digits, 1)

    base = MLPDenoiser(D, proc.num_states, S, hidden=cfg.hidden)

    def fit_loss():
        x0 = batch_x0(cfg.batch_x * cfg.K)
        t = 0.005 + 0.995 * torch.rand(x0.shape[0], generator=gen)
        x_t = proc.sample_forward(x0, t.double(), gen)
        return distillation_loss(teacher(x_t, t), base(x_t, t)[:, None]).mean()

    diag["fit_loss"] = _train(
        base, fit_loss, cfg.fit_iters, cfg.lr, f"{exp.name} product_net"
    )[-1]
    students = {"product_net": (base, None)}
    for name, K, bx in [
        ("di4c_student", cfg.K, cfg.batch_x),
        ("product_student", 1, cfg.batch_x * cfg.K),
    ]:
        net = copy.deepcopy(base)
        net.add_lambda_path()
        rules = get_rules(
            "cifar10",
            K=K,
            teacher_step=exp.teacher_step,
            batch_x=bx,
            ema_decay=None,
            lr=cfg.lr,
        )

        def step_loss(net=net, rules=rules, bx=bx):
            return di4c_loss(net, teacher, proc, batch_x0(bx), rules, gen).total

        diag[f"{name}_final_loss"] = _train(
            net, step_loss, cfg.distill_iters, cfg.lr, f"{exp.name} {name} (K={K})"
        )[-1]
        students[name] = (net.eval(), midpoint_nodes(cfg.lam_nodes))

    for name, (net, nodes) in students.items():
        for n in cfg.student_steps:
            dist = law(net, n, nodes)
            rows.append(
                Row(
                    exp.name,
                    name,
                    n,
                    total_variation(dist, target),
                    total_variation(dist, ref),
                    total_variation(dist, product[n]),
                )
            )
    net, nodes = students["di4c_student"]
    fine = law(net, 1, midpoint_nodes(2 * cfg.lam_nodes))
    diag["lambda_quadrature_tv_change_1step"] = total_variation(
        law(net, 1, nodes), fine
    )
    return rows, diag


def _prior_law(proc, D: int) -> torch.Tensor:
    p = proc.prior_probs().double()
    law = p
    for _ in range(D - 1):
        law = torch.outer(law, p).flatten()
    return law


def run_theory(cfg: TheoryConfig) -> tuple[list[Row], dict]:
    rows, meta = [], {"config": asdict(cfg), "experiments": {}}
    for name in cfg.experiments:
        t0 = time.time()
        r, d = run_experiment(EXPERIMENTS[name], cfg)
        d["wall_time_s"] = time.time() - t0
        rows += r
        meta["experiments"][name] = d
    return rows, meta


__all__ = [
    "EXPERIMENTS",
    "Row",
    "TheoryConfig",
    "TheoryExperiment",
    "loglog_slope",
    "run_theory",
    "field",
    "math",
]
