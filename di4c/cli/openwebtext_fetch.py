"""Fetch the published OpenWebText files and write pointer files for the DAG (method.md §5.6).

    python -m di4c.cli.openwebtext_fetch teacher --round 6 --out sdtt6.json
    python -m di4c.cli.openwebtext_fetch released --round 6 --out sdtt6_di4c2.json
    python -m di4c.cli.openwebtext_fetch judge --name gpt2-large --out gpt2-large.json

Teachers: Hugging Face ``jdeschena/sdtt`` at revision
``baselines_kld_step_{10000 round}`` (``model.safetensors`` + ``config.json``);
released di4c^2 students: Zenodo record 15124163 ``sdtt{round}-di4c2.ckpt``;
judge: the Hugging Face model (``gpt2-large``). Downloads are cached
(``$DI4C_CACHE_DIR``), locked, retried and atomic (``di4c.download.fetch``); the
pointer JSON names the cached file and its sha256. With ``--pins`` (the DAG
passes ``workflows/pins/openwebtext.json``) the first download records each
file's sha256 and the commit its branch-name revision resolved to, and later
downloads must match them (:mod:`di4c.pins`). ``--local`` points at a copy
downloaded elsewhere; offline without one, the error names the file and the
config key to set.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from di4c.artifacts import write_meta
from di4c.cli.common import add_run_args, setup_run
from di4c.cli.openwebtext_common import write_pointer
from di4c.download import MissingWeightsError, RemoteFile, cache_dir
from di4c.pins import fetch_pinned
from di4c.teachers.sdtt import di4c2_student_file, sdtt_config_file, sdtt_weights_file


def _keyed(rf: RemoteFile, key: str) -> RemoteFile:
    """The published file, with errors naming this section's config key."""
    return replace(rf, config_key=f"openwebtext.paper.local.{key}")


def cmd_teacher(args) -> dict:
    rf = _keyed(sdtt_weights_file(args.round), f"sdtt{args.round}")
    if args.local:
        weights = fetch_pinned(rf, args.local, args.pins)
        sibling = Path(args.local).parent / "config.json"
        config = sibling if sibling.is_file() else None
    else:
        weights = fetch_pinned(rf, None, args.pins)
        config = fetch_pinned(
            _keyed(sdtt_config_file(args.round), f"sdtt{args.round}"), None, args.pins
        )
    return dict(
        target=weights, config=str(config) if config else None, source=rf.source
    )


def cmd_released(args) -> dict:
    rf = _keyed(di4c2_student_file(args.round), f"sdtt{args.round}_di4c2")
    return dict(target=fetch_pinned(rf, args.local, args.pins), source=rf.source)


def cmd_judge(args) -> dict:
    if args.local:
        folder = Path(args.local)
        if not (folder / "config.json").is_file():
            raise MissingWeightsError(
                f"{folder}: no config.json; point --local at a saved HF model folder"
            )
        return dict(target=folder, source=f"local:{folder}")
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(
            repo_id=args.name,
            allow_patterns=[
                "config.json",
                "generation_config.json",
                "model.safetensors",
            ],
            cache_dir=str(cache_dir() / "hf"),
        )
    except Exception as e:
        raise MissingWeightsError(
            f"could not download the judge {args.name!r} from Hugging Face ({type(e).__name__}: "
            f"{e}). This machine may be offline: download it elsewhere and set config key "
            "openwebtext.paper.local.judge to its folder."
        ) from e
    # the snapshot folder is named by the commit it holds: provenance, not a pin
    return dict(
        target=Path(folder), source=f"hf://{args.name}", commit=Path(folder).name
    )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, fn in (
        ("teacher", cmd_teacher),
        ("released", cmd_released),
        ("judge", cmd_judge),
    ):
        p = sub.add_parser(name)
        if name == "judge":
            p.add_argument("--name", default="gpt2-large")
        else:
            p.add_argument("--round", type=int, required=True, choices=[6, 7])
        p.add_argument(
            "--local", default=None, help="a local copy instead of downloading"
        )
        p.add_argument("--out", required=True, help="pointer JSON")
        if name != "judge":
            p.add_argument(
                "--pins",
                default=None,
                help="pin file recording the sha256/commit of each download (di4c.pins)",
            )
        add_run_args(p)
        p.set_defaults(func=fn)
    args = ap.parse_args(argv)
    setup_run(args.log, args.threads)
    t0 = time.time()
    info = args.func(args)
    target = Path(info.pop("target"))
    if target.is_dir():
        from di4c.artifacts import write_json

        write_json(args.out, {"path": str(target.resolve()), **info})
    else:
        write_pointer(args.out, target, **info)
    write_meta(
        args.out,
        config={k: v for k, v in vars(args).items() if k != "func"},
        wall_time_s=time.time() - t0,
    )
    print(f"[fetch] {args.cmd}: {target} -> {args.out}", flush=True)


if __name__ == "__main__":
    main()
