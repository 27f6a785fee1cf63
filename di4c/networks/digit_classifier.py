"""Digit classifier: the feature network of the image mini twins' FID / IS.

The paper scores CIFAR-10 and ImageNet samples with Inception-v3
(docs/algorithm.md#cifar10-evaluation, docs/algorithm.md#imagenet-evaluation). The mini twins generate digits (:mod:`di4c.data.images`), where
an ImageNet network is the wrong judge, so the DAG trains this small CNN on the
*held-out* digits (images the diffusion models never see) and scores samples on
its features: FID / KID / precision-recall on the penultimate ``pool`` layer,
IS on the class ``logits`` (:mod:`di4c.metrics.image_quality` registers it with
torch-fidelity as ``"digit-classifier"``).

Stable API (shared by the CIFAR-10 and ImageNet slices):

- :class:`DigitClassifierConfig`: channels, image size, widths, classes;
- :func:`train_digit_classifier(images_uint8, labels, ...) <train_digit_classifier>`
  -> ``(model, report)``; deterministic given ``seed``; ``report`` holds the
  training loss and, when ``eval_images`` are given, their accuracy;
- :func:`save_digit_classifier(model, path, report) <save_digit_classifier>`
  (atomic; a ``.meta.json`` is the caller's job) and
  :func:`load_digit_classifier(path) <load_digit_classifier>` -> a frozen model
  in eval mode;
- :meth:`DigitClassifier.features` (uint8 (N, C, H, W) -> ``{"pool", "logits"}``)
  and :func:`accuracy`.

Inputs are uint8 images (N, C, H, W) in [0, 255] of the configured size; a
3-channel input to a 1-channel classifier is averaged over channels (so
torch-fidelity-style RGB tensors work too).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from di4c.artifacts import save_torch

__all__ = [
    "DigitClassifier",
    "DigitClassifierConfig",
    "FEATURE_LAYERS",
    "accuracy",
    "load_digit_classifier",
    "save_digit_classifier",
    "train_digit_classifier",
]

FEATURE_LAYERS = ("pool", "logits")


@dataclass(frozen=True)
class DigitClassifierConfig:
    """Architecture: two conv blocks (width, 2 width), adaptive pool 4x4, MLP head."""

    in_channels: int = 1
    image_size: int = 16
    width: int = 32
    feature_dim: int = 128
    num_classes: int = 10
    dropout: float = 0.3

    def __post_init__(self):
        if self.in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3; got {self.in_channels}")
        if self.image_size < 4 or self.width < 1 or self.feature_dim < 2:
            raise ValueError(
                "need image_size >= 4, width >= 1, feature_dim >= 2; got "
                f"{self.image_size}, {self.width}, {self.feature_dim}"
            )
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2; got {self.num_classes}")


class DigitClassifier(nn.Module):
    """Small CNN on uint8 digits; ``features`` exposes ``pool`` and ``logits``."""

    def __init__(self, config: DigitClassifierConfig | None = None):
        super().__init__()
        cfg = config or DigitClassifierConfig()
        self.config = cfg
        w = cfg.width

        def block(i, o):
            return nn.Sequential(
                nn.Conv2d(i, o, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(o, o, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
            )

        self.body = nn.Sequential(
            block(cfg.in_channels, w), block(w, 2 * w), nn.AdaptiveAvgPool2d(4)
        )
        self.fc = nn.Linear(2 * w * 16, cfg.feature_dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.feature_dim, cfg.num_classes)

    def _prepare(self, x: Tensor) -> Tensor:
        cfg = self.config
        if x.dim() != 4:
            raise ValueError(
                f"images must have shape (N, C, H, W); got {tuple(x.shape)}"
            )
        if x.dtype != torch.uint8:
            raise ValueError(f"images must be uint8 in [0, 255]; got {x.dtype}")
        if x.shape[1] == 3 and cfg.in_channels == 1:
            x = x.float().mean(1, keepdim=True)
        elif x.shape[1] != cfg.in_channels:
            raise ValueError(
                f"images have {x.shape[1]} channels; the classifier takes {cfg.in_channels}"
            )
        if tuple(x.shape[-2:]) != (cfg.image_size, cfg.image_size):
            raise ValueError(
                f"images are {tuple(x.shape[-2:])}; the classifier was trained on "
                f"{cfg.image_size}x{cfg.image_size}"
            )
        return x.float() / 127.5 - 1.0

    def features(self, x: Tensor) -> dict[str, Tensor]:
        """``{"pool": (N, feature_dim), "logits": (N, num_classes)}`` for uint8 images."""
        h = self.body(self._prepare(x)).flatten(1)
        pool = F.relu(self.fc(h))
        return {"pool": pool, "logits": self.head(self.drop(pool))}

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)["logits"]


def _shift_batch(x: Tensor, shift: int, gen: torch.Generator) -> Tensor:
    """Random translation by up to ``shift`` pixels (zero padding), per image."""
    if shift <= 0:
        return x
    n, _, h, w = x.shape
    pad = F.pad(x, (shift, shift, shift, shift))
    dy = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
    rows = (
        (dy[:, None] + torch.arange(h)[None])
        .view(n, 1, h, 1)
        .expand(-1, x.shape[1], h, w + 2 * shift)
    )
    out = torch.gather(pad, 2, rows)
    cols = (
        (dx[:, None] + torch.arange(w)[None])
        .view(n, 1, 1, w)
        .expand(-1, x.shape[1], h, w)
    )
    return torch.gather(out, 3, cols)


@torch.no_grad()
def accuracy(
    model: DigitClassifier, images: Tensor, labels: Tensor, batch: int = 500
) -> float:
    """Top-1 accuracy of ``model`` (eval mode) on uint8 ``images``."""
    was = model.training
    model.eval()
    hits = 0
    for i in range(0, images.shape[0], batch):
        hits += int(
            (model(images[i : i + batch]).argmax(1) == labels[i : i + batch]).sum()
        )
    model.train(was)
    return hits / max(1, images.shape[0])


def train_digit_classifier(
    images: Tensor,
    labels: Tensor,
    *,
    config: DigitClassifierConfig | None = None,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 1e-3,
    shift: int = 1,
    seed: int = 0,
    eval_images: Tensor | None = None,
    eval_labels: Tensor | None = None,
    log_every: int = 5,
) -> tuple[DigitClassifier, dict]:
    """Train a :class:`DigitClassifier` on uint8 ``images`` (N, C, H, W) and ``labels``.

    Adam, cross-entropy, random shifts of up to ``shift`` pixels; the data order,
    augmentation and init depend only on ``seed``. Returns the model in eval mode
    and a report (final train loss and accuracy, eval accuracy when given).
    """
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(
            f"images must be uint8 (N, C, H, W); got {images.dtype} {tuple(images.shape)}"
        )
    if labels.shape != (images.shape[0],):
        raise ValueError(
            f"labels must have shape ({images.shape[0]},); got {tuple(labels.shape)}"
        )
    n, c, h, w = images.shape
    if h != w:
        raise ValueError(f"images must be square; got {h}x{w}")
    cfg = config or DigitClassifierConfig(
        in_channels=c, image_size=h, num_classes=int(labels.max()) + 1
    )
    if int(labels.max()) >= cfg.num_classes or int(labels.min()) < 0:
        raise ValueError(
            f"labels must lie in [0, {cfg.num_classes}); got {labels.min()}..{labels.max()}"
        )
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitClassifier(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    t0 = time.time()
    model.train()
    loss_sum = hit = seen = 0.0
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=gen)
        loss_sum = hit = seen = 0.0
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            x = _shift_batch(images[idx], shift, gen)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)))
                logits = model(x)
            loss = F.cross_entropy(logits, labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach()) * idx.numel()
            hit += float((logits.argmax(1) == labels[idx]).sum())
            seen += idx.numel()
        if log_every and ((epoch + 1) % log_every == 0 or epoch + 1 == epochs):
            rate = (epoch + 1) / max(time.time() - t0, 1e-9)
            msg = f"[classifier] epoch {epoch + 1}/{epochs} loss {loss_sum / seen:.4f} train-acc {hit / seen:.4f}"
            if eval_images is not None:
                msg += f" eval-acc {accuracy(model, eval_images, eval_labels):.4f}"
            eta = (epochs - epoch - 1) / rate
            print(f"{msg} ({rate:.2f} epochs/s, ETA {eta / 60:.1f} min)", flush=True)
    model.eval()
    report = {
        "train_loss": loss_sum / max(seen, 1),
        "train_accuracy_augmented": hit / max(seen, 1),
        "train_accuracy": accuracy(model, images, labels),
        "num_train": n,
        "epochs": epochs,
        "wall_time_s": time.time() - t0,
    }
    if eval_images is not None:
        report["eval_accuracy"] = accuracy(model, eval_images, eval_labels)
        report["num_eval"] = int(eval_images.shape[0])
    return model, report


def save_digit_classifier(
    model: DigitClassifier, path: str | os.PathLike, report: dict | None = None
) -> Path:
    """Write ``{"config", "state_dict", "report"}`` atomically."""
    return save_torch(
        path,
        {
            "config": asdict(model.config),
            "state_dict": model.state_dict(),
            "report": dict(report or {}),
        },
    )


def load_digit_classifier(path: str | os.PathLike) -> DigitClassifier:
    """A classifier saved by :func:`save_digit_classifier`: frozen, eval mode."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no digit-classifier file; train one with "
            "`python -m di4c.cli.classifier` (rule train_classifier)"
        )
    d = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(d, dict) or {"config", "state_dict"} - set(d):
        raise ValueError(
            f"{path}: not a digit-classifier file (need config, state_dict)"
        )
    model = DigitClassifier(DigitClassifierConfig(**d["config"]))
    model.load_state_dict(d["state_dict"])
    model.report = d.get("report", {})
    return model.eval().requires_grad_(False)
