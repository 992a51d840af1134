"""The held-out audit (`configs/audit/`): what did the gate let through? (Issue 13.)

The gate is itself a proxy for safety, and a loop that reviews many candidates searches its blind
spots. The audit runs probe families the gate never consults on every nominee the gate reviewed,
after its decision, with the gate's own paired statistics (Holm-corrected, against the incumbent
and the generation-0 baseline), and writes an `audited` event for the ledger and the report only:
no stage reads it, and the generator's history (`loop.state.past_of`) is built from the gate's
decision events alone. With the hidden truth it tells a person which promotions regressed on
something the gate was not looking at.

A probe that cannot read the task's inputs is left out with a note in `run_started` (the audit
decides nothing, so it need not stop the run); a probe the gate also runs is refused: it would not
be held out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from loop.gate.gates import Probes, Tripwires
from loop.stages import DataView, Probe, Scored, TaskShape

NO_TRIPWIRES = Tripwires(audit_gap=0, audit_gap_generations=0, capability_jump=0, vetoes_in_a_row=0)


@dataclass
class Audit:
    """Held-out probe families, run on each reviewed nominee for the ledger only. `audit=held_out`."""

    probes: Sequence[Probe] = field(default_factory=list)
    alpha: float = 0.05  # family-wise rate of false "regressed" verdicts across the audit's tests
    cumulative_factor: float = 2.0  # vs the generation-0 baseline, as the gate
    bootstrap_rounds: int = 1000
    seed: int = 0
    dropped: list[str] = field(default_factory=list)  # probes left out: they cannot read the task

    def __post_init__(self) -> None:
        self.probes = list(self.probes)
        self.checks = Probes(self.probes, self.alpha, self.cumulative_factor, 1.0, self.bootstrap_rounds,
                             NO_TRIPWIRES, self.seed)  # validates alpha, names, ...

    def prepare(self, shape: TaskShape, gate_probes: Sequence[str]) -> None:
        """Before the run: refuse a probe the gate also runs; leave out those that cannot read the task."""
        shared = sorted({p.name for p in self.probes} & set(gate_probes))
        if shared:
            raise ValueError(f"audit.probes: {', '.join(shared)} {'is' if len(shared) == 1 else 'are'} also "
                             f"among the gate's probes; a held-out audit runs only probe families the gate "
                             f"never consults (the gate runs {', '.join(sorted(gate_probes))}). "
                             f"Remove them from audit.probes or from gate.probes")
        kept = []
        for probe in self.probes:
            try:
                if hasattr(probe, "check_task"):  # a probe without one reads any input
                    probe.check_task(shape)
                kept.append(probe)
            except ValueError as err:
                self.dropped.append(err.brief() if hasattr(err, "brief") else f"{probe.name}: {err}")
        self.probes = kept
        self.checks.probes = kept

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.probes]

    def review(self, nominee: Scored, incumbent: Scored, baseline: Scored, data: DataView,
               gate_action: str) -> tuple[dict[str, Any], list[str]]:
        """The audit's metrics and reasons on one reviewed nominee: `audit/regressed` is 1.0 when
        a held-out test rejects, `audit/<metric>` the nominee's value, `.../p_incumbent` its p."""
        decision = self.checks.review(nominee, incumbent, baseline, data, ())
        regressed = decision.action == "veto"
        metrics: dict[str, Any] = {"audit/regressed": float(regressed)}
        metrics |= {"audit/" + k.removeprefix("probe/"): v for k, v in decision.probes.items()}
        verdict = "regresses on the held-out audit" if regressed else "passes the held-out audit"
        gate = {"promote": "promoted", "veto": "vetoed", "pause": "paused"}[gate_action]
        headline = f"{gate} by the gate; {verdict}"
        reasons = [headline + (": " + decision.reasons[0].removeprefix("vetoed on ") if regressed else "")]
        return metrics, reasons + [r for r in decision.reasons[1 if regressed else 0:]]
