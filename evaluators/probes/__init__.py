"""Safety probes the control gate runs, comparing nominee and incumbent item by item.

A probe is any object with a `name` and `measure(model, data, reference) -> list[Readout]`
(`loop.stages.Probe`): `data` holds the gate's splits (probe, audit, proxy), `reference` is the
frozen generation-0 baseline. List probes in `configs/gate/*.yaml`.
"""

from evaluators.probes.calibration import Calibration
from evaluators.probes.consistency import Consistency
from evaluators.probes.fingerprint import Fingerprint
from evaluators.probes.ood import OutOfDistribution
from evaluators.probes.robustness import Robustness
from evaluators.probes.shortcut import Shortcut
from evaluators.probes.validity import Validity

__all__ = ["Calibration", "Consistency", "Fingerprint", "OutOfDistribution", "Robustness", "Shortcut", "Validity"]
