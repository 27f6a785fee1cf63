"""The setting registry (di4c.settings): adapters, cells, teacher chains, the one seed
rule and the one hybrid rule shared by every sampler, and cited paper values."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest
import torch

from di4c.config import load_config, resolve
from di4c.denoiser import CallableDenoiser
from di4c.processes import GaussianRateProcess, MaskedProcess
from di4c.samplers import SAMPLERS, SampleRNG, hybrid_schedule
from di4c.settings import SETTINGS, Setting, get_setting, setting_class
from di4c.settings.base import Cell, Cited, split_cited

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "di4c"
SAMPLING = ("cifar10", "imagenet", "openwebtext")
DEFAULT = ROOT / "workflows/config/default.yaml"
# smoke.yaml is layered over default.yaml, as `snakemake --configfile` does
CONFIGS = {
    "default": [DEFAULT],
    "smoke": [DEFAULT, ROOT / "workflows/config/smoke.yaml"],
}


# ------------------------------------------------------------------ registry
@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_every_registered_setting_loads(name):
    setting = get_setting(name)
    assert isinstance(setting, Setting) and setting.name == name
    assert type(setting) is setting_class(name)
    assert set(setting.scales) <= {"paper", "mini", "smoke", "rehearsal"}
    # its paper values are plain data (the configuration is JSON)
    assert isinstance(setting.defaults(), dict)


def test_unknown_setting_names_the_allowed_ones():
    with pytest.raises(
        ValueError, match=r"unknown setting 'cifar100'; allowed: \['cifar10'"
    ):
        get_setting("cifar100")


# ------------------------------------------------------------------ cells
@pytest.mark.parametrize(
    "cell, text",
    [
        (Cell("teacher", 1), "teacher_n1"),
        (Cell("student", 8), "student_n8"),
        (Cell("hybrid", 8, 2), "hybrid_n8_l2"),
        (Cell("hybrid", 4, 4), "hybrid_n4_l4"),
        (Cell("teacher", 4, guidance=3.0), "teacher_n4_w3"),
        (Cell("teacher", 4, guidance=0.0), "teacher_n4_w0"),
        (Cell("di4c-d", 16, guidance=2.5), "di4c-d_n16_w2.5"),
        (Cell("hybrid", 8, 1, 1.25), "hybrid_n8_l1_w1.25"),
        (Cell("sdtt6_di4c", 16, noise="fp32"), "sdtt6_di4c_n16_fp32"),
        (Cell("sdtt7_di4c2", 128, noise="fp64"), "sdtt7_di4c2_n128_fp64"),
        (Cell("hybrid", 8, 4, noise="fp64"), "hybrid_n8_l4_fp64"),
        (Cell("student_k1", 2), "student_k1_n2"),
        (Cell("k1", 2), "k1_n2"),
        # names that look like the suffixes themselves
        (Cell("a_n1", 3), "a_n1_n3"),
        (Cell("m_l2_w3", 5, 1), "m_l2_w3_n5_l1"),
        (Cell("x.y-z_9", 2, guidance=10.0, noise="fp32"), "x.y-z_9_n2_w10_fp32"),
    ],
)
def test_cell_id_and_parse_round_trip(cell, text):
    assert cell.id == text
    assert Cell.parse(text) == cell
    assert Cell.parse(cell.id).id == text


@pytest.mark.parametrize("w", [0.1, 0.25, 1e-5, 2.1234567, 1e6, 1e-20, 7.0])
def test_every_guidance_weight_round_trips(w):
    """A cell id is a file name and the sample step's only input about the cell: the
    guidance it names must be exactly the configured one."""
    cell = Cell("teacher", 4, guidance=w)
    assert Cell.parse(cell.id) == cell
    assert re.fullmatch(_wildcard_constraint("cell"), cell.id)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Cell("teacher", 0), r"steps must be >= 1"),
        (lambda: Cell("hybrid", 4, 5), r"teacher_last L must be in \[0, N=4\]; got 5"),
        (lambda: Cell("hybrid", 4, -1), r"teacher_last L must be in \[0, N=4\]"),
        (
            lambda: Cell("t", 4, noise="bf16"),
            r"noise must be one of \('fp32', 'fp64'\)",
        ),
        (lambda: Cell("t", 4, guidance=-1.0), r"guidance must be a finite number >= 0"),
        (lambda: Cell("t", 4, guidance=float("nan")), r"guidance must be a finite"),
        (
            lambda: Cell.parse("teacher"),
            r"not a cell id: 'teacher' \(expected MODEL_nN",
        ),
        (lambda: Cell.parse("teacher_n4_fp16"), r"not a cell id"),
        (lambda: Cell.parse("_n4"), r"not a cell id"),
    ],
)
def test_bad_cells_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def _wildcard_constraint(name: str) -> str:
    """The regex a Snakemake wildcard is constrained to in workflows/rules/common.smk."""
    text = (ROOT / "workflows/rules/common.smk").read_text()
    block = text.split("wildcard_constraints:", 1)[1]
    m = re.search(rf'^\s+{name}=r?"(.*)",\s*$', block, re.M)
    assert m, f"no wildcard constraint for {name}"
    return m.group(1)


def _resolved(config: str, setting: str, scale: str) -> dict:
    return resolve(load_config(CONFIGS[config]), setting, scale)


CELL_RUNS = [
    (c, s, x) for c in CONFIGS for s in SAMPLING for x in ("paper", "mini", "smoke")
]


@pytest.mark.parametrize("config, setting, scale", CELL_RUNS)
def test_every_cell_of_every_run_round_trips_and_is_unique(config, setting, scale):
    cfg = _resolved(config, setting, scale)
    cells = get_setting(setting).cells(cfg)
    ids = [c.id for c in cells]
    assert cells and len(set(ids)) == len(ids), ids
    constraint = re.compile(_wildcard_constraint("cell"))
    for cell in cells:
        assert Cell.parse(cell.id) == cell
        assert constraint.fullmatch(cell.id), cell.id  # Snakemake can address it
        # the cell's model is a model of the run (or the hybrid of a named student)
        assert cell.model == "hybrid" or cell.model in cfg["models"], cell
        if cell.model == "hybrid":
            assert cell.teacher_last >= 1


# ------------------------------------------------------------------ teacher chains
def _chain_cfg():
    models = {
        "teacher": {"source": "train"},
        "other": {"source": "published"},
        "r1": {"source": "distill", "teacher": "teacher"},
        "r2": {"source": "distill", "teacher": "r1"},
        "r3": {"source": "released", "teacher": "r2"},
        "o1": {"source": "distill", "teacher": "other"},
        "plain": {"source": "distill"},  # teacher defaults to 'teacher'
    }
    return {
        "models": models,
        "sweep": {
            "teacher_steps": [1, 2],
            "student_steps": [2],
            "students": ["r1", "r2", "r3", "o1", "plain"],
            "hybrid": {"student": "r3", "cells": [[2, 1]]},
        },
    }


def test_teacher_of_follows_chains_to_the_root_teacher():
    got = get_setting("cifar10").teacher_of(_chain_cfg())
    assert got == {
        "r1": "teacher",
        "r2": "teacher",
        "r3": "teacher",
        "o1": "other",
        "plain": "teacher",
        "hybrid": "teacher",
    }


def test_teacher_chain_that_loops_is_refused():
    cfg = _chain_cfg()
    cfg["models"]["r1"]["teacher"] = "r3"
    with pytest.raises(ValueError, match=r"teacher chain loops"):
        get_setting("cifar10").teacher_of(cfg)


@pytest.mark.parametrize(
    "setting, scale, expected",
    [
        (
            "openwebtext",
            "mini",
            {"di4c": "teacher", "di4c2": "teacher", "k1": "teacher"},
        ),
        (
            "openwebtext",
            "paper",
            {
                "sdtt6_di4c": "sdtt6",
                "sdtt6_di4c2": "sdtt6",
                "sdtt7_di4c": "sdtt7",
                "sdtt7_di4c2": "sdtt7",
            },
        ),
        ("cifar10", "mini", {"student": "teacher", "student_k1": "teacher"}),
        ("imagenet", "mini", {"di4c": "teacher", "di4c-d": "teacher", "k1": "teacher"}),
    ],
)
def test_shipped_students_name_their_root_teacher(setting, scale, expected):
    got = get_setting(setting).teacher_of(_resolved("default", setting, scale))
    assert {k: v for k, v in got.items() if k != "hybrid"} == expected
    if "hybrid" in got:
        assert got["hybrid"] in set(expected.values())


# ------------------------------------------------------------------ the one seed rule
def test_sample_seeds_is_seed_plus_index():
    from di4c.cli.sample import sample_seeds

    assert sample_seeds(0, 3) == [0, 1, 2]
    assert sample_seeds(100, 4) == [100, 101, 102, 103]
    # a prefix of a longer run is the shorter run: more samples never move old ones
    assert sample_seeds(7, 1000)[:10] == sample_seeds(7, 10)
    with pytest.raises(ValueError, match="num_samples must be >= 1; got 0"):
        sample_seeds(0, 0)


def _calls(path: Path, names: set[str]) -> list[ast.Call]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else getattr(f, "attr", None)
            if name in names:
                out.append(node)
    return out


def _package_files():
    return sorted(PACKAGE.rglob("*.py"))


def test_samples_are_seeded_in_one_place_only():
    """Per-sample generators (SampleRNG) are made by the sample step alone, from
    sample_seeds: no setting has its own seed rule."""
    makers = {
        str(p.relative_to(ROOT)): len(_calls(p, {"SampleRNG"}))
        for p in _package_files()
        if _calls(p, {"SampleRNG"})
    }
    assert makers == {"di4c/cli/sample.py": 1}
    src = (PACKAGE / "cli/sample.py").read_text()
    assert re.search(r"seeds = sample_seeds\(", src)
    assert re.search(r"SampleRNG\(seeds\[", src)


# ------------------------------------------------------------------ the one hybrid rule
def test_hybrid_schedule_student_first_teacher_last():
    s, t = object(), object()
    assert hybrid_schedule(s, t, 5, 2) == [s, s, s, t, t]
    assert hybrid_schedule(s, t, 3, 0) == [s] * 3
    assert hybrid_schedule(s, t, 3, 3) == [t] * 3
    with pytest.raises(ValueError, match=r"teacher_last must be in \[0, num_steps=3\]"):
        hybrid_schedule(s, t, 3, 4)


def test_hybrid_is_defined_once():
    """No module but the samplers' defines a hybrid rule of its own."""
    defs = [
        f"{p.relative_to(ROOT)}:{node.name}"
        for p in _package_files()
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and "hybrid" in node.name.lower()
    ]
    assert defs == ["di4c/samplers/analytical.py:hybrid_schedule"]
    uses = [
        str(p.relative_to(ROOT))
        for p in _package_files()
        if _calls(p, {"hybrid_schedule"})
    ]
    assert uses == ["di4c/cli/sample.py", "di4c/cost.py"]  # sampling; its cost


class _Recorder:
    """A denoiser that logs which model made each call (uniform logits)."""

    def __init__(self, name, log, num_classes, mixture=False):
        self.den = CallableDenoiser(self._fn, num_classes, is_mixture=mixture)
        self.name, self.log, self.S = name, log, num_classes
        self.num_classes, self.is_mixture = num_classes, mixture

    def _fn(self, x, t, lam, cond):
        self.log.append(self.name)
        return torch.log_softmax(torch.zeros(x.shape[0], x.shape[1], self.S), -1)

    def __call__(self, x_t, t, lam=None, cond=None):
        return self.den(x_t, t, lam, cond)


def _process(kind):
    return {
        "analytical": lambda: GaussianRateProcess(S=4),
        "ancestral": lambda: MaskedProcess(4, "loglinear"),
        "confidence": lambda: MaskedProcess(4, "arccos"),
    }[kind]()


@pytest.mark.parametrize("kind", sorted(SAMPLERS))
def test_every_sampler_takes_the_same_arguments(kind):
    params = list(inspect.signature(SAMPLERS[kind]).parameters)
    assert params[:6] == ["process", "denoisers", "num_steps", "rng", "dim", "cond"]


@pytest.mark.parametrize("kind", sorted(SAMPLERS))
@pytest.mark.parametrize("N, L", [(4, 1), (5, 2), (3, 3), (3, 0)])
def test_every_sampler_follows_the_per_step_list(kind, N, L):
    """Given hybrid_schedule(student, teacher, N, L), every sampler makes its N
    network evaluations with the student first and the teacher for the last L."""
    log: list[str] = []
    student = _Recorder("student", log, 4, mixture=True)
    teacher = _Recorder("teacher", log, 4)
    out = SAMPLERS[kind](
        _process(kind), hybrid_schedule(student, teacher, N, L), N, SampleRNG([3, 4]), 6
    )
    assert log == ["student"] * (N - L) + ["teacher"] * L
    assert out.nfe == N and out.x.shape == (2, 6)
    with pytest.raises(ValueError, match=f"got {N + 1} denoisers for num_steps={N}"):
        SAMPLERS[kind](_process(kind), [teacher] * (N + 1), N, SampleRNG([3]), 6)


# ------------------------------------------------------------------ cited values
def test_split_cited_on_a_small_tree():
    tree = {
        "a": Cited(1, "paper Sec. 1"),
        "b": {
            "c": Cited((1, 2), "authors' file: key"),
            "d": 3,
            "e": {"f": Cited("bf16", "ours", published="fp16", reason="no GradScaler")},
        },
        "g": (4, (5, 6)),
        "h": None,
    }
    values, sources = split_cited(tree)
    assert values == {
        "a": 1,
        "b": {"c": [1, 2], "d": 3, "e": {"f": "bf16"}},
        "g": [4, [5, 6]],
        "h": None,
    }
    assert sorted(sources) == ["a", "b.c", "b.e.f"]
    assert sources["b.c"].source == "authors' file: key"
    assert sources["b.e.f"].deviates and not sources["a"].deviates
    assert not Cited(2, "s", published=2).deviates  # same value: no deviation
    assert split_cited({}) == ({}, {})
