"""Shared wiring of the CIFAR-10 slice (paper Sec. 5.1, Table 1; method.md §3) and its mini twin.

- :class:`ProcessConfig`: the tauLDR Gaussian-target rate process (paper values
  S = 256, rate_sigma = 6, Q_sigma = 512, time_base = 3, time_exponential = 100).
- Checkpoint provenance: every network file we write is in the authors'
  container (:func:`di4c.teachers.tauldr.save_checkpoint`) with a
  ``<stem>.meta.json`` holding ``net_config`` and ``process``; a file without one
  (a published checkpoint) is read with the paper configuration.
- :func:`load_denoiser`: teacher / student files ->
  :class:`~di4c.networks.tauldr_unet.TauLDRDenoiser` on EMA weights, frozen,
  eval mode.
- :func:`generate`: the analytical sampler (linspace(1, 0.01, N), final argmax,
  NFE = N; method.md §3.1) over seeded chunks, with a per-step model list for
  the hybrid (student for i < N - L, then the teacher; §3.4).
- Sample files: ``{"runs": [...], "seeds", "S", "image_shape"}`` with pixel
  levels as uint8 (N, C, H, W), one run per (steps, teacher_last).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from di4c.artifacts import meta_path_for
from di4c.networks.tauldr_unet import TauLDRDenoiser, TauLDRUNetConfig
from di4c.processes.gaussian_rate import GaussianRateProcess
from di4c.samplers import SampleRNG, analytical_sample, hybrid_schedule
from di4c.teachers.tauldr import load_student_file, load_teacher_file

T_MIN = 0.01  # the tauLDR/Di4C sampling grid ends at t = 0.01 (method.md §3.1)


@dataclass(frozen=True)
class ProcessConfig:
    """Gaussian-target rate process (method.md §3.1); defaults are the paper's."""

    S: int = 256
    rate_sigma: float = 6.0
    Q_sigma: float = 512.0
    time_base: float = 3.0
    time_exponential: float = 100.0

    def build(self, device: str | torch.device = "cpu") -> GaussianRateProcess:
        return GaussianRateProcess(
            device=device,
            S=self.S,
            rate_sigma=self.rate_sigma,
            Q_sigma=self.Q_sigma,
            time_base=self.time_base,
            time_exponential=self.time_exponential,
        )


def net_config_to_dict(cfg: TauLDRUNetConfig) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}


def net_config_from_dict(d: dict) -> TauLDRUNetConfig:
    d = dict(d)
    for k in ("image_shape", "ch_mult", "data_min_max"):
        if d.get(k) is not None:
            d[k] = tuple(d[k])
    return TauLDRUNetConfig(**d)


def checkpoint_info(path: str | os.PathLike) -> tuple[TauLDRUNetConfig, ProcessConfig]:
    """Network and process configuration of a checkpoint (paper values if it has no meta)."""
    meta = meta_path_for(path)
    if meta.is_file():
        m = json.loads(meta.read_text())
        if "net_config" in m and "process" in m:
            return net_config_from_dict(m["net_config"]), ProcessConfig(**m["process"])
    return TauLDRUNetConfig.paper_teacher(), ProcessConfig()


def load_denoiser(
    path: str | os.PathLike, role: str, device: str | torch.device = "cpu"
) -> tuple[TauLDRDenoiser, TauLDRUNetConfig, ProcessConfig]:
    """A frozen teacher (``role="teacher"``) or student on EMA weights, as a denoiser."""
    loaders = {"teacher": load_teacher_file, "student": load_student_file}
    if role not in loaders:
        raise ValueError(f"role must be one of {sorted(loaders)}; got {role!r}")
    cfg, proc = checkpoint_info(path)
    net = loaders[role](path, config=cfg, weights="ema", device=device)
    return TauLDRDenoiser(net), cfg, proc


def sample_seeds(num_samples: int, seed: int) -> list[int]:
    """Per-sample seeds seed*10**7 + i: sample i is the same at any batch size (SampleRNG)."""
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1; got {num_samples}")
    return [seed * 10_000_000 + i for i in range(num_samples)]


@torch.inference_mode()
def generate(
    process,
    student,
    teacher,
    steps: int,
    teacher_last: int,
    seeds: list[int],
    image_shape: tuple[int, int, int],
    batch_size: int = 500,
    device: str | torch.device = "cpu",
    label: str = "sample",
) -> tuple[Tensor, int, list[str]]:
    """Sample len(seeds) images with N = ``steps`` NFEs; the last ``teacher_last`` by the teacher.

    ``student=None`` means a teacher-only run (``teacher_last`` is then N);
    ``teacher=None`` a student-only run (``teacher_last`` must be 0). Returns
    (levels uint8 (n, C, H, W), nfe, per-step model names).
    """
    if student is None:
        denoisers, names = [teacher] * steps, ["teacher"] * steps
    elif teacher is None:
        if teacher_last:
            raise ValueError("teacher_last > 0 needs a teacher")
        denoisers, names = [student] * steps, ["student"] * steps
    else:
        denoisers = hybrid_schedule(student, teacher, steps, teacher_last)
        names = ["student" if d is student else "teacher" for d in denoisers]
    D = image_shape[0] * image_shape[1] * image_shape[2]
    out = []
    t0 = time.time()
    for i in range(0, len(seeds), batch_size):
        rng = SampleRNG(seeds[i : i + batch_size], device=device)
        res = analytical_sample(
            process, denoisers, steps, rng, D, t_min=T_MIN, names=names
        )
        out.append(res.x.to(torch.uint8).cpu())
        done = i + len(rng)
        rate = done / max(time.time() - t0, 1e-9)
        print(
            f"[{label}] N={steps} L={teacher_last}: {done}/{len(seeds)} samples "
            f"({rate:.1f}/s, ETA {(len(seeds) - done) / rate / 60:.1f} min)",
            flush=True,
        )
    levels = torch.cat(out).view(len(seeds), *image_shape)
    return levels, steps, names


def read_samples(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no sample file; run the cifar10_sample step first"
        )
    d = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(d, dict) or "runs" not in d:
        raise ValueError(f"{path}: not a CIFAR-10 slice sample file (no 'runs')")
    return d
