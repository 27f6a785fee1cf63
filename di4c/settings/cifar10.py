"""CIFAR-10 (paper Sec. 5.1, Table 1): tauLDR teacher, Di4C student, analytical sampler.

Paper scale: the tauLDR UNet teacher (andrew-cr/tauLDR, ``ckpt_0001999999.pt``) on
CIFAR-10 train with random flips, the Gaussian-target rate process with S = 256,
the analytical sampler on linspace(1, 0.01, N) with a final argmax (NFE = N) and
the hybrid ``-n N -l L``; FID / IS with the Inception network against CIFAR-10
train. Mini scale: the same network class, process, sampler and loss on packaged
MNIST digits at S grey levels, with FID / IS under a digit classifier the DAG
trains (docs/cpu-twins.md).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from di4c.data.images import (
    ImageDataConfig,
    levels_to_uint8,
    load_image_splits,
    load_splits,
    save_splits,
)
from di4c.models import ModelCard
from di4c.networks.tauldr_unet import TauLDRDenoiser, TauLDRUNetConfig
from di4c.processes.gaussian_rate import GaussianRateProcess
from di4c.settings.base import C, Setting
from di4c.settings.images import ImageScoring

TAULDR = "sony/di4c tauldr/config/train/distil_cifar10.py"
DISTIL = "sony/di4c tauldr/config/train/distil_cifar10.py"
TRAIN = "sony/di4c tauldr/train_distil.py"
LOSS = "sony/di4c tauldr/lib/losses/losses.py: DistilChain.calc_loss"
SAMPLE = "sony/di4c tauldr/scripts/distil_sample.py"
CLEAN_FID_KEY = "clean_fid"  # clean-fid features of the reference in features.pt

PAPER = {
    "device": "auto",
    "threads": 8,
    "data": {
        "source": C("cifar10", "paper Sec. 5.1: CIFAR-10 train"),
        "root": "data/cifar10",  # torchvision CIFAR-10 folder (downloaded when missing)
        # data.check_md5 (default true): compare the batches with the published md5s
    },
    "process": {  # tauLDR Gaussian-target rate matrix (paper Sec. 5.1)
        "S": C(256, f"{TAULDR}: data.S"),
        "rate_sigma": C(6.0, f"{TAULDR}: model.rate_sigma"),
        "Q_sigma": C(512.0, f"{TAULDR}: model.Q_sigma"),
        "time_base": C(3.0, f"{TAULDR}: model.time_base"),
        "time_exponential": C(100.0, f"{TAULDR}: model.time_exponential"),
    },
    "models": {
        "teacher": {
            "source": C(
                "published", "sony/di4c tauldr/README.md: tauLDR CIFAR-10 checkpoint"
            ),
            "local": "",  # a local ckpt_0001999999.pt; empty: the Dropbox folder
        },
        "student": {"source": "distill", "teacher": "teacher"},
        "released_student": {
            "source": C("released", "Zenodo record 15124163: tldr-di4c.pt"),
            "local": "",
        },
    },
    "distill": {
        "K": C(16, f"{TRAIN}: distil_batch_size"),
        "batch_x": C(8, f"{TRAIN}: data.batch_size = 128 // distil_batch_size"),
        "time_sampler": "tauldr",
        "time_kwargs": {
            "min_time": C(0.01, f"{DISTIL}: loss.min_time"),
            "min_step": C(1e-3, LOSS),
            "max_step": C(1e-2, LOSS),
        },
        "distil_mode": C("separate", f"{LOSS}, own x_delta per copy"),
        "distil_weight": C(1.0, LOSS),
        "distil_min_time": C(0.01, LOSS),
        "distil_max_time": C(0.01, LOSS),
        "alpha_const": C(1.0, f"{LOSS}, time_schedule sigmoid, no constant"),
        "alpha_schedule": C("sigmoid", f"{TRAIN}: time_schedule"),
        "teacher_step": C(
            "analytical", "paper Sec. 5.1: the teacher's analytical step"
        ),
        "target_train_mode": C(True, f"{LOSS}, target pass in train mode"),
        "optimizer": C("adam", f"{DISTIL}: optimizer.name"),
        "lr": C(2e-4, f"{DISTIL}: optimizer.lr"),
        "betas": (0.9, 0.999),
        "warmup_steps": C(0, f"{TRAIN}: finetune sets the warm-up to 0"),
        "grad_clip": C(1.0, f"{DISTIL}: training.clip_grad"),
        "ema_decay": C(0.9999, f"{DISTIL}: model.ema_decay"),
        "sample_from_ema": C(True, f"{SAMPLE}: model.eval() swaps the EMA weights in"),
        "precision": C("fp32", "paper Sec. 5.1 (one GPU, fp32)"),
        "seed": C(431354, f"{TRAIN}: global_seed"),
        "iters": C(
            320000,
            "ours, not published",
            reason="the released student's length is unknown; 320k is one of the "
            "authors' checkpoint steps",
        ),
        "init_weights": C(
            "raw",
            f"{TRAIN}: non-strict load skips the EMA shadow",
        ),
        "hflip": C(True, f"{DISTIL}: data.random_flips"),
        "log_every": 50,
        "ckpt_every": 5000,
    },
    "sample": {
        "sampler": C("analytical", f"{SAMPLE}: analytical sampler"),
        "t_min": C(0.01, f"{SAMPLE}: linspace(1, 0.01, N)"),
        "num_samples": C(50000, "paper Table 1: 50,000 samples"),
        "batch_size": 500,
        "seed": 0,  # sample i uses seed + i in every cell
        "precision": "fp32",
    },
    "sweep": {
        "teacher_steps": C([10, 20, 40], "paper Table 1 (10 and 20 steps; 40 ours)"),
        "student_steps": C([10, 20, 40], "paper Table 1 (10 and 20 steps; 40 ours)"),
        "students": ["student"],
        "hybrid": {
            "student": "student",
            "cells": C(
                [[10, 3], [20, 6], [40, 12]],
                f"{SAMPLE} README example -n 10 -l 3; 20 and 40: ours, not published",
            ),
        },
    },
    "metrics": {
        "feature_extractor": C(
            "inception-v3-compat", "paper Sec. 5.1: Inception FID / IS"
        ),
        "metrics": ["fid", "isc"],
        "protocol": "paper",
        "reference": C("train", "tauLDR protocol: statistics of CIFAR-10 train"),
        "clean_fid_extractor": "inception",
        "clean_fid_max_samples": 0,
        "weights_path": None,  # local torch-fidelity Inception weights (offline)
        "bootstrap": 10,
        "batch_size": 256,
    },
}


class Cifar10(ImageScoring, Setting):
    name = "cifar10"
    PAPER = PAPER
    family = "tauldr"

    # ------------------------------------------------------------------ data
    def prepare_data(self, cfg: dict, out_dir: Path) -> dict:
        """Mini: quantised packaged digits (train / held-out); paper: CIFAR-10 present."""
        d = cfg["data"]
        if d["source"] == "cifar10":
            from di4c.data.cifar10 import load_cifar10

            counts = {}
            for split, train in (("train", True), ("test", False)):
                x, _ = load_cifar10(
                    d["root"], train=train, check_md5=d.get("check_md5", True)
                )
                counts[split] = {"images": int(x.shape[0]), "shape": list(x.shape[1:])}
            return {"root": d["root"], "splits": counts}
        splits = load_image_splits(self._image_config(cfg))
        if splits.levels != cfg["process"]["S"]:
            raise ValueError(
                f"data.levels {splits.levels} must equal process.S {cfg['process']['S']}"
            )
        save_splits(splits, out_dir / "data.pt")
        return {
            "num_train": len(splits.train_y),
            "num_heldout": len(splits.heldout_y),
            "image_shape": list(splits.image_shape),
            "heldout_class_counts": torch.bincount(splits.heldout_y).tolist(),
        }

    @staticmethod
    def _image_config(cfg: dict) -> ImageDataConfig:
        d = cfg["data"]
        keys = ("source", "size", "levels", "heldout", "seed")
        return ImageDataConfig(**{k: d[k] for k in keys if k in d})

    def training_set(self, cfg: dict, data_dir: Path) -> dict[str, torch.Tensor]:
        if cfg["data"]["source"] == "cifar10":
            from di4c.data.cifar10 import load_cifar10

            d = cfg["data"]
            x, _ = load_cifar10(
                d["root"], train=True, check_md5=d.get("check_md5", True)
            )
            return {"x0": x.reshape(x.shape[0], -1)}
        s = load_splits(data_dir / "data.pt")
        return {"x0": s.flat("train").to(torch.uint8)}

    def image_shape(self, cfg: dict, data_dir: Path) -> tuple[int, int, int]:
        if cfg["data"]["source"] == "cifar10":
            return (3, 32, 32)
        return load_splits(data_dir / "data.pt").image_shape

    def batch_inputs(self, cfg, rules, batch, gen, image_shape):
        """Training states (random flips where the rules ask) and no conditioning."""
        x0 = batch["x0"]
        if rules.hflip:
            from di4c.data.cifar10 import random_hflip

            x0 = random_hflip(x0.view(-1, *image_shape), gen).reshape(x0.shape[0], -1)
        return x0.long(), None

    # ------------------------------------------------------------------ process
    def process(self, cfg: dict, device, card=None, cell=None) -> GaussianRateProcess:
        return GaussianRateProcess(device=device, **cfg["process"])

    # ------------------------------------------------------------------ models
    @staticmethod
    def net_config(card: ModelCard) -> TauLDRUNetConfig:
        if card.network is None:
            return TauLDRUNetConfig.paper_teacher()
        d = dict(card.network)
        for k in ("image_shape", "ch_mult", "data_min_max"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        return TauLDRUNetConfig(**d)

    def load_net(self, card: ModelCard, device, weights: str = "ema"):
        from di4c.teachers.tauldr import load_student_file, load_teacher_file

        load = load_student_file if card.is_mixture else load_teacher_file
        return load(
            card.path(), config=self.net_config(card), weights=weights, device=device
        )

    def denoiser(self, net, cfg: dict, precision: str = "fp32") -> TauLDRDenoiser:
        return TauLDRDenoiser(net)

    def init_student(self, init: ModelCard, rules, device):
        from di4c.teachers.tauldr import init_student

        net = init_student(
            init.path(),
            config=self.net_config(init),
            weights=rules.init_weights,
            seed=rules.seed,
        )
        return net.to(device)

    def save_model(
        self,
        net,
        out_dir: Path,
        name: str,
        source: str,
        ema=None,
        step=0,
        sample_weights=None,
        extra=None,
    ) -> ModelCard:
        """The authors' container: raw weights and the EMA shadow (sampled from)."""
        from di4c.teachers.tauldr import save_checkpoint

        save_checkpoint(
            net,
            out_dir / "model.pt",
            ema_params=ema.shadow if ema else None,
            ema_decay=ema.decay if ema else 0.0,
            ema_num_updates=ema.num_updates if ema else 0,
            n_iter=step,
        )
        cfg = net.config.as_teacher()
        network = {
            k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()
        }
        return ModelCard(
            name=name,
            setting=self.name,
            kind="mixture" if net.is_mixture else "product",
            source=source,
            files={"weights": "model.pt"},
            network=network,
            extra=(extra or {})
            | ({"sample_weights": sample_weights} if sample_weights else {}),
        )

    def fetch(self, cfg: dict, name: str, pins: str | None) -> ModelCard:
        import dataclasses

        from di4c.checkpoints import CheckpointFormatError
        from di4c.pins import fetch_pinned
        from di4c.teachers.tauldr import (
            DI4C_STUDENT_FILE,
            TAULDR_TEACHER_FILE,
            read_checkpoint,
            teacher_checkpoint_path,
        )

        spec = cfg["models"][name]
        local = spec.get("local") or None
        key = f"cifar10.paper.models.{name}.local"  # named by local-copy errors
        if spec["source"] == "published":
            remote = dataclasses.replace(TAULDR_TEACHER_FILE, config_key=key)
            path = teacher_checkpoint_path(local, remote=remote, pin_file=pins)
        else:
            remote = dataclasses.replace(DI4C_STUDENT_FILE, config_key=key)
            path = fetch_pinned(remote, local, pins)
        ckpt = read_checkpoint(path)
        kind = "mixture" if ckpt.is_student else "product"
        want = "mixture" if spec["source"] == "released" else "product"
        if kind != want:
            raise CheckpointFormatError(
                f"{path}: expected a {want} checkpoint for model {name!r}, found a {kind} "
                f"one; check config key {key}"
            )
        return ModelCard(
            name=name,
            setting=self.name,
            kind=kind,
            source=spec["source"],
            files={"weights": str(Path(path).resolve())},
            network=spec.get("network"),  # None: the paper architecture
            extra={"n_iter": ckpt.n_iter},
        )

    def build_teacher(self, cfg: dict, data_dir: Path, seed: int):
        """The paper's UNet class at the mini size (image shape and S from the data)."""
        from di4c.networks.mini_unet import MiniUNetConfig, build_mini_unet

        net = cfg["models"]["teacher"]["network"]
        mini = MiniUNetConfig(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in net.items()}
        )
        shape = self.image_shape(cfg, data_dir)
        return build_mini_unet(mini, shape, cfg["process"]["S"], seed=seed)

    def teacher_objective(self, cfg: dict, net):
        from di4c.objectives import x0_cross_entropy

        process = self.process(cfg, "cpu")
        min_time = cfg["models"]["teacher"]["train"]["min_time"]
        return lambda batch, gen: x0_cross_entropy(
            net, process, batch["x0"].long(), gen, min_time
        )

    # ------------------------------------------------------------------ sampling
    def sample_shape(self, cfg, card, data_dir):
        return list(self.net_config(card).image_shape)

    def sampler_options(self, cfg: dict, cell) -> dict:
        return {"t_min": cfg["sample"]["t_min"]}

    def cells(self, cfg: dict):
        from di4c.settings.base import Cell

        sw = cfg["sweep"]
        cells = [Cell("teacher", n) for n in sw["teacher_steps"]]
        cells += [Cell(m, n) for m in sw["students"] for n in sw["student_steps"]]
        if sw.get("hybrid"):
            cells += [Cell("hybrid", n, l) for n, l in sw["hybrid"]["cells"]]
        return cells

    # ------------------------------------------------------------------ metrics
    def real_images(self, cfg: dict, data_dir: Path, split: str) -> torch.Tensor:
        """uint8 (N, C, H, W) real images of a split ("train": the FID reference)."""
        if cfg["data"]["source"] == "cifar10":
            from di4c.data.cifar10 import load_cifar10

            d = cfg["data"]
            return load_cifar10(
                d["root"], train=split == "train", check_md5=d.get("check_md5", True)
            )[0]
        return load_splits(data_dir / "data.pt").uint8(split)

    def decode(self, cfg: dict, samples: dict, models: dict, device):
        """Sampled levels -> uint8 images, in chunks."""
        x = samples["x"].long()
        shape = tuple(samples["shape"])
        S = cfg["process"]["S"]
        for i in range(0, x.shape[0], 5000):
            yield levels_to_uint8(x[i : i + 5000].view(-1, *shape), S)

    def reference(self, cfg: dict, data_dir: Path, models: dict, device):
        """The reference features, plus clean-fid's features of the same reference
        images (at most ``clean_fid_max_samples``) where ``clean_fid_extractor`` is
        set: the table's second FID column, ``fid_clean`` (paper scale)."""
        real, rows = super().reference(cfg, data_dir, models, device)
        m = cfg["metrics"]
        if m["clean_fid_extractor"] != "none":
            from di4c.metrics.image_quality import clean_fid_features

            images = self.real_images(cfg, data_dir, m["reference"])
            cap = m["clean_fid_max_samples"] or len(images)
            feats = clean_fid_features(
                images[:cap], feature_extractor=m["clean_fid_extractor"]
            )
            real = real | {CLEAN_FID_KEY: torch.from_numpy(feats)}
        return real, rows

    def score(self, cfg: dict, samples: dict, models: dict, real: dict, device) -> dict:
        """The cell's record; with clean-fid reference features, also ``fid_clean``
        of the first ``clean_fid_max_samples`` (0: all) samples."""
        real = dict(real)
        clean_ref = real.pop(CLEAN_FID_KEY, None)
        record = super().score(cfg, samples, models, real, device)
        m = cfg["metrics"]
        if clean_ref is not None and m["clean_fid_extractor"] != "none":
            from di4c.metrics.image_quality import clean_fid

            fake = torch.cat(list(self.decode(cfg, samples, models, device)))
            n = m["clean_fid_max_samples"] or len(fake)
            record["fid_clean"] = clean_fid(
                fake[:n],
                clean_ref.double().numpy(),
                feature_extractor=m["clean_fid_extractor"],
            )
            record["fid_clean_samples"] = min(n, len(fake))
        return record

    def floor_rows(self, cfg, data_dir, models, reference):
        """Mini: held-out real digits scored against the training digits (the floor)."""
        if cfg["data"]["source"] == "cifar10":
            return []
        heldout = self.real_images(cfg, data_dir, "heldout")
        row = self.score_images(cfg, heldout, models, reference)
        return [row | {"model": "real", "steps": 0}]
