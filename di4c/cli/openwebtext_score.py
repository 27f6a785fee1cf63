"""Score sample files: generative perplexity, unigram entropy, optional MAUVE (method.md §5.5).

    python -m di4c.cli.openwebtext_score --samples s4.pt s8.pt --judge judge/ --out metrics.json

The judge is loaded once: a local folder (a file inside it is accepted), a
pointer ``.json`` written by the fetch rule, or a Hugging Face model id
(``gpt2-large`` at paper scale). Gen PPL follows the authors exactly (raw ids,
no BOS, first token unscored, fp32, batch 8 at paper scale); the record also
holds its delta-method standard error and the two split-half values, and the
same for the mean unigram entropy. MAUVE (off by default) compares judge
features of the first ``--mauve-max-len`` tokens with those of a reference
sample file.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from di4c.artifacts import sha256_file, write_json, write_meta
from di4c.cli.common import _parse_bool as parse_bool
from di4c.cli.common import add_run_args, setup_run
from di4c.cli.openwebtext_common import read_samples
from di4c.devices import resolve_device
from di4c.metrics.entropy import entropy_summary
from di4c.metrics.genppl import genppl_summary, load_judge, per_sample_nll

SAMPLE_KEYS = (
    "model",
    "steps",
    "nfe",
    "noise_dtype",
    "weights_kind",
    "precision",
    "model_steps",
)


def judge_location(arg: str) -> str:
    """Folder or model id of the judge named by ``arg`` (file in a folder, pointer json, id)."""
    p = Path(arg)
    if p.suffix == ".json" and p.is_file():
        return json.loads(p.read_text())["path"]
    if p.is_file():
        return str(p.parent)
    return arg


def score_file(
    judge, path: Path, batch_size: int, mauve_ref=None, mauve_max_len=100
) -> dict:
    s = read_samples(path)
    ids = s["ids"]
    rec = {k: s.get(k) for k in SAMPLE_KEYS if k in s}
    rec.update(
        n_samples=int(ids.shape[0]),
        length=int(ids.shape[1]),
        sample_file=str(path),
        sample_sha256=sha256_file(path),
    )
    rec.update(genppl_summary(per_sample_nll(judge, ids, batch_size, progress=True)))
    rec.update(entropy_summary(ids))
    if mauve_ref is not None:
        from di4c.metrics.mauve import compute_mauve, featurize

        rec.update(
            compute_mauve(featurize(judge, ids, mauve_max_len, batch_size), mauve_ref)
        )
    return rec


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--samples", nargs="+", required=True)
    ap.add_argument(
        "--judge",
        required=True,
        help="judge folder / file in it / pointer .json / HF id",
    )
    ap.add_argument("--out", required=True, help="metrics JSON (a list of records)")
    ap.add_argument("--batch-size", type=int, default=8, help="judge batch (paper: 8)")
    ap.add_argument(
        "--mauve",
        type=parse_bool,
        default=False,
        help="also compute MAUVE (paper: off)",
    )
    ap.add_argument(
        "--mauve-reference", default=None, help="sample file of real text for MAUVE"
    )
    ap.add_argument("--mauve-max-len", type=int, default=100)
    ap.add_argument("--device", default="auto")
    add_run_args(ap)
    args = ap.parse_args(argv)
    setup_run(args.log, args.threads)
    if args.mauve and not args.mauve_reference:
        ap.error("--mauve true needs --mauve-reference <sample file of real text>")
    t0 = time.time()
    judge = load_judge(judge_location(args.judge), resolve_device(args.device))
    ref = None
    if args.mauve:
        from di4c.metrics.mauve import featurize

        ref = featurize(
            judge,
            read_samples(args.mauve_reference)["ids"],
            args.mauve_max_len,
            args.batch_size,
        )
    records = []
    for path in args.samples:
        rec = score_file(judge, Path(path), args.batch_size, ref, args.mauve_max_len)
        print(
            f"[score] {rec.get('model')} N={rec.get('steps')}: gen PPL {rec['gen_ppl']:.3f} "
            f"(+-{rec['gen_ppl_se']:.3f}), entropy {rec['entropy']:.4f} (+-{rec['entropy_se']:.4f})",
            flush=True,
        )
        records.append(rec)
    write_json(args.out, records)
    write_meta(
        args.out,
        config={k: v for k, v in vars(args).items() if k != "samples"},
        inputs={f"samples_{i}": p for i, p in enumerate(args.samples)},
        wall_time_s=time.time() - t0,
        extra={"judge": judge_location(args.judge)},
    )


if __name__ == "__main__":
    main()
