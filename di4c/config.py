"""Workflow config loading and JSON-schema validation with messages that name the key.

``workflows/schemas/config.schema.yaml`` is the single schema; :func:`validate_config`
raises :class:`ConfigError` listing every problem as ``<dotted.key>: <what is wrong>
(allowed: ...)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "workflows" / "schemas" / "config.schema.yaml"


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


def load_schema(path: Path = SCHEMA_PATH) -> dict:
    return yaml.safe_load(Path(path).read_text())


def validate_config(config: dict[str, Any], schema: dict | None = None) -> dict[str, Any]:
    """Validate ``config``; raise :class:`ConfigError` naming every bad key."""
    schema = schema or load_schema()
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = "\n  ".join(_explain(e) for e in errors)
        raise ConfigError(f"invalid workflow config:\n  {lines}")
    return config


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config and validate it."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    return validate_config(yaml.safe_load(p.read_text()) or {})


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
