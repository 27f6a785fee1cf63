"""Fetch a published model into the run's model folder (step ``fetch``).

    python -m di4c.cli.fetch --setting cifar10 --scale paper --model teacher \
        --out-dir results/cifar10/paper/models/teacher --pins workflows/pins/cifar10.json

The setting's adapter names the published files of the model (teacher checkpoints,
tokenizers, released Di4C students, the judge LM): a local copy from the config's
``models.<name>.local`` keys, or a pinned, locked, atomic, retried download into the
cache (di4c.download, di4c.pins). The files are read once to validate their
container; ``model.json`` names them with their sha256. Offline, the error names
the config key that takes a local copy.
"""

from __future__ import annotations

import time
from pathlib import Path

from di4c.artifacts import provenance
from di4c.cli.common import run_step, step_config, step_parser
from di4c.config import ConfigError
from di4c.models import write_card
from di4c.settings import get_setting


def main(args) -> None:
    cfg = step_config(args)
    setting = get_setting(args.setting)
    spec = cfg["models"].get(args.model)
    if spec is None or spec["source"] not in ("published", "released"):
        raise ConfigError(
            f"{args.setting}.{args.scale}.models.{args.model} is not a published "
            "or released model; nothing to fetch"
        )
    t0 = time.time()
    card = setting.fetch(cfg, args.model, args.pins)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_card(
        out, card, provenance=provenance(config=spec, wall_time_s=time.time() - t0)
    )
    print(f"[fetch] {args.model}: {card.files}", flush=True)


def cli(argv=None) -> None:
    ap = step_parser(__doc__)
    ap.add_argument("--model", required=True, help="name under models: in the config")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--pins", default=None, help="pin file (sha256 and commits)")
    run_step(main, ap, argv)


if __name__ == "__main__":
    cli()
