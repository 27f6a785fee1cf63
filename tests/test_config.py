"""Workflow config: scale layers deep-merged over each setting's paper values.

The shipped configs resolve at every (setting, scale); a bad config names the key and
the allowed values; a partial override keeps the rest of its section; ``--set``
reaches a step; the schemas agree with the dataclasses; the resolved paper config is
the adapters' published settings, and the README's settings table is generated from
them.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from di4c.cli.common import step_config, step_parser
from di4c.cli.distill import student_rules
from di4c.config import (
    SCALE_PARENT,
    TOP_KEYS,
    ConfigError,
    assemble_config,
    deep_merge,
    load_config,
    parse_overrides,
    resolve,
    scale_chain,
)
from di4c.settings import SETTINGS, DistillRules, paper_rules, setting_class
from di4c.settings.sources import BEGIN, END, embed, settings_table
from di4c.settings.theory import Theory
from di4c.theory.experiments import TheoryConfig
from di4c.train import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "workflows/config/default.yaml"
SMOKE = ROOT / "workflows/config/smoke.yaml"
# smoke.yaml is layered over default.yaml, as Snakemake's --configfile does
CONFIGS = {"default": [DEFAULT], "smoke": [DEFAULT, SMOKE]}
SCHEMAS = ROOT / "workflows/schemas"
PAPER_SETTINGS = [s for s in SETTINGS if "paper" in setting_class(s).scales]


def _raw(*files) -> dict:
    """A workflow config as Snakemake holds it before assembly (YAML files merged)."""
    cfg: dict = {}
    for f in files or (DEFAULT,):
        cfg = deep_merge(cfg, yaml.safe_load(Path(f).read_text()))
    return cfg


def _assembled(**sections) -> dict:
    """The default config with inline sections (as ``snakemake --config`` gives them)."""
    cfg = _raw()
    cfg.update(copy.deepcopy(sections))
    return assemble_config(cfg)


# ------------------------------------------------------------------ shipped configs
def test_shipped_configs_load():
    for files in CONFIGS.values():
        cfg = load_config(files)
        assert set(TOP_KEYS) <= set(cfg)
        assert {k for k in cfg if k not in TOP_KEYS} == set(SETTINGS)
    smoke = load_config(CONFIGS["smoke"])
    assert smoke["cpu_scale"] == "smoke" and smoke["results_dir"] == "results/smoke"
    assert load_config(CONFIGS["default"])["cpu_scale"] == "mini"


RUNS = [(c, s, x) for c in CONFIGS for s in SETTINGS for x in setting_class(s).scales]


@pytest.mark.parametrize("config, setting, scale", RUNS)
def test_every_setting_resolves_at_every_scale(config, setting, scale):
    cfg = resolve(load_config(CONFIGS[config]), setting, scale)
    if setting == "theory":
        assert isinstance(Theory.config(cfg), TheoryConfig)
        return
    if scale != "rehearsal":  # a rehearsal layer sets its own (cpu once it has one)
        assert cfg["device"] == ("cpu" if scale in ("mini", "smoke") else "auto")
    # every student's rules (the section with its own overrides) are valid rules
    for name, spec in cfg["models"].items():
        if spec["source"] == "distill":
            rules = student_rules(cfg, name)
            overrides = spec.get("distill", {})
            assert all(getattr(rules, k) == v for k, v in overrides.items()), name


def test_scale_chains():
    assert scale_chain("paper") == ["paper"]
    assert scale_chain("smoke") == ["paper", "mini", "smoke"]
    assert scale_chain("rehearsal") == ["paper", "rehearsal"]
    assert set(SCALE_PARENT) == {"paper", "mini", "smoke", "rehearsal"}
    with pytest.raises(ConfigError, match=r"unknown scale 'huge'; allowed: \["):
        scale_chain("huge")


# ------------------------------------------------------------------ bad configs
def _layer(setting, scale, layer):
    return lambda: resolve(_assembled(**{setting: {scale: layer}}), setting, scale)


def _top(mutate):
    def run():
        cfg = _raw()
        mutate(cfg)
        assemble_config(cfg)

    return run


BAD = [
    (
        "unknown key in a layer",
        _layer("cifar10", "mini", {"distill": {"KK": 3}}),
        r"cifar10 \(mini\): distill: unknown key\(s\) \['KK'\]; allowed keys: \['K', ",
    ),
    (
        "unknown key in a model's distill overrides",
        _layer("openwebtext", "mini", {"models": {"k1": {"distill": {"itres": 3}}}}),
        r"openwebtext \(mini\): models.k1.distill: unknown key\(s\) \['itres'\]; "
        r"allowed keys: .*'iters'",
    ),
    (
        "unknown key in a nested section",
        _layer("imagenet", "smoke", {"sample": {"num_sample": 3}}),
        r"imagenet \(smoke\): sample: unknown key\(s\) \['num_sample'\]; "
        r"allowed keys: .*'num_samples'",
    ),
    (
        "wrong enum",
        _layer("cifar10", "mini", {"distill": {"precision": "fp16"}}),
        r"cifar10 \(mini\): distill.precision: 'fp16' is not allowed; "
        r"allowed values: \['fp32', 'bf16'\]",
    ),
    (
        "wrong enum in a list",
        _layer("theory", "mini", {"experiments": ["three_bit"]}),
        r"theory \(mini\): experiments\[0\]: 'three_bit' is not allowed; "
        r"allowed values: \['two_bit', ",
    ),
    (
        "wrong type",
        _layer("cifar10", "mini", {"distill": {"lr": "fast"}}),
        r"cifar10 \(mini\): distill.lr: expected .*number.*, got str 'fast'",
    ),
    (
        "out of range",
        _layer("theory", "smoke", {"K": 0}),
        r"theory \(smoke\): K: 0 violates minimum 1",
    ),
    (
        "bad device",
        _layer("openwebtext", "mini", {"device": "gpu"}),
        r"openwebtext \(mini\): device: 'gpu' does not match",
    ),
    (
        "unknown scale layer",
        lambda: _assembled(cifar10={"minni": {"distill": {"iters": 3}}}),
        r"cifar10: unknown scale layer\(s\) \['minni'\]; allowed: "
        r"\['mini', 'paper', 'rehearsal', 'smoke'\] \(did you mean 'mini'\?\)",
    ),
    (
        "a whole section without its scale layer",
        lambda: _assembled(theory={"experiments": ["two_bit"]}),
        r"theory: unknown scale layer\(s\) \['experiments'\]; .*\(a layer holds only what "
        r"its scale changes: write theory: \{mini: \{experiments: \.\.\.\}\} to change "
        r"experiments at the mini scale\)",
    ),
    (
        "unknown setting section",
        lambda: _assembled(cifar100={"mini": {}}),
        r"workflow config: unknown key\(s\) \['cifar100'\]; allowed keys: .*'cifar10'",
    ),
    (
        "unknown top key",
        _top(lambda c: c.update(scal="mini")),
        r"workflow config: unknown key\(s\) \['scal'\]; allowed keys: .*'cpu_scale'",
    ),
    (
        "bad top-level enum",
        _top(lambda c: c.update(cpu_scale="huge")),
        r"workflow config: cpu_scale: 'huge' is not allowed; "
        r"allowed values: \['mini', 'smoke'\]",
    ),
    (
        "missing top key",
        _top(lambda c: c.pop("tables_dir")),
        r"'tables_dir' is a required property",
    ),
    (
        "settings folder missing",
        _top(lambda c: c.update(settings_dir="nowhere/settings")),
        r"settings_dir: folder not found: .*nowhere/settings",
    ),
    (
        "scale the setting has not",
        lambda: resolve(_assembled(), "theory", "paper"),
        r"theory has no scale 'paper'; allowed: \['mini', 'smoke'\]",
    ),
    (
        "student that is no model",
        _layer("cifar10", "mini", {"sweep": {"students": ["studnet"]}}),
        r"cifar10 \(mini\): sweep: cells of 'studnet', which is no model; "
        r"models: \['classifier', ",
    ),
    (
        "teacher that is no model",
        _layer("imagenet", "mini", {"models": {"k1": {"teacher": "teachr"}}}),
        r"imagenet \(mini\): models.k1.teacher: no model 'teachr'; models: \[",
    ),
    (
        "hybrid with more teacher steps than steps",
        _layer("cifar10", "smoke", {"sweep": {"hybrid": {"cells": [[2, 3]]}}}),
        r"cifar10 \(smoke\): sweep: cell 'hybrid': teacher_last L must be in "
        r"\[0, N=2\]; got 3",
    ),
    (
        "teacher chain that loops",
        _layer("openwebtext", "mini", {"models": {"di4c": {"teacher": "di4c2"}}}),
        r"openwebtext \(mini\): models.di4c: teacher chain loops",
    ),
    (
        "config file missing",
        lambda: load_config(ROOT / "nope.yaml"),
        r"config file not found: .*nope.yaml",
    ),
]


@pytest.mark.parametrize("what, make, pattern", BAD, ids=[b[0] for b in BAD])
def test_bad_configs_name_the_key_and_the_allowed_values(what, make, pattern):
    with pytest.raises(ConfigError) as info:
        make()
    assert re.search(pattern, str(info.value)), str(info.value)


# ------------------------------------------------------------------ partial overrides
def test_partial_override_keeps_the_rest_of_the_section():
    """Issue 13 item 4: one key of a section changes, nothing else falls back."""
    cfg = _raw()
    cfg["theory"] = {"mini": {"experiments": ["two_bit"]}}
    got = resolve(assemble_config(cfg), "theory", "mini")
    assert got["experiments"] == ["two_bit"]
    assert got["teacher_steps"] == 1024 and got["distill_iters"] == 6000
    assert {k: v for k, v in got.items() if k != "experiments"} == {
        k: v for k, v in Theory.defaults().items() if k != "experiments"
    }
    # the same through a smoke layer: the smoke sizes stay
    cfg = _raw(DEFAULT, SMOKE)
    cfg["theory"] = {"smoke": {"experiments": ["given_3x3"]}}
    got = resolve(assemble_config(cfg), "theory", "smoke")
    assert got["experiments"] == ["given_3x3"]
    assert (got["teacher_steps"], got["K"], got["distill_iters"]) == (256, 8, 150)


def test_partial_override_of_a_nested_key():
    base = resolve(load_config(DEFAULT), "cifar10", "mini")
    cfg = _assembled(
        cifar10={"mini": {"distill": {"iters": 7}, "sweep": {"hybrid": None}}}
    )
    got = resolve(cfg, "cifar10", "mini")
    assert got["distill"] == base["distill"] | {"iters": 7}
    assert got["distill"]["lr"] == 0.0005 and got["distill"]["K"] == 16
    assert got["sweep"]["hybrid"] is None  # a null replaces a section
    assert {k: v for k, v in got.items() if k not in ("distill", "sweep")} == {
        k: v for k, v in base.items() if k not in ("distill", "sweep")
    }
    # a paper-layer change reaches every scale that descends from it
    cfg = _assembled(cifar10={"paper": {"sample": {"seed": 5}}})
    assert all(
        resolve(cfg, "cifar10", x)["sample"]["seed"] == 5 for x in ("mini", "smoke")
    )


def test_deep_merge_and_overrides():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert deep_merge(base, {"a": {"c": [3]}}) == {"a": {"b": 1, "c": [3]}, "d": 1}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}  # not changed in place
    assert deep_merge(base, None) == base
    assert parse_overrides(["a.b=2", "a.x=[1, 2]", "e=null", "f=fp32"]) == {
        "a": {"b": 2, "x": [1, 2]},
        "e": None,
        "f": "fp32",
    }
    with pytest.raises(ConfigError, match=r"--set expects dotted.key=value; got 'a.b'"):
        parse_overrides(["a.b"])


# ------------------------------------------------------------------ --set in a step
def _step_args(*argv):
    return step_parser("test").parse_args(list(argv))


def test_set_overrides_one_key_of_the_resolved_config():
    files = ["--configfile", str(DEFAULT), "--configfile", str(SMOKE)]
    args = _step_args("--setting", "cifar10", "--scale", "smoke", *files)
    base = step_config(args)
    assert base == resolve(load_config([DEFAULT, SMOKE]), "cifar10", "smoke")
    sets = ["--set", "distill.iters=7", "--set", "sample.seed=3"]
    got = step_config(
        _step_args("--setting", "cifar10", "--scale", "smoke", *files, *sets)
    )
    assert got["distill"] == base["distill"] | {"iters": 7}
    assert got["sample"] == base["sample"] | {"seed": 3}
    assert {k: v for k, v in got.items() if k not in ("distill", "sample")} == {
        k: v for k, v in base.items() if k not in ("distill", "sample")
    }
    # what the rules pass (--config JSON) takes --set the same way
    js = json.dumps(base)
    got2 = step_config(
        _step_args("--setting", "cifar10", "--scale", "smoke", "--config", js, *sets)
    )
    assert got2 == got


@pytest.mark.parametrize(
    "item, pattern",
    [
        ("distill.KK=3", r"cifar10 \(--set\): distill: unknown key\(s\) \['KK'\]"),
        ("distill.lr=fast", r"distill.lr: expected .*number"),
        ("distil.iters=3", r"unknown key\(s\) \['distil'\]"),
        ("distill.iters", r"--set expects dotted.key=value"),
    ],
)
def test_bad_set_names_the_key(item, pattern):
    args = _step_args("--setting", "cifar10", "--scale", "mini", "--set", item)
    with pytest.raises(ConfigError, match=pattern):
        step_config(args)


def test_set_reaches_a_step(tmp_path):
    """A real step run by hand: resolved from the YAML, one key changed by --set."""
    out = tmp_path / "two_bit.json"
    cmd = [
        sys.executable, "-m", "di4c.cli.theory", "experiment", "--scale", "smoke",
        "--experiment", "two_bit", "--out", str(out),
        "--configfile", str(DEFAULT), "--configfile", str(SMOKE),
        "--set", "train_students=false", "--set", "product_steps=[1, 2, 4]",
    ]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert sorted(r["steps"] for r in rows if r["model"] == "product_exact") == [
        1,
        2,
        4,
    ]
    assert {r["model"] for r in rows} == {"product_exact"}  # no students trained
    used = json.loads(out.with_suffix(".meta.json").read_text())["config"]
    # the rest is the smoke layer's, not the built-in defaults
    assert (used["teacher_steps"], used["K"], used["train_students"]) == (256, 8, False)


# ------------------------------------------------------------------ schema == dataclass
def _definitions():
    return yaml.safe_load((SCHEMAS / "common.schema.yaml").read_text())["definitions"]


def test_distill_schema_is_the_rules_dataclass():
    props = set(_definitions()["distill_rules"]["properties"])
    assert props == {f.name for f in fields(DistillRules)}


def test_train_loop_schema_keys_are_train_config_fields():
    props = set(_definitions()["train_loop"]["properties"])
    assert props <= {f.name for f in fields(TrainConfig)}
    assert {"iters", "batch_size", "lr", "seed"} <= props


def test_theory_schema_is_the_theory_dataclass():
    schema = yaml.safe_load((SCHEMAS / "theory.schema.yaml").read_text())
    assert set(schema["properties"]) == {f.name for f in fields(TheoryConfig)}


def test_top_level_schema_is_the_top_keys():
    schema = yaml.safe_load((SCHEMAS / "config.schema.yaml").read_text())
    assert set(schema["properties"]) == set(TOP_KEYS) == set(schema["required"])


# ------------------------------------------------------------------ paper == published
@pytest.mark.parametrize("setting", PAPER_SETTINGS)
def test_resolved_paper_config_is_the_published_settings(setting):
    cls = setting_class(setting)
    resolved = resolve(load_config(), setting, "paper")
    assert resolved == cls.defaults()
    assert DistillRules.from_dict(resolved["distill"]) == paper_rules(setting)
    sources = cls.sources()
    assert len(sources) >= 10
    for dotted, cited in sources.items():
        node = resolved
        for part in dotted.split("."):
            node = node[part]
        want = list(cited.value) if isinstance(cited.value, tuple) else cited.value
        assert node == want, dotted
        assert cited.source.strip(), dotted
        if cited.deviates:
            assert cited.reason.strip(), f"{dotted}: a deviation needs its reason"


def test_readme_settings_table_is_in_sync():
    readme = (ROOT / "README.md").read_text()
    assert BEGIN in readme and END in readme
    assert embed(readme, settings_table()) == readme, (
        "README settings table is stale: run "
        "`python -m di4c.settings.sources --write README.md`"
    )
    for setting in PAPER_SETTINGS:
        assert f"| {setting} | `distill.K` |" in readme


KEY_REF = re.compile(
    r"\b("
    + "|".join(SETTINGS)
    + r")\.(paper|mini|smoke|rehearsal)\.([A-Za-z0-9_.\-]*[A-Za-z0-9_])"
)


def test_config_keys_named_in_docs_and_messages_exist():
    """Every ``<setting>.<scale>.<key>`` the docs, the config comments or an error
    message tell a user to set is a key of that resolved configuration."""
    files = [
        ROOT / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
        *sorted((ROOT / "di4c").rglob("*.py")),
        *sorted((ROOT / "workflows").rglob("*.yaml")),
        *sorted((ROOT / "workflows").rglob("*.md")),
    ]
    config = load_config()
    resolved: dict = {}
    bad, seen = [], 0
    for f in files:
        for setting, scale, path in KEY_REF.findall(f.read_text()):
            seen += 1
            if scale not in setting_class(setting).scales:
                bad.append(f"{f.relative_to(ROOT)}: {setting}.{scale} (no such scale)")
                continue
            node = resolved.setdefault(
                (setting, scale), resolve(config, setting, scale)
            )
            for part in path.split("."):
                if not isinstance(node, dict) or part not in node:
                    bad.append(f"{f.relative_to(ROOT)}: {setting}.{scale}.{path}")
                    break
                node = node[part]
    assert seen >= 10 and not bad, bad
