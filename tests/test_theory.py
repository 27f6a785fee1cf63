"""Theory table: exact values on known cases, slope, students, CSV layout."""

import csv
import io

import pytest
import torch

from di4c.cli.theory import rows_to_csv
from di4c.processes import MaskedProcess
from di4c.theory.exact import (
    ExactPosterior,
    enumerate_states,
    forward_marginal,
    midpoint_nodes,
    sampler_distribution,
    state_index,
    total_variation,
)
from di4c.theory.experiments import (
    EXPERIMENTS,
    GIVEN_3X3,
    TheoryConfig,
    loglog_slope,
    run_experiment,
)

F64 = torch.float64


def test_enumeration_order_and_index():
    st = enumerate_states(3, 2)
    assert st.tolist()[:4] == [[0, 0], [0, 1], [0, 2], [1, 0]]
    assert torch.equal(state_index(st, 3), torch.arange(9))


def test_exact_posterior_is_bayes():
    proc = MaskedProcess(2, "linear", dtype=F64)
    data = torch.tensor([0.5, 0, 0, 0.5], dtype=F64)
    post = ExactPosterior(proc, data, 2)
    # x_t = (mask, 1): x0 must be (1, 1); x_t all masked: marginals are the data marginals
    lp = post(torch.tensor([[2, 1], [2, 2]]), torch.tensor([0.5, 0.5], dtype=F64))
    assert torch.allclose(
        lp.exp()[0], torch.tensor([[0.0, 1.0], [0.0, 1.0]], dtype=F64), atol=1e-12
    )
    assert torch.allclose(lp.exp()[1], torch.full((2, 2), 0.5, dtype=F64))


@pytest.mark.parametrize("N", [1, 2, 3, 4, 8, 16])
def test_two_bit_product_sampler_tv_is_one_over_2n(N):
    exp = EXPERIMENTS["two_bit"]
    proc = MaskedProcess(2, "linear", dtype=F64)
    data = exp.data()
    teacher = ExactPosterior(proc, data, 2)
    law = sampler_distribution(
        proc, teacher, N, 2, forward_marginal(proc, data, 2, 1.0)
    )
    target = torch.zeros(9, dtype=F64)
    target[state_index(torch.tensor([[0, 0], [1, 1]]), 3)] = 0.5
    assert total_variation(law, target) == pytest.approx(1 / (2 * N), abs=1e-12)
    assert float(law.sum()) == pytest.approx(1.0, abs=1e-12)


def test_given_3x3_data_and_slope():
    w = torch.tensor(GIVEN_3X3, dtype=F64)
    assert torch.allclose(EXPERIMENTS["given_3x3"].data(), w / w.sum())
    assert loglog_slope([1, 2, 4, 8], [1, 0.5, 0.25, 0.125]) == pytest.approx(-1.0)


def test_midpoint_quadrature_is_exact_for_low_frequencies():
    nodes = midpoint_nodes(64)
    assert float(torch.cos(2 * torch.pi * 3 * nodes).mean()) == pytest.approx(
        0.0, abs=1e-12
    )
    assert float(nodes.mean()) == pytest.approx(0.5)


def test_small_theory_run_and_csv():
    cfg = TheoryConfig(
        experiments=("two_bit",),
        product_steps=(1, 2, 4, 8),
        teacher_steps=8,
        fit_min_steps=2,
        student_steps=(1, 2),
        fit_iters=60,
        distill_iters=60,
        batch_x=8,
        K=4,
        hidden=32,
        lam_nodes=32,
    )
    rows, diag = run_experiment(EXPERIMENTS["two_bit"], cfg)
    models = {(r.model, r.steps) for r in rows}
    for m in ("product_exact", "product_net", "di4c_student", "product_student"):
        assert (m, 1) in models
    exact1 = next(r for r in rows if r.model == "product_exact" and r.steps == 1)
    assert exact1.tv_to_data == pytest.approx(
        0.5
    ) and exact1.loglog_slope == pytest.approx(-1.0, abs=1e-9)
    assert diag["lambda_quadrature_tv_change_1step"] < 1e-3
    text = rows_to_csv(rows)
    rec = list(csv.DictReader(io.StringIO(text)))
    assert {
        "experiment",
        "model",
        "steps",
        "tv_to_data",
        "tv_to_teacher",
        "tv_to_teacher_same_steps",
        "loglog_slope",
    } <= set(rec[0])
    assert rec[0]["paper_claim"].startswith("Theorem 1")


def test_bad_theory_config():
    with pytest.raises(ValueError, match="unknown theory experiment"):
        TheoryConfig(experiments=("three_bit",))
    with pytest.raises(ValueError, match="K must be"):
        TheoryConfig(K=0)
