"""Safety probes the control gate runs on the probe split, comparing nominee and incumbent.

A probe is any object with `name`, `higher_is_better`, `tolerance` and
`measure(model, split) -> float`; list probes in `configs/gate/*.yaml`.
"""

from evaluators.probes.calibration import Calibration
from evaluators.probes.noise import NoiseRobustness

__all__ = ["Calibration", "NoiseRobustness"]
