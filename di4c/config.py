"""Workflow config assembly and JSON-schema validation with messages that name the key.

The top level is validated by ``workflows/schemas/config.schema.yaml``. Every
section (``theory``, ``cifar10``, ...) lives in ``<sections_dir>/<section>.yaml``
(merged in by :func:`assemble_config` unless given inline) and is validated by
``workflows/schemas/<section>.schema.yaml``. :func:`validate_config` raises
:class:`ConfigError` listing every problem as ``<dotted.key>: <what is wrong>
(allowed: ...)``; unknown sections are refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = ROOT / "workflows" / "schemas"
TOP_KEYS = (
    "scale",
    "tables_dir",
    "mini_tables_dir",
    "results_dir",
    "pins_dir",
    "sections_dir",
    "targets",
)


class ConfigError(ValueError):
    """An invalid workflow config; the message names each bad key and the fix."""


def _key(path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<top level>"


def _explain(err: jsonschema.ValidationError) -> str:
    where = _key(err.absolute_path)
    v = err.validator
    if v == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed))
        base = where if err.absolute_path else "top level"
        return f"{base}: unknown key(s) {extra}; allowed keys: {allowed}"
    if v == "enum":
        return f"{where}: {err.instance!r} is not allowed; allowed values: {err.validator_value}"
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return f"{where}: {err.instance!r} violates {v} {err.validator_value}"
    if v == "type":
        return f"{where}: expected {err.validator_value}, got {type(err.instance).__name__} {err.instance!r}"
    if v == "required":
        return f"{where}: {err.message}"
    return f"{where}: {err.message}"


def section_schemas(schema_dir: Path = SCHEMA_DIR) -> dict[str, dict]:
    """``{section: schema}`` for every ``<section>.schema.yaml`` except the top level."""
    return {
        p.name.removesuffix(".schema.yaml"): yaml.safe_load(p.read_text())
        for p in sorted(Path(schema_dir).glob("*.schema.yaml"))
        if p.name != "config.schema.yaml"
    }


def _errors(instance, schema, prefix: tuple = ()) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    out = []
    for e in sorted(
        validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))
    ):
        e.path.extendleft(reversed(prefix))
        msg = _explain(e)
        out.append(
            msg.replace("top level:", f"{prefix[0]}:")
            if prefix and msg.startswith("top level")
            else msg
        )
    return out


def validate_config(
    config: dict[str, Any], schema_dir: Path = SCHEMA_DIR
) -> dict[str, Any]:
    """Validate ``config`` and each section; raise :class:`ConfigError` naming every bad key."""
    top = yaml.safe_load((Path(schema_dir) / "config.schema.yaml").read_text())
    sections = section_schemas(schema_dir)
    errors = _errors({k: v for k, v in config.items() if k in TOP_KEYS}, top)
    for key in config:
        if key not in TOP_KEYS and key not in sections:
            errors.append(
                f"unknown key(s) [{key!r}]; allowed keys: {sorted(TOP_KEYS + tuple(sections))}"
            )
    for name, schema in sections.items():
        if name in config:
            errors += _errors(config[name], schema, (name,))
    if errors:
        lines = "\n  ".join(errors)
        raise ConfigError(f"invalid workflow config:\n  {lines}")
    return config


def assemble_config(config: dict[str, Any], root: Path = ROOT) -> dict[str, Any]:
    """Merge ``<sections_dir>/<section>.yaml`` into ``config`` (inline sections win), then validate."""
    sections_dir = config.get("sections_dir")
    if sections_dir:
        d = (
            Path(sections_dir)
            if Path(sections_dir).is_absolute()
            else Path(root) / sections_dir
        )
        if not d.is_dir():
            raise ConfigError(f"sections_dir: folder not found: {d}")
        for f in sorted(d.glob("*.yaml")):
            config.setdefault(f.stem, yaml.safe_load(f.read_text()) or {})
    return validate_config(config)


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config and validate it."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    return assemble_config(yaml.safe_load(p.read_text()) or {})


def cli_flags(section: dict[str, Any]) -> str:
    """Render a config section as dashed CLI flags (lists become repeated values)."""
    parts = []
    for k, v in section.items():
        flag = "--" + k.replace("_", "-")
        if isinstance(v, (list, tuple)):
            parts.append(flag + " " + " ".join(str(x) for x in v))
        elif isinstance(v, bool):
            parts.append(f"{flag} {str(v).lower()}")
        else:
            parts.append(f"{flag} {v}")
    return " ".join(parts)
