"""Scoring shared by the image settings (CIFAR-10, ImageNet): reference features, cells.

An image setting provides ``real_images(cfg, data_dir, split)`` (uint8 images, or an
iterable of uint8 chunks), ``decode(cfg, samples, models, device)`` (the sampled states
as uint8 image chunks) and ``floor_rows(...)``; this mixin turns them into the
reference features and one metric record per cell (:mod:`di4c.metrics.scoring`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from di4c.metrics.image_quality import EXTRACTORS, check_sample_count
from di4c.metrics.scoring import (
    SAMPLE_SHAPE_KEY,
    features_of_chunks,
    image_record,
    shape_checked,
)


def _chunks(images):
    return [images] if torch.is_tensor(images) else images


class ImageScoring:
    """Reference features and per-cell image metrics (FID, IS, precision / recall)."""

    def metric_models(self, cfg: dict) -> list[str]:
        """Models the metrics need (the digit classifier of the mini twins)."""
        m = cfg["metrics"]
        return ["classifier"] if m["feature_extractor"] == "digit-classifier" else []

    def metric_list(self, cfg: dict) -> tuple[str, ...]:
        """The configured metrics the feature extractor supports (the offline
        Inception has no logits layer, so no IS)."""
        m = cfg["metrics"]
        spec = EXTRACTORS[m["feature_extractor"]]
        return tuple(x for x in m["metrics"] if x in spec.metrics)

    def _weights(self, cfg: dict, models: dict):
        if "classifier" in models:
            return str(models["classifier"].path())
        return cfg["metrics"].get("weights_path")

    def features(
        self, cfg: dict, chunks, models: dict, want: tuple | None = None
    ) -> dict[str, torch.Tensor]:
        """Features of uint8 image chunks, with the images' (C, H, W) under
        :data:`SAMPLE_SHAPE_KEY`; chunks of another shape than ``want`` are refused."""
        seen: list = []
        feats = self._features(cfg, shape_checked(_chunks(chunks), want, seen), models)
        return feats | {SAMPLE_SHAPE_KEY: torch.tensor(seen[0])}

    def _features(self, cfg: dict, chunks, models: dict) -> dict[str, torch.Tensor]:
        m = cfg["metrics"]
        weights = self._weights(cfg, models)
        try:
            return features_of_chunks(
                chunks,
                m["feature_extractor"],
                self.metric_list(cfg),
                weights_path=weights,
                batch_size=m["batch_size"],
            )
        except OSError as e:  # URLError: torch-fidelity's Inception download failed
            if m["feature_extractor"] != "inception-v3-compat" or weights:
                raise
            from di4c.download import MissingWeightsError

            raise MissingWeightsError(
                f"could not load torch-fidelity's Inception weights ({type(e).__name__}: "
                f"{e}); this machine may be offline. Download "
                "weights-inception-2015-12-05-6726825d.pth (torch-fidelity's release "
                "assets) elsewhere and set config key "
                f"'{self.name}.paper.metrics.weights_path' to its path."
            ) from e

    def reference(
        self, cfg: dict, data_dir: Path, models: dict, device
    ) -> tuple[dict, list]:
        """(features of the reference images, floor rows scored against them)."""
        real = self.features(
            cfg, self.real_images(cfg, data_dir, cfg["metrics"]["reference"]), models
        )
        rows = self.floor_rows(cfg, data_dir, models, real)
        return real, rows

    def score_images(self, cfg: dict, chunks, models: dict, real: dict) -> dict:
        """The cell's record; images of another shape than the reference's are
        refused (a reference of an older version, without the shape, is not checked)."""
        m = cfg["metrics"]
        real = dict(real)
        want = real.pop(SAMPLE_SHAPE_KEY, None)
        want = None if want is None else tuple(want.tolist())
        fake = self.features(cfg, chunks, models, want)
        fake.pop(SAMPLE_SHAPE_KEY)
        n_fake = len(next(iter(fake.values())))
        n_real = len(next(iter(real.values())))
        check_sample_count(n_fake, n_real, m["protocol"])
        return image_record(
            fake,
            real,
            m["feature_extractor"],
            self.metric_list(cfg),
            m["bootstrap"],
            m.get("prc_chunks", 1),
        )

    def score(self, cfg: dict, samples: dict, models: dict, real: dict, device) -> dict:
        return self.score_images(
            cfg, self.decode(cfg, samples, models, device), models, real
        )
