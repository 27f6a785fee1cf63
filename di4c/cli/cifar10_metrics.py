"""Score CIFAR-10 slice samples: FID / IS (torch-fidelity) and clean-fid FID (method.md §3.5).

    python -m di4c.cli.cifar10_metrics --samples samples/teacher.pt ... \
        --reference-data results/cifar10_mini/data.pt --feature-extractor digit-classifier \
        --weights-path results/cifar10_mini/classifier.pt --protocol mini --out m.json
    python -m di4c.cli.cifar10_metrics --samples samples/student_10.pt \
        --reference-cifar10 data/cifar10 --feature-extractor inception-v3-compat \
        --clean-fid-extractor inception --protocol paper --out m.json

Reference: the diffusion training images (the mini twin's training split, or
CIFAR-10 *train* at paper scale, as tauLDR). Per run: the metrics asked for,
split-half spreads (|half 1 - half 2| of the generated set) as the noise of
the cell, and clean-fid's FID when ``--clean-fid-extractor`` is set. The
protocol's minimum sample count is enforced (paper: 50,000).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from di4c.artifacts import write_json, write_meta
from di4c.cli.cifar10_common import read_samples
from di4c.cli.common import add_run_args, setup_run
from di4c.data.images import levels_to_uint8, load_splits
from di4c.metrics.image_quality import (
    EXTRACTORS,
    PROTOCOLS,
    check_sample_count,
    clean_fid,
    clean_fid_features,
    extract_features,
    metrics_from_features,
    split_half_spread,
)

WEIGHTS_KEY = "cifar10.paper.metrics.weights_path"


def reference_images(args):
    if bool(args.reference_data) == bool(args.reference_cifar10):
        raise SystemExit("give exactly one of --reference-data / --reference-cifar10")
    if args.reference_data:
        return load_splits(args.reference_data).uint8("train"), args.reference_data
    from di4c.data.cifar10 import load_cifar10

    images, _ = load_cifar10(args.reference_cifar10, train=True)
    return images, f"cifar10-train:{args.reference_cifar10}"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--samples", nargs="+", required=True, help="sample files (cifar10_sample)"
    )
    ap.add_argument(
        "--reference-data", default=None, help="mini: image-splits file (train split)"
    )
    ap.add_argument(
        "--reference-cifar10", default=None, help="paper: CIFAR-10 root (torchvision)"
    )
    ap.add_argument(
        "--feature-extractor", default="digit-classifier", choices=sorted(EXTRACTORS)
    )
    ap.add_argument(
        "--weights-path", default=None, help="extractor weights (digit classifier file)"
    )
    ap.add_argument("--metrics", nargs="+", default=["fid", "isc"])
    ap.add_argument("--protocol", default="mini", choices=sorted(PROTOCOLS))
    ap.add_argument("--split-half", default="true", choices=["true", "false"])
    ap.add_argument(
        "--clean-fid-extractor",
        default="none",
        choices=["none", "inception", "fidhelper"],
        help="clean-fid second FID column: official download, offline copy, or off",
    )
    ap.add_argument(
        "--clean-fid-max-samples", type=int, default=0, help="0 = all samples"
    )
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--out", required=True, help="metrics JSON")
    add_run_args(ap)
    args = ap.parse_args(argv)
    setup_run(args.log, args.threads)
    t0 = time.time()
    real, ref_name = reference_images(args)
    fe = args.feature_extractor
    try:
        feats_real = extract_features(
            real,
            fe,
            args.metrics,
            weights_path=args.weights_path,
            batch_size=args.batch_size,
        )
    except OSError as e:  # URLError: torch-fidelity's Inception download failed
        if fe != "inception-v3-compat" or args.weights_path:
            raise
        raise SystemExit(
            f"could not load torch-fidelity's Inception weights ({type(e).__name__}: "
            f"{e}); this machine may be offline. Download "
            "weights-inception-2015-12-05-6726825d.pth (torch-fidelity's release "
            f"assets) elsewhere and set config key '{WEIGHTS_KEY}' to its path."
        ) from e
    cf_real = None
    records = []
    for path in args.samples:
        d = read_samples(path)
        for run in d["runs"]:
            fake = levels_to_uint8(run["levels"].long(), d["S"])
            check_sample_count(len(fake), len(real), args.protocol)
            f = extract_features(
                fake,
                fe,
                args.metrics,
                weights_path=args.weights_path,
                batch_size=args.batch_size,
            )
            rec = {
                "model": d["model"],
                "steps": run["steps"],
                "teacher_last": run["teacher_last"],
                "nfe": run["nfe"],
                "samples_file": str(path),
            }
            rec.update(metrics_from_features(f, feats_real, fe, args.metrics))
            if args.split_half == "true":
                spread = split_half_spread(f, feats_real, fe, args.metrics)
                rec.update(
                    {
                        f"{k}_spread": v
                        for k, v in spread.items()
                        if not k.endswith("_std")
                    }
                )
            if args.clean_fid_extractor != "none":
                n = args.clean_fid_max_samples or len(fake)
                if cf_real is None:
                    cf_real = clean_fid_features(
                        real[:n] if args.clean_fid_max_samples else real,
                        feature_extractor=args.clean_fid_extractor,
                    )
                rec["fid_clean"] = clean_fid(
                    fake[:n],
                    cf_real,
                    feature_extractor=args.clean_fid_extractor,
                    protocol=None,
                )
                rec["fid_clean_samples"] = n
            print(
                f"[metrics] {rec['model']} N={rec['steps']} L={rec['teacher_last']}: "
                + " ".join(
                    f"{k} {v:.4g}" for k, v in rec.items() if isinstance(v, float)
                ),
                flush=True,
            )
            records.append(rec)
    write_json(
        args.out,
        {"reference": ref_name, "num_reference": len(real), "records": records},
    )
    write_meta(
        args.out,
        config=vars(args) | {"log": None},
        inputs={f"samples_{i}": p for i, p in enumerate(args.samples)}
        | ({"weights": args.weights_path} if args.weights_path else {}),
        seeds={"torch_fidelity_rng_seed": 2020},
        wall_time_s=time.time() - t0,
        extra={
            "reference": ref_name,
            "reference_mean_pixel": float(np.asarray(real.float().mean())),
        },
    )
    print(f"wrote {args.out}: {len(records)} records in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
