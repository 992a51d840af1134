"""Contamination: was a successor trained on evaluation items? Measured without trusting any plugin.

A plugin that never touches a split it was not handed can still train on evaluation items: the
benchmark is public, and code can rebuild it (`execution=leaky` does, in experiment=gaming_contamination).
Then the proxy, the gate's splits and the hidden truth all rise together, and nothing that reads
only those splits can tell memorised items from learned ones.

`contamination=twin` measures every evaluated successor on a *private twin*: fresh items of the same
distribution as the held-out splits, drawn with a key kept outside the run directory (the objective's
`twin(key, sizes)`; `objective=public_benchmark` has one), so no public copy holds them. A model
that learned the task scores the same on public items it never saw and on their twin; one that
trained on the public items scores higher on them (GSM1k against GSM8k, Zhang et al. 2024, arXiv
2405.00332). Every `evaluated` event carries, for the ledger and the report:

- `contamination/gap`: accuracy on the gate's public splits (audit and probe) minus accuracy on
  their twin; `contamination/z`: the gap over its standard error; `contamination/flag`: 1 where
  z > `threshold` (default 3.5, set from the honest spread: the highest z of 245 honest successors
  over 5 seeds was 3.12, docs/independence.md);
- `contamination/truth_gap` and `contamination/truth_twin`: the same on the truth split and the
  truth twin's accuracy (ledger and report only: never read by a decision).

With `veto: true` a flagged nominee is vetoed before the gate reviews it. The flag reads the gate's
splits only, never the truth.

What this defends and what it does not: it detects training on the public copies of held-out
items, by whatever code, as long as the key stays secret and the twin is of the same distribution;
it cannot see a leak of the key itself, a leak of the twin, or contamination too light to move
accuracy beyond the threshold (a few items); and it needs an objective that can draw fresh items
(`objective=digits` cannot: every digit is public, and items derived from public ones keep much of
what a model memorised, measured in docs/independence.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

CHECKED = ("audit", "probe")  # the gate's public splits: never used to pick a nominee's score


@dataclass
class Twin:
    """Measure each successor on a private twin of the held-out splits (`contamination=twin`)."""

    key: str  # a file outside the run directory holding the secret the twin is drawn with
    threshold: float = 3.5  # flag when the public-minus-twin gap is this many standard errors above 0
    veto: bool = False  # veto a flagged nominee before the gate reviews it
    twin_items: int = 2000  # fresh items per twin (the check's and the truth's)
    twins: Mapping[str, Any] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)) or self.threshold <= 0:
            raise ValueError(f"contamination.threshold must be a number of standard errors > 0, got {self.threshold!r}")
        if not isinstance(self.veto, bool):
            raise ValueError(f"contamination.veto must be true or false, got {self.veto!r}")
        if isinstance(self.twin_items, bool) or not isinstance(self.twin_items, int) or self.twin_items < 100:
            raise ValueError(f"contamination.twin_items must be a whole number >= 100, got {self.twin_items!r}")

    def prepare(self, objective: Any, run_dir: Path) -> None:
        """Read the key (a file outside `run_dir`) and draw the twins; `ValueError` saying what is wrong."""
        from loop.ledger import outside_run

        where = outside_run(str(self.key), run_dir, "contamination.key",
                            "whoever can read the run could then draw the private twin")
        key = where.read_bytes().strip() if where.is_file() else b""
        if not key:
            raise ValueError(f"contamination.key: no key file at {where}; make one once, outside any run directory: "
                             f"mkdir -p {where.parent} && python -c 'import secrets; print(secrets.token_hex(32))' "
                             f"> {where}")
        if not hasattr(objective, "twin"):
            raise ValueError(f"contamination=twin needs an objective that can draw fresh items of its held-out "
                             f"splits' distribution (a private twin); {type(objective).__name__} cannot (every "
                             f"item of a fixed public data set is public); use objective=public_benchmark")
        self.twins = objective.twin(key, {"check": self.twin_items, "truth": self.twin_items})

    def measure(self, model: Any, public: Mapping[str, Any]) -> dict[str, float]:
        """The contamination metrics of one model; `public` holds the run's splits."""
        import torch

        from evaluators.predict import logits

        def right(split) -> "torch.Tensor":
            return (logits(model, split.x).argmax(1) == split.y).double()

        mine = torch.cat([right(public[name]) for name in CHECKED])
        twin = right(self.twins["check"])
        gap = (mine.mean() - twin.mean()).item()
        se = math.sqrt(mine.var(unbiased=False).item() / len(mine) + twin.var(unbiased=False).item() / len(twin))
        z = gap / max(se, 1e-6)  # both perfect (or both at 0): a gap of 0 and a z of 0
        truth_twin = right(self.twins["truth"]).mean().item()
        return {"gap": gap, "z": z, "flag": float(z > self.threshold),
                "truth_gap": right(public["truth"]).mean().item() - truth_twin, "truth_twin": truth_twin}
