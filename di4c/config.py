"""Workflow configuration: scales as deep-merged layers over each setting's paper values.

A setting's configuration at a scale is resolved as

    paper values of its adapter (di4c.settings.<setting>.PAPER)
      <- the YAML layers of the scale's chain (paper -> mini -> smoke; paper -> rehearsal)

each layer deep-merged over the previous one (dicts merge key by key, every other
value replaces), so a YAML layer holds only what its scale changes. The layers live
in ``<settings_dir>/<setting>.yaml`` as ``{paper: ..., mini: ..., smoke: ...}``; a
section given inline in the workflow config (``snakemake --config``) is merged over
that file, also key by key. The resolved configuration is validated by
``workflows/schemas/<setting>.schema.yaml``; every problem is reported as
``<setting> (<scale>): <dotted.key>: <what is wrong> (allowed: ...)``.

String values may hold the placeholder ``{results_dir}`` (:data:`PLACEHOLDERS`),
replaced at resolution by the workflow config's ``results_dir``: the rehearsal layers
point their local-copy keys into the stand-ins folder the DAG builds there
(``{results_dir}/<setting>/rehearsal/standins``, rule ``make_standins``).
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = ROOT / "workflows" / "schemas"
DEFAULT_CONFIG = ROOT / "workflows" / "config" / "default.yaml"
# each scale's parent: its resolved config starts from the parent's
SCALE_PARENT: dict[str, str | None] = {
    "paper": None,
    "mini": "paper",
    "smoke": "mini",
    "rehearsal": "paper",
}
TOP_KEYS = (
    "cpu_scale",
    "paper_scale",
    "tables_dir",
    "mini_tables_dir",
    "results_dir",
    "pins_dir",
    "settings_dir",
    "targets",
)


# placeholder in a resolved string value -> the top-level key it is replaced by
PLACEHOLDERS = {"{results_dir}": "results_dir"}
# scales whose tables may never be written into the committed paper tables' folder
REHEARSAL_SCALES = ("rehearsal",)
PAPER_TABLES = "paper_tables"


class ConfigError(ValueError):
    """An invalid workflow config; the message names each bad key and the fix."""


def deep_merge(base: dict, over: dict | None) -> dict:
    """A copy of ``base`` with ``over`` merged in: dicts key by key, anything else replaced."""
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def scale_chain(scale: str) -> list[str]:
    """The layers of ``scale`` from the root: ``smoke -> [paper, mini, smoke]``."""
    if scale not in SCALE_PARENT:
        raise ConfigError(f"unknown scale {scale!r}; allowed: {sorted(SCALE_PARENT)}")
    chain = []
    s: str | None = scale
    while s is not None:
        chain.append(s)
        s = SCALE_PARENT[s]
    return chain[::-1]


def _key(path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _explain(err: jsonschema.ValidationError, where_prefix: str) -> str:
    path = _key(err.absolute_path)
    where = f"{where_prefix}: {path}" if path else where_prefix
    v = err.validator
    if v == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed))
        return f"{where}: unknown key(s) {extra}; allowed keys: {allowed}"
    if v == "enum":
        return f"{where}: {err.instance!r} is not allowed; allowed values: {err.validator_value}"
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return f"{where}: {err.instance!r} violates {v} {err.validator_value}"
    if v == "type":
        return f"{where}: expected {err.validator_value}, got {type(err.instance).__name__} {err.instance!r}"
    return f"{where}: {err.message}"


def schema_errors(instance: Any, schema: dict, where: str) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(
        validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))
    )
    return [_explain(e, where) for e in errors]


def _schema(name: str, schema_dir: Path = SCHEMA_DIR) -> dict:
    """A schema file with the shared definitions of ``common.schema.yaml`` merged in."""
    path = Path(schema_dir) / f"{name}.schema.yaml"
    if not path.is_file():
        raise ConfigError(f"no schema for {name!r}: {path} is missing")
    schema = yaml.safe_load(path.read_text())
    common = yaml.safe_load((Path(schema_dir) / "common.schema.yaml").read_text())
    schema.setdefault("definitions", {}).update(common["definitions"])
    return schema


def settings_in(config: dict) -> list[str]:
    """Setting sections of a workflow config (every key that is not a top-level key)."""
    return [k for k in config if k not in TOP_KEYS]


def validate_top(config: dict, schema_dir: Path = SCHEMA_DIR) -> None:
    from di4c.settings import SETTINGS

    errors = schema_errors(
        {k: v for k, v in config.items() if k in TOP_KEYS},
        _schema("config", schema_dir),
        "workflow config",
    )
    for key in settings_in(config):
        if key not in SETTINGS:
            errors.append(
                f"workflow config: unknown key(s) [{key!r}]; allowed keys: "
                f"{sorted(TOP_KEYS + tuple(SETTINGS))}"
            )
        elif not isinstance(config[key], dict):
            errors.append(f"{key}: expected a mapping of scale -> overrides")
        else:
            bad = sorted(set(config[key]) - set(SCALE_PARENT))
            if bad:
                near = difflib.get_close_matches(bad[0], SCALE_PARENT, n=1)
                hint = (
                    f"did you mean {near[0]!r}?"
                    if near
                    else "a layer holds only what its scale changes: write "
                    f"{key}: {{mini: {{{bad[0]}: ...}}}} to change {bad[0]} at the mini scale"
                )
                errors.append(
                    f"{key}: unknown scale layer(s) {bad}; allowed: "
                    f"{sorted(SCALE_PARENT)} ({hint})"
                )
    errors += rehearsal_errors(config)
    if errors:
        raise ConfigError("invalid workflow config:\n  " + "\n  ".join(errors))


def rehearsal_errors(config: dict) -> list[str]:
    """A rehearsal's tables (stand-in numbers) never go into ``paper_tables/``."""
    if config.get("paper_scale") not in REHEARSAL_SCALES:
        return []
    tables = Path(str(config.get("tables_dir", ""))).parts
    if tables[:1] != (PAPER_TABLES,):
        return []
    return [
        f"workflow config: tables_dir {config['tables_dir']!r} with paper_scale "
        f"{config['paper_scale']!r}: a rehearsal's tables must not go into "
        f"{PAPER_TABLES}/; use workflows/config/rehearsal.yaml (tables under results/)"
    ]


def substitute(obj: Any, config: dict) -> Any:
    """``obj`` with every :data:`PLACEHOLDERS` entry in its strings replaced."""
    if isinstance(obj, dict):
        return {k: substitute(v, config) for k, v in obj.items()}
    if isinstance(obj, list):
        return [substitute(v, config) for v in obj]
    if isinstance(obj, str):
        for mark, key in PLACEHOLDERS.items():
            if mark in obj:
                if not config.get(key):
                    raise ConfigError(
                        f"{obj!r} uses {mark}, but the workflow config has no {key}"
                    )
                obj = obj.replace(mark, str(config[key]))
    return obj


def assemble_config(config: dict, root: Path = ROOT) -> dict:
    """Merge ``<settings_dir>/<setting>.yaml`` under the inline sections, then validate.

    Changes ``config`` in place (Snakemake's ``config`` object) and returns it.
    """
    sdir = config.get("settings_dir")
    if sdir:
        d = Path(sdir) if Path(sdir).is_absolute() else Path(root) / sdir
        if not d.is_dir():
            raise ConfigError(f"settings_dir: folder not found: {d}")
        for f in sorted(d.glob("*.yaml")):
            layers = yaml.safe_load(f.read_text()) or {}
            config[f.stem] = deep_merge(layers, config.get(f.stem))
    validate_top(config)
    return config


def load_config(paths: str | Path | Iterable[str | Path] = DEFAULT_CONFIG) -> dict:
    """Read one or more YAML workflow configs (later files deep-merged over earlier ones)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    config: dict = {}
    for p in map(Path, paths):
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        config = deep_merge(config, yaml.safe_load(p.read_text()) or {})
    return assemble_config(config)


def resolve(config: dict, setting: str, scale: str) -> dict:
    """The validated configuration of ``setting`` at ``scale`` (see the module docstring)."""
    from di4c.settings import setting_class

    adapter = setting_class(setting)
    if scale not in adapter.scales:
        raise ConfigError(
            f"{setting} has no scale {scale!r}; allowed: {list(adapter.scales)}"
        )
    layers = config.get(setting) or {}
    out = adapter.defaults()
    for s in scale_chain(scale):
        out = deep_merge(out, layers.get(s))
    out = substitute(out, config)
    where = f"{setting} ({scale})"
    errors = schema_errors(out, _schema(setting), where)
    if not errors:
        errors = [f"{where}: {e}" for e in reference_errors(adapter(), out)]
    if errors:
        raise ConfigError(
            f"invalid configuration of {setting} at scale {scale}:\n  "
            + "\n  ".join(errors)
        )
    return out


def reference_errors(adapter, cfg: dict) -> list[str]:
    """What the schema cannot see: every model a student, a cell or a hybrid names
    exists, teacher chains end, and every cell is valid (hybrid L <= N)."""
    models = cfg.get("models")
    if not isinstance(models, dict) or not hasattr(adapter, "cells"):
        return []
    have = sorted(models)
    errors = []
    for name, spec in models.items():
        refs = {"teacher": spec.get("teacher"), "init": spec.get("init")}
        if spec["source"] in ("distill", "released"):
            refs["teacher"] = spec.get("teacher", "teacher")
        for key, ref in refs.items():
            if ref is not None and ref not in models:
                errors.append(f"models.{name}.{key}: no model {ref!r}; models: {have}")
    hybrid = (cfg.get("sweep") or {}).get("hybrid") or {}
    if hybrid.get("student") is not None and hybrid["student"] not in models:
        errors.append(
            f"sweep.hybrid.student: no model {hybrid['student']!r}; models: {have}"
        )
    if errors:
        return errors
    try:
        cells = adapter.cells(cfg)
    except ValueError as e:
        return [f"sweep: {e}"]
    for m in sorted({c.model for c in cells} - set(models) - {"hybrid"}):
        errors.append(f"sweep: cells of {m!r}, which is no model; models: {have}")
    if not errors:
        try:
            adapter.teacher_of(cfg)
        except ValueError as e:
            errors.append(str(e))
    return errors


def parse_overrides(items: Iterable[str]) -> dict:
    """``["distill.iters=10", "sample.seed=3"]`` -> nested dict (values parsed as YAML)."""
    out: dict = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects dotted.key=value; got {item!r}")
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(raw)
    return out


def to_json(obj: Any) -> str:
    """Compact, key-sorted JSON (what rules pass to steps, so params compare stably)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))
