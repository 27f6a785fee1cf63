"""Workflow config schema: valid configs pass, bad ones name the key and the allowed values."""

import copy
from pathlib import Path

import pytest
import yaml

from di4c.config import (
    ConfigError,
    assemble_config,
    cli_flags,
    load_config,
    validate_config,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def default():
    cfg = yaml.safe_load((ROOT / "workflows/config/default.yaml").read_text())
    return assemble_config(cfg)


def test_shipped_configs_are_valid():
    for name in ("default", "smoke"):
        load_config(ROOT / f"workflows/config/{name}.yaml")


@pytest.mark.parametrize(
    "mutate, pattern",
    [
        (
            lambda c: c.update(scal="mini"),
            r"unknown key\(s\) \['scal'\]; allowed keys: .*scale",
        ),
        (
            lambda c: c.update(scale="huge"),
            r"scale: 'huge' is not allowed; allowed values: \['paper', 'mini', 'smoke'\]",
        ),
        (
            lambda c: c["theory"].update(experiments=["three_bit"]),
            r"theory.experiments\[0\]: 'three_bit' is not allowed",
        ),
        (lambda c: c["theory"].update(K=0), r"theory.K: 0 violates minimum 1"),
        (lambda c: c["theory"].update(lr="fast"), r"theory.lr: expected number"),
        (
            lambda c: c["theory"].update(distil_iter=3),
            r"theory: unknown key\(s\) \['distil_iter'\]",
        ),
        (lambda c: c.pop("tables_dir"), r"'tables_dir' is a required property"),
    ],
)
def test_bad_configs_name_the_key(default, mutate, pattern):
    cfg = copy.deepcopy(default)
    mutate(cfg)
    with pytest.raises(ConfigError, match=pattern):
        assemble_config(cfg) if "sections_dir" in cfg and cfg[
            "sections_dir"
        ] == "nowhere" else validate_config(cfg)


def test_missing_config_file():
    with pytest.raises(ConfigError, match="not found"):
        load_config(ROOT / "nope.yaml")


def test_cli_flags():
    assert (
        cli_flags({"product_steps": [1, 2], "K": 4, "train_students": True})
        == "--product-steps 1 2 --K 4 --train-students true"
    )
