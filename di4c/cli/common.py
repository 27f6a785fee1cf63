"""Plumbing shared by every step: the setting/scale/config flags, logging, error exits.

Every generic step runs as ``python -m di4c.cli.<step> --setting S --scale X ...``.
Its configuration is the resolved configuration of (S, X) (:func:`di4c.config.resolve`):
given whole by the rule as ``--config JSON``, or resolved from the workflow YAML
(``--configfile``, default ``workflows/config/default.yaml``) when run by hand, with
``--set dotted.key=value`` overrides either way.

Expected errors (bad config, data, checkpoints, missing weights, too few samples,
a non-finite training step, a write the disk refused) print one line naming the problem and the fix and exit 1; ``--debug`` shows the
traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from di4c.config import (
    DEFAULT_CONFIG,
    ConfigError,
    deep_merge,
    load_config,
    parse_overrides,
    resolve,
)


def parse_bool(v: str) -> bool:
    low = v.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false); got {v!r}")


def add_config_args(ap: argparse.ArgumentParser, setting: str | None = None) -> None:
    """``--setting`` (unless fixed), ``--scale``, ``--config``, ``--configfile``, ``--set``."""
    if setting is None:
        ap.add_argument("--setting", required=True, help="cifar10 | imagenet | ...")
    else:
        ap.set_defaults(setting=setting)
    ap.add_argument("--scale", required=True, help="paper | mini | smoke | rehearsal")
    ap.add_argument(
        "--config",
        default=None,
        help="the resolved configuration as JSON (what the rules pass)",
    )
    ap.add_argument(
        "--configfile",
        action="append",
        default=None,
        help="workflow YAML to resolve from when --config is absent "
        "(default workflows/config/default.yaml)",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one resolved key, e.g. --set distill.iters=10",
    )


def add_run_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--log", default=None, help="also append all output to this file")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--debug", action="store_true", help="tracebacks for all errors")


def step_parser(doc: str, setting: str | None = None) -> argparse.ArgumentParser:
    """An argument parser with the flags every step shares."""
    ap = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_config_args(ap, setting)
    add_run_args(ap)
    return ap


def step_config(args) -> dict:
    """The resolved configuration of ``(args.setting, args.scale)`` with ``--set`` applied."""
    if args.config:
        try:
            cfg = json.loads(args.config)
        except json.JSONDecodeError as e:
            raise ConfigError(f"--config is not valid JSON: {e}") from e
    else:
        cfg = resolve(
            load_config(args.configfile or [DEFAULT_CONFIG]), args.setting, args.scale
        )
    if args.set:
        cfg = deep_merge(cfg, parse_overrides(args.set))
        from di4c.config import _schema, schema_errors

        errors = schema_errors(cfg, _schema(args.setting), f"{args.setting} (--set)")
        if errors:
            raise ConfigError("invalid --set override:\n  " + "\n  ".join(errors))
    return cfg


def model_spec(cfg: dict, name: str, section: str | None = None) -> dict:
    """``models.<name>`` of the configuration (with its ``section`` when given, e.g.
    ``train``); a missing one is a :class:`ConfigError` listing the models there are."""
    models = cfg.get("models") or {}
    if name not in models:
        raise ConfigError(
            f"models.{name}: no such model in the configuration (have {sorted(models)})"
        )
    spec = models[name]
    if section and section not in spec:
        raise ConfigError(f"models.{name}.{section}: missing from the configuration")
    return spec


def add_card_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--card",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a model the step uses: its name and its model.json (repeatable)",
    )


def read_cards(items) -> dict:
    """``["teacher=path/model.json", ...]`` -> ``{"teacher": ModelCard}``."""
    from di4c.models import read_card

    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"--card expects NAME=PATH; got {item!r}")
        out[name] = read_card(path)
    return out


class Tee:
    """Duplicate a stream into a log file (every rule writes a log)."""

    def __init__(self, stream, path: Path):
        self.stream, self.file = stream, open(path, "a", buffering=1)

    def write(self, s):
        self.stream.write(s)
        self.file.write(s)

    def flush(self):
        self.stream.flush()
        self.file.flush()


def setup_run(log: str | None, threads: int | None) -> None:
    """Send stdout/stderr also to ``log`` and pin torch's intra-op threads."""
    if log:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        sys.stdout = Tee(sys.stdout, Path(log))
        sys.stderr = Tee(sys.stderr, Path(log))
    if threads:
        import torch

        torch.set_num_threads(threads)


def expected_errors() -> tuple[type[BaseException], ...]:
    """Errors with a message that says what to do: one line, no traceback."""
    from di4c.artifacts import ArtifactError, WriteError
    from di4c.checkpoints import CheckpointError
    from di4c.data.files import DataFileError
    from di4c.data.text import TextDataError
    from di4c.download import ChecksumError, MissingWeightsError
    from di4c.metrics.genppl import MissingJudgeError
    from di4c.metrics.image_quality import InsufficientSamplesError
    from di4c.metrics.scoring import SampleShapeError
    from di4c.models import ModelCardError
    from di4c.train import NonFiniteError

    return (
        ConfigError,
        ArtifactError,
        CheckpointError,
        ChecksumError,
        MissingWeightsError,
        MissingJudgeError,
        InsufficientSamplesError,
        SampleShapeError,
        ModelCardError,
        TextDataError,
        DataFileError,
        NonFiniteError,
        WriteError,
        FileNotFoundError,
    )


def one_line(e: BaseException) -> str:
    """An error message on one line (a config error lists each problem on its own)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    if not lines:
        return type(e).__name__
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0]} {'; '.join(lines[1:])}"
    return "; ".join(lines)


def run_step(
    main: Callable[[argparse.Namespace], None], ap: argparse.ArgumentParser, argv=None
) -> None:
    """Parse, set up logging and threads, run ``main(args)``; expected errors exit 1 with one line."""
    args = ap.parse_args(argv)
    setup_run(args.log, args.threads)
    t0 = time.time()
    try:
        main(args)
    except expected_errors() as e:
        if args.debug:
            raise
        print(f"error: {one_line(e)}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    print(f"[{ap.prog}] done in {time.time() - t0:.0f}s", flush=True)
