"""The minimum-sample rule shared by every metric (images and text).

A metric of fewer samples than its protocol's minimum is refused with
:class:`InsufficientSamplesError`, never returned as a number: a standard error, a
split half or a covariance of fewer than two samples is undefined (NaN), and a
table built from it would print NaN as a result. Each setting names its protocols'
minimums (:data:`di4c.metrics.image_quality.PROTOCOLS` for the images, the
OpenWebText adapter's own for text).
"""

from __future__ import annotations

MIN_SAMPLES = 2  # the least any spread (sd, split half, covariance) needs


class InsufficientSamplesError(ValueError):
    """Fewer samples than the evaluation protocol requires."""


def require_samples(
    n: int,
    need: int | None = None,
    *,
    what: str = "generated",
    unit: str = "samples",
    protocol: str | None = None,
    table: str = "",
) -> None:
    """Refuse ``n`` ``what`` samples when fewer than ``need`` (at least 2): the
    message names the protocol and the config keys that change the count."""
    need = max(int(need if need is not None else MIN_SAMPLES), MIN_SAMPLES)
    if n < need:
        raise InsufficientSamplesError(
            f"{n} {what} {unit}, but the {protocol or 'requested'} protocol needs "
            f">= {need}; generate more samples (config key sample.num_samples) or "
            f"use a protocol with a lower minimum (metrics.protocol){table}"
        )
