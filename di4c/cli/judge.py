"""Train the OpenWebText mini twin's judge LM (step ``judge``).

    python -m di4c.cli.judge --setting openwebtext --scale mini --data-dir D --out-dir M

Stands in for GPT-2 Large at character level: a small causal LM of the GPT-2
architecture (``transformers`` ``GPT2LMHeadModel``), trained on the ``judge`` texts
only, so generative perplexity runs through the same code path as the paper's
(:mod:`di4c.metrics.genppl`). Saved as a Hugging Face folder (``config.json`` +
``model.safetensors``). Configuration: ``models.judge.network`` and ``.train``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch

from di4c.artifacts import atomic_path, provenance
from di4c.cli.common import model_spec, run_step, step_config, step_parser
from di4c.cli.teacher import loop_config
from di4c.metrics.genppl import genppl_summary, per_sample_nll
from di4c.models import ModelCard, write_card
from di4c.networks.mini_text import build_judge, judge_config
from di4c.settings.openwebtext import OpenWebText
from di4c.train import train


def main(args) -> None:
    cfg = step_config(args)
    spec = model_spec(cfg, "judge", "train")
    n, tc = spec["network"], loop_config(spec["train"])
    t0 = time.time()
    torch.manual_seed(tc.seed)  # dropout draws from the global generator
    data = OpenWebText.read_data(Path(args.data_dir), ("judge",))
    x = data["judge"]
    model = build_judge(
        judge_config(
            OpenWebText.vocab_size(data),
            x.shape[1],
            n["n_embd"],
            n["n_layer"],
            n["n_head"],
            n["dropout"],
        ),
        tc.seed,
    )
    out = Path(args.out_dir)
    train(
        model,
        lambda b, g: model(input_ids=b["x0"], labels=b["x0"]).loss,
        {"x0": x},
        tc,
        out / "run",
        "judge",
    )
    model.eval()
    ref = genppl_summary(
        per_sample_nll(model, data["reference"][:2000], batch_size=256)
    )
    print(f"[judge] reference-text perplexity {ref['gen_ppl']:.3f}", flush=True)
    tmp_dir = out / ".judge_tmp"
    model.save_pretrained(tmp_dir)  # config.json + model.safetensors, moved atomically
    for name in ("config.json", "model.safetensors"):
        with atomic_path(out / name) as tmp:
            (tmp_dir / name).replace(tmp)
    shutil.rmtree(tmp_dir)
    card = ModelCard(
        name="judge",
        setting=args.setting,
        kind="judge",
        source="train",
        files={"weights": "model.safetensors", "config": "config.json"},
        extra={"reference_ppl": ref["gen_ppl"]},
    )
    write_card(
        out,
        card,
        provenance=provenance(
            config=spec,
            inputs={"data": Path(args.data_dir) / "data.json"},
            seeds={"train": tc.seed},
            wall_time_s=time.time() - t0,
        ),
    )


def cli(argv=None) -> None:
    ap = step_parser(__doc__, "openwebtext")
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--out-dir", required=True)
    run_step(main, ap, argv)


if __name__ == "__main__":
    cli()
