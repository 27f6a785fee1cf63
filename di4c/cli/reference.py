"""Reference of a setting's metrics (step ``reference``), computed once per run.

    python -m di4c.cli.reference --setting cifar10 --scale mini --data-dir D \
        --card classifier=M/model.json --out-dir results/cifar10/mini/reference

Images: features of the reference images (CIFAR-10 train, ImageNet val, or the mini
twins' real digits) under the configured extractor, ``features.pt``. Text: nothing
to precompute. Both write ``rows.json``: reference rows of the table (the floor a
perfect generator would reach: held-out real images, real text, VQ reconstructions),
scored like any cell.
"""

from __future__ import annotations

import time
from pathlib import Path

from di4c.artifacts import provenance, save_torch, write_json
from di4c.cli.common import (
    add_card_args,
    read_cards,
    run_step,
    step_config,
    step_parser,
)
from di4c.config import ConfigError
from di4c.devices import resolve_device
from di4c.settings import get_setting


def main(args) -> None:
    cfg = step_config(args)
    setting = get_setting(args.setting)
    t0 = time.time()
    models = read_cards(args.card)
    missing = sorted(set(setting.metric_models(cfg)) - set(models))
    if missing:
        raise ConfigError(f"the {args.setting} metrics need --card for {missing}")
    device = resolve_device(cfg["device"])
    real, rows = setting.reference(cfg, Path(args.data_dir), models, device)
    out = Path(args.out_dir)
    save_torch(out / "features.pt", real or {})
    rows = [r | {"setting": args.setting, "scale": args.scale} for r in rows]
    write_json(
        out / "rows.json",
        rows,
    )
    write_json(
        out / "rows.meta.json",
        provenance(
            config=cfg["metrics"],
            inputs={m: Path(c.folder) / "model.json" for m, c in models.items()},
            wall_time_s=time.time() - t0,
        ),
    )
    for r in rows:
        print(
            f"[reference] {r['model']}: "
            + ", ".join(f"{k} {v:.4g}" for k, v in r.items() if isinstance(v, float)),
            flush=True,
        )


def cli(argv=None) -> None:
    ap = step_parser(__doc__)
    ap.add_argument("--data-dir", required=True)
    add_card_args(ap)
    ap.add_argument("--out-dir", required=True)
    run_step(main, ap, argv)


if __name__ == "__main__":
    cli()
