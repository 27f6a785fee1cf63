"""Samplers: analytical (tauLDR) with hybrid, ancestral (MDLM), confidence (MaskGIT)."""

from di4c.samplers.analytical import SampleOutput, analytical_sample, hybrid_schedule
from di4c.samplers.ancestral import ancestral_sample
from di4c.samplers.confidence import cfg_ramp, confidence_sample, unmask_schedule
from di4c.samplers.noise import BatchRNG, SampleRNG, categorical

SAMPLERS = {
    "analytical": analytical_sample,
    "ancestral": ancestral_sample,
    "confidence": confidence_sample,
}

__all__ = [
    "SAMPLERS",
    "BatchRNG",
    "SampleOutput",
    "SampleRNG",
    "analytical_sample",
    "ancestral_sample",
    "categorical",
    "cfg_ramp",
    "confidence_sample",
    "hybrid_schedule",
    "unmask_schedule",
]
