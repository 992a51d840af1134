"""Successor checkpoints: `successors/<id>.safetensors` (weights) and `successors/<id>.json`
(genome + metrics). Never pickle.

A successor's id is sha256 over its canonical genome and its tensors (name, dtype, shape, bytes),
so `rsi-loop-verify` can recompute it from the files with numpy alone.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from loop.ledger import atomic_write, canonical  # atomic_write is re-exported from here
from loop.stages import Genome

if TYPE_CHECKING:
    from torch import nn

    from loop.stages import TaskShape

ID_LENGTH = 16  # hex characters: 64 bits, ample for the thousands of successors of a run


def successor_id(genome: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> str:
    digest = hashlib.sha256(canonical(dict(genome)).encode())
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:ID_LENGTH]


def weights_of(model: "nn.Module") -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().contiguous().numpy() for k, v in model.state_dict().items()}


class Checkpoints:
    """The `successors/` folder of a run."""

    def __init__(self, run_dir: Path | str):
        self.root = Path(run_dir) / "successors"

    def weights_path(self, successor: str) -> Path:
        return self.root / f"{successor}.safetensors"

    def card_path(self, successor: str) -> Path:
        return self.root / f"{successor}.json"

    def save_weights(self, successor: str, model: "nn.Module") -> str:
        """Save a successor's weights; return the file's sha256."""
        from safetensors.numpy import save

        data = save(weights_of(model), metadata={"id": successor})
        atomic_write(self.weights_path(successor), data)
        return hashlib.sha256(data).hexdigest()

    def save_card(self, successor: str, card: Mapping[str, Any]) -> str:
        """Save the genome + metrics card; return its sha256."""
        data = (json.dumps(dict(card), indent=2, sort_keys=True, allow_nan=False) + "\n").encode()
        atomic_write(self.card_path(successor), data)
        return hashlib.sha256(data).hexdigest()

    def load_card(self, successor: str) -> dict[str, Any]:
        return json.loads(self.card_path(successor).read_text())

    def load_arrays(self, successor: str) -> dict[str, np.ndarray]:
        from safetensors.numpy import load_file

        return load_file(str(self.weights_path(successor)))

    def load_model(self, successor: str, genome: Genome, shape: "TaskShape", device: str = "cpu") -> "nn.Module":
        """Rebuild a successor for the task's inputs (`shape`) and load its saved weights."""
        from safetensors.torch import load_file

        from successors import build

        model = build(genome, shape)
        model.load_state_dict(load_file(str(self.weights_path(successor)), device="cpu"))
        return model.to(device)

    def sweep_temporaries(self) -> list[Path]:
        """Remove temporary files left by a killed write; return what was removed."""
        stale = sorted(self.root.glob(".*.tmp")) if self.root.exists() else []
        for path in stale:
            path.unlink()
        return stale
