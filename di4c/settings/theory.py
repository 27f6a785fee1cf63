"""The theory table (paper Sec. 3, Theorem 1): exact total variation on enumerable spaces.

Not a sampling setting: its steps are ``di4c.cli.theory`` (one experiment, then the
table). It is registered so that its configuration resolves like every other
setting's: the defaults of :class:`~di4c.theory.experiments.TheoryConfig`, with
deep-merged scale layers (``workflows/config/settings/theory.yaml``).
"""

from __future__ import annotations

from dataclasses import asdict

from di4c.settings.base import Setting


class Theory(Setting):
    name = "theory"
    PAPER: dict = {}
    scales = ("mini", "smoke")

    @classmethod
    def defaults(cls) -> dict:
        from di4c.theory.experiments import TheoryConfig

        return {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in asdict(TheoryConfig()).items()
        }

    @classmethod
    def sources(cls) -> dict:
        return {}

    @staticmethod
    def config(cfg: dict):
        from di4c.theory.experiments import TheoryConfig

        return TheoryConfig(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
        )
