"""ImageNet 256 (paper Sec. 5.2, Fig. 3): MaskGIT teacher on VQGAN codes, CFG.

Paper scale: the MaskGIT-pytorch transformer (valeoai/Maskgit-pytorch; weights on
Hugging Face llvictorll/Maskgit-pytorch) on 16 x 16 codes of its VQGAN f16, the
arccos absorbing process, the confidence sampler with the Di4C unmask schedule,
Gumbel annealing and a linear CFG ramp (sony/di4c maskgit-pytorch/Trainer/vit.py
``sample``); FID / IS / precision / recall with torch-fidelity's Inception against
ImageNet val, per-image min-max preprocessing. Mini scale: the same network class,
process, sampler and loss on codes of a small VQ the DAG trains on packaged digits,
scored under a digit classifier the DAG trains.
"""

from __future__ import annotations

from pathlib import Path

import torch

from di4c.data.images import (
    ImageDataConfig,
    levels_to_uint8,
    load_image_splits,
    load_splits,
    quantize,
    save_splits,
)
from di4c.models import ModelCard
from di4c.networks.maskgit import MaskGITConfig, MaskGITDenoiser
from di4c.processes.masked import MaskedProcess
from di4c.settings.base import C, Cell, Setting
from di4c.settings.images import ImageScoring

VIT = "sony/di4c maskgit-pytorch/Trainer/vit.py"
MAIN = "sony/di4c maskgit-pytorch/di4c_main.py"

PAPER = {
    "device": "auto",
    "threads": 8,
    "data": {
        "source": C("imagenet", "paper Sec. 5.2: ImageNet 256"),
        "root": "data/imagenet",  # ILSVRC2012 in ImageFolder layout: train/, val/
        "encode": {  # ImageNet train -> VQGAN codes once (one seeded crop/flip per image)
            "batch_size": 128,
            "workers": 8,
            "seed": 0,
            "limit": 0,  # 0: every image
        },
        "label_seed": 0,  # shuffle of the val loader whose labels condition the samples
    },
    "process": {"schedule": C("arccos", f"{VIT}: get_mask_code mode arccos")},
    "models": {
        "teacher": {
            "source": C(
                "published", "HF llvictorll/Maskgit-pytorch MaskGIT_ImageNet_256.pth"
            ),
            "local": None,
        },
        "vq": {
            "source": C(
                "published", "HF llvictorll/Maskgit-pytorch pretrained_maskgit/VQGAN"
            ),
            "local_ckpt": None,
            "local_yaml": None,
        },
        "released": {
            "source": C("released", "Zenodo record 15124163: maskgit-di4c-d.pth"),
            "local": None,
        },
        "di4c-d": {
            "source": "distill",
            "teacher": "teacher",
            "distill": {
                "alpha_const": C(
                    0.1,
                    "ours, not published",
                    reason="the authors' README calls its defaults di4c-d; they include "
                    "the data-correlation term with alpha_const 0.1",
                )
            },
        },
        "di4c": {
            "source": "distill",
            "teacher": "teacher",
            "distill": {
                "alpha_const": C(
                    0.0,
                    "ours, not published",
                    reason="what separates di4c from di4c-d is not stated; our reading: "
                    "di4c is without the data-correlation term",
                )
            },
        },
    },
    "hf_revision": "main",  # a commit hash pins the Hugging Face repo
    "distill": {
        "K": C(32, f"{MAIN}: latent_bsize"),
        "batch_x": C(4, f"{MAIN}: bsize 2 per GPU x 2 GPUs"),
        "time_sampler": C("maskgit", f"{VIT}: train_di4c, r ~ U(0, 1)"),
        "time_kwargs": {"r_delta": C(0.05, f"{MAIN}: r_delta")},
        "distil_mode": C(
            "region", f"{VIT}: train_di4c, distillation at r >= 1 - r_delta"
        ),
        "distil_weight": C(20.0, f"{VIT}: train_di4c, weight 1 / r_delta"),
        "alpha_const": C(0.1, f"{MAIN}: alpha_const"),
        "alpha_schedule": C("sigmoid", f"{MAIN}: alpha_t sigmoid"),
        "teacher_step": C("maskgit", f"{VIT}: one_step_denoise"),
        "teacher_step_kwargs": {
            "r_delta": C(0.05, f"{MAIN}: r_delta"),
            "teacher_steps": C(8, f"{VIT}: one_step_denoise, 8-step Gumbel annealing"),
            "r_temp": C(4.5, f"{MAIN}: r_temp"),
            "sm_temp": C(1.0, f"{MAIN}: sm_temp"),
        },
        "target_train_mode": C(False, f"{VIT}: train_di4c, target pass in eval mode"),
        "optimizer": C("adamw", f"{VIT}: get_optim"),
        "lr": C(1e-5, f"{MAIN}: lr"),
        "betas": C((0.9, 0.96), f"{VIT}: get_optim"),
        "weight_decay": C(1e-5, f"{VIT}: get_optim"),
        "warmup_steps": 0,
        "grad_clip": C(1.0, f"{VIT}: train_di4c"),
        "ema_decay": C(None, f"{VIT}: no EMA"),
        "sample_from_ema": False,
        "precision": C(
            "bf16",
            f"{VIT}: fp16 autocast + GradScaler",
            published="fp16",
            reason="the shared training loop has no GradScaler; bf16 needs none",
        ),
        "seed": C(42, f"{MAIN}: seed"),
        "iters": C(
            100000,
            "ours, not published",
            reason="the released student's length is unknown",
        ),
        "label_drop": C(0.1, f"{VIT}: train_di4c drop_label"),
        "lambda_init_seed": 0,
        "log_every": 100,
        "ckpt_every": 10000,
    },
    "sample": {
        "sampler": C("confidence", f"{VIT}: sample"),
        "num_samples": C(50000, "paper Sec. 5.2: 50,000 samples with val labels"),
        "batch_size": 250,
        "seed": 0,
        "sm_temp": C(1.0, f"{MAIN}: sm_temp"),
        "r_temp": C(4.5, f"{MAIN}: r_temp"),
        "schedule": C("arccos", f"{MAIN}: sched_mode"),
        "precision": C("fp16", f"{VIT}: sample under fp16 autocast"),
    },
    "sweep": {
        "cfg_grid": C(
            [0, 1, 2, 3, 4, 6],
            "ours, not published",
            reason="Fig. 3's CFG grid is not given; README eval uses w = 6 at 4 steps",
        ),
        "curve_steps": C(
            {"teacher": [4, 8], "student": [4]},
            "paper Fig. 3: teacher 8/4, Di4C 4 steps",
        ),
        "step_grid_cfg": C(3, "MaskGIT-pytorch README reference: CFG 3 at 8 steps"),
        "teacher_step_grid": C([2, 4, 8, 16], "ours, not published"),
        "student_step_grid": C([2, 4, 8], "ours, not published"),
        "students": ["di4c-d", "di4c", "released"],
        "hybrid": None,
    },
    "metrics": {
        "feature_extractor": C(
            "inception-v3-compat", f"{VIT}: torch-fidelity Inception"
        ),
        "metrics": ["fid", "isc", "prc"],
        "protocol": "paper",
        "reference": C(
            "val", "sony/di4c maskgit-pytorch/Metrics/sample_and_eval.py: val"
        ),
        "weights_path": None,  # local torch-fidelity Inception weights (offline)
        "batch_size": 250,  # decode batch
        "prc_chunks": C(5, "maskgit-pytorch/Metrics/inception_metrics.py: 5 chunks"),
        "workers": 8,
        "bootstrap": 10,
    },
}


def read_tokens(data_dir: Path) -> dict:
    """The encoded training images (``tokens.pt`` of the encode step), checked."""
    from di4c.data.files import load_data_file

    keys = ("train_tokens", "train_labels", "grid", "codebook_size")
    return load_data_file(data_dir / "tokens.pt", "image-code", keys)


def heldout_labels_in_loader_order(labels: torch.Tensor, num: int, seed: int):
    """Reshuffle ``labels`` (seeded, one fresh permutation per pass) until ``num``."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    while sum(x.numel() for x in out) < num:
        out.append(labels[torch.randperm(labels.numel(), generator=gen)])
    return torch.cat(out)[:num]


def to_judge(images: torch.Tensor, levels: int | None = None) -> torch.Tensor:
    """Float images (B, C, H, W) -> per-image min-max uint8 (sony/di4c
    maskgit-pytorch/Metrics/sample_and_eval.py ``remap_image_torch``), re-quantised
    to ``levels`` grey levels at mini scale (what the digit classifier saw)."""
    from di4c.data.imagenet import minmax_uint8

    out = minmax_uint8(images)
    if levels:
        out = levels_to_uint8(quantize(out.float() / 255.0, levels), levels)
    return out


def load_tokenizer(card: ModelCard, device=None):
    """The VQGAN-family tokenizer of a card (Lightning ``last.ckpt`` + ``model.yaml``;
    a ``last.ckpt`` of ours alone carries its configuration)."""
    from di4c.teachers.maskgit import vqgan_from_files

    yaml_path = card.path("config") if "config" in card.files else None
    net = vqgan_from_files(card.path("weights"), yaml_path, device=device)
    return net.requires_grad_(False).eval()


@torch.no_grad()
def decoded_chunks(tokenizer, tokens, batch_size: int, levels=None, device=None):
    """Judged uint8 images of code grids (N, D), batch by batch (never all in memory)."""
    import time

    grid = int(round(tokens.shape[1] ** 0.5))
    if grid * grid != tokens.shape[1]:
        raise ValueError(
            f"tokens must hold a square grid per sample; got {tokens.shape}"
        )
    n_codes = tokenizer.config.n_embed
    if int(tokens.max()) >= n_codes or int(tokens.min()) < 0:
        raise ValueError(
            f"codes must lie in [0, {n_codes}); got [{int(tokens.min())}, "
            f"{int(tokens.max())}] (a sample file from a different tokenizer?)"
        )
    t0, n = time.time(), tokens.shape[0]
    for start in range(0, n, batch_size):
        codes = tokens[start : start + batch_size].long().view(-1, grid, grid)
        imgs = tokenizer.decode_code(codes.to(device) if device else codes)
        yield to_judge(imgs.float().cpu(), levels)
        done = min(n, start + batch_size)
        if done == n or (start // batch_size) % 20 == 0:
            rate = done / max(time.time() - t0, 1e-9)
            print(f"[decode] {done}/{n} images ({rate:.1f}/s)", flush=True)


class ImageNet(ImageScoring, Setting):
    name = "imagenet"
    PAPER = PAPER
    family = "maskgit"

    # ------------------------------------------------------------------ data
    @staticmethod
    def is_mini(cfg: dict) -> bool:
        return cfg["data"]["source"] != "imagenet"

    def prepare_data(self, cfg: dict, out_dir: Path) -> dict:
        d = cfg["data"]
        if not self.is_mini(cfg):
            from di4c.data.imagenet import imagenet_folder

            n = {s: len(imagenet_folder(d["root"], s)) for s in ("train", "val")}
            return {"root": d["root"], "images": n}
        keys = ("source", "size", "levels", "heldout", "seed")
        splits = load_image_splits(ImageDataConfig(**{k: d[k] for k in keys if k in d}))
        save_splits(splits, out_dir / "data.pt")
        return {
            "num_train": len(splits.train_y),
            "num_heldout": len(splits.heldout_y),
            "image_shape": list(splits.image_shape),
        }

    def training_set(self, cfg: dict, data_dir: Path) -> dict[str, torch.Tensor]:
        tok = read_tokens(data_dir)
        return {"x0": tok["train_tokens"], "y": tok["train_labels"]}

    def batch_inputs(self, cfg, rules, batch, gen, image_shape):
        """Codes and labels; with probability ``label_drop`` the unconditional label,
        shared by the teacher, the student and every lambda copy (sony/di4c
        maskgit-pytorch/Trainer/vit.py ``train_di4c``)."""
        from di4c.samplers.confidence import UNCOND

        y = batch["y"].long()
        drop = torch.rand(y.shape[0], generator=gen) < rules.label_drop
        return batch["x0"].long(), torch.where(drop, torch.full_like(y, UNCOND), y)

    def conditions(self, cfg: dict, data_dir: Path, n: int) -> torch.Tensor:
        """Class labels of the samples: ImageNet val labels in a seeded shuffled-loader
        order (paper), or the held-out digits' labels reshuffled (mini)."""
        seed = cfg["data"]["label_seed"]
        if self.is_mini(cfg):
            held = load_splits(data_dir / "data.pt").heldout_y.long()
            return heldout_labels_in_loader_order(held, n, seed)
        from di4c.data.imagenet import val_labels_in_loader_order

        return val_labels_in_loader_order(cfg["data"]["root"], seed, n)

    # ------------------------------------------------------------------ process
    def process(self, cfg: dict, device, card: ModelCard, cell=None) -> MaskedProcess:
        """The absorbing process over the model's codes (mask id = codebook size)."""
        return MaskedProcess(
            self.net_config(card).codebook_size, cfg["process"]["schedule"]
        )

    # ------------------------------------------------------------------ models
    def net_config(self, card: ModelCard) -> MaskGITConfig:
        from di4c.networks.maskgit import PAPER_STUDENT_CONFIG, PAPER_TEACHER_CONFIG

        if card.network is not None:
            cfg = MaskGITConfig.from_dict(card.network)
        else:
            cfg = PAPER_STUDENT_CONFIG if card.is_mixture else PAPER_TEACHER_CONFIG
        return cfg

    def _given_config(self, card: ModelCard) -> MaskGITConfig | None:
        """The card's network, or None: the loader reads the file's embedded
        configuration (ours), else takes the paper's (published files)."""
        return None if card.network is None else self.net_config(card)

    def load_net(self, card: ModelCard, device, weights=None):
        from di4c.teachers.maskgit import (
            student_from_checkpoint,
            teacher_from_checkpoint,
        )

        load = student_from_checkpoint if card.is_mixture else teacher_from_checkpoint
        return load(card.path(), self._given_config(card), device=device)

    def denoiser(self, net, cfg: dict, precision: str = "fp32") -> MaskGITDenoiser:
        return MaskGITDenoiser(net)

    def init_student(self, init: ModelCard, rules, device):
        from di4c.teachers.maskgit import init_student_from_teacher

        net = init_student_from_teacher(
            init.path(),
            self._given_config(init),
            seed=rules.lambda_init_seed,
            device=device,
        )
        return net.train()

    def save_model(
        self,
        net,
        out_dir: Path,
        name,
        source,
        ema=None,
        step=0,
        sample_weights=None,
        extra=None,
    ):
        """The authors' transformer ``.pth`` (one set of weights: the EMA ones if any)."""
        import contextlib

        from di4c.teachers.maskgit import save_transformer_checkpoint

        with ema.swapped_in(net) if ema else contextlib.nullcontext():
            save_transformer_checkpoint(out_dir / "model.pth", net, iter=step)
        return ModelCard(
            name=name,
            setting=self.name,
            kind="mixture" if net.config.is_student else "product",
            source=source,
            files={"weights": "model.pth"},
            network=net.config.to_dict(),
            extra=extra or {},
        )

    def fetch(self, cfg: dict, name: str, pins: str | None) -> ModelCard:
        import dataclasses

        from di4c.pins import fetch_pinned
        from di4c.teachers import maskgit as mg

        spec = cfg["models"][name]
        files = {
            "teacher": {
                "weights": (mg.TEACHER_FILE, "local", mg.read_transformer_checkpoint)
            },
            "released": {
                "weights": (mg.STUDENT_FILE, "local", mg.read_transformer_checkpoint)
            },
            "vq": {
                "weights": (mg.VQGAN_CKPT_FILE, "local_ckpt", mg.read_vqgan_checkpoint),
                "config": (mg.VQGAN_YAML_FILE, "local_yaml", mg.read_vqgan_yaml),
            },
        }
        if name not in files:
            raise ValueError(
                f"imagenet has no published model {name!r}; allowed: {sorted(files)}"
            )
        paths, read = {}, {}
        for role, (remote, key, check) in files[name].items():
            rf = dataclasses.replace(
                mg.at_revision(remote, cfg["hf_revision"]),
                config_key=f"imagenet.paper.models.{name}.{key}",
            )
            path = fetch_pinned(rf, spec.get(key), pins)
            read[role] = check(path)
            paths[role] = str(Path(path).resolve())
        network = None
        if name == "vq":
            kind = "tokenizer"
        else:  # a student given as the teacher (or the reverse) fails here, not later
            kind = "mixture" if read["weights"].is_student else "product"
            want = "mixture" if spec["source"] == "released" else "product"
            if kind != want:
                from di4c.checkpoints import CheckpointFormatError

                raise CheckpointFormatError(
                    f"{paths['weights']}: expected a {want} checkpoint for model "
                    f"{name!r}, found a {kind} one; check config key "
                    f"imagenet.paper.models.{name}.local"
                )
        network = None if name == "vq" else read["weights"].network  # ours embed it
        return ModelCard(
            name=name,
            setting=self.name,
            kind=kind,
            source=spec["source"],
            files=paths,
            network=network,
        )

    def build_teacher(self, cfg: dict, data_dir: Path, seed: int):
        """The paper network at the mini size (grid and codebook from the codes)."""
        from di4c.networks.mini_maskgit import MiniMaskGITConfig, build_mini_maskgit

        tok = read_tokens(data_dir)
        spec = cfg["models"]["teacher"]
        net_cfg = MiniMaskGITConfig(
            grid=int(tok["grid"]),
            codebook_size=int(tok["codebook_size"]),
            **spec["network"],
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = build_mini_maskgit(net_cfg)
            if spec["train"]["init_std"] > 0:
                torch.nn.init.normal_(
                    net.tok_emb.weight, 0.0, spec["train"]["init_std"]
                )
        return net

    def teacher_objective(self, cfg: dict, net):
        from di4c.objectives import maskgit_cross_entropy

        t = cfg["models"]["teacher"]["train"]
        process = MaskedProcess(net.config.codebook_size, cfg["process"]["schedule"])
        return lambda batch, gen: maskgit_cross_entropy(
            net,
            process,
            batch["x0"].long(),
            batch["y"].long(),
            gen,
            t["label_drop"],
            t["label_smoothing"],
        )

    # ------------------------------------------------------------------ sampling
    def sample_shape(self, cfg, card, data_dir):
        return [self.net_config(card).num_tokens]

    def sampler_options(self, cfg: dict, cell: Cell) -> dict:
        s = cfg["sample"]
        return {
            "guidance": cell.guidance if cell.guidance is not None else 0.0,
            "sm_temp": s["sm_temp"],
            "r_temp": s["r_temp"],
            "schedule": s["schedule"],
        }

    def cells(self, cfg: dict) -> list[Cell]:
        """FID-IS curves over the CFG grid (Fig. 3) and step grids at one CFG weight."""
        sw = cfg["sweep"]
        studs = sw["students"]
        cells = set()
        for w in sw["cfg_grid"]:
            cells |= {
                Cell("teacher", n, 0, float(w)) for n in sw["curve_steps"]["teacher"]
            }
            cells |= {
                Cell(m, n, 0, float(w))
                for m in studs
                for n in sw["curve_steps"]["student"]
            }
        w = float(sw["step_grid_cfg"])
        cells |= {Cell("teacher", n, 0, w) for n in sw["teacher_step_grid"]}
        cells |= {Cell(m, n, 0, w) for m in studs for n in sw["student_step_grid"]}
        if sw.get("hybrid"):
            cells |= {Cell("hybrid", n, l, w) for n, l in sw["hybrid"]["cells"]}
        return sorted(
            cells, key=lambda c: (c.model, c.steps, c.guidance, c.teacher_last)
        )

    # ------------------------------------------------------------------ metrics
    def metric_models(self, cfg: dict) -> list[str]:
        return ["vq"] + super().metric_models(cfg)

    def _levels(self, cfg: dict):
        return cfg["data"]["levels"] if self.is_mini(cfg) else None

    def decode(self, cfg: dict, samples: dict, models: dict, device):
        tok = load_tokenizer(models["vq"], device)
        return decoded_chunks(
            tok, samples["x"], cfg["metrics"]["batch_size"], self._levels(cfg), device
        )

    def real_images(self, cfg: dict, data_dir: Path, split: str):
        if self.is_mini(cfg):
            s = load_splits(data_dir / "data.pt")
            x = {"heldout": s.heldout_x, "train": s.train_x}[split]
            return to_judge(levels_to_uint8(x, s.levels).float(), s.levels)
        from di4c.data.imagenet import MinMaxImages, imagenet_folder

        m = cfg["metrics"]
        ds = MinMaxImages(
            imagenet_folder(cfg["data"]["root"], split),
            limit=cfg["sample"]["num_samples"],
        )
        return torch.utils.data.DataLoader(
            ds, batch_size=500, num_workers=m["workers"], shuffle=False
        )

    def floor_rows(self, cfg, data_dir, models, real):
        """Mini: training digits (a perfect generator) and their VQ reconstructions
        (the tokenizer's floor, like a VQGAN's rFID), scored like any cell."""
        if not self.is_mini(cfg):
            return []
        from di4c.cli.mini_vq import encode_tokens

        s = load_splits(data_dir / "data.pt")
        n = min(cfg["metrics"]["reference_rows"], s.train_x.shape[0])
        pick = torch.randperm(
            s.train_x.shape[0], generator=torch.Generator().manual_seed(0)
        )[:n]
        x = s.train_x[pick]
        data_row = self.score_images(
            cfg, to_judge(levels_to_uint8(x, s.levels).float(), s.levels), models, real
        )
        tok = load_tokenizer(models["vq"])
        codes = encode_tokens(tok, x, s.levels)
        recon = self.score_images(
            cfg, decoded_chunks(tok, codes, 1000, s.levels), models, real
        )
        return [
            data_row | {"model": "data (training digits)", "steps": 0},
            recon | {"model": "vq reconstruction", "steps": 0},
        ]
