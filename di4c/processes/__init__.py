"""Forward processes on S^D, dimension-wise independent (paper Sec. 2).

Registry: ``PROCESSES[name](**kwargs)`` builds a process from config.
"""

from di4c.processes.base import ForwardProcess, MatrixProcess
from di4c.processes.gaussian_rate import (
    GaussianRateProcess,
    gaussian_target_rate_matrix,
)
from di4c.processes.masked import SCHEDULES, MaskedProcess
from di4c.processes.uniform import UniformProcess

PROCESSES = {
    "masked": MaskedProcess,
    "gaussian_rate": GaussianRateProcess,
    "uniform": UniformProcess,
}


def build_process(name: str, **kwargs) -> ForwardProcess:
    """Build a registered process; unknown names list the allowed ones."""
    if name not in PROCESSES:
        raise ValueError(f"unknown process {name!r}; allowed: {sorted(PROCESSES)}")
    return PROCESSES[name](**kwargs)


__all__ = [
    "PROCESSES",
    "SCHEDULES",
    "ForwardProcess",
    "GaussianRateProcess",
    "MaskedProcess",
    "MatrixProcess",
    "UniformProcess",
    "build_process",
    "gaussian_target_rate_matrix",
]
