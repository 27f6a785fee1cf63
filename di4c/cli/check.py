"""Gate distillation on the teacher's quality-vs-steps curve (step ``check``).

    python -m di4c.cli.check --setting cifar10 --scale mini --metrics M1.json M2.json \
        --out results/cifar10/mini/teacher_check.json

Di4C can show a few-step gain only where the teacher still improves with N
(docs/cpu-twins.md#teacher-keeps-improving): the check passes when the teacher at N = ``teacher_check.min_steps``
is better than at N / 2 beyond the noise (the one rule of :mod:`di4c.analysis`) in the
layout's primary metric. With ``enforce`` a failure stops the DAG before the
(expensive) distillation, naming the fix.
"""

from __future__ import annotations

from di4c.analysis import compare
from di4c.artifacts import ArtifactError, read_json_artifact, write_json
from di4c.cli.common import run_step, step_config, step_parser
from di4c.config import ConfigError
from di4c.tables import get_layout


def check_curve(records: list[dict], metric: str, min_steps: int) -> dict:
    rows = {r["steps"]: r for r in records}
    curve = {n: rows[n][metric] for n in sorted(rows)}
    half = min_steps // 2
    if min_steps not in rows or half not in rows:
        return {
            "passed": False,
            "reason": f"teacher cells at N={half} and N={min_steps} are needed; have {sorted(rows)}",
            "curve": curve,
        }
    verdict = compare(rows[min_steps], rows[half], metric)
    return {
        "passed": verdict == "better",
        "reason": f"{metric} at N={min_steps} vs N={half}: {verdict}",
        "curve": curve,
    }


def main(args) -> None:
    cfg = step_config(args)
    check = cfg.get("teacher_check")
    if not check:
        raise ConfigError(f"{args.setting}.{args.scale}: no teacher_check configured")
    metric = get_layout(args.setting).primary
    records = [read_json_artifact(p, "metric record", "score") for p in args.metrics]
    for p, r in zip(args.metrics, records):
        if not isinstance(r, dict) or "steps" not in r or metric not in r:
            raise ArtifactError(
                f"{p}: not a {args.setting} metric record (no 'steps' / {metric!r}); "
                "delete it and rerun the score rule"
            )
    verdict = check_curve(records, metric, check["min_steps"]) | {"config": check}
    print(f"[check] {'PASS' if verdict['passed'] else 'FAIL'}: {verdict['reason']}")
    if not verdict["passed"] and check["enforce"]:
        raise ConfigError(
            f"the {args.setting} {args.scale} teacher stops improving before N = "
            f"{check['min_steps']} steps, so Di4C has no few-step gap to close: train it "
            f"longer (models.teacher.train.iters) or wider (models.teacher.network), or "
            f"set teacher_check.enforce: false to distil anyway"
        )
    write_json(args.out, verdict)


def cli(argv=None) -> None:
    ap = step_parser(__doc__)
    ap.add_argument("--metrics", nargs="+", required=True, help="teacher cell records")
    ap.add_argument("--out", required=True)
    run_step(main, ap, argv)


if __name__ == "__main__":
    cli()
