"""Score one sample cell: FID, IS, precision, recall (method.md §4.5), both scales.

    python -m di4c.cli.imagenet_eval --samples S.pt --vq-ckpt last.ckpt \
        --vq-yaml model.yaml --reference ref.pt --feature-extractor NAME \
        [--weights-path W] [--levels 16] --protocol paper|mini|smoke --out S.json

Decodes the code grids with the tokenizer, min-max rescales each image to uint8
(the protocol's ``remap_image_torch``; at mini scale then re-quantised to the
data's grey levels), extracts features (paper: torch-fidelity Inception; mini:
the DAG's digit classifier) and computes FID and precision / recall against the
reference features and IS of the generated set (torch-fidelity: 10 splits;
precision / recall with k = 3, averaged over ``--prc-chunks`` aligned chunks of
the generated and reference sets as the authors' 5 chunks of 10,000 (the paper
rules pass 5; 1, the mini twin's setting, scores the full sets at once)). ``*_spread`` fields are the split-half differences of the
generated set and ``fid_sd`` / ``is_sd`` bootstrap standard deviations over it
(mini-twins.md, lesson 4). The protocol's minimum sample count is
enforced (paper: 50,000).
"""

from __future__ import annotations

import argparse
import time

import torch

from di4c.artifacts import write_json, write_meta
from di4c.cli.common import add_run_args, setup_run
from di4c.cli.imagenet_images import (
    decoded_chunks,
    features_of_chunks,
    load_tokenizer,
    score_features,
)
from di4c.devices import resolve_device
from di4c.metrics.image_quality import EXTRACTORS, check_sample_count

METRICS = ("fid", "isc", "prc")


def metrics_for(extractor: str) -> tuple[str, ...]:
    """The protocol's metrics the extractor supports (the offline Inception has no IS)."""
    if extractor not in EXTRACTORS:
        raise ValueError(
            f"unknown feature extractor {extractor!r}; allowed: {sorted(EXTRACTORS)}"
        )
    return tuple(m for m in METRICS if m in EXTRACTORS[extractor].metrics)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--samples", required=True, help="sample file of imagenet_sample")
    ap.add_argument("--vq-ckpt", required=True, help="tokenizer last.ckpt")
    ap.add_argument("--vq-yaml", required=True, help="tokenizer model.yaml")
    ap.add_argument("--reference", required=True, help="reference features (.pt)")
    ap.add_argument("--feature-extractor", default="inception-v3-compat")
    ap.add_argument("--weights-path", default=None, help="extractor weights file")
    ap.add_argument("--levels", type=int, default=0, help="re-quantise (mini); 0: no")
    ap.add_argument("--protocol", default="paper", help="paper | mini | smoke")
    ap.add_argument("--batch-size", type=int, default=250, help="decode batch")
    ap.add_argument(
        "--prc-chunks",
        type=int,
        default=1,
        help="precision / recall averaged over this many chunks (paper: 5)",
    )
    ap.add_argument("--device", default="auto")
    ap.add_argument("--model", default="", help="model name recorded in the output")
    ap.add_argument("--out", required=True, help="metrics .json")
    add_run_args(ap)
    args = ap.parse_args(argv)
    setup_run(args.log, args.threads)
    t0 = time.time()
    device = resolve_device(args.device)

    s = torch.load(args.samples, map_location="cpu", weights_only=True)
    real = torch.load(args.reference, map_location="cpu", weights_only=True)
    n_real = len(next(iter(real.values())))
    check_sample_count(s["tokens"].shape[0], n_real, args.protocol)
    tok = load_tokenizer(args.vq_ckpt, args.vq_yaml, device=device).eval()
    chunks = decoded_chunks(
        tok, s["tokens"], args.batch_size, args.levels or None, device, "decode"
    )
    metrics = metrics_for(args.feature_extractor)
    fake = features_of_chunks(
        chunks, args.feature_extractor, metrics, args.weights_path
    )
    res = score_features(
        fake, real, args.feature_extractor, metrics, prc_chunks=args.prc_chunks
    )
    res.update(
        model=args.model,
        steps=int(s["steps"]),
        cfg=float(s["cfg"]),
        nfe=int(s["nfe"]),
        num_samples=int(s["tokens"].shape[0]),
    )
    write_json(args.out, res)
    write_meta(
        args.out,
        config={
            "feature_extractor": args.feature_extractor,
            "levels": args.levels,
            "protocol": args.protocol,
            "metrics": list(metrics),
            "prc_chunks": args.prc_chunks,
        },
        inputs={
            "samples": args.samples,
            "reference": args.reference,
            "tokenizer": args.vq_ckpt,
        },
        wall_time_s=time.time() - t0,
    )
    nums = ", ".join(f"{k} {v:.4g}" for k, v in res.items() if isinstance(v, float))
    print(f"wrote {args.out}: {nums} ({time.time() - t0:.0f}s)")


if __name__ == "__main__":
    main()
