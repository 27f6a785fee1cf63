"""Sample one cell: a model at N steps (step ``sample``).

    python -m di4c.cli.sample --setting cifar10 --scale mini --cell hybrid_n8_l2 \
        --card student=R/distilled/student/model.json --card teacher=R/trained/teacher/model.json \
        --data-dir R/data \
        --out results/cifar10/mini/samples/hybrid_n8_l2.pt

The setting's sampler (analytical for tauLDR, confidence for MaskGIT, ancestral for
MDLM/SDTT; :data:`di4c.samplers.SAMPLERS`) with one hybrid rule for all of them: the
cell ``MODEL_nN_lL`` runs the student for the first N - L steps and its teacher for
the last L (sony/di4c tauldr/scripts/distil_sample.py ``-n N -l L``). One seed rule for
all settings: sample i of every cell uses seed ``sample.seed + i`` with its own
generator, so a sample does not depend on the batch size or on the other samples.
Writes ``{"x": states (n, D), "seeds", "cell", "models", "nfe", "cond", "shape"}``.

Resumable (:mod:`di4c.shards`): each batch of ``sample.batch_size`` samples is a
shard written atomically to ``<out>.shards/``; a killed run loses at most the shard
in progress, and rerunning the same command computes only the missing shards, so the
sample file is bit-identical to an uninterrupted run's. The file is assembled
atomically from the shards, which are then removed.
"""

from __future__ import annotations

import hashlib
import math
import time
from pathlib import Path

import torch

from di4c.artifacts import meta_path_for, provenance, save_torch, write_json
from di4c.cli.common import (
    add_card_args,
    model_spec,
    read_cards,
    run_step,
    step_config,
    step_parser,
)
from di4c.config import ConfigError
from di4c.devices import resolve_device
from di4c.samplers import SAMPLERS, SampleRNG, hybrid_schedule
from di4c.settings import get_setting
from di4c.settings.base import Cell
from di4c.shards import ShardStore, shard_ranges


def sample_seeds(seed: int, n: int) -> list[int]:
    """The one per-sample seed rule: sample i uses ``seed + i``."""
    if n < 1:
        raise ValueError(f"num_samples must be >= 1; got {n}")
    return [seed + i for i in range(n)]


def state_dtype(num_states: int) -> torch.dtype:
    """The smallest integer dtype holding every state (uint8 pixels, int16 codes, ...)."""
    for dtype in (torch.uint8, torch.int16, torch.int32):
        if num_states - 1 <= torch.iinfo(dtype).max:
            return dtype
    return torch.int64


def cell_models(cfg: dict, cell: Cell) -> tuple[str, str | None]:
    """(model sampled first, model taking the last L steps or None) of a cell."""
    if cell.model == "hybrid":
        student = cfg["sweep"]["hybrid"]["student"]
        model_spec(cfg, student)
        return student, root_teacher(cfg, student)
    model_spec(cfg, cell.model)
    return cell.model, None


def teacher_name(cfg: dict, model: str) -> str:
    """The teacher a student's spec names (default ``teacher``), which must be a model."""
    teacher = cfg["models"][model].get("teacher", "teacher")
    if teacher not in cfg["models"]:
        raise ConfigError(
            f"models.{model}.teacher: {teacher!r} is not a model under models: "
            f"(have {sorted(cfg['models'])})"
        )
    return teacher


def root_teacher(cfg: dict, model: str) -> str:
    """The product teacher a student descends from (di4c^2: through round 1)."""
    seen = set()
    while cfg["models"][model]["source"] in ("distill", "released"):
        if model in seen:
            raise ConfigError(f"models.{model}: teacher chain loops")
        seen.add(model)
        model = teacher_name(cfg, model)
    return model


def chain_models(cfg: dict, cell: Cell) -> list[str]:
    """Every model whose spec the cell's sampling reads (its models and their chains)."""
    first, last = cell_models(cfg, cell)
    names, m = {first}, first
    while cfg["models"][m]["source"] in ("distill", "released"):
        m = teacher_name(cfg, m)
        if m in names:
            raise ConfigError(f"models.{m}: teacher chain loops")
        names.add(m)
    return sorted(names | ({last} if last else set()))


def shard_key(cfg, cell, cards, opts, shape, cond, device) -> dict:
    """What a shard depends on besides its range: a shard left by a run whose key
    differs (other config, weights, conditions or device) is never reused."""
    return {
        "sample": cfg["sample"],
        "cell": cell.record(),
        "models": {m: c.sha256 for m, c in sorted(cards.items())},
        "options": {k: str(v) for k, v in opts.items()},
        "shape": shape,
        "cond": None
        if cond is None
        else hashlib.sha256(cond.cpu().contiguous().numpy().tobytes()).hexdigest(),
        "device": str(device),
    }


def parse_cell(text: str) -> Cell:
    try:
        return Cell.parse(text)
    except ValueError as e:
        raise ConfigError(f"--cell: {e}") from None


def main(args) -> None:
    cfg = step_config(args)
    setting = get_setting(args.setting)
    cell = parse_cell(args.cell)
    device = resolve_device(cfg["device"])
    s = cfg["sample"]
    torch.manual_seed(s["seed"])
    t0 = time.time()
    first, last = cell_models(cfg, cell)
    if cell.teacher_last and last is None:
        last = root_teacher(cfg, first)  # MODEL_nN_lL: any student's hybrid
    given = read_cards(args.card)
    missing = sorted({first, last} - {None} - set(given))
    if missing:
        raise ConfigError(f"cell {cell.id} needs --card for {missing}")
    cards = {m: given[m] for m in {first, last} - {None}}
    dens = {
        m: setting.denoiser(setting.load_sampling_net(c, device), cfg, s["precision"])
        for m, c in cards.items()
    }
    if last is None:
        per_step = [dens[first]] * cell.steps
    else:
        per_step = hybrid_schedule(
            dens[first], dens[last], cell.steps, cell.teacher_last
        )
    names = [next(m for m, d in dens.items() if d is den) for den in per_step]
    process = setting.process(cfg, device, cards[first], cell)
    shape = list(setting.sample_shape(cfg, cards[first], Path(args.data_dir)))
    D = math.prod(shape)
    seeds = sample_seeds(s["seed"], s["num_samples"])
    cond_all = setting.conditions(cfg, Path(args.data_dir), len(seeds))
    sampler = SAMPLERS[s["sampler"]]
    opts = setting.sampler_options(cfg, cell)
    dtype = state_dtype(process.num_states)
    store = ShardStore(
        args.out,
        shard_key(cfg, cell, cards, opts, shape, cond_all, device),
        label="sample",
    )
    ranges = shard_ranges(len(seeds), s["batch_size"])
    shards = {r: store.load(*r) for r in ranges}
    todo = [r for r in ranges if shards[r] is None]
    if len(todo) < len(ranges):
        print(
            f"[sample] {cell.id}: resuming; {len(ranges) - len(todo)}/{len(ranges)} "
            f"shards done in {store.dir}",
            flush=True,
        )
    t_run, made = time.time(), 0
    left = sum(count for _, count in todo)
    for start, count in todo:
        rng = SampleRNG(seeds[start : start + count], device)
        cond = None if cond_all is None else cond_all[start : start + count].to(device)
        torch.manual_seed(s["seed"] + start)  # whatever draws from the global generator
        with torch.inference_mode(), setting.autocast_sampling(s["precision"], device):
            res = sampler(process, per_step, cell.steps, rng, D, cond, **opts)
        shard = {"x": res.x.cpu().to(dtype), "nfe": float(res.nfe) * count}
        store.save(start, count, shard)
        shards[(start, count)] = shard
        made += count
        rate = made / max(time.time() - t_run, 1e-9)
        print(
            f"[sample] {cell.id}: {made}/{left} samples this run, shard "
            f"{start}-{start + count - 1} of {len(seeds)} ({rate:.1f}/s, ETA "
            f"{(left - made) / rate / 60:.1f} min)",
            flush=True,
        )
    out = [shards[r]["x"] for r in ranges]
    nfe = sum(shards[r]["nfe"] for r in ranges)
    x = torch.cat(out)
    record = {
        "x": x,
        "seeds": torch.tensor(seeds),
        "cell": cell.record(),
        "models": names,
        "nfe": nfe / len(seeds),
        "cond": cond_all,
        "shape": shape,
    }
    save_torch(args.out, record)
    write_json(
        meta_path_for(args.out),
        provenance(
            config={
                "sample": s,
                "cell": cell.record(),
                "options": {k: str(v) for k, v in opts.items()},
            },
            inputs={m: Path(c.folder) / "model.json" for m, c in cards.items()},
            seeds={
                "rule": "sample i uses seed + i",
                "first": seeds[0],
                "last": seeds[-1],
            },
            wall_time_s=time.time() - t0,
            extra={
                "step_models": names,
                "nfe": record["nfe"],
                "process_dtype": str(getattr(process, "dtype", None)),
                "resumed_shards": len(ranges) - len(todo),
            },
        ),
    )
    store.remove()


def cli(argv=None) -> None:
    ap = step_parser(__doc__)
    ap.add_argument("--cell", required=True, help="MODEL_nN[_lL][_wW][_fp32|_fp64]")
    add_card_args(ap)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--out", required=True)
    run_step(main, ap, argv)


if __name__ == "__main__":
    cli()
