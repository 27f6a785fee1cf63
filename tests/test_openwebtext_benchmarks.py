"""The OpenWebText benchmarks at tiny shapes.

Benchmark 8 (loss memory): the numbers are only meaningful if the chunked variants
evaluate the same objective as the plain expressions: the worker of each variant
runs on the same random inputs and their losses and gradients are compared; one
variant also runs end to end through the script (in its own subprocess, as at
paper shape). Benchmark 9 (sampling latency): the script runs (a paper-size DiT,
so the run is marked slow; its arguments always).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

VARIANTS = ("plain", "3", "fused3")  # plain expressions, dim_chunk=3, fused chunks
BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPT = BENCHMARKS / "openwebtext_loss_memory.py"


def _bench(script=SCRIPT):
    spec = importlib.util.spec_from_file_location(script.stem, script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_loss_memory_variants_agree(tmp_path, capsys):
    bench = _bench()
    shape = ["--K", "2", "--D", "7", "--S", "11", "--threads", "1"]
    parse = bench.build_parser().parse_args
    threads = torch.get_num_threads()  # the worker sets it; restore for later tests
    try:
        res = [bench.worker(parse(["--variant", v, *shape])) for v in VARIANTS]
    finally:
        torch.set_num_threads(threads)
    plain = res[0]
    assert plain["shape"] == [1, 2, 7, 11]
    assert plain["kcopy_gb"] == pytest.approx(2 * 7 * 11 * 4 / 1e9)
    for r in res[1:]:
        assert r["loss"] == pytest.approx(plain["loss"], rel=1e-5)
        assert r["grad_abs_sum"] == pytest.approx(plain["grad_abs_sum"], rel=1e-5)
        assert r["peak_gb"] >= r["inputs_gb"] > 0

    out = tmp_path / "bench.json"  # end to end: the variant runs in a subprocess
    bench.main(["--variants", "fused3", *shape, "--out", str(out)])
    (sub,) = json.loads(out.read_text())
    assert sub["loss"] == pytest.approx(plain["loss"], rel=1e-5)
    assert "K-copies" in capsys.readouterr().out
    assert out.with_suffix(".meta.json").is_file()
    capped = tmp_path / "capped.json"
    bench.main(["--variants", "3", *shape, "--max-gb", "0", "--out", str(capped)])
    assert json.loads(capped.read_text())[0]["skipped"].startswith("needs")


def test_latency_script_arguments(capsys):
    bench = _bench(BENCHMARKS / "openwebtext_latency.py")
    with pytest.raises(SystemExit) as e:
        bench.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "3.4817" in out and all(f"--{a}" in out for a in ("length", "steps", "reps"))


@pytest.mark.slow
def test_latency_script_tiny_run(tmp_path):
    bench = _bench(BENCHMARKS / "openwebtext_latency.py")
    out = tmp_path / "latency.json"
    threads = torch.get_num_threads()
    try:
        bench.main(
            ["--length", "8", "--steps", "1", "--reps", "1", "--threads", "1"]
            + ["--out", str(out)]
        )
    finally:
        torch.set_num_threads(threads)
    res = json.loads(out.read_text())
    assert res["ratio_of_means"] > 0 and res["paper"]["ratio"] == pytest.approx(
        3.4817 / 3.3409
    )
