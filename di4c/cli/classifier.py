"""Train the digit classifier that judges the image mini twins (step ``classifier``).

    python -m di4c.cli.classifier --setting cifar10 --scale mini --data-dir D --out-dir M

Stands in for the Inception network of the paper's FID / IS at digit size: a small
CNN trained on the *held-out* digits only (images no diffusion model sees); its
accuracy on the diffusion training digits is its own held-out test
(:mod:`di4c.networks.digit_classifier`). Configuration: ``models.classifier.train``.
"""

from __future__ import annotations

import time
from pathlib import Path

from di4c.artifacts import provenance
from di4c.cli.common import model_spec, run_step, step_config, step_parser
from di4c.data.images import load_splits
from di4c.models import ModelCard, write_card
from di4c.networks.digit_classifier import (
    DigitClassifierConfig,
    save_digit_classifier,
    train_digit_classifier,
)


def main(args) -> None:
    cfg = step_config(args)
    t = model_spec(cfg, "classifier", "train")["train"]
    t0 = time.time()
    splits = load_splits(Path(args.data_dir) / "data.pt")
    c, h, _ = splits.image_shape
    net_cfg = DigitClassifierConfig(
        in_channels=c,
        image_size=h,
        width=t["width"],
        feature_dim=t["feature_dim"],
        num_classes=int(splits.heldout_y.max()) + 1,
    )
    model, report = train_digit_classifier(
        splits.uint8("heldout"),
        splits.heldout_y,
        config=net_cfg,
        epochs=t["epochs"],
        batch_size=t["batch_size"],
        lr=t["lr"],
        shift=t["shift"],
        seed=t["seed"],
        eval_images=splits.uint8("train"),
        eval_labels=splits.train_y,
    )
    out = Path(args.out_dir)
    save_digit_classifier(model, out / "classifier.pt", report)
    print(
        f"[classifier] accuracy on the diffusion training digits "
        f"{report['eval_accuracy']:.4f}",
        flush=True,
    )
    card = ModelCard(
        name="classifier",
        setting=args.setting,
        kind="classifier",
        source="train",
        files={"weights": "classifier.pt"},
        extra={"report": report},
    )
    write_card(
        out,
        card,
        provenance=provenance(
            config=t,
            inputs={"data": Path(args.data_dir) / "data.json"},
            seeds={"train": t["seed"]},
            wall_time_s=time.time() - t0,
        ),
    )


def cli(argv=None) -> None:
    ap = step_parser(__doc__)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--out-dir", required=True)
    run_step(main, ap, argv)


if __name__ == "__main__":
    cli()
