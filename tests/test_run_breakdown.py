"""benchmarks/run_breakdown.py: per-stage sums of the rules' benchmark files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location(
    "run_breakdown", ROOT / "benchmarks" / "run_breakdown.py"
)
rb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rb)

HEADER = (
    "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
)


def _bench(path: Path, *rows: tuple[float, float, float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(
        f"{s}\t0:00:00\t{rss}\t0\t0\t0\t0\t0\t0\t{cpu}\n" for s, rss, cpu in rows
    )
    path.write_text(HEADER + body)


def test_stage_of_longest_prefix():
    assert rb.stage_of("train_teacher", "cifar10") == "teacher training"
    assert rb.stage_of("distill_student_k1", "cifar10") == "distillation"
    assert rb.stage_of("sample_hybrid_n8_l2", "cifar10") == "sampling"
    assert rb.stage_of("score_teacher_n4_w3", "imagenet") == "scoring"
    assert rb.stage_of("gauss_given_3x3", "theory") == "theory experiments"
    assert rb.stage_of("sampler", "cifar10") == "other"  # a prefix needs the "_"


def test_breakdown_sums_by_stage_and_takes_the_last_row(tmp_path):
    b = tmp_path / "cifar10" / "mini" / "benchmarks"
    _bench(b / "train_teacher.tsv", (100.0, 500.0, 90.0))
    _bench(b / "sample_teacher_n1.tsv", (10.0, 200.0, 8.0))
    _bench(b / "sample_student_n2.tsv", (99.0, 1.0, 99.0), (20.0, 300.0, 18.0))  # rerun
    _bench(
        tmp_path / "cifar10" / "smoke" / "benchmarks" / "train_teacher.tsv", (1, 1, 1)
    )
    data = rb.breakdown(tmp_path, "mini")
    assert set(data) == {"cifar10"}
    assert data["cifar10"]["teacher training"] == {
        "jobs": 1,
        "wall_s": 100.0,
        "cpu_s": 90.0,
        "max_rss_mb": 500.0,
    }
    assert data["cifar10"]["sampling"] == {
        "jobs": 2,
        "wall_s": 30.0,
        "cpu_s": 26.0,
        "max_rss_mb": 300.0,
    }
    table = rb.render(data)
    assert "| cifar10 | **total** | 3 | 2.2 | 1.9 | 100% | |" in table


def test_no_benchmarks_is_one_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="run the DAG first"):
        rb.main(["--results", str(tmp_path)])
