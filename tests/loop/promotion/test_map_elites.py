"""`promotion=map_elites`: an archive of elites by descriptor cell, re-derived from the ledger alone,
parents drawn from it, and the nominee chosen as greedy chooses."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from conftest import ledger_events, run_loop
from loop.promotion.map_elites import MapElites
from loop.stages import Candidate, Genome, Scored, Scores, Successor
from loop.state import counted

GENOME = Genome("mlp", {"depth": 2, "width": 8, "activation": "relu"}, {"steps": 100, "lr": 0.01})


def scored(key: str, proxy: float, compute: float, **metrics: float) -> Scored:
    successor = Successor(key * 4, Candidate(key, GENOME, None, 0), None,
                          {"parameters": 100, "steps": 100, "train_loss": 0.1, "compute": compute})
    return Scored(successor, Scores(proxy, metrics), proxy)


@pytest.mark.parametrize("descriptors,message", [
    ({"compute": []}, r"promotion.descriptors.compute has no bins: give it a list of at least one bin edge"),
    ({"compute": 3}, r"promotion.descriptors.compute has no bins"),
    ({"speed": [1, 2]}, r"'speed' is not a descriptor; use compute, parameters, metric/<key>"),
    ({"metric/": [1]}, r"'metric/' is not a descriptor"),
    ({"compute": [2, 1]}, r"bin edges must be finite numbers in increasing order, got \[2, 1\]"),
    ({"compute": [1, 1]}, r"increasing order"),
    ({"compute": [1, "x"]}, r"increasing order"),
    ({}, r"must map at least one descriptor to its bin edges"),
])
def test_descriptors_without_bins_or_of_unknown_kinds_are_refused(descriptors, message):
    with pytest.raises(ValueError, match=message):
        MapElites(descriptors=descriptors)


@pytest.mark.parametrize("bad,message", [({"incumbent": 1.5}, r"promotion.incumbent .* in \[0, 1\]; got 1.5"),
                                         ({"incumbent": True}, "promotion.incumbent"),
                                         ({"margin": -1}, "promotion.margin must be a number >= 0")])
def test_bad_settings_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        MapElites(**bad)


def test_a_value_on_an_edge_falls_in_the_bin_above_and_the_outer_bins_are_open():
    archive = MapElites(descriptors={"compute": [10, 20], "metric/ece": [0.1]})
    assert archive.cells == 6
    assert archive.cell((5, 0.0)) == (0, 0)
    assert archive.cell((10, 0.1)) == (1, 1)
    assert archive.cell((19.9, 0.09)) == (1, 0)
    assert archive.cell((20, 5)) == (2, 1)
    assert archive.cell((1e12, -1)) == (2, 0)


def test_descriptor_values_come_from_the_count_the_metrics_and_the_genes():
    archive = MapElites(descriptors={"compute": [1], "parameters": [1], "metric/ece": [1], "gene/depth": [1],
                                     "gene/lr": [1]})
    s = scored("a", 0.9, 5e6, ece=0.07)
    assert archive.values(s.successor.train, s.scores.metrics, GENOME.to_dict()) == (5e6, 100, 0.07, 2, 0.01)
    with pytest.raises(ValueError, match="reports no metric 'nll'; it reports: ece"):
        MapElites(descriptors={"metric/nll": [1]}).nominate([s], s)
    with pytest.raises(ValueError, match="no numeric gene 'activation'; its numeric genes: depth, lr, steps, width"):
        MapElites(descriptors={"gene/activation": [1]}).values({}, {}, GENOME.to_dict())


def test_the_nominee_is_greedys():
    a, b, incumbent = scored("a", 0.91, 1e6, ece=0.1), scored("b", 0.95, 9e7, ece=0.3), scored("i", 0.90, 1e7, ece=0)
    nomination = MapElites().nominate([a, b], incumbent)
    assert nomination.nominee is b and nomination.reasons[0].startswith("score 0.9500 beats incumbent 0.9000")
    assert MapElites(margin=0.1).nominate([a, b], incumbent).nominee is None


def test_parents_are_the_incumbent_or_uniform_elites():
    class Event:  # the fields archive() reads
        def __init__(self, event, successor, generation=1, candidate="1.0", **metrics):
            self.event, self.successor, self.generation, self.metrics = event, successor, generation, metrics
            self.detail = {"candidate": candidate, "genome": GENOME.to_dict()}

    events = []
    for i, (proxy, compute) in enumerate([(0.5, 5), (0.9, 15), (0.7, 25)]):
        sid = f"s{i}"
        events += [Event("proposed", None, candidate=f"1.{i}"), Event("trained", sid, candidate=f"1.{i}", compute=compute),
                   Event("evaluated", sid, candidate=f"1.{i}", proxy=proxy, score=proxy)]
    archive = MapElites(descriptors={"compute": [10, 20]}, incumbent=0.0)
    rng = np.random.default_rng(0)
    drawn = archive.parents(events, "s1", 3000, rng)
    assert set(drawn) == {"s0", "s1", "s2"} and abs(drawn.count("s0") / 3000 - 1 / 3) < 0.03
    assert MapElites(descriptors={"compute": [10, 20]}, incumbent=1.0).parents(events, "s1", 5, rng) == ["s1"] * 5
    vetoed = [*events, Event("vetoed", "s2")]  # a successor the gate stopped is no parent, and no elite
    assert "s2" not in archive.parents(vetoed, "s1", 200, rng)
    assert [e.successor for e in archive.archive(vetoed).values()] == ["s0", "s1"]
    assert [e.successor for e in archive.archive([*vetoed, Event("promoted", "s2")]).values()] == ["s0", "s1", "s2"]


def brute_force_archive(events, descriptors) -> dict[str, str]:
    """The archive from first principles: for each cell, the highest-scoring successor evaluated so far
    whose nominations the gate never stopped without a later promotion (earliest on ties)."""
    edges = list(descriptors.values())
    compute = {e.successor: e.metrics["compute"] for e in events if e.event == "trained"}
    best: dict[str, tuple[float, int, str]] = {}
    for e in events:
        if e.event != "evaluated":
            continue
        later = [x.event for x in events if x.successor == e.successor and x.event in ("promoted", "vetoed", "paused")]
        if later and later[-1] != "promoted":
            continue
        values = [compute[e.successor], e.metrics["proxy/ece"]]
        cell = ",".join(str(sum(v >= edge for edge in es)) for v, es in zip(values, edges))
        if cell not in best or e.metrics["score"] > best[cell][0]:
            best[cell] = (e.metrics["score"], e.seq, e.successor)
    return {cell: sid for cell, (_, _, sid) in best.items()}


def test_a_real_loop_breeds_from_its_archive_and_records_it(tmp_path, monkeypatch):
    """Each generation's recorded archive equals one recomputed from the ledger by brute force; every
    candidate's parent is the incumbent or an elite of the archive before its generation, and the
    generator is handed that parent's own genome; the truth never reaches the archive."""
    from loop.generator.mutation import SelfAdaptive

    handed = []  # (genome, n) as the generator is called, in order
    propose = SelfAdaptive.propose
    monkeypatch.setattr(SelfAdaptive, "propose", lambda self, parent, history, n, rng:
                        handed.append((parent, n)) or propose(self, parent, history, n, rng))
    state, _ = run_loop(tmp_path, "promotion=map_elites", "gate=off", "objective.budget.generations=4")
    assert state.finished
    events = ledger_events(tmp_path)
    descriptors = MapElites().descriptors
    finished = {e.generation: e for e in events if e.event == "generation_finished"}
    for g, e in finished.items():
        so_far = [x for x in events if x.seq <= e.seq]
        recorded = {cell: elite["successor"] for cell, elite in e.detail["archive"]["elites"].items()}
        assert recorded == brute_force_archive(so_far, descriptors)
        assert e.metrics["archive/elites"] == len(recorded)
        assert e.metrics["archive/coverage"] == pytest.approx(len(recorded) / 16)
        proxy = {x.successor: x.metrics["proxy"] for x in so_far if x.event == "evaluated"}
        assert e.metrics["archive/qd_score"] == pytest.approx(sum(proxy[s] for s in recorded.values()))
    bred_from_elites = 0
    for p in (e for e in events if e.event == "proposed" and e.generation >= 1):
        before = finished[p.generation - 1]
        elites = {elite["successor"] for elite in before.detail["archive"]["elites"].values()}
        assert p.parent == before.successor or p.parent in elites
        bred_from_elites += p.parent != before.successor
    assert bred_from_elites > 0  # the archive was used, not only the incumbent
    parent_of_each = [p.parent for p in events if p.event == "proposed" and p.generation >= 1]
    assert sum(n for _, n in handed) == len(parent_of_each)
    at = 0
    for genome, n in handed:  # each call's children are proposed together, from their parent's own genome
        (parent,) = set(parent_of_each[at:at + n])
        card = json.loads((tmp_path / "successors" / f"{parent}.json").read_text())
        assert genome.to_dict() == card["genome"], parent
        at += n
    # children inherit nothing from the incumbent unless bred from it: trained events name the elite
    parents = {e.detail["candidate"]: e.parent for e in events if e.event == "proposed"}
    assert all(e.parent == parents[e.detail["candidate"]] for e in events if e.event == "trained")

    report = (tmp_path / "report.md").read_text()
    last = finished[max(finished)]
    assert f"| {max(finished)} | {len(last.detail['archive']['elites'])} | " \
           f"{last.metrics['archive/coverage']:.1%} | {last.metrics['archive/qd_score']:.4f} |" in report
    assert (tmp_path / "plots" / "archive.png").read_bytes().startswith(b"\x89PNG")

    blind = [dataclasses.replace(e, metrics={k: (-v if "truth" in k else v) for k, v in e.metrics.items()})
             for e in events]
    assert MapElites().archive(counted(blind)) == MapElites().archive(counted(events))


def test_a_ledger_cut_mid_generation_resumes_with_the_archive_of_the_uninterrupted_run(tmp_path):
    """What a SIGKILL leaves (tests/test_cli.py kills a real process): the ledger ends inside generation 2;
    the resumed run records, generation for generation, the archives the uninterrupted run recorded."""
    import shutil

    whole, cut_dir = tmp_path / "whole", tmp_path / "cut"
    run_loop(whole, "promotion=map_elites", "gate=off")
    shutil.copytree(whole, cut_dir)
    lines = (cut_dir / "ledger.jsonl").read_text().splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if json.loads(line)["event"] == "trained"
               and json.loads(line)["generation"] == 2) + 1
    (cut_dir / "ledger.jsonl").write_text("".join(lines[:cut]))
    state, _ = run_loop(cut_dir, "promotion=map_elites", "gate=off", resume=True)
    assert state.finished

    def archives(run_dir):
        return [(e.generation, e.detail["archive"]) for e in ledger_events(run_dir) if e.event == "generation_finished"]

    assert archives(cut_dir) == archives(whole)


def test_parents_that_name_no_evaluated_successor_stop_the_run(tmp_path, monkeypatch):
    from loop.engine import RunError

    monkeypatch.setattr(MapElites, "parents", lambda self, events, incumbent, n, rng: ["nobody"] * n)
    with pytest.raises(RunError, match="must name 3 successors evaluated in this run, one per candidate; it named 3, "
                                       "of which not evaluated: nobody"):
        run_loop(tmp_path, "promotion=map_elites", "gate=off")
