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


def test_theory_step_resolves_its_scale_and_writes_the_table(tmp_path, capsys):
    """``di4c.cli.theory experiment --scale S`` runs on the resolved config of S (its
    YAML layer over TheoryConfig's defaults, ``--set`` on top); ``table`` merges it."""
    import json
    from pathlib import Path

    from di4c.cli.theory import main

    root = Path(__file__).resolve().parent.parent
    files = ["--configfile", str(root / "workflows/config/default.yaml")]
    files += ["--configfile", str(root / "workflows/config/smoke.yaml")]
    out = tmp_path / "two_bit.json"
    sets = ["train_students=false", "product_steps=[1, 2, 4]", "teacher_steps=8"]
    main(
        ["experiment", "--scale", "smoke", "--experiment", "two_bit", "--out", str(out)]
        + files
        + [a for s in sets for a in ("--set", s)]
    )
    used = json.loads(out.with_suffix(".meta.json").read_text())["config"]
    smoke = {"K": 8, "hidden": 64, "fit_min_steps": 32, "lam_features": 8}
    assert {k: used[k] for k in smoke} == smoke  # the smoke layer
    assert used["lr"] == TheoryConfig().lr and used["seed"] == 0  # the defaults
    assert (used["teacher_steps"], used["product_steps"]) == (8, [1, 2, 4])  # --set
    assert used["train_students"] is False
    table = tmp_path / "theory.csv"
    main(["table", "--inputs", str(out), "--out", str(table)])
    rows = list(csv.DictReader(open(table)))
    exact = {int(r["steps"]): float(r["tv_to_data"]) for r in rows}
    assert exact == pytest.approx({1: 0.5, 2: 0.25, 4: 0.125})
    assert table.with_suffix(".png").stat().st_size > 1000
    # an unknown key: one line, exit 1, nothing written
    mini = tmp_path / "mini.json"
    with pytest.raises(SystemExit) as info:
        main(
            ["experiment", "--scale", "mini", "--experiment", "two_bit"]
            + ["--out", str(mini), "--set", "distil_iters=3"]
        )
    assert info.value.code == 1 and not mini.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(
        "error: invalid --set override: theory (--set): unknown key"
    )
