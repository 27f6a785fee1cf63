"""The rehearsal (``paper_scale: rehearsal``): the paper DAGs on stand-ins.

Fast: the ``{results_dir}`` placeholder of the rehearsal layers, the guard that keeps
rehearsal tables out of ``paper_tables/``, the stand-in dependency of the jobs that
read local copies (rehearsal only).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from di4c.config import ConfigError, load_config, resolve, substitute, validate_top
from di4c.workflow import SAMPLING_SETTINGS, Workflow

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "workflows/config/default.yaml"
REHEARSAL = ROOT / "workflows/config/rehearsal.yaml"


def rehearsal_config(results_dir: str | None = None) -> dict:
    config = load_config([DEFAULT, REHEARSAL])
    if results_dir is not None:
        config["results_dir"] = results_dir
    return config


# ------------------------------------------------------------------ placeholder
def test_results_dir_placeholder_points_the_local_copies_into_the_standins():
    cfg = resolve(rehearsal_config("/x/run"), "cifar10", "rehearsal")
    standins = Path("/x/run/cifar10/rehearsal/standins")
    local = [
        cfg["data"]["root"],
        cfg["models"]["teacher"]["local"],
        cfg["models"]["released_student"]["local"],
        cfg["metrics"]["weights_path"],
    ]
    for value in local:
        assert Path(value).is_relative_to(standins), value
    assert "{results_dir}" not in repr(cfg)


def test_placeholder_is_replaced_in_any_string_of_any_layer():
    config = load_config(DEFAULT) | {"results_dir": "out"}
    config["cifar10"]["paper"] = {"data": {"root": "{results_dir}/c/{results_dir}"}}
    assert resolve(config, "cifar10", "paper")["data"]["root"] == "out/c/out"
    nested = {"a": ["{results_dir}/x", 3, {"b": "keep {other}"}]}
    assert substitute(nested, {"results_dir": "r"}) == {
        "a": ["r/x", 3, {"b": "keep {other}"}]
    }
    with pytest.raises(ConfigError, match="no results_dir"):
        substitute("{results_dir}/x", {})


def test_no_other_scale_uses_the_placeholder():
    config = load_config(DEFAULT)
    for setting in SAMPLING_SETTINGS:
        for scale in ("paper", "mini", "smoke"):
            layer = config[setting].get(scale) or {}
            assert "{results_dir}" not in repr(layer), (setting, scale)


# ------------------------------------------------------------------ tables folder
def test_rehearsal_tables_never_go_into_paper_tables():
    config = rehearsal_config()
    for key in ("tables_dir", "mini_tables_dir"):
        assert Path(config[key]).parts[0] == "results", key
    bad = dict(config, tables_dir="paper_tables")
    with pytest.raises(ConfigError, match="must not go into paper_tables"):
        validate_top(bad)
    with pytest.raises(ConfigError, match="must not go into paper_tables"):
        validate_top(dict(config, tables_dir="paper_tables/sub"))
    validate_top(dict(config, paper_scale="paper", tables_dir="paper_tables"))


# ------------------------------------------------------------------ DAG inputs
def test_only_the_rehearsal_depends_on_standins():
    wf = Workflow(rehearsal_config())
    for setting in SAMPLING_SETTINGS:
        for scale in ("paper", "mini", "smoke"):
            assert wf.standins_inputs(setting, scale) == {}, (setting, scale)
    assert wf.standins_inputs("cifar10", "rehearsal") == {
        "standins": "results/cifar10/rehearsal/standins/manifest.json"
    }
