"""What the Snakemake rules ask of the library: paths, inputs and configs of each job.

One run of a setting at a scale lives in ``{results_dir}/{setting}/{scale}/``:

    data/data.json (+ files; ImageNet: data/tokens.pt)    prepare_data, encode
    fetched/{model}/model.json                            fetch_model (published, released)
    trained/{teacher,classifier,vq,judge}/model.json      train_teacher, train_classifier, ...
    distilled/{model}/model.json                          distill
    samples/{cell}.pt  metrics/{cell}.json                sample, score
    reference/rows.json (+ features.pt)                   reference
    standins/manifest.json (+ files)                      make_standins (rehearsal)
    teacher_check.json                                    check_teacher
    logs/  benchmarks/                                    every rule

and its table is ``{tables_dir}/{setting}.csv`` at the paper scale (``paper_scale``)
or ``{mini_tables_dir}/{setting}.csv`` at the CPU scale (``cpu_scale``). A rule passes
each step the part of the resolved configuration the step reads (:func:`step_config`),
so Snakemake reruns a job exactly when something it uses changed.

A scale whose resolved configuration has a ``standins`` section (the rehearsal) builds
stand-ins for what the paper run downloads (di4c.standins) into ``standins/``; the jobs
that read local copies (prepare_data, fetch_model, reference) then depend on its
manifest. At every other scale those jobs have no such input.
"""

from __future__ import annotations

import json
import shlex
from functools import lru_cache

from di4c.config import resolve, to_json
from di4c.settings import get_setting
from di4c.settings.base import Cell

SOURCE_FOLDER = {
    "published": "fetched",
    "released": "fetched",
    "train": "trained",
    "distill": "distilled",
}
TRAINED_STEPS = {  # trained model -> the step that trains it
    "teacher": "teacher",
    "classifier": "classifier",
    "vq": "mini_vq",
    "judge": "judge",
}
SAMPLING_SETTINGS = ("cifar10", "imagenet", "openwebtext")


class Workflow:
    """The workflow config plus cached resolved settings; what common.smk builds once."""

    def __init__(self, config: dict):
        self.config = config
        self.results = config["results_dir"]
        self._resolved = lru_cache(maxsize=None)(self._resolve)

    def _resolve(self, setting: str, scale: str) -> str:
        return to_json(resolve(self.config, setting, scale))

    def cfg(self, setting: str, scale: str) -> dict:
        return json.loads(self._resolved(setting, scale))

    # ------------------------------------------------------------------ paths
    def run(self, setting: str, scale: str) -> str:
        return f"{self.results}/{setting}/{scale}"

    def table_path(self, setting: str, scale: str) -> str:
        if scale == self.config["paper_scale"]:
            return f"{self.config['tables_dir']}/{setting}.csv"
        return f"{self.config['mini_tables_dir']}/{setting}.csv"

    def model_dir(self, setting: str, scale: str, model: str) -> str:
        spec = self.cfg(setting, scale)["models"].get(model)
        if spec is None:
            raise ValueError(
                f"{setting}.{scale}: no model {model!r} under models: "
                f"(have {sorted(self.cfg(setting, scale)['models'])})"
            )
        return f"{self.run(setting, scale)}/{SOURCE_FOLDER[spec['source']]}/{model}"

    def card(self, setting: str, scale: str, model: str) -> str:
        return f"{self.model_dir(setting, scale, model)}/model.json"

    def cells(self, setting: str, scale: str) -> list[Cell]:
        return get_setting(setting).cells(self.cfg(setting, scale))

    def metric_files(self, setting: str, scale: str) -> list[str]:
        run = self.run(setting, scale)
        return [f"{run}/metrics/{c.id}.json" for c in self.cells(setting, scale)]

    # ------------------------------------------------------------------ models
    def teacher_chain(self, setting: str, scale: str, model: str) -> tuple[str, str]:
        """(teacher, init) model names a distilled model needs."""
        spec = self.cfg(setting, scale)["models"][model]
        teacher = spec.get("teacher", "teacher")
        return teacher, spec.get("init", teacher)

    def cell_models(self, setting: str, scale: str, cell: Cell) -> list[str]:
        from di4c.cli.sample import cell_models, root_teacher

        cfg = self.cfg(setting, scale)
        first, last = cell_models(cfg, cell)
        if cell.teacher_last and last is None:
            last = root_teacher(cfg, first)
        return [first] + ([last] if last and last != first else [])

    def metric_models(self, setting: str, scale: str) -> list[str]:
        return get_setting(setting).metric_models(self.cfg(setting, scale))

    def cards_flags(self, setting: str, scale: str, models) -> str:
        return " ".join(
            f"--card {m}={shlex.quote(self.card(setting, scale, m))}" for m in models
        )

    # ------------------------------------------------------------------ job inputs
    def standins_manifest(self, setting: str, scale: str) -> str:
        return f"{self.run(setting, scale)}/standins/manifest.json"

    def standins_inputs(self, setting: str, scale: str) -> dict:
        """``{"standins": manifest}`` where the scale builds stand-ins, else ``{}``."""
        if not self.cfg(setting, scale).get("standins"):
            return {}
        return {"standins": self.standins_manifest(setting, scale)}

    def data_files(self, setting: str, scale: str, training: bool = False) -> list[str]:
        """The prepared data a job reads (ImageNet training also needs the codes)."""
        run = self.run(setting, scale)
        files = [f"{run}/data/data.json"]
        if training and setting == "imagenet":
            files.append(f"{run}/data/tokens.pt")
        return files

    def teacher_inputs(self, setting: str, scale: str) -> dict:
        return {"data": self.data_files(setting, scale, training=True)}

    def distill_inputs(self, setting: str, scale: str, model: str) -> dict:
        teacher, init = self.teacher_chain(setting, scale, model)
        out = {
            "data": self.data_files(setting, scale, training=True),
            "teacher": self.card(setting, scale, teacher),
            "init": self.card(setting, scale, init),
        }
        if self.cfg(setting, scale).get("teacher_check"):
            out["check"] = f"{self.run(setting, scale)}/teacher_check.json"
        return out

    def sample_inputs(self, setting: str, scale: str, cell: str) -> dict:
        models = self.cell_models(setting, scale, Cell.parse(cell))
        return {
            "data": self.data_files(setting, scale),
            "cards": [self.card(setting, scale, m) for m in models],
        }

    def sample_cards(self, setting: str, scale: str, cell: str) -> str:
        return self.cards_flags(
            setting, scale, self.cell_models(setting, scale, Cell.parse(cell))
        )

    def metric_cards(self, setting: str, scale: str) -> list[str]:
        return [
            self.card(setting, scale, m) for m in self.metric_models(setting, scale)
        ]

    def check_inputs(self, setting: str, scale: str) -> list[str]:
        n = self.cfg(setting, scale)["teacher_check"]["min_steps"]
        run = self.run(setting, scale)
        return [f"{run}/metrics/{Cell('teacher', k).id}.json" for k in (n // 2, n)]

    def table_inputs(self, setting: str, scale: str) -> dict:
        return {
            "metrics": self.metric_files(setting, scale),
            "rows": f"{self.run(setting, scale)}/reference/rows.json",
        }

    def teacher_of(self, setting: str, scale: str) -> str:
        return shlex.quote(
            to_json(get_setting(setting).teacher_of(self.cfg(setting, scale)))
        )

    # ------------------------------------------------------------------ configs
    def step_config(self, setting: str, scale: str, step: str, **ids) -> str:
        """The resolved configuration a step reads, as a shell-quoted JSON argument."""
        cfg = self.cfg(setting, scale)
        view = {k: cfg[k] for k in STEP_SECTIONS[step] if k in cfg}
        names = self.models_of_step(setting, scale, step, **ids)
        if names is not None:
            view["models"] = {m: cfg["models"][m] for m in names}
        return shlex.quote(to_json(view))

    def models_of_step(self, setting: str, scale: str, step: str, **ids) -> list | None:
        """The model specs a step reads (None: all of them)."""
        cfg = self.cfg(setting, scale)
        model = ids.get("model")
        if step in ("teacher", "classifier", "mini_vq", "judge", "fetch"):
            return [model or {v: k for k, v in TRAINED_STEPS.items()}[step]]
        if step == "distill":
            return sorted({model, *self.teacher_chain(setting, scale, model)})
        if step in ("sample",):
            from di4c.cli.sample import chain_models

            return chain_models(cfg, Cell.parse(ids["cell"]))
        if step in ("reference", "score", "encode"):
            return self.metric_models(setting, scale) if step != "encode" else ["vq"]
        return None

    def theory_config(self, scale: str) -> str:
        return shlex.quote(self._resolved("theory", scale))

    def theory_inputs(self, scale: str) -> list[str]:
        return [
            f"{self.results}/theory/{scale}/{e}.json"
            for e in self.cfg("theory", scale)["experiments"]
        ]

    def threads(self, setting: str, scale: str) -> int:
        return int(self.cfg(setting, scale).get("threads", 1))

    def gpus(self, setting: str, scale: str) -> int:
        return 0 if self.cfg(setting, scale)["device"] == "cpu" else 1


STEP_SECTIONS = {
    "data": ("device", "data", "process"),
    "teacher": ("device", "data", "process"),
    "classifier": ("device", "data"),
    "mini_vq": ("device", "data"),
    "judge": ("device", "data"),
    "fetch": ("device", "hf_revision"),
    "encode": ("device", "data"),
    "distill": ("device", "data", "process", "distill"),
    "sample": ("device", "data", "process", "sample", "sweep"),
    "reference": ("device", "data", "process", "metrics", "sample"),
    "score": ("device", "data", "process", "metrics"),
    "check": ("teacher_check",),
    "standins": ("data", "process", "models", "metrics", "standins"),
}
