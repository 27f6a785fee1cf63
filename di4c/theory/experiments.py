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
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from di4c.distill import di4c_loss
from di4c.loss import distillation_loss
from di4c.networks.small import MLPDenoiser
from di4c.processes import build_process
from di4c.samplers.noise import as_rng
from di4c.settings.rules import DistillRules
from di4c.theory.exact import (
    ExactPosterior,
    embed,
    forward_marginal,
    midpoint_nodes,
    sampler_distribution,
    total_variation,
)
from di4c.train import TrainConfig, train

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
    """Sizes of the theory run; the defaults are the table's (``paper_tables/theory.csv``).

    These defaults are the one source of the theory configuration: the ``theory``
    adapter resolves its scales over them (a smoke layer shrinks them).
    """

    experiments: tuple = tuple(EXPERIMENTS)
    product_steps: tuple = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
    teacher_steps: int = 1024  # the many-step product teacher students are compared to
    fit_min_steps: int = 128  # slope fitted on N >= this (Theorem 1's asymptotic range)
    student_steps: tuple = (1, 2, 4, 8)
    fit_iters: int = 1500  # product network fit to the exact teacher
    distill_iters: int = 6000  # Di4C (K = 16) and K = 1 students, equal rows per step
    batch_x: int = 32  # conditioning states per Di4C step (K=1 uses batch_x * K)
    K: int = 16
    lr: float = 1e-3
    hidden: int = 128
    lam_nodes: int = 512  # midpoint quadrature over lambda for exact evaluation
    seed: int = 0
    train_students: bool = True
    train_examples: int = 100_000  # i.i.d. draws from p_data forming the training set
    # data-correlation weight: flat (alpha = 1) rather than the CIFAR rules' sigmoid,
    # because few-step samplers here visit t <= 1/2, where sigmoid(20 (t - 1/2)) ~ 0
    alpha_schedule: str = "constant"
    lam_features: int = 32  # Fourier features k pi lambda, k = 1..lam_features

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


def build_setup(exp: TheoryExperiment):
    """(process in float64, data law over S^D, exact product teacher) of an experiment."""
    kw = dict(exp.process_kwargs)
    if exp.process != "masked":
        kw["clamp_below"] = 0.0
    proc = build_process(exp.process, S=exp.S, dtype=torch.float64, **kw)
    data = exp.data()
    return proc, data, ExactPosterior(proc, data, exp.D)


def sample_dataset(
    exp: TheoryExperiment, data: torch.Tensor, n: int, seed: int
) -> torch.Tensor:
    """n i.i.d. training examples x0 ~ p_data, shape (n, D)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.multinomial(data.float(), n, replacement=True, generator=g)
    return torch.stack(
        [(idx // exp.S ** (exp.D - 1 - d)) % exp.S for d in range(exp.D)], 1
    )


def fit_product_net(
    exp, proc, teacher, x0_train, cfg: TheoryConfig, out_dir=None
) -> MLPDenoiser:
    """A product network fitted to the exact teacher: KL(teacher || net) at t ~ U(0.005, 1)."""
    torch.manual_seed(cfg.seed)
    net = MLPDenoiser(
        exp.D, proc.num_states, exp.S, hidden=cfg.hidden, lam_features=cfg.lam_features
    )

    def loss_fn(batch, rng):
        rng = as_rng(rng)
        x0 = batch["x0"]
        t = (0.005 + 0.995 * rng.rand(x0.shape[0])).double()
        x_t = proc.sample_forward_u(x0, t, rng.rand(*x0.shape))
        return distillation_loss(teacher(x_t, t), net(x_t, t.float())[:, None]).mean()

    tc = TrainConfig(
        iters=cfg.fit_iters,
        batch_size=cfg.batch_x * cfg.K,
        lr=cfg.lr,
        log_every=max(1, cfg.fit_iters // 5),
        ckpt_every=max(1, cfg.fit_iters),
        seed=cfg.seed,
    )
    train(net, loss_fn, {"x0": x0_train}, tc, out_dir, label=f"{exp.name} product_net")
    return net


def distill_student(
    exp,
    proc,
    teacher,
    base,
    x0_train,
    K: int,
    batch_x: int,
    iters: int,
    lr: float,
    seed: int,
    out_dir=None,
    per_example_rng: bool = False,
    ckpt_every: int = 100,
    alpha_schedule: str = "sigmoid",
):
    """Copy ``base``, add the zero-initialised lambda path, train with the Di4C loss (K lambdas).

    Rules: the CIFAR setting's (time sampling, separate small-time distillation,
    alpha = sigmoid(20 (t - 1/2))) with this process's own one-step sampler.
    """
    net = copy.deepcopy(base)
    torch.manual_seed(seed + 1)
    net.add_lambda_path()
    rules = cifar10_rules().with_overrides(
        K=K,
        teacher_step=exp.teacher_step,
        batch_x=batch_x,
        ema_decay=None,
        lr=lr,
        alpha_schedule=alpha_schedule,
    )

    def loss_fn(batch, rng):
        return di4c_loss(net, teacher, proc, batch["x0"], rules, rng=rng)

    tc = TrainConfig(
        iters=iters,
        batch_size=batch_x,
        lr=lr,
        log_every=max(1, iters // 5),
        ckpt_every=max(1, min(iters, ckpt_every)),
        seed=seed,
        per_example_rng=per_example_rng,
    )
    res = train(
        net, loss_fn, {"x0": x0_train}, tc, out_dir, label=f"{exp.name} student K={K}"
    )
    return net, res


def cifar10_rules() -> DistillRules:
    """The paper's CIFAR-10 rules (the theory students' time sampling and regions)."""
    from di4c.settings import paper_rules

    return paper_rules("cifar10")


def run_experiment(exp: TheoryExperiment, cfg: TheoryConfig) -> tuple[list[Row], dict]:
    """All rows of one experiment plus diagnostics for the meta sidecar."""
    proc, data, teacher = build_setup(exp)
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

    x0_train = sample_dataset(exp, data, cfg.train_examples, cfg.seed)
    base = fit_product_net(exp, proc, teacher, x0_train, cfg)
    students = {"product_net": (base, None)}
    for name, K, bx in [
        ("di4c_student", cfg.K, cfg.batch_x),
        ("product_student", 1, cfg.batch_x * cfg.K),
    ]:
        net, res = distill_student(
            exp,
            proc,
            teacher,
            base,
            x0_train,
            K,
            bx,
            cfg.distill_iters,
            cfg.lr,
            cfg.seed,
            alpha_schedule=cfg.alpha_schedule,
        )
        diag[f"{name}_final_loss"] = res.history[-1]["loss"] if res.history else None
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


__all__ = [
    "EXPERIMENTS",
    "Row",
    "TheoryConfig",
    "TheoryExperiment",
    "build_setup",
    "distill_student",
    "fit_product_net",
    "loglog_slope",
    "run_experiment",
    "sample_dataset",
]
