"""Fetch the published CIFAR-10 checkpoints into the results tree (method.md §3.6).

    python -m di4c.cli.cifar10_fetch --what teacher --local "" --out weights/teacher.pt
    python -m di4c.cli.cifar10_fetch --what released_student --local tldr-di4c.pt --out ...

``teacher``: tauLDR ``ckpt_0001999999.pt`` (the Dropbox folder linked in the
authors' README, extracted); ``released_student``: the Di4C student
``tldr-di4c.pt`` (Zenodo record 15124163). ``--local`` points at a copy the
user already has (config keys ``cifar10.paper.teacher_ckpt`` /
``student_ckpt``); otherwise :func:`di4c.download.fetch` downloads it (pinned,
locked, atomic, retried; offline it raises an error naming the config key),
and with ``--pins`` the download must match the sha256 recorded at its first
fetch (:mod:`di4c.pins`).
The file is hard-linked (or copied) to ``--out``, read once to validate the
container, and gets a ``.meta.json`` with its sha256.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time

from di4c.artifacts import atomic_path, write_meta
from di4c.pins import fetch_pinned
from di4c.teachers.tauldr import (
    DI4C_STUDENT_FILE,
    TAULDR_TEACHER_FILE,
    read_checkpoint,
    teacher_checkpoint_path,
)


def _teacher(local: str, pins: str | None):
    return teacher_checkpoint_path(
        local or None, remote=TAULDR_TEACHER_FILE, pin_file=pins
    )


def _released_student(local: str, pins: str | None):
    return fetch_pinned(DI4C_STUDENT_FILE, local or None, pins)


SOURCES = {"teacher": _teacher, "released_student": _released_student}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--what", required=True, choices=sorted(SOURCES))
    ap.add_argument("--local", default="", help="a local copy (empty: download)")
    ap.add_argument("--out", required=True)
    ap.add_argument(
        "--pins",
        default=None,
        help="pin file recording the sha256 of each download (di4c.pins)",
    )
    ap.add_argument("--log", default=None)
    args = ap.parse_args(argv)
    if args.log:
        from di4c.cli.common import setup_run

        setup_run(args.log, None)
    t0 = time.time()
    src = SOURCES[args.what](args.local, args.pins)
    ckpt = read_checkpoint(src)  # fails with a clear message on a wrong or damaged file
    want_student = args.what == "released_student"
    if ckpt.is_student != want_student:
        found = "a Di4C student" if ckpt.is_student else "a teacher (product)"
        key = (DI4C_STUDENT_FILE if want_student else TAULDR_TEACHER_FILE).config_key
        raise SystemExit(
            f"{src}: expected a {args.what} checkpoint, found {found} checkpoint; "
            f"check config key '{key}' (teacher_ckpt and student_ckpt swapped?)"
        )
    with atomic_path(args.out) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
    write_meta(
        args.out,
        config=vars(args) | {"log": None},
        inputs={"source": src},
        wall_time_s=time.time() - t0,
        extra={"n_iter": ckpt.n_iter, "has_ema": ckpt.ema is not None},
    )
    print(f"{args.what}: {src} -> {args.out}")


if __name__ == "__main__":
    main()
