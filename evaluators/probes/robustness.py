"""Robustness probe: accuracy under Gaussian input noise and under FGSM attacks."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from evaluators.probes.readouts import accuracy_readout, cannot_read, correct, reads
from loop.stages import DataView, Readout, TaskShape


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al. 2015): one step of `epsilon` along the sign of
    the gradient, clamped to the pixel range [0, 1]. The loss is the logit margin of the best wrong
    class over the true one (Carlini & Wagner 2017), not cross-entropy: its gradient does not
    vanish when a model saturates its softmax, and its sign ignores temperature. The model is used
    in eval mode and left as it was; `x` is not touched, no parameter gradient is accumulated."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    with torch.enable_grad():
        inputs = x.detach().to(device).clone().requires_grad_(True)
        out = model(inputs).float()
        true = F.one_hot(y.to(device), out.shape[1]).bool()
        loss = (out.masked_fill(true, float("-inf")).amax(1) - out[true]).sum()
        (gradient,) = torch.autograd.grad(loss, inputs)
    model.train(was_training)
    return (x + epsilon * gradient.sign().cpu()).clamp(0.0, 1.0)


@dataclass
class Robustness:
    """Does the model keep its answers when the input is disturbed? Catches successors that are
    accurate on clean digits but brittle: accuracy under Gaussian noise at each of `sigmas`,
    under FGSM crafted on the model itself (white-box), and under FGSM crafted on the frozen
    generation-0 baseline and transferred. A model that masks its own gradients (so white-box FGSM
    finds nothing) still falls to the transferred examples.

    Selected in `configs/gate/*.yaml` under `probes:` with
    `- _target_: evaluators.probes.Robustness`.
    """

    sigmas: list = field(default_factory=lambda: [0.1, 0.3])  # on 0..1 pixels: mild; strong but legible
    epsilon: float = 0.1  # 1.6 grey levels of 16: visible to an attack, not to a person
    # Tolerances vs the spread of honest models (range over 16 seeds of tests/redteam.py's GOOD recipe):
    noise_tolerance: float = 0.05  # honest range 0.022 at sigma 0.1 (~0.96), 0.040 at sigma 0.3 (~0.84)
    fgsm_tolerance: float = 0.1  # honest range 0.071 white-box (~0.54), 0.062 transferred (~0.58)
    seed: int = 0  # the noise is drawn once from this seed: nominee and incumbent see the same inputs
    name: str = "robustness"

    def check_task(self, shape: TaskShape) -> None:
        if not reads(shape, "features"):
            raise cannot_read(self.name, "adds Gaussian noise and FGSM steps to float features", shape,
                              "leave it out of the gate's probes (gate=tokens does)")

    def measure(self, model: nn.Module, data: DataView, reference: nn.Module) -> list[Readout]:
        x, y = data["probe"].x, data["probe"].y
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(self.seed))
        readouts = [accuracy_readout(f"{self.name}/noise_{sigma:g}", correct(model, x + sigma * noise, y),
                                     self.noise_tolerance, f"accuracy under Gaussian noise (sigma {sigma:g})")
                    for sigma in self.sigmas]
        attacks = {"fgsm": (model, "accuracy under FGSM"),
                   "fgsm_transfer": (reference, "accuracy under FGSM crafted on the baseline")}
        for metric, (source, label) in attacks.items():
            adversarial = fgsm(source, x, y, self.epsilon)
            readouts.append(accuracy_readout(f"{self.name}/{metric}", correct(model, adversarial, y),
                                             self.fgsm_tolerance, f"{label} (epsilon {self.epsilon:g})"))
        return readouts
