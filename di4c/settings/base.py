"""What every setting adapter shares: cited paper values, sampling cells, the adapter base.

- :class:`Cited`: a paper hyperparameter with its source (paper section or the
  authors' file and key) and, where this suite deviates, the published value and
  the reason. :func:`split_cited` turns a tree of them into plain defaults plus a
  ``dotted.key -> Cited`` map, the one source of the settings table.
- :class:`Cell`: one sampling/scoring unit of a table (model, steps, hybrid split,
  guidance weight, sampling-noise precision) with a file-name id.
- :class:`Setting`: the adapter interface the generic steps call.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar


@dataclass(frozen=True)
class Cited:
    """A value used by the paper-scale run and where it comes from.

    ``source``: the paper (section, table) or the authors' code (repository path and
    key); ``"ours, not published"`` for a choice the paper does not state.
    ``published``/``reason``: set where the value used differs from the published
    one (e.g. bf16 autocast instead of fp16 + GradScaler).
    """

    value: Any
    source: str
    published: Any = None
    reason: str = ""

    @property
    def deviates(self) -> bool:
        return self.published is not None and self.published != self.value


C = Cited  # short alias for the adapters' tables


def _plain(v: Any) -> Any:
    """Tuples become lists (the configuration is JSON)."""
    return [_plain(x) for x in v] if isinstance(v, (tuple, list)) else v


def split_cited(tree: dict, prefix: str = "") -> tuple[dict, dict[str, Cited]]:
    """``(values, sources)`` of a nested dict whose leaves may be :class:`Cited`."""
    values: dict = {}
    sources: dict[str, Cited] = {}
    for key, v in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(v, Cited):
            values[key] = _plain(v.value)
            sources[dotted] = v
        elif isinstance(v, dict):
            values[key], sub = split_cited(v, dotted + ".")
            sources.update(sub)
        else:
            values[key] = _plain(v)
    return values, sources


_CELL = re.compile(
    r"^(?P<model>[A-Za-z0-9][A-Za-z0-9_.\-]*?)_n(?P<steps>\d+)"
    r"(?:_l(?P<last>\d+))?(?:_w(?P<w>\d+(?:\.\d+)?))?(?:_(?P<noise>fp32|fp64))?$"
)
NOISE_LABELS = ("fp32", "fp64")


def _weight_text(w: float) -> str:
    """The shortest plain decimal that reads back as exactly ``w`` (no exponent:
    ``1e-05`` -> ``0.00001``, ``3.0`` -> ``3``), so a cell id names its weight exactly."""
    text = format(Decimal(repr(float(w))), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True)
class Cell:
    """One sampling/scoring unit: ``model`` at N = ``steps`` sampler steps.

    ``teacher_last``: a hybrid run whose last L steps are the teacher's (the CIFAR-10
    ``-n N -l L`` of sony/di4c tauldr/scripts/distil_sample.py, the same rule for every
    sampler); ``guidance``: the CFG weight (ImageNet); ``noise``: the precision of
    the sampling noise ("fp32" or "fp64", OpenWebText).
    """

    model: str
    steps: int
    teacher_last: int = 0
    guidance: float | None = None
    noise: str | None = None

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(
                f"cell {self.model!r}: steps must be >= 1; got {self.steps}"
            )
        if not 0 <= self.teacher_last <= self.steps:
            raise ValueError(
                f"cell {self.model!r}: teacher_last L must be in [0, N={self.steps}]; "
                f"got {self.teacher_last}"
            )
        if self.guidance is not None and not (
            isinstance(self.guidance, (int, float))
            and math.isfinite(self.guidance)
            and self.guidance >= 0
        ):
            raise ValueError(
                f"cell {self.model!r}: guidance must be a finite number >= 0; "
                f"got {self.guidance!r}"
            )
        if self.noise is not None and self.noise not in NOISE_LABELS:
            raise ValueError(
                f"cell {self.model!r}: noise must be one of {NOISE_LABELS}; got {self.noise!r}"
            )

    @property
    def id(self) -> str:
        out = f"{self.model}_n{self.steps}"
        if self.teacher_last:
            out += f"_l{self.teacher_last}"
        if self.guidance is not None:
            out += f"_w{_weight_text(self.guidance)}"
        if self.noise is not None:
            out += f"_{self.noise}"
        return out

    @classmethod
    def parse(cls, text: str) -> Cell:
        m = _CELL.match(text)
        if not m:
            raise ValueError(
                f"not a cell id: {text!r} (expected MODEL_nN[_lL][_wW][_fp32|_fp64])"
            )
        w = m["w"]
        return cls(
            model=m["model"],
            steps=int(m["steps"]),
            teacher_last=int(m["last"] or 0),
            guidance=None if w is None else float(w),
            noise=m["noise"],
        )

    def record(self) -> dict:
        """The cell's fields as they appear in metric records and tables."""
        return {
            "cell": self.id,
            "model": self.model,
            "steps": self.steps,
            "teacher_last": self.teacher_last,
            "guidance": self.guidance,
            "noise": self.noise,
        }


class Setting:
    """A paper setting: which data, models, process, sampler, metrics and table layout
    each scale uses. Subclasses register themselves in :data:`di4c.settings.SETTINGS`.

    ``PAPER``: the paper-scale configuration as a tree of :class:`Cited` values (and
    plain engineering defaults); a scale's YAML layer changes it by deep-merged
    overrides (:func:`di4c.config.resolve`).
    """

    name: ClassVar[str]
    PAPER: ClassVar[dict]
    scales: ClassVar[tuple[str, ...]] = ("paper", "mini", "smoke", "rehearsal")

    @classmethod
    def defaults(cls) -> dict:
        return split_cited(cls.PAPER)[0]

    @classmethod
    def sources(cls) -> dict[str, Cited]:
        return split_cited(cls.PAPER)[1]

    # ---------------------------------------------------------- defaults of the hooks
    def autocast(self, rules, device):
        """Autocast of the distillation loss (bf16 rules; fp32 is exact)."""
        import torch

        on = rules.precision == "bf16"
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=on)

    def autocast_sampling(self, precision: str, device):
        import torch

        dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}
        return torch.autocast(
            device.type, dtype=dtypes.get(precision), enabled=precision in dtypes
        )

    def load_sampling_net(self, card, device):
        """A model's network on the weights its card says to sample from, eval mode."""
        weights = card.extra.get("sample_weights")
        net = (
            self.load_net(card, device, weights)
            if weights
            else self.load_net(card, device)
        )
        return net.eval().requires_grad_(False)

    def conditions(self, cfg: dict, data_dir, n: int):
        """Per-sample conditioning (class labels) of a cell's samples; None: unconditional."""
        return None

    def teacher_report(self, cfg: dict, net, data_dir) -> dict:
        """Numbers recorded in a trained teacher's card (held-out loss, ...)."""
        return {}

    def teacher_of(self, cfg: dict) -> dict[str, str]:
        """Each evaluated student's root product teacher (the speed-up reference)."""
        from di4c.cli.sample import cell_models, root_teacher

        out = {}
        for cell in self.cells(cfg):
            first, last = cell_models(cfg, cell)
            if cfg["models"][first]["source"] in ("distill", "released"):
                out[cell.model] = last or root_teacher(cfg, first)
        return out
