"""Build the rehearsal's stand-ins (step ``standins``, rule ``make_standins``).

    python -m di4c.cli.standins --setting cifar10 --scale rehearsal \\
        --out-dir results/cifar10/rehearsal/standins

Writes what a paper run downloads (datasets, published teachers, released students,
metric weights) as stand-ins in the real on-disk formats (:mod:`di4c.standins`), at
the paths the scale's local-copy keys name (inside ``--out-dir``), then
``manifest.json``: every file written with its size and sha256, the seed
(``standins.seed``) and the provenance. Two builds with one seed are byte-identical.
"""

from __future__ import annotations

import time
from pathlib import Path

from di4c.artifacts import provenance, sha256_file, write_json
from di4c.cli.common import run_step, step_config, step_parser
from di4c.config import ConfigError

MANIFEST = "manifest.json"


def manifest(files: list[Path], out: Path) -> dict[str, dict]:
    """``{path relative to out: {"bytes", "sha256"}}`` of the files written."""
    entries = {}
    for f in sorted(Path(p).resolve() for p in files):
        rel = f.relative_to(out.resolve()).as_posix()
        entries[rel] = {"bytes": f.stat().st_size, "sha256": sha256_file(f)}
    return entries


def main(args) -> None:
    from di4c import standins

    cfg = step_config(args)
    spec = cfg.get("standins")
    if not spec:
        raise ConfigError(
            f"{args.setting} ({args.scale}) has no standins section: stand-ins are built "
            f"at the rehearsal scale only (workflows/config/rehearsal.yaml)"
        )
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    seed = int(spec["seed"])
    files = standins.build(args.setting, cfg, out, seed)
    outside = [
        str(f) for f in files if not Path(f).resolve().is_relative_to(out.resolve())
    ]
    if outside:
        raise ConfigError(
            f"{args.setting} ({args.scale}): stand-ins written outside {out}: {outside}; "
            "point the local-copy keys into {results_dir}/<setting>/rehearsal/standins"
        )
    entries = manifest(files, out)
    write_json(
        out / MANIFEST,
        provenance(
            config=cfg,
            seeds=seed,
            wall_time_s=time.time() - t0,
            extra={
                "setting": args.setting,
                "scale": args.scale,
                "rehearsal": True,
                "files": entries,
            },
        ),
    )
    for rel, e in entries.items():
        print(
            f"[standins] {rel}: {e['bytes']} bytes, sha256 {e['sha256'][:12]}",
            flush=True,
        )


def cli(argv=None) -> None:
    ap = step_parser(__doc__)
    ap.add_argument("--out-dir", required=True, help="the stand-ins folder")
    run_step(main, ap, argv)


if __name__ == "__main__":
    cli()
