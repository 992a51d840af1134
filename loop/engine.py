"""The engine: one generation, top to bottom.

    objective -> generator -> execution -> evaluator -> promotion -> control gate -> (promote | veto | pause)

Everything the loop decides is appended to the ledger as it happens; the loop's state (incumbent,
history, pause) is always re-derived from the ledger (`loop.state.fold`), and the incumbent's
weights are always loaded from its checkpoint, so a fresh run and a resumed one follow one path.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np

from loop.checkpoints import Checkpoints
from loop.config import ConfigError
from loop.goodhart import goodhart_metrics
from loop.execution.inherit import distill_weight, uses_parent
from loop.w2s import ceiling_genome, error_inheritance, w2s_metrics
from loop.ledger import Event, Ledger, canonical, sha256_file
from loop.objective.tasks import split_hash
from loop.stages import (Candidate, Decision, Evaluator, Execution, Gate, Generator, Genome, Objective,
                         Probe, Promotion, Quarantined, Scored, Scores, Successor, Task, TaskShape, human_verdict)
from loop.state import RunState, counted, fold, settle
from successors.space import SuccessorSpace

if TYPE_CHECKING:
    from torch import nn

    from loop.contamination import Twin
    from loop.gate.audit import Audit


class RunError(RuntimeError):
    """The run cannot go on (e.g. the generation-0 genome cannot be trained)."""


GATE_EVENTS = {"promote": "promoted", "veto": "vetoed", "pause": "paused"}


@dataclass
class Stages:
    """The six plugged-in stages, plus the hidden truth evaluator and the tracker."""

    objective: Objective
    generator: Generator
    execution: Execution
    evaluator: Evaluator
    promotion: Promotion
    gate: Gate
    truth: Evaluator
    space: SuccessorSpace  # the successor family, its generation-0 genome and gene bounds
    tracker: Any
    audit: Audit | None = None  # held-out probe families run on every reviewed nominee, ledger only
    contamination: Twin | None = None  # each successor against a private twin of the held-out splits


def derive_seed(*parts: object) -> int:
    """A 31-bit seed from the run seed and a position, independent of everything run before it."""
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:4], "big") >> 1


def code_hash(obj: object) -> str:
    path = inspect.getsourcefile(type(obj))  # may name a .py that is not there (a module loaded from a .pyc or a zip)
    return sha256_file(path) if path and Path(path).is_file() else "unknown"


class Clock:
    """Wall time per stage of one generation. Timings go to `generation_finished`'s detail and the
    report, never into metrics: the ledger's metrics must repeat run for run."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - began

    def split(self) -> dict[str, float]:
        """Seconds per stage, plus `other` (loading the incumbent, hashing, the ledger itself)."""
        total = time.perf_counter() - self.start
        return {**{k: round(v, 4) for k, v in self.seconds.items()},
                "other": round(total - sum(self.seconds.values()), 4), "total": round(total, 4)}


def judges(evaluator: object) -> bool:
    """Whether an evaluator scores by another model's answers: its `evaluate` takes a `judge`."""
    evaluate = getattr(evaluator, "evaluate", None)
    return evaluate is not None and "judge" in inspect.signature(evaluate).parameters


def parts_of(plugin: object) -> list[object]:
    """A plugin and the dataclass plugins nested in its fields (a gate's probes, a human gate's checks)."""
    found = [plugin]
    if dataclasses.is_dataclass(plugin):
        for f in dataclasses.fields(plugin):
            value = getattr(plugin, f.name)
            for item in value if isinstance(value, (list, tuple)) else [value]:
                if dataclasses.is_dataclass(item) and not isinstance(item, type):
                    found += parts_of(item)
    return found


class Engine:
    """Runs (or resumes) one experiment in `run_dir`."""

    def __init__(self, run_dir: Path, stages: Stages, task: Task, seed: int, device: str,
                 config: dict[str, Any], say: Callable[[str], None] = print, anchor: Path | None = None):
        self.run_dir, self.stages, self.task, self.seed = run_dir, stages, task, seed
        self.shape = TaskShape.of(task, device, family=stages.space.family, gate=stages.gate)  # fails on a bad pairing
        if stages.audit is not None:
            try:
                stages.audit.prepare(self.shape, [p.name for p in parts_of(stages.gate) if isinstance(p, Probe)])
            except ValueError as err:
                raise ConfigError(str(err)) from None
        self.config, self.say = config, say
        self.ledger = Ledger(run_dir / "ledger.jsonl", anchor=anchor)  # anchor: a copy of the head, elsewhere
        self.checkpoints = Checkpoints(run_dir)
        self.events: list[Event] = []
        self.clock = Clock()
        self.weak_to_strong = bool(config.get("weak_to_strong", False))  # measure PGR (loop/w2s.py)
        self.error_inheritance = bool(config.get("error_inheritance", False))  # and errors shared with the parent
        # an evaluator that scores by another model's answers (evaluators/judge.py) names who judges
        self.judged_by = getattr(stages.evaluator, "judge", None) if judges(stages.evaluator) else None
        self.extra: dict[str, float] = {}  # this generation's measurements for the ledger only
        self.notes: list[str] = []  # and what they show, for generation_finished's reasons

    # --- the run ---------------------------------------------------------------------------

    def run(self, events: Sequence[Event] = (), before_close: Callable[[], Any] | None = None) -> RunState:
        """Run from the start, or continue after `events` (a stopped run's ledger). Once it has finished or
        paused, `before_close()` (the command line writes the report there), then the tracker may
        `publish(run_dir, events)` what the run left, before it is closed."""
        self.events = list(events)
        state = fold(self.events)
        if not state.started:
            self.log("run_started", 0, reasons=[self.summary()], detail=self.provenance())
        else:
            self.log("resumed", state.next_generation,
                     reasons=[f"resumed at generation {state.next_generation}"
                              + (f"; {state.pending} events of its cut-off attempt are discarded and it "
                                 f"reruns from the start" if state.pending else "")
                              + (f"; first the person's decision on generation {state.decided.generation}'s "
                                 f"nominee is carried out" if state.decided else "")],
                     detail={"restarted_generation": state.next_generation, "discarded_events": state.pending})
        self.stages.tracker.start(self.run_dir, self.config, name=self.run_dir.name)
        restore = getattr(self.stages.gate, "restore", None)
        if restore is not None:  # a gate that learns (gate=growing) rebuilds what it learned from the ledger
            restore(sorted((e for kept in settle(self.events).generations.values() for e in kept), key=lambda e: e.seq))
        try:
            state = fold(self.events)
            if state.decided is not None:  # a person decided what the pause held: carry it out first
                state = self.carry_out(state)
            if state.completed < 0:
                state = self.baseline()
            while state.next_generation <= self.task.budget.generations and not state.paused:
                state = self.generation(state.next_generation, state)
            if not state.paused:
                final = self.scored(state.incumbent)
                self.log("run_finished", state.completed, successor=state.incumbent, metrics={
                    "incumbent/proxy": final.scores.proxy, "incumbent/truth": self.truth_of(state.incumbent),
                    "baseline/truth": self.truth_of(state.baseline)},
                    reasons=[f"budget of {self.task.budget.generations} generations spent"])
                state = fold(self.events)
            if before_close is not None:
                before_close()
            publish = getattr(self.stages.tracker, "publish", None)
            if publish is not None:
                publish(self.run_dir, self.events)
        finally:
            self.stages.tracker.finish()
        return state

    def baseline(self) -> RunState:
        """Generation 0: train the successor space's initial genome; it is the first incumbent."""
        self.clock = Clock()
        scored, quarantined = self.train_candidates(0, [self.stages.space.initial], [None])
        if quarantined:
            raise RunError(f"the generation-0 genome could not be trained: {quarantined[0].reason}")
        self.log("promoted", 0, successor=scored[0].id, reasons=["generation-0 baseline"])
        return self.finish_generation(0, scored[0], scored, 0, "baseline")

    def generation(self, g: int, state: RunState) -> RunState:
        self.clock, self.extra, self.notes = Clock(), {}, []
        incumbent = self.scored(state.incumbent)
        baseline = self.scored(state.baseline)

        # generator: sees genomes, proxy scores and decisions of past generations, never data
        with self.clock("generator"):
            genomes, parents = self.propose(g, incumbent, state)

        # execution (train split only), then the evaluator (proxy split; truth for the ledger only);
        # what judges must come out of it unchanged, or every candidate is suspect
        before = self.integrity()
        judge = (incumbent if self.judged_by == "incumbent" else baseline).successor.model if self.judged_by else None
        scored, quarantined = self.train_candidates(g, genomes, parents, judge)
        changed = sorted(k for k, v in self.integrity().items() if before.get(k) != v)
        if changed:
            self.log("paused", g, parent=incumbent.id, reasons=[
                f"integrity: {', '.join(changed)} changed while generation {g} was trained and scored",
                "hard veto of every candidate of this generation; the loop pauses until a person approves"])
            return self.finish_generation(g, incumbent, scored, len(quarantined), "paused")

        # weak-to-strong: the best student against its teacher and its gold-trained twin (truth only)
        if self.weak_to_strong:
            with self.clock("weak_to_strong"):
                self.measure_weak_to_strong(g, incumbent, scored)

        # promotion nominates the best, if it beats the incumbent; the control gate (probe, audit and
        # proxy splits, the incumbent and the baseline; never truth) reviews the nominee. After a
        # veto, a promotion plugin with `fallbacks` > 0 may nominate the next best that many times.
        candidates, reviews = list(scored), 1 + int(getattr(self.stages.promotion, "fallbacks", 0))
        for review in range(reviews):
            with self.clock("promotion"):
                nomination = self.stages.promotion.nominate(candidates, incumbent)
            if nomination.nominee is None:
                if review == 0:
                    self.log("not_nominated", g, parent=incumbent.id, reasons=nomination.reasons)
                    return self.finish_generation(g, incumbent, scored, len(quarantined), "none")
                break  # the last veto stands
            nominee = nomination.nominee
            self.log("nominated", g, successor=nominee.id, parent=incumbent.id,
                     metrics={"score": nominee.score, "proxy": nominee.scores.proxy},
                     reasons=[*nomination.reasons, *([f"fallback {review} of {reviews - 1} after a veto"]
                                                     if review else [])])
            with self.clock("gate"):
                decision: Decision = self.contaminated(nominee) or self.stages.gate.review(
                    nominee, incumbent, baseline, self.task.view("gate", "probe", "audit", "proxy"), state.history)
            for note in decision.notes:  # a gate's own records (mined tests): ledger only, never read back
                self.log(note.event, g, successor=nominee.id, parent=incumbent.id, metrics=dict(note.metrics),
                         reasons=list(note.reasons), detail=dict(note.detail) or None)
            event = GATE_EVENTS[decision.action]
            held = {"if_approved": list(decision.if_approved)} \
                if decision.action == "pause" and decision.if_approved is not None else None
            self.log(event, g, successor=nominee.id, parent=incumbent.id, metrics=decision.probes,
                     reasons=decision.reasons, detail=held)
            self.audit(g, nominee, incumbent, baseline, decision.action)
            if decision.action != "veto":
                break
            candidates = [s for s in candidates if s.id != nominee.id]
        winner = nominee if decision.action == "promote" else incumbent
        return self.finish_generation(g, winner, scored, len(quarantined), event, nominee=nominee.id)

    def propose(self, g: int, incumbent: Scored, state: RunState) -> tuple[list[Genome], list[str]]:
        """This generation's genomes and each one's parent. The parent is the incumbent, unless the
        promotion plugin keeps an archive (`parents(events, incumbent, n, rng)`, `promotion=map_elites`):
        then it names one successor per candidate, and the generator is asked for children of each."""
        n, rng = self.task.budget.candidates, np.random.default_rng(derive_seed(self.seed, g, "generator"))
        draw = getattr(self.stages.promotion, "parents", None)
        if draw is None:
            return self.stages.generator.propose(incumbent.successor.genome, state.history, n, rng), [incumbent.id] * n
        events = counted(self.events)
        drawn = draw(events, incumbent.id, n, np.random.default_rng(derive_seed(self.seed, g, "parents")))
        known = {e.successor for e in events if e.event == "evaluated"}
        unknown = sorted(set(drawn) - known)
        if len(drawn) != n or unknown:
            raise RunError(f"{type(self.stages.promotion).__name__}.parents must name {n} successors evaluated in "
                           f"this run, one per candidate; it named {len(drawn)}"
                           + (f", of which not evaluated: {', '.join(map(str, unknown))}" if unknown else ""))
        genomes, parents = [], []
        for parent, k in Counter(drawn).items():  # in the order first drawn
            genome = incumbent.successor.genome if parent == incumbent.id \
                else Genome.from_dict(self.checkpoints.load_card(parent)["genome"])
            children = self.stages.generator.propose(genome, state.history, k, rng)
            genomes += children
            parents += [parent] * len(children)
        return genomes, parents

    def contaminated(self, nominee: Scored) -> Decision | None:
        """A veto for a nominee the contamination check flagged (`contamination.veto: true`), else None."""
        check = self.stages.contamination
        if check is None or not check.veto:
            return None
        m = self.evaluated(nominee.id).metrics
        if not m.get("contamination/flag"):
            return None
        return Decision("veto", {"contamination/gap": m["contamination/gap"], "contamination/z": m["contamination/z"]},
                        (f"contamination: {m['contamination/gap']:+.3f} more accurate on the public audit and probe "
                         f"items than on their private twin, {m['contamination/z']:.1f} standard errors "
                         f"(threshold {check.threshold:g}): trained on evaluation items",))

    def audit(self, g: int, nominee: Scored, incumbent: Scored, baseline: Scored, action: str) -> None:
        """The held-out audit of a reviewed nominee, after the gate decided: for the ledger only."""
        if self.stages.audit is None or not self.stages.audit.probes:
            return
        with self.clock("audit"):
            metrics, reasons = self.stages.audit.review(nominee, incumbent, baseline,
                                                        self.task.view("audit", "probe", "audit", "proxy"), action)
        metrics["truth/gain"] = self.truth_of(nominee.id) - self.truth_of(incumbent.id)
        self.log("audited", g, successor=nominee.id, parent=incumbent.id, metrics=metrics, reasons=reasons)

    def carry_out(self, state: RunState) -> RunState:
        """Finish the paused generation as its gate would have with the person's answer: the held
        nominee is promoted (approved) or vetoed (rejected), with the reasons the gate gave it and
        the person's verdict, and the generation is finished again with that decision. Its
        metrics are the ones an approval file would have given (`gate=human`)."""
        decided = state.decided
        g, paused = decided.generation, decided.paused
        self.clock, self.extra, self.notes = Clock(), {}, []
        action = "promote" if decided.approve else "veto"
        self.log(GATE_EVENTS[action], g, successor=paused.successor, parent=paused.parent, metrics=paused.metrics,
                 reasons=[*paused.detail["if_approved"], human_verdict(decided.approve, decided.by, decided.reason)])
        ids = [e.successor for e in decided.events if e.event == "evaluated"]
        quarantined = sum(e.event == "quarantined" for e in decided.events)
        winner = paused.successor if decided.approve else paused.parent
        return self.finish_generation(g, self.scored(winner), [self.scored(s) for s in ids], quarantined,
                                      GATE_EVENTS[action], nominee=paused.successor)

    # --- pieces of a generation ------------------------------------------------------------

    def train_candidates(self, g: int, genomes: Sequence[Genome], parents: Sequence[str | None],
                         judge: "nn.Module | None" = None) -> tuple[list[Scored], list[Quarantined]]:
        """Propose, train, checkpoint and score one generation's genomes (each with its parent's id),
        logging each step. `judge`: the model a judging evaluator scores by (None: each its own)."""
        candidates = [self.candidate(f"{g}.{i}", genome, parent, derive_seed(self.seed, g, i))
                      for i, (genome, parent) in enumerate(zip(genomes, parents, strict=True))]
        for c in candidates:
            self.log("proposed", g, parent=c.parent, detail={"candidate": c.key, "genome": c.genome.to_dict(),
                                                           "seed": c.seed})
        with self.clock("execution"):
            results = self.stages.execution.train(candidates, self.task.view("execution", "train"), self.shape)
        quarantined = [r for r in results if isinstance(r, Quarantined)]
        for q in quarantined:
            self.log("quarantined", g, parent=q.candidate.parent, reasons=[q.reason],
                     detail={"candidate": q.candidate.key})
        return self.score(g, [r for r in results if isinstance(r, Successor)], judge), quarantined

    def candidate(self, key: str, genome: Genome, parent: str | None, seed: int) -> Candidate:
        """A candidate; it carries the incumbent's genome and weights only if its genome inherits
        them or distils from the incumbent (execution sees nothing else of the incumbent)."""
        if parent is None or not uses_parent(genome):
            return Candidate(key, genome, parent, seed)
        parent_genome = Genome.from_dict(self.checkpoints.load_card(parent)["genome"])
        return Candidate(key, genome, parent, seed, parent_genome, self.checkpoints.load_arrays(parent))

    def measure_weak_to_strong(self, g: int, teacher: Scored, scored: Sequence[Scored]) -> None:
        """Train the best student's ceiling twin (same genome, seed and inheritance; gold labels)
        and put PGR, agreement and error imitation on the truth split into this generation's
        ledger metrics. Nothing of it flows back into the loop."""
        students = [s for s in scored if distill_weight(s.successor.genome) > 0]
        if not students:
            self.notes.append("weak-to-strong: no candidate of this generation learned from the teacher")
            return
        student = max(students, key=lambda s: s.score)
        twin = self.candidate(f"{g}.ceiling", ceiling_genome(student.successor.genome), teacher.id,
                              student.successor.candidate.seed)
        (ceiling,) = self.stages.execution.train([twin], self.task.view("execution", "train"), self.shape)
        if isinstance(ceiling, Quarantined):
            self.notes.append(f"weak-to-strong: the ceiling twin of {student.id} could not be trained: {ceiling.reason}")
            return
        metrics, note = w2s_metrics(teacher.successor.model, student.successor.model, ceiling.model,
                                    self.task.view("truth", "truth")["truth"])
        self.extra |= metrics
        self.notes.append(f"{note}; student {student.id}")

    def score(self, g: int, trained: Sequence[Successor], judge: "nn.Module | None" = None) -> list[Scored]:
        """Checkpoint each trained successor, then score it with the proxy and the hidden truth."""
        scored, parents = [], {}  # parents: the models of this generation's parents, loaded once
        for s in trained:
            with self.clock("checkpoints"):
                weights_sha = self.checkpoints.save_weights(s.id, s.model)
            self.log("trained", g, successor=s.id, parent=s.candidate.parent, metrics=s.train,
                     detail={"candidate": s.candidate.key, "weights_sha256": weights_sha, "inherited": s.inherited})
            with self.clock("evaluator"):
                view = self.task.view("evaluator", "proxy")
                scores = self.stages.evaluator.evaluate(s.model, view, judge=s.model if judge is None else judge) \
                    if self.judged_by else self.stages.evaluator.evaluate(s.model, view)
            with self.clock("truth"):
                truth = self.stages.truth.evaluate(s.model, self.task.view("truth", "truth"))
            score = self.task.score(scores.proxy, s.parameters, s.train.get("compute"))
            metrics = {"proxy": scores.proxy, "truth": truth.proxy, "score": score,
                       **{f"proxy/{k}": v for k, v in scores.metrics.items()},
                       **{f"truth/{k}": v for k, v in truth.metrics.items()}, **self.measures(s, parents)}
            with self.clock("checkpoints"):
                card_sha = self.checkpoints.save_card(s.id, {
                    "id": s.id, "generation": g, "candidate": s.candidate.key, "parent": s.candidate.parent,
                    "seed": s.candidate.seed, "genome": s.genome.to_dict(), "train": dict(s.train),
                    "inherited": s.inherited,
                    "metrics": {k: round(v, 6) for k, v in metrics.items()}, "weights_sha256": weights_sha})
            self.log("evaluated", g, successor=s.id, parent=s.candidate.parent, metrics=metrics,
                     detail={"candidate": s.candidate.key, "card_sha256": card_sha})
            scored.append(Scored(s, scores, score))
        return scored

    def measures(self, s: Successor, parents: dict[str, "nn.Module"]) -> dict[str, float]:
        """What the ledger records of a successor beside its scores, where configured: the errors it
        shares with its parent (`error_inheritance: true`, truth split) and its accuracy against a
        private twin of the held-out splits (`contamination=twin`)."""
        found: dict[str, float] = {}
        if self.error_inheritance and s.candidate.parent is not None:
            with self.clock("truth"):
                parent = s.candidate.parent
                parents.setdefault(parent, self.scored(parent).successor.model)
                found |= error_inheritance(s.model, parents[parent], self.task.splits["truth"])
        if self.stages.contamination is not None:
            with self.clock("contamination"):
                found |= {f"contamination/{k}": v
                          for k, v in self.stages.contamination.measure(s.model, self.task.splits).items()}
        return found

    def finish_generation(self, g: int, incumbent: Scored, scored: Sequence[Scored], quarantined: int,
                          decision: str, nominee: str | None = None) -> RunState:
        best = max(scored, key=lambda s: s.score, default=None)
        truth = self.truth_of(incumbent.id)
        metrics = {"incumbent/proxy": incumbent.scores.proxy, "incumbent/truth": truth,
                   "incumbent/score": incumbent.score, "trained": len(scored), "quarantined": quarantined}
        if best is not None:
            metrics |= {"best/proxy": best.scores.proxy, "best/truth": self.truth_of(best.id)}
        metrics |= goodhart_metrics(self.events, g, incumbent.id, nominee)  # for the ledger only
        metrics |= self.extra
        archive = getattr(self.stages.promotion, "summary", None)  # an archive of elites (promotion=map_elites)
        detail: dict[str, Any] = {"decision": decision}
        if archive is not None:
            archived, detail["archive"] = archive(counted(self.events))
            metrics |= archived
        seconds = detail["seconds"] = self.clock.split()  # wall time, varies run to run
        self.log("generation_finished", g, successor=incumbent.id, metrics=metrics,
                 reasons=[f"{decision}: incumbent {incumbent.id}", *self.notes], detail=detail)
        self.stages.tracker.log(g, {**metrics, **{f"seconds/{k}": v for k, v in seconds.items()}})
        self.say(f"gen {g:>3}/{self.task.budget.generations}  best proxy "
                 f"{best.scores.proxy if best else float('nan'):.4f}  incumbent proxy {incumbent.scores.proxy:.4f}"
                 f"  truth {truth:.4f}  {decision:<8} {incumbent.id[:8]}  ({len(scored)} trained, "
                 f"{quarantined} quarantined, {seconds['total']:.1f} s)")
        return fold(self.events)

    def scored(self, successor: str) -> Scored:
        """Rebuild a past successor, its weights from its checkpoint and its scores from the ledger."""
        card = self.checkpoints.load_card(successor)
        genome = Genome.from_dict(card["genome"])
        model = self.checkpoints.load_model(successor, genome, self.shape)
        evaluated = self.evaluated(successor)
        candidate = Candidate(card["candidate"], genome, card["parent"], card["seed"])
        proxy_extras = {k.split("/", 1)[1]: v for k, v in evaluated.metrics.items() if k.startswith("proxy/")}
        return Scored(Successor(successor, candidate, model, card["train"], card.get("inherited", "scratch")),
                      Scores(evaluated.metrics["proxy"], proxy_extras), evaluated.metrics["score"])

    def evaluated(self, successor: str) -> Event:
        for e in reversed(self.events):
            if e.event == "evaluated" and e.successor == successor:
                return e
        raise KeyError(f"successor {successor} has no evaluated event in the ledger")

    def truth_of(self, successor: str) -> float:
        return self.evaluated(successor).metrics["truth"]

    # --- ledger helpers --------------------------------------------------------------------

    def log(self, event: str, generation: int, **fields: Any) -> Event:
        record = self.ledger.append(event, generation, **fields)
        self.events.append(record)
        return record

    def integrity(self) -> dict[str, str]:
        """Hashes of what judges: the code and settings of the evaluators, the gate and its probes,
        and the data they read. Taken before and after each generation's candidates."""
        judges = [self.stages.evaluator, self.stages.truth, *parts_of(self.stages.gate),
                  *(parts_of(self.stages.audit) if self.stages.audit is not None else []),
                  *([self.stages.contamination] if self.stages.contamination is not None else [])]
        digest = {f"code/{type(j).__module__}": code_hash(j) for j in judges}
        digest |= {f"data/{name}": split_hash(self.task.splits[name]) for name in ("proxy", "audit", "probe", "truth")}
        digest["thresholds"] = hashlib.sha256("\n".join(repr(j) for j in judges).encode()).hexdigest()
        return digest

    def held_out(self) -> dict[str, Any]:
        """What no selection consults, recorded (and so hashed) in run_started: the held-out audit's
        probe families, those it left out, and the hidden truth evaluator."""
        audit = self.stages.audit
        return {"audit": audit.names if audit else [], "audit_left_out": list(audit.dropped) if audit else [],
                "truth": f"{type(self.stages.truth).__module__}.{type(self.stages.truth).__qualname__}"}

    def summary(self) -> str:
        b = self.task.budget
        return (f"seed {self.seed}, objective {self.task.name}, {b.generations} generations x "
                f"{b.candidates} candidates, at most {b.steps} steps each, device {self.shape.device}")

    def provenance(self) -> dict[str, Any]:
        """What is hashed into the ledger at start, so a change between generations is detected."""
        s = self.stages
        hashes = {f"data/{name}": split_hash(split) for name, split in self.task.splits.items()}
        hashes |= {"code/evaluator": code_hash(s.evaluator), "code/truth": code_hash(s.truth),
                   "code/gate": code_hash(s.gate),
                   "thresholds": hashlib.sha256(canonical(self.config.get("gate", {})).encode()).hexdigest()}
        plugins = {name: f"{type(getattr(s, name)).__module__}.{type(getattr(s, name)).__qualname__}"
                   for name in ("objective", "generator", "execution", "evaluator", "promotion", "gate", "truth")}
        if s.audit is not None and s.audit.probes:  # an audit with nothing to run judges nothing
            hashes["code/audit"] = code_hash(s.audit)
            plugins["audit"] = f"{type(s.audit).__module__}.{type(s.audit).__qualname__}"
        if s.contamination is not None:  # the private twin's items are hashed, never its key
            hashes["code/contamination"] = code_hash(s.contamination)
            plugins["contamination"] = f"{type(s.contamination).__module__}.{type(s.contamination).__qualname__}"
            hashes |= {f"twin/{name}": split_hash(split) for name, split in s.contamination.twins.items()}
        return {"seed": self.seed, "config_sha256": hashlib.sha256(canonical(self.config).encode()).hexdigest(),
                "hashes": hashes, "budget": {"generations": self.task.budget.generations,
                                             "candidates": self.task.budget.candidates,
                                             "steps": self.task.budget.steps}, "plugins": plugins,
                "held_out": self.held_out(),
                **({"speedrun": {"target": self.task.target}} if self.task.target is not None else {}),
                "tripwires": {f"{type(part).__qualname__}.{k}": v for part in parts_of(s.gate)
                              if type(part).__name__ == "Tripwires" for k, v in vars(part).items()}}
