"""The shared latency loop: alternation, warm-up, ratios, the paper figure beside ours."""

import json
from types import SimpleNamespace

import pytest
import torch

from di4c.benchmarking import compare_latency, paper_latency, report, time_denoisers


def test_compare_latency_alternates_and_reports_ratios(monkeypatch):
    clock = iter(range(1000))
    monkeypatch.setattr("di4c.benchmarking.time.perf_counter", lambda: next(clock))
    cpu_clock = iter(range(0, 2000, 2))
    monkeypatch.setattr("di4c.benchmarking.time.process_time", lambda: next(cpu_clock))
    order = []
    calls = {"teacher": lambda: order.append("t"), "student": lambda: order.append("s")}
    res = compare_latency(calls, reps=3)
    # warm-up t, s; then t s | s t | t s
    assert "".join(order) == "ts" + "ts" + "st" + "ts"
    assert res["times_s"] == {"teacher": [1, 1, 1], "student": [1, 1, 1]}
    assert res["ratio_of_means"] == 1.0 and res["paired_ratios"] == [1.0] * 3
    assert res["ratio_of_mins"] == 1.0
    assert res["cpu_s"]["student"] == [2, 2, 2] and res["cpu_ratio_of_means"] == 1.0
    with pytest.raises(ValueError, match="calls must be exactly"):
        compare_latency({"teacher": lambda: None}, reps=1)


def test_report_writes_the_paper_value_beside_ours(tmp_path, capsys):
    res = {
        "mean_s": {"teacher": 1.0, "student": 1.1},
        "std_s": {"teacher": 0.0, "student": 0.0},
        "ratio_of_means": 1.1,
        "median_paired_ratio": 1.1,
        "ratio_of_mins": 1.05,
        "cpu_ratio_of_means": 1.02,
    }
    args = SimpleNamespace(out=str(tmp_path / "lat.json"))
    report(res, args, "cifar10", t_start=0.0)
    printed = capsys.readouterr().out
    assert (
        "paper 1.0491 (+4.9%)" in printed
        and "fastest of each +5.00%; CPU time +2.00%" in printed
    )
    saved = json.loads((tmp_path / "lat.json").read_text())
    assert saved["paper"]["teacher_s"] == 0.5515
    assert (tmp_path / "lat.meta.json").is_file()
    assert paper_latency("imagenet", "within noise")[1] == "paper: within noise"


def test_time_denoisers_calls_each_model_and_records_sizes(tmp_path):
    dens = {
        "teacher": SimpleNamespace(net=torch.nn.Linear(3, 2)),  # 8 parameters
        "student": SimpleNamespace(net=torch.nn.Linear(3, 4)),  # 16 parameters
    }
    seen = []
    args = SimpleNamespace(out=str(tmp_path / "lat.json"), reps=2)
    time_denoisers(
        dens,
        lambda d: seen.append(d.net.out_features),
        args,
        "openwebtext",
        t_start=0.0,
        params={"decoder": 5},
        setting={"decode": "none"},
    )
    assert seen == [2, 4, 2, 4, 4, 2]  # warm-ups, then alternating repetitions
    saved = json.loads((tmp_path / "lat.json").read_text())
    assert saved["params"] == {"teacher": 8, "student": 16, "decoder": 5}
    assert saved["setting"]["weights"] == "random"
    assert saved["setting"]["decode"] == "none" and saved["setting"]["reps"] == 2
