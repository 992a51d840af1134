"""The one way every evaluator and probe turns a model and inputs into logits."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def logits(model: nn.Module, x: torch.Tensor, batch: int = 4096) -> torch.Tensor:
    """Logits of `model` on `x` in eval mode, on the model's device, returned on the CPU."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = torch.cat([model(x[i:i + batch].to(device)).float().cpu() for i in range(0, len(x), batch)])
    model.train(was_training)
    return out
