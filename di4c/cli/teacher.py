"""Train a mini twin's teacher (step ``teacher``; the paper's teachers are downloaded).

    python -m di4c.cli.teacher --setting cifar10 --scale mini --data-dir D --out-dir M

The setting builds the network at its configured size (``models.teacher.network``)
and names its objective (:mod:`di4c.objectives`: tauLDR x0 cross-entropy, MaskGIT
cross-entropy, MDLM NELBO); the loop is :func:`di4c.train.train` with the
``models.teacher.train`` settings (resumable in ``<out-dir>/run``). The teacher is
saved in its family's published container (the EMA weights are the ones
samplers use; a tauLDR container also keeps the raw weights a student starts from).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import torch

from di4c.artifacts import provenance
from di4c.cli.common import model_spec, run_step, step_config, step_parser
from di4c.config import ConfigError
from di4c.models import write_card
from di4c.settings import get_setting
from di4c.train import TrainConfig, train

LOOP_KEYS = (
    "iters",
    "batch_size",
    "optimizer",
    "lr",
    "betas",
    "weight_decay",
    "warmup_steps",
    "grad_clip",
    "ema_decay",
    "log_every",
    "ckpt_every",
    "seed",
)


def loop_config(spec: dict) -> TrainConfig:
    """The training loop's settings from ``models.<name>.train`` (other keys are the objective's)."""
    kw = {k: spec[k] for k in LOOP_KEYS if k in spec}
    if "betas" in kw:
        kw["betas"] = tuple(kw["betas"])
    kw["ema_decay"] = kw.get("ema_decay") or None
    return TrainConfig(**kw)


def main(args) -> None:
    cfg = step_config(args)
    setting = get_setting(args.setting)
    spec = model_spec(cfg, "teacher")
    if spec["source"] != "train":
        raise ConfigError(
            f"{args.setting}.{args.scale}.models.teacher.source is "
            f"{spec['source']!r}; only a 'train' teacher is trained by this step"
        )
    t0 = time.time()
    tc = loop_config(spec["train"])
    torch.manual_seed(tc.seed)
    data_dir, out = Path(args.data_dir), Path(args.out_dir)
    data = setting.training_set(cfg, data_dir)
    net = setting.build_teacher(cfg, data_dir, seed=tc.seed)
    loss = setting.teacher_objective(cfg, net)
    print(
        f"[teacher] {sum(p.numel() for p in net.parameters()):,} parameters", flush=True
    )
    res = train(net, loss, data, tc, out / "run", "teacher")
    net.eval()
    with res.ema.swapped_in(net) if res.ema else contextlib.nullcontext():
        report = setting.teacher_report(cfg, net, data_dir)
    card = setting.save_model(
        net, out, "teacher", "train", ema=res.ema, step=tc.iters, extra=report
    )
    write_card(
        out,
        card,
        provenance=provenance(
            config=spec,
            inputs={"data": data_dir / "data.json"},
            seeds={"train": tc.seed},
            wall_time_s=time.time() - t0,
            extra={"history_tail": res.history[-3:], "resumed_from": res.resumed_from},
        ),
    )


def cli(argv=None) -> None:
    ap = step_parser(__doc__)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--out-dir", required=True)
    run_step(main, ap, argv)


if __name__ == "__main__":
    cli()
