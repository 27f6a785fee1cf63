"""Score one sample cell (step ``score``): one metric record with its noise.

    python -m di4c.cli.score --setting cifar10 --scale mini \
        --samples results/cifar10/mini/samples/student_n8.pt --card classifier=M/model.json \
        --reference results/cifar10/mini/reference --out results/cifar10/mini/metrics/student_n8.json

Images: the sampled states decoded to images (pixel levels, or VQ codes through the
tokenizer), features under the configured extractor, FID / IS / precision / recall
against the reference features. Text: generative perplexity under the judge LM
and unigram entropy. Every metric's noise is the bootstrap sd over the generated
samples (:mod:`di4c.metrics.scoring`). The protocol's minimum sample count is
enforced.
"""

from __future__ import annotations

import time
from pathlib import Path

from di4c.artifacts import (
    ArtifactError,
    meta_path_for,
    provenance,
    read_torch_artifact,
    write_json,
)
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


def read_samples(path: Path) -> dict:
    d = read_torch_artifact(path, "sample file", "sample")
    if not isinstance(d, dict) or "x" not in d or "cell" not in d:
        raise ArtifactError(
            f"{path}: not a sample file of the sample step (no 'x'/'cell'); delete it "
            "and rerun the sample rule"
        )
    return d


def main(args) -> None:
    cfg = step_config(args)
    setting = get_setting(args.setting)
    t0 = time.time()
    samples = read_samples(Path(args.samples))
    models = read_cards(args.card)
    missing = sorted(set(setting.metric_models(cfg)) - set(models))
    if missing:
        raise ConfigError(f"the {args.setting} metrics need --card for {missing}")
    ref = Path(args.reference)
    real = read_torch_artifact(ref / "features.pt", "reference features", "reference")
    device = resolve_device(cfg["device"])
    record = {"setting": args.setting, "scale": args.scale, **samples["cell"]}
    record["nfe"] = samples["nfe"]
    record.update(setting.score(cfg, samples, models, real, device))
    write_json(args.out, record)
    write_json(
        meta_path_for(args.out),
        provenance(
            config=cfg["metrics"],
            inputs={"samples": args.samples, "reference": ref / "features.pt"}
            | {m: Path(c.folder) / "model.json" for m, c in models.items()},
            wall_time_s=time.time() - t0,
        ),
    )
    print(
        f"[score] {record['cell']}: "
        + ", ".join(f"{k} {v:.4g}" for k, v in record.items() if isinstance(v, float)),
        flush=True,
    )


def cli(argv=None) -> None:
    ap = step_parser(__doc__)
    ap.add_argument("--samples", required=True)
    add_card_args(ap)
    ap.add_argument("--reference", required=True, help="the run's reference/ folder")
    ap.add_argument("--out", required=True)
    run_step(main, ap, argv)


if __name__ == "__main__":
    cli()
