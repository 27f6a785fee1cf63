"""Forward processes: rate-matrix properties, transitions, schedules, posteriors vs Bayes."""

import itertools
import math

import numpy as np
import pytest
import torch

from di4c.processes import (
    GaussianRateProcess,
    MaskedProcess,
    UniformProcess,
    build_process,
    gaussian_target_rate_matrix,
)

F64 = torch.float64


def _literal_reference_S4(sigma=6.0, Q=512.0):
    """The S = 4 matrix written out by hand (first pass, then balance).

    From docs/algorithm.md#gaussian-rate-process (authors' ``GaussianTargetRate``).
    """
    v = lambda k: math.exp(-(k**2) / sigma**2)  # noqa: E731
    R = np.zeros((4, 4))
    R[0, 1], R[0, 2], R[0, 3] = v(0), v(1), v(2)  # row 0: 0 < j < 4
    R[1, 2] = v(0)  # row 1: 1 < j < 3
    R[3, 1], R[3, 2] = v(1), v(0)  # row 3: 0 < j < 3 -> vals[3 - j - 1]
    ratio = lambda i, j: math.exp(
        -((j + 1) ** 2 - (i + 1) ** 2 + 4 * (i + 1) - 4 * (j + 1)) / (2 * Q**2)
    )  # noqa: E731
    for i in range(4):
        for j in range(4):
            if R[j, i] > 0:
                R[i, j] = R[j, i] * ratio(i, j)
    np.fill_diagonal(R, 0)
    return R - np.diag(R.sum(1))


def test_rate_matrix_matches_hand_construction():
    np.testing.assert_allclose(
        gaussian_target_rate_matrix(4), _literal_reference_S4(), rtol=0, atol=1e-15
    )


@pytest.mark.parametrize("S", [2, 3, 5, 8, 17, 256])
def test_rate_matrix_properties(S):
    p = GaussianRateProcess(S=S, dtype=F64, clamp_below=0)
    R = p.base_rate
    assert np.abs(R.sum(1)).max() < 1e-12  # rows sum to zero
    off = R - np.diag(np.diag(R))
    assert (off >= 0).all()
    flux = p.stationary[:, None] * R  # detailed balance w.r.t. the Gaussian target
    assert np.abs(flux - flux.T).max() < 1e-14
    assert abs(p.stationary.sum() - 1) < 1e-12


@pytest.mark.parametrize(
    "proc",
    [
        GaussianRateProcess(S=6, dtype=F64, clamp_below=0),
        UniformProcess(S=5, rate_const=0.7, dtype=F64),
    ],
    ids=["gaussian", "uniform"],
)
def test_transitions(proc):
    t = torch.tensor([0.0, 0.3, 0.7, 1.0], dtype=F64)
    P = proc.transition(t)
    S = proc.num_states
    assert torch.allclose(P[0], torch.eye(S, dtype=F64), atol=1e-12)  # P_0 = I
    assert (P >= -1e-12).all() and torch.allclose(
        P.sum(-1), torch.ones(4, S, dtype=F64), atol=1e-10
    )
    s = torch.tensor([0.2, 0.2, 0.5, 0.5], dtype=F64)
    t2 = torch.tensor([0.6, 0.9, 0.8, 1.0], dtype=F64)
    # Chapman-Kolmogorov: P_s P_{t|s} = P_t
    assert torch.allclose(
        proc.transition(s) @ proc.transition(t2, s), proc.transition(t2), atol=1e-10
    )
    # matrix exponential against scipy
    import scipy.linalg

    c = float(proc.integrated_rate(torch.tensor(0.3, dtype=F64)))
    np.testing.assert_allclose(
        P[1].numpy(), scipy.linalg.expm(c * proc.base_rate), atol=1e-10
    )


def test_gaussian_schedule_values():
    p = GaussianRateProcess(S=4)
    bb = p.integrated_rate(torch.tensor([0.0, 0.01, 1.0], dtype=F64))
    assert torch.allclose(
        bb, torch.tensor([0.0, 3 * (100**0.01 - 1), 297.0], dtype=F64)
    )
    assert abs(float(p.rate_scalar(torch.tensor(0.0))) - 3 * math.log(100)) < 1e-6


def test_gaussian_prior_is_the_discretised_gaussian():
    p = GaussianRateProcess(S=256)
    k = torch.arange(1, 257, dtype=F64)
    w = torch.exp(-((k - 128) ** 2) / (2 * 512**2))
    assert torch.allclose(p.prior_probs().double(), w / w.sum(), atol=1e-7)


def test_gaussian_process_device():
    """``device`` holds the eigendecomposition there and returns the prior there;
    on the CPU the matrices are those of the float64 base computation."""
    cpu = GaussianRateProcess(S=6)
    assert cpu.device == torch.device("cpu")
    t = torch.tensor([0.7, 0.1])
    mats = cpu.transition(t)
    assert mats.device.type == "cpu" and torch.allclose(
        mats.sum(-1), torch.ones(2, 6), atol=1e-5
    )
    meta = GaussianRateProcess(S=6, device="meta")
    assert {meta._evals.device.type, meta._left.device.type} == {"meta"}
    assert meta.prior_probs().device.type == "meta"


def test_mask_schedules():
    t = torch.tensor([0.0, 0.25, 0.5, 1.0])
    assert torch.allclose(MaskedProcess(4, "loglinear").mask_prob(t), (1 - 1e-3) * t)
    assert torch.allclose(MaskedProcess(4, "linear").mask_prob(t), t)
    arccos = MaskedProcess(4, "arccos").mask_prob(t)
    r = 1 - t
    assert torch.allclose(arccos, torch.arccos(r) / (math.pi / 2))
    assert arccos[0] == 0 and abs(float(arccos[-1]) - 1) < 1e-6
    sigma = MaskedProcess(4, "loglinear").schedule.sigma(t)
    assert torch.allclose(1 - torch.exp(-sigma), (1 - 1e-3) * t, atol=1e-6)


def _bayes_posterior(proc, xt_v, x0_v, t, s):
    """q(x_s | x_t, x0) for one dimension by enumerating x_s."""
    n = proc.num_states
    x0 = torch.tensor([[x0_v]])
    ps = proc.forward_probs(x0, torch.tensor([s], dtype=proc.dtype))[
        0, 0
    ]  # q(x_s | x0)
    joint = torch.zeros(n, dtype=F64)
    for v in range(n):
        # q(x_t | x_s = v): forward from a state; for the mask state it stays masked
        if isinstance(proc, MaskedProcess) and v == proc.mask_id:
            lik = 1.0 if xt_v == proc.mask_id else 0.0
        elif isinstance(proc, MaskedProcess):
            keep = (1 - float(proc.mask_prob(torch.tensor(t)))) / (
                1 - float(proc.mask_prob(torch.tensor(s)))
            )
            lik = keep if xt_v == v else (1 - keep if xt_v == proc.mask_id else 0.0)
        else:
            lik = float(
                proc.transition(
                    torch.tensor([t], dtype=F64), torch.tensor([s], dtype=F64)
                )[0, v, xt_v]
            )
        joint[v] = float(ps[v]) * lik
    return joint / joint.sum()


@pytest.mark.parametrize(
    "proc",
    [
        MaskedProcess(3, "linear", dtype=F64),
        MaskedProcess(3, "loglinear", dtype=F64),
        GaussianRateProcess(S=4, dtype=F64, clamp_below=0),
        UniformProcess(S=3, dtype=F64),
    ],
    ids=["mask-linear", "mask-loglinear", "gaussian", "uniform"],
)
def test_posterior_equals_bayes(proc):
    t, s = 0.7, 0.3
    S, n = proc.num_classes, proc.num_states
    p0 = torch.softmax(
        torch.randn(1, 1, S, generator=torch.Generator().manual_seed(1), dtype=F64), -1
    )
    for xt_v, x0_v in itertools.product(range(n), range(S)):
        if isinstance(proc, MaskedProcess) and xt_v not in (x0_v, proc.mask_id):
            continue  # impossible pair
        xt = torch.tensor([[xt_v]])
        got = proc.posterior_given_x0(
            xt,
            torch.tensor([[x0_v]]),
            torch.tensor([t], dtype=F64),
            torch.tensor([s], dtype=F64),
        )[0, 0]
        assert torch.allclose(got, _bayes_posterior(proc, xt_v, x0_v, t, s), atol=1e-10)
    # the one-step law with an x0-prediction p0: sum_v p0(v) q(x_s | x_t, v) restricted to
    # x0 values compatible with x_t (for masked processes an unmasked x_t pins x0)
    for xt_v in range(n):
        xt = torch.tensor([[xt_v]])
        got = proc.posterior_probs(
            xt, p0, torch.tensor([t], dtype=F64), torch.tensor([s], dtype=F64)
        )[0, 0]
        if isinstance(proc, MaskedProcess):
            if xt_v != proc.mask_id:
                assert torch.allclose(
                    got, torch.nn.functional.one_hot(xt, n)[0, 0].double()
                )
                continue
            want = sum(
                p0[0, 0, v] * _bayes_posterior(proc, xt_v, v, t, s) for v in range(S)
            )
        else:
            # sum_v p0(v) q(x_s|x_t,v) with p0 reweighted by 1/q(x_t|v) (p0 is p(x0|x_t))
            qt = proc.transition(torch.tensor([t], dtype=F64))[0, :, xt_v]
            w = p0[0, 0] / qt
            want = sum(
                w[v] * qt[v] * _bayes_posterior(proc, xt_v, v, t, s) for v in range(S)
            )
            want = want / want.sum()
        assert torch.allclose(got, want, atol=1e-10)


def test_masked_forward_and_prior():
    p = MaskedProcess(5, "linear")
    x0 = torch.tensor([[0, 4, 2]])
    probs = p.forward_probs(x0, torch.tensor([0.25]))
    assert torch.allclose(probs.sum(-1), torch.ones(1, 3))
    assert float(probs[0, 1, 4]) == pytest.approx(0.75) and float(
        probs[0, 1, 5]
    ) == pytest.approx(0.25)
    assert (p.sample_prior(2, 3) == 5).all()
    g = torch.Generator().manual_seed(0)
    xs = p.sample_forward(x0.expand(20000, 3), torch.full((20000,), 0.3), g)
    assert abs(float((xs == 5).float().mean()) - 0.3) < 0.01


def test_bad_inputs_name_the_argument():
    p = MaskedProcess(3)
    with pytest.raises(ValueError, match="x_t"):
        p.posterior_probs(
            torch.tensor([[7]]),
            torch.ones(1, 1, 3) / 3,
            torch.tensor([0.5]),
            torch.tensor([0.2]),
        )
    with pytest.raises(ValueError, match="s must not exceed t"):
        p.posterior_probs(
            torch.tensor([[3]]),
            torch.ones(1, 1, 3) / 3,
            torch.tensor([0.2]),
            torch.tensor([0.5]),
        )
    with pytest.raises(ValueError, match="t must lie in"):
        p.forward_probs(torch.tensor([[0]]), torch.tensor([1.5]))
    with pytest.raises(ValueError, match="S must be"):
        GaussianRateProcess(S=1)
    with pytest.raises(ValueError, match="unknown schedule"):
        MaskedProcess(3, "cosinus")
    with pytest.raises(ValueError, match="unknown process"):
        build_process("gauss")
