"""The setting registry: one adapter per paper setting (paper Sec. 5; theory: Sec. 3).

``get_setting("cifar10")`` returns the adapter the generic steps call
(:mod:`di4c.cli`); :func:`paper_rules` the paper's distillation rules of a setting.
Adapters are imported on first use, so importing the rules stays light.
"""

from __future__ import annotations

import importlib

from di4c.config import ConfigError
from di4c.settings.base import Cell, Cited, Setting
from di4c.settings.rules import TIME_SAMPLERS, DistillRules, TimeDraw

# setting name -> "module:class" of its adapter
SETTINGS: dict[str, str] = {
    "cifar10": "di4c.settings.cifar10:Cifar10",
    "imagenet": "di4c.settings.imagenet:ImageNet",
    "openwebtext": "di4c.settings.openwebtext:OpenWebText",
    "theory": "di4c.settings.theory:Theory",
}


def setting_class(name: str) -> type[Setting]:
    if name not in SETTINGS:
        raise ConfigError(f"unknown setting {name!r}; allowed: {sorted(SETTINGS)}")
    module, cls = SETTINGS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def get_setting(name: str) -> Setting:
    return setting_class(name)()


def paper_rules(name: str, **overrides) -> DistillRules:
    """The paper's distillation rules of a setting, with optional overrides."""
    rules = DistillRules.from_dict(setting_class(name).defaults()["distill"])
    return rules.with_overrides(**overrides) if overrides else rules


__all__ = [
    "SETTINGS",
    "TIME_SAMPLERS",
    "Cell",
    "Cited",
    "DistillRules",
    "Setting",
    "TimeDraw",
    "get_setting",
    "paper_rules",
    "setting_class",
]
