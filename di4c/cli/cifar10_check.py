"""Gate distillation on the mini teacher's quality-vs-steps curve (mini-twins.md, lesson 1).

    python -m di4c.cli.cifar10_check --metrics metrics/teacher.json --min-steps 32 \
        --out teacher_check.json [--enforce true]

Di4C can only show a few-step gain if the teacher still improves with N: the
check passes when FID(N) < FID(N/2) - noise for N = ``--min-steps`` (noise =
root sum of squares of the two cells' split-half spreads). The verdict and the
curve go to ``--out``; with ``--enforce true`` a failure stops the DAG before
the (expensive) distillation, with the fix in the message.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from di4c.artifacts import write_json


def check_curve(records: list[dict], min_steps: int) -> dict:
    rows = {r["steps"]: r for r in records if r["model"] == "teacher"}
    curve = {n: rows[n]["fid"] for n in sorted(rows)}
    half = min_steps // 2
    if min_steps not in rows or half not in rows:
        return {
            "passed": False,
            "reason": f"teacher rows at N={half} and N={min_steps} are needed; have {sorted(rows)}",
            "fid_by_steps": curve,
        }
    a, b = rows[half], rows[min_steps]
    noise = math.hypot(a.get("fid_spread") or 0.0, b.get("fid_spread") or 0.0)
    gain = a["fid"] - b["fid"]
    return {
        "passed": gain > noise,
        "reason": f"FID({half}) - FID({min_steps}) = {gain:.3f} vs noise {noise:.3f}",
        "fid_by_steps": curve,
        "best_steps": min(curve, key=curve.get),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--metrics", required=True, help="teacher metrics JSON (cifar10_metrics)"
    )
    ap.add_argument("--min-steps", type=int, required=True)
    ap.add_argument("--enforce", default="false", choices=["true", "false"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--log", default=None)
    args = ap.parse_args(argv)
    if args.log:
        from di4c.cli.common import setup_run

        setup_run(args.log, None)
    records = json.loads(Path(args.metrics).read_text())["records"]
    verdict = check_curve(records, args.min_steps)
    verdict["min_steps"] = args.min_steps
    print(
        f"[teacher check] {'PASS' if verdict['passed'] else 'FAIL'}: {verdict['reason']}; "
        f"FID by N: {verdict['fid_by_steps']}"
    )
    if not verdict["passed"] and args.enforce == "true":
        raise SystemExit(
            "the mini teacher stops improving before N = "
            f"{args.min_steps} steps, so Di4C has no few-step gap to close: train it longer "
            "(cifar10.mini.teacher.iters) or wider (cifar10.mini.network.ch), or set "
            "cifar10.mini.teacher_check.enforce: false to distil anyway"
        )
    write_json(args.out, verdict)


if __name__ == "__main__":
    main()
