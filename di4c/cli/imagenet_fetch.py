"""Fetch the published ImageNet-setting weights (method.md §4.6) and check their containers.

    python -m di4c.cli.imagenet_fetch --out-dir results/imagenet/paper/weights \
        [--teacher-ckpt F] [--vqgan-ckpt F] [--vqgan-yaml F] [--student-ckpt F] \
        [--hf-revision REV]

- teacher: Hugging Face ``llvictorll/Maskgit-pytorch``
  ``pretrained_maskgit/MaskGIT/MaskGIT_ImageNet_256.pth``;
- tokenizer: the same repo's ``pretrained_maskgit/VQGAN/last.ckpt`` + ``model.yaml``;
- released Di4C student (``di4c-d`` of Fig. 3): Zenodo record 15124163,
  ``maskgit-di4c-d.pth`` (with ``--student``).

Each file comes from a local copy when its flag (config key
``imagenet.paper.weights.<name>``) is set, else from the cache / a locked,
atomic, retried download (:func:`di4c.download.fetch`) of the Hugging Face repo
at ``--hf-revision`` (config key ``imagenet.paper.weights.hf_revision``; a
commit hash pins it); with ``--pins`` (the DAG passes
``workflows/pins/imagenet.json``) the first download records each file's sha256
and the commit ``main`` resolved to, and later downloads must match them
(:mod:`di4c.pins`); offline, the error names the file and the key. Every file is opened with the container readers
(a wrong or truncated file fails here, not hours later), then linked into
``--out-dir`` as ``teacher.pth``, ``vqgan/last.ckpt``, ``vqgan/model.yaml``,
``released.pth``; ``weights.meta.json`` records sources and sha256.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

from di4c.artifacts import atomic_path, sha256_file, write_meta
from di4c.cli.common import add_run_args, setup_run
from di4c.pins import fetch_pinned
from di4c.teachers import maskgit as mg

# output name -> (published file, config key for a local copy, container check)
FILES = {
    "teacher.pth": (mg.TEACHER_FILE, "teacher_ckpt", mg.read_transformer_checkpoint),
    "vqgan/last.ckpt": (mg.VQGAN_CKPT_FILE, "vqgan_ckpt", mg.read_vqgan_checkpoint),
    "vqgan/model.yaml": (mg.VQGAN_YAML_FILE, "vqgan_yaml", mg.read_vqgan_yaml),
    "released.pth": (mg.STUDENT_FILE, "student_ckpt", mg.read_transformer_checkpoint),
}
OPTIONAL = {"released.pth"}


def link(src: Path, dst: Path) -> None:
    """Symlink ``dst`` -> ``src`` atomically (replacing an older link)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dst) as tmp:
        tmp.unlink()
        os.symlink(src.resolve(), tmp)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out-dir", required=True)
    for _, key, _ in FILES.values():
        ap.add_argument("--" + key.replace("_", "-"), default=None, help="local copy")
    ap.add_argument(
        "--hf-revision",
        default=mg.HF_REVISION,
        help="revision (commit hash, branch, tag) of the Hugging Face repo",
    )
    ap.add_argument("--student", action="store_true", help="also the released student")
    ap.add_argument(
        "--pins",
        default=None,
        help="pin file: downloads must match the sha256/commit it records, and "
        "files not in it yet are pinned there (di4c.pins)",
    )
    add_run_args(ap)
    args = ap.parse_args(argv)
    setup_run(args.log, args.threads)
    t0 = time.time()
    out = Path(args.out_dir)
    record = {}
    for name, (remote, key, check) in FILES.items():
        if name in OPTIONAL and not args.student:
            continue
        rf = dataclasses.replace(
            mg.at_revision(remote, args.hf_revision),
            config_key=f"imagenet.paper.weights.{key}",
        )
        path = fetch_pinned(rf, getattr(args, key), args.pins)
        check(path)
        link(path, out / name)
        record[name] = {
            "source": rf.source,
            "path": str(path),
            "sha256": sha256_file(path),
        }
        print(f"[fetch] {name} <- {path}", flush=True)
    write_meta(
        out / "weights.json",
        config={"student": args.student, "hf_revision": args.hf_revision},
        wall_time_s=time.time() - t0,
        extra={"files": record},
    )


if __name__ == "__main__":
    main()
