"""`promotion=map_elites`: an archive of elites by behaviour descriptors, and parents drawn from it.

Quality-diversity (MAP-Elites, Mouret & Clune 2015, arXiv 1504.04909): the descriptors cut the space
of behaviours into cells, and each cell keeps its best successor, its *elite*. Here the loop keeps one
incumbent (what the gate protects and the run ends on) and, beside it, the archive:

- every successor evaluated in a counted generation enters the archive, in its cell, if its score
  beats the cell's elite (ties: the earlier stays); a successor the gate vetoed, or a nominee a pause
  holds, does not (a person's approval lets it in);
- each candidate's parent is the incumbent with probability `incumbent`, and otherwise an elite drawn
  uniformly from the archive: the generator is asked for children of each drawn parent (its
  `propose(parent, history, n, rng)` unchanged), and the candidate's `parent` in the ledger names it;
- the nominee is chosen as `promotion=greedy` chooses: the best score of the generation, if it
  beats the incumbent's by more than `margin`. The archive supplies stepping stones, not promotions.

A caveat for generators that compare siblings (`generator=bandit` ranks each child against its
siblings; `credit`/`lineage` credit genes by what a generation produced): with parents drawn from the
archive, siblings no longer share one parent, so those comparisons mix children of different parents.

Descriptors, each with its bin edges (k increasing edges make k+1 bins; the outer two are open):
`compute` (training compute as execution counted it), `parameters`, `metric/<key>` (an evaluator
metric on the proxy split, e.g. `metric/ece` or `metric/nll` of `evaluator=accuracy`) and
`gene/<name>` (an architecture or recipe gene, e.g. `gene/depth`, `gene/lr`). The truth is never
read. The archive is a function of the ledger alone (`archive(events)`), so a resumed run draws from
the archive an uninterrupted one would; each `generation_finished` event records it (`detail.archive`)
with its coverage (filled cells / cells) and QD-score (the sum of the elites' proxies), the measures
the quality-diversity literature reports.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from loop.promotion.greedy import Greedy
from loop.promotion.pareto import compute_of
from loop.stages import Nomination, Scored

KINDS = "compute, parameters, metric/<key> (an evaluator metric), gene/<name> (an architecture or recipe gene)"
STOPPED = {"vetoed", "paused"}  # a nominee the gate stopped stays out of the archive until promoted


def check_descriptors(descriptors: object) -> dict[str, tuple[float, ...]]:
    """The descriptors as {name: increasing bin edges}; anything else is refused with what is allowed."""
    if not isinstance(descriptors, Mapping) or not descriptors:
        raise ValueError(f"promotion.descriptors must map at least one descriptor to its bin edges, e.g. "
                         f"{{compute: [1.0e7, 3.0e7], metric/ece: [0.05, 0.1]}}; got {descriptors!r}")
    checked = {}
    for name, edges in descriptors.items():
        prefix, _, key = str(name).partition("/")
        if not (name in ("compute", "parameters") or (prefix in ("metric", "gene") and key)):
            raise ValueError(f"promotion.descriptors: {name!r} is not a descriptor; use {KINDS}")
        if isinstance(edges, (str, bytes)) or not isinstance(edges, Sequence) or not edges:
            raise ValueError(f"promotion.descriptors.{name} has no bins: give it a list of at least one bin edge "
                             f"(k increasing edges make k+1 bins), got {edges!r}")
        if any(isinstance(e, bool) or not isinstance(e, (int, float)) or not math.isfinite(e) for e in edges) \
                or any(b <= a for a, b in zip(edges, edges[1:])):
            raise ValueError(f"promotion.descriptors.{name}: bin edges must be finite numbers in increasing order, "
                             f"got {list(edges)!r}")
        checked[str(name)] = tuple(float(e) for e in edges)
    return checked


@dataclass(frozen=True)
class Elite:
    """The best successor of one cell so far."""

    successor: str
    generation: int
    cell: tuple[int, ...]
    values: tuple[float, ...]  # its descriptor values, in the order of `descriptors`
    proxy: float
    score: float


@dataclass
class MapElites:
    """Keep an archive of elites by descriptor cell, draw parents from it, nominate as greedy does."""

    descriptors: Mapping[str, Sequence[float]] = field(
        default_factory=lambda: {"compute": [1.0e7, 2.0e7, 4.0e7], "metric/ece": [0.05, 0.1, 0.2]})
    incumbent: float = 0.25  # the share of candidates that are children of the incumbent; the rest: of elites
    margin: float = 0.005  # as promotion=greedy's
    fallbacks: int = 0  # after a veto, nominate the next best this many times (as promotion=greedy's)

    def __post_init__(self) -> None:
        self.descriptors = check_descriptors(self.descriptors)
        if isinstance(self.incumbent, bool) or not isinstance(self.incumbent, (int, float)) \
                or not 0 <= self.incumbent <= 1:
            raise ValueError(f"promotion.incumbent is the share of candidates bred from the incumbent, a number "
                             f"in [0, 1]; got {self.incumbent!r}")
        self.greedy = Greedy(self.margin, self.fallbacks)  # checks margin and fallbacks

    @property
    def cells(self) -> int:
        return math.prod(len(edges) + 1 for edges in self.descriptors.values())

    # --- one successor's place ---------------------------------------------------------------

    def values(self, train: Mapping[str, float], metrics: Mapping[str, float],
               genome: Mapping[str, Any]) -> tuple[float, ...]:
        """Its descriptor values from what execution counted (`train`), the evaluator's metrics on the
        proxy split, and its genome. A metric or gene it lacks is refused by name."""
        found = []
        for name in self.descriptors:
            kind, _, key = name.partition("/")
            if name == "compute":
                found.append(compute_of(train))
            elif name == "parameters":
                found.append(float(train.get("parameters", 0)))
            elif kind == "metric":
                if key not in metrics:
                    raise ValueError(f"promotion.descriptors names {name!r}, but the evaluator reports no metric "
                                     f"{key!r}; it reports: {', '.join(sorted(metrics)) or 'none'}")
                found.append(float(metrics[key]))
            else:
                genes = {**genome.get("arch", {}), **genome.get("recipe", {})}
                if key not in genes or isinstance(genes[key], str):
                    numeric = sorted(k for k, v in genes.items() if not isinstance(v, str))
                    raise ValueError(f"promotion.descriptors names {name!r}, but the genome has no numeric gene "
                                     f"{key!r}; its numeric genes: {', '.join(numeric)}")
                found.append(float(genes[key]))
        return tuple(found)

    def cell(self, values: Sequence[float]) -> tuple[int, ...]:
        """Bin i of a descriptor holds values in [edge i-1, edge i) (bin 0 everything below the first edge)."""
        return tuple(bisect.bisect_right(edges, v) for edges, v in zip(self.descriptors.values(), values))

    # --- the stage ---------------------------------------------------------------------------

    def nominate(self, scored: Sequence[Scored], incumbent: Scored) -> Nomination:
        for s in scored:  # a descriptor the candidates cannot have stops the run at its first nomination
            self.values(s.successor.train, s.scores.metrics, s.successor.genome.to_dict())
        return self.greedy.nominate(scored, incumbent)

    def archive(self, events: Sequence[Any]) -> dict[tuple[int, ...], Elite]:
        """The archive after `events` (a run's counted events, `loop.state.counted`), from the proxy side
        of the ledger only: `proposed` genomes, `trained` compute and size, `evaluated` proxy, score and
        evaluator metrics, and which nominees the gate stopped."""
        genomes = {(e.generation, e.detail.get("candidate")): e.detail.get("genome", {})
                   for e in events if e.event == "proposed"}
        trained = {e.successor: e.metrics for e in events if e.event == "trained"}
        stopped: set[str] = set()
        for e in events:
            if e.event in STOPPED:
                stopped.add(e.successor)
            elif e.event == "promoted":
                stopped.discard(e.successor)
        elites: dict[tuple[int, ...], Elite] = {}
        for e in events:
            if e.event != "evaluated" or e.successor in stopped:
                continue
            metrics = {k.removeprefix("proxy/"): v for k, v in e.metrics.items() if k.startswith("proxy/")}
            values = self.values(trained.get(e.successor, {}), metrics,
                                 genomes.get((e.generation, e.detail.get("candidate")), {}))
            elite = Elite(e.successor, e.generation, self.cell(values), values, e.metrics["proxy"], e.metrics["score"])
            held = elites.get(elite.cell)
            if held is None or elite.score > held.score:
                elites[elite.cell] = elite
        return elites

    def parents(self, events: Sequence[Any], incumbent: str, n: int, rng: Any) -> list[str]:
        """One parent per candidate: the incumbent with probability `incumbent`, else a uniform elite."""
        elites = [elite.successor for _, elite in sorted(self.archive(events).items())]
        return [incumbent if not elites or rng.random() < self.incumbent else elites[int(rng.integers(len(elites)))]
                for _ in range(n)]

    def summary(self, events: Sequence[Any]) -> tuple[dict[str, float], dict[str, Any]]:
        """The archive's coverage, QD-score and size (metrics) and the archive itself (for the ledger)."""
        elites = self.archive(events)
        metrics = {"archive/coverage": len(elites) / self.cells, "archive/qd_score": sum(e.proxy for e in elites.values()),
                   "archive/elites": float(len(elites))}
        detail = {"descriptors": {k: list(v) for k, v in self.descriptors.items()},
                  "elites": {",".join(map(str, cell)): {"successor": e.successor, "generation": e.generation,
                                                        "values": list(e.values), "proxy": e.proxy, "score": e.score}
                             for cell, e in sorted(elites.items())}}
        return metrics, detail
