"""Distil a Di4C student (step ``distill``; paper Sec. 4, Algorithm 1).

    python -m di4c.cli.distill --setting cifar10 --scale mini --model student \
        --data-dir results/cifar10/mini/data --teacher results/cifar10/mini/models/teacher \
        --init results/cifar10/mini/models/teacher --out-dir results/cifar10/mini/models/student

The same skeleton for every setting: the rules (the setting's ``distill`` section
with the model's own ``models.<name>.distill`` overrides) -> the frozen teacher
(a product model, or a Di4C student used as a mixture teacher for di4c^2,
paper Sec. 5.3) -> the student initialised from ``--init`` -> one
:func:`di4c.distill.di4c_loss` per optimiser step of :func:`di4c.train.train`
(resumable in ``<out-dir>/run``) -> the student in its family's published container
and ``model.json``. Every generator the step uses is seeded from the rules' seed.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import torch

from di4c.artifacts import provenance
from di4c.cli.common import model_spec, run_step, step_config, step_parser
from di4c.config import deep_merge
from di4c.devices import resolve_device
from di4c.distill import di4c_loss, train_config
from di4c.models import read_card, write_card
from di4c.samplers.noise import BatchRNG
from di4c.settings import get_setting
from di4c.settings.rules import DistillRules
from di4c.train import RESUMABLE_FIELDS, train


def student_rules(cfg: dict, model: str) -> DistillRules:
    """The setting's rules with the model's own overrides."""
    spec = model_spec(cfg, model)
    return DistillRules.from_dict(deep_merge(cfg["distill"], spec.get("distill")))


def loss_rng(gen: torch.Generator, device: torch.device) -> BatchRNG:
    """The loss's randomness: the loop's (checkpointed) generator on the CPU; on an
    accelerator a device generator seeded by one draw of it, so a resumed run
    replays the same stream."""
    if device.type == "cpu":
        return BatchRNG(gen)
    seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    return BatchRNG(torch.Generator(device).manual_seed(seed), device)


def batch_loss(setting, cfg, rules, student, teacher, process, device, shape=None):
    """The training loop's loss of one batch (``loss_fn(batch, gen)``): the setting's
    inputs, then :func:`di4c.distill.di4c_loss` under the setting's autocast with the
    loop's randomness (:func:`loss_rng`)."""
    autocast = setting.autocast(rules, device)

    def loss_fn(batch, gen):
        x0, cond = setting.batch_inputs(cfg, rules, batch, gen, shape)
        rng = loss_rng(gen, device)
        with autocast:
            return di4c_loss(
                student,
                teacher,
                process,
                x0.to(device),
                rules,
                cond=None if cond is None else cond.to(device),
                rng=rng,
            )

    return loss_fn


def main(args) -> None:
    cfg = step_config(args)
    setting = get_setting(args.setting)
    rules = student_rules(cfg, args.model)
    device = resolve_device(cfg["device"])
    t0 = time.time()
    torch.manual_seed(rules.seed)  # dropout and anything else on the global generator
    data_dir = Path(args.data_dir)
    data = setting.training_set(cfg, data_dir)
    teacher_card, init_card = read_card(args.teacher), read_card(args.init)
    teacher_net = setting.load_net(teacher_card, device).eval().requires_grad_(False)
    teacher = setting.denoiser(teacher_net, cfg, rules.precision)
    student_net = setting.init_student(init_card, rules, device)
    student = setting.denoiser(student_net, cfg, rules.precision)
    process = setting.process(cfg, device, teacher_card)
    shape = (
        setting.image_shape(cfg, data_dir) if hasattr(setting, "image_shape") else None
    )
    if teacher.is_mixture:
        print(f"[distill] mixture teacher (di4c^2): K-averaged marginals, K={rules.K}")

    loss_fn = batch_loss(setting, cfg, rules, student, teacher, process, device, shape)

    out = Path(args.out_dir)
    print(
        f"[distill] {args.model}: K={rules.K} batch_x={rules.batch_x} lr={rules.lr} "
        f"iters={rules.iters} teacher={teacher_card.name} init={init_card.name}",
        flush=True,
    )
    res = train(
        student_net,
        loss_fn,
        data,
        train_config(rules),
        out_dir=out / "run",
        label=args.model,
        run_key={  # the run's length and logging may change across a resume
            "rules": {
                k: v for k, v in asdict(rules).items() if k not in RESUMABLE_FIELDS
            },
            "teacher": teacher_card.sha256,
            "init": init_card.sha256,
        },
    )
    card = setting.save_model(
        student_net,
        out,
        args.model,
        "distill",
        ema=res.ema,
        step=rules.iters,
        sample_weights="ema" if rules.sample_from_ema and res.ema else "raw",
        extra={"teacher": teacher_card.name, "init": init_card.name},
    )
    write_card(
        out,
        card,
        provenance=provenance(
            config={"rules": asdict(rules), "model": cfg["models"][args.model]},
            inputs={
                "teacher": Path(teacher_card.folder) / "model.json",
                "init": Path(init_card.folder) / "model.json",
            },
            seeds={"train": rules.seed},
            wall_time_s=time.time() - t0,
            extra={"history_tail": res.history[-3:], "resumed_from": res.resumed_from},
        ),
    )


def cli(argv=None) -> None:
    ap = step_parser(__doc__)
    ap.add_argument("--model", required=True, help="student name under models:")
    ap.add_argument("--data-dir", required=True)
    ap.add_argument(
        "--teacher", required=True, help="teacher model folder (model.json)"
    )
    ap.add_argument(
        "--init", required=True, help="model folder the student starts from"
    )
    ap.add_argument("--out-dir", required=True)
    run_step(main, ap, argv)


if __name__ == "__main__":
    cli()
