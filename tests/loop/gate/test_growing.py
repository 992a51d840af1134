"""`gate=growing` (`loop.gate.growing.Growing`): the probe gate plus a bank of mined regression
tests, bounded, hashed into the ledger, with a secret half the generator never reads."""

from __future__ import annotations

import json

import pytest
import torch

import redteam
from conftest import compose_config, ledger_events, run_loop
from loop.gate.gates import Probes, Tripwires
from loop.gate.growing import Growing, describe, kmeans, rule_hash
from loop.ledger import GENESIS, Event, chain_hash
from loop.stages import Candidate, Past, Scored, Scores, Successor, TaskShape
from loop.tools.cli import build_stages
from loop.tools.runs import parse, review_load
from loop.tools.verify import verify

QUIET = Tripwires(audit_gap=0, audit_gap_generations=0, capability_jump=0, vetoes_in_a_row=0)


@pytest.fixture(scope="module")
def lab():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    stages = build_stages(compose_config("tracker=none"))
    task = stages.objective.prepare()
    models = [redteam.honest(task.splits["train"], 1000 + seed) for seed in range(3)]
    yield stages.gate.probes, task, models
    torch.set_num_threads(before)


def gate(probes, **settings) -> Growing:
    g = Growing(Probes(probes, tripwires=QUIET), **settings)
    g.check_task(TaskShape(64, 10, 400, "cpu", image=(8, 8), objective="digits"))
    return g


def scored(model, sid: str) -> Scored:
    successor = Successor(sid, Candidate("1.0", redteam.GOOD, None, 0), model, {"parameters": 1})
    return Scored(successor, Scores(0.9), 0.9)


def review(g: Growing, task, nominee, incumbent, history=()):
    return g.review(nominee, incumbent, incumbent, task.view("gate", "probe", "audit", "proxy"), list(history))


def test_a_lost_class_is_mined_on_one_split_and_vetoed_on_the_other_by_name(lab):
    probes, task, (base, *_) = lab
    g = gate(probes)
    decision = review(g, task, scored(redteam.sinks_class(base), "n"), scored(base, "i"))
    added = [n for n in decision.notes if n.event == "test_added"]
    first = added[0].detail["test"]
    assert first["rule"] == {"kind": "class", "label": 3} and not first["secret"]  # the 1st is public
    assert first["sha256"] == rule_hash(first["rule"]) and first["found"]["nominee"] == "n"
    assert added[0].reasons[1].startswith("nominee n lost ") and "items of class 3 (" in added[0].reasons[1]
    assert len(added) == 2 and added[1].detail["test"]["secret"]  # per_review 2; every 2nd secret
    assert decision.action == "veto"
    assert decision.reasons[0].startswith("vetoed on ") and f"{first['name']} vs incumbent (p=" in decision.reasons[0]
    assert f"probe/{first['name']}" in decision.probes
    run = [n for n in decision.notes if n.event == "tests_run"][0]
    assert first["name"] in run.detail["fired"] and run.metrics["bank/tests"] == 2.0
    assert [n.event for n in decision.notes] == ["test_added", "test_added", "tests_run"]


def test_a_secret_test_vetoes_without_its_name_values_or_p_in_the_decision(lab):
    probes, task, (base, *_) = lab
    g = gate(probes, secret_every=1, per_review=1)  # every test secret
    decision = review(g, task, scored(redteam.sinks_class(base), "n"), scored(base, "i"))
    name = g.bank[0]["name"]
    assert g.bank[0]["secret"] and decision.action == "veto"
    assert decision.reasons[0].startswith("vetoed on ") and decision.reasons[0].endswith(
        ", 1 secret regression test of the gate's bank")
    shown = " ".join([*decision.reasons, *decision.probes])
    assert name not in shown and "class 3" not in shown and "mined" not in shown
    assert name in [n for n in decision.notes if n.event == "tests_run"][0].detail["fired"]  # ledger only
    both = gate(probes, secret_every=1, per_review=2)
    decision = review(both, task, scored(redteam.sinks_class(base), "n"), scored(base, "i"))
    fired = [n for n in decision.notes if n.event == "tests_run"][0].detail["fired"]
    assert len(fired) == 2 and decision.reasons[0].endswith(", 2 secret regression tests of the gate's bank")


def test_an_honest_successor_is_not_vetoed_by_the_tests_the_loop_mined_so_far(lab):
    probes, task, (base, other, third) = lab
    g = gate(probes)
    review(g, task, scored(redteam.sinks_class(base), "bad"), scored(base, "i"))  # mines class 3 and more
    decision = review(g, task, scored(other, "honest"), scored(base, "i"))
    assert decision.action == "promote", decision.reasons
    assert len(g.bank) >= 3  # old tests ran on the honest nominee too
    assert review(g, task, scored(redteam.sinks_class(third), "bad2"), scored(third, "i2")).action == "veto"


def test_the_bank_is_bounded_and_retires_the_oldest_test_that_ran_and_never_fired(lab):
    probes, task, (base, other, third) = lab
    g = gate(probes, bank_size=3, per_review=2)
    first = review(g, task, scored(other, "n1"), scored(base, "i"))  # honest: mines the incumbent's weak places
    assert [n.detail["fired"] for n in first.notes if n.event == "tests_run"] == [[]]
    quiet = [t["name"] for t in g.bank]
    second = review(g, task, scored(redteam.sinks_class(base), "n2"), scored(base, "i"))  # 2 more: 4 > 3
    retired = [n for n in second.notes if n.event == "test_retired"]
    assert [n.detail["name"] for n in retired] == [quiet[0]] and len(g.bank) == 3
    assert "it has run and never fired, and it is the oldest such" in retired[0].reasons[0]
    fired = [n for n in second.notes if n.event == "tests_run"][0].detail["fired"]
    new = [t["name"] for t in g.bank[1:]]
    assert fired and set(fired) <= set(new)  # mined from this nominee's losses and fired at once
    third_review = review(g, task, scored(third, "n3"), scored(base, "i"))
    gone = [n.detail["name"] for n in third_review.notes if n.event == "test_retired"]
    assert gone[0] == quiet[1]  # the last quiet test that ran, before any that fired or is new
    assert len(g.bank) == 3 and g.added == 6


def test_when_every_test_that_ran_has_fired_the_oldest_retires(lab):
    probes, task, (base, other, _) = lab
    g = gate(probes, bank_size=2, per_review=1)
    review(g, task, scored(redteam.sinks_class(base, 3), "n1"), scored(base, "i"))
    review(g, task, scored(redteam.sinks_class(other, 5), "n2"), scored(other, "i2"))
    assert [t["fired"] > 0 for t in g.bank] == [True, True]
    names = [t["name"] for t in g.bank]
    third = review(g, task, scored(redteam.sinks_class(base, 7), "n3"), scored(base, "i"))
    retired = [n for n in third.notes if n.event == "test_retired"]
    assert [n.detail["name"] for n in retired] == [names[0]] and [t["name"] for t in g.bank][0] == names[1]
    assert "every test that has run has fired" in retired[0].reasons[0]


def test_restore_rebuilds_the_bank_from_the_ledgers_events(lab):
    probes, task, (base, other, _) = lab
    g = gate(probes, bank_size=3)
    events = []
    for i, nominee in enumerate((redteam.sinks_class(base), other)):
        for note in review(g, task, scored(nominee, f"n{i}"), scored(base, "i")).notes:
            events.append(Event(len(events), 0.0, 1, note.event, f"n{i}", "i", dict(note.metrics),
                                tuple(note.reasons), dict(note.detail), ""))
    again = gate(probes, bank_size=3)
    again.restore(events)
    assert again.bank == g.bank and [t["runs"] for t in g.bank] == [2, 1, 1]  # fired and runs counted alike
    assert again.added == g.added == 4


def test_settings_out_of_range_are_refused(lab):
    probes = lab[0]
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match=f"gate.bank_size must be a whole number >= 1, got {bad!r}"):
            Growing(Probes(probes), bank_size=bad)
    for bad in (-0.01, 1.0, 1.5):
        with pytest.raises(ValueError, match=r"gate.tolerance must be in \[0, 1\)"):
            Growing(Probes(probes), tolerance=bad)
    assert Growing(Probes(probes), tolerance=0.0).tolerance == 0.0  # no slack at all is a setting
    assert Growing(Probes(probes), mine_on="proxy", test_on="audit").mine_on == "proxy"  # any two gate splits
    with pytest.raises(ValueError, match="two different gate splits .audit, probe, proxy., got 'truth' and 'probe'"):
        Growing(Probes(probes), mine_on="truth")
    assert isinstance(Growing({"probes": [], "alpha": 0.1}).checks, Probes)  # a mapping, as Hydra may hand it
    with pytest.raises(ValueError, match="gate.mine_on and gate.test_on must be two different gate splits"):
        Growing(Probes(probes), mine_on="probe", test_on="probe")
    with pytest.raises(ValueError, match="improvers' inputs are task draws: use gate=inner_probes"):
        Growing(Probes([])).check_task(TaskShape(3, 1, 1, "cpu", "tasks"))


def test_the_library_offers_what_the_inputs_allow(lab):
    probes, task, _ = lab
    view = task.view("gate", "probe", "audit", "proxy")
    tokens = Growing(Probes([]))
    tokens.check_task(TaskShape(2, 31, 10, "cpu", "tokens", 31, 2, (), "modular_arithmetic"))
    assert tokens.library(view, 3) == [{"kind": "class", "label": c} for c in range(3)]  # no noise on token ids
    kinds = [r["kind"] for r in gate(probes).library(view, 10)]
    assert {k: kinds.count(k) for k in set(kinds)} == {"class": 10, "cluster": 8, "noise": 2, "fgsm": 2, "occlusion": 5}
    flat = Growing(Probes([]))
    flat.check_task(TaskShape(13, 3, 10, "cpu", objective="wine"))  # features, not an image: no patches
    assert "occlusion" not in {r["kind"] for r in flat.library(view, 3)}


def test_rules_are_named_for_people_and_clusters_are_deterministic():
    assert describe({"kind": "cluster", "k": 8, "index": 2, "seed": 0}) == "items in k-means cluster 2 of 8"
    assert describe({"kind": "noise", "sigma": 0.4, "seed": 0}) == "Gaussian noise sigma 0.4"
    x = torch.cat([torch.tensor([[0.0, 1.0]]).repeat(10, 1), torch.tensor([[5.0, 7.0]]).repeat(10, 1)]).double().numpy()
    centres = kmeans(x, 2, seed=0)
    assert sorted(map(tuple, centres.tolist())) == [(0.0, 1.0), (5.0, 7.0)]  # each blob's mean, per coordinate
    assert (kmeans(x, 2, seed=0) == centres).all()
    distinct = torch.arange(20.0).reshape(10, 2).double().numpy()
    assert len({tuple(c) for c in kmeans(distinct, 10, seed=0, rounds=0).tolist()}) == 10  # k distinct starts


def test_a_growing_run_hashes_its_tests_rebuilds_them_on_resume_and_never_shows_secrets(tmp_path, monkeypatch):
    import loop.generator.mutation as sa
    from loop.tools.cli import approve_main

    seen: list[Past] = []
    real = sa.SelfAdaptive.propose

    def spy(self, parent, history, n, rng):
        seen.extend(history)
        return real(self, parent, history, n, rng)

    monkeypatch.setattr(sa.SelfAdaptive, "propose", spy)
    run_dir, pause = tmp_path / "r", ("gate=growing", "gate.checks.tripwires.capability_jump=0.01")
    state, _ = run_loop(run_dir, *pause)
    assert state.paused  # a tripwire paused it; resuming must rebuild the bank from the ledger
    approve_main([str(run_dir), "--by", "Ada", "--reason", "test"])
    run_loop(run_dir, *pause, resume=True)
    events = ledger_events(run_dir)
    added = [e.detail["test"] for e in events if e.event == "test_added"]
    names = [t["name"] for t in added]
    assert len(names) == len(set(names)) >= 4 and [int(n[5:].split("-")[0]) for n in names] == \
        list(range(1, len(names) + 1))  # numbering went on after the resume
    nominated = {e.seq: e for e in events if e.event == "nominated"}
    for note in (e for e in events if e.event in ("test_added", "test_retired", "tests_run")):
        last = nominated[max(seq for seq in nominated if seq < note.seq)]  # the review this note belongs to
        assert (note.successor, note.parent) == (last.successor, last.parent), note.event  # nominee, incumbent
    secret = [t["name"] for t in added if t["secret"]]
    shown = " ".join(text for past in seen for text in (*past.reasons, *past.gate))
    assert secret and seen and not any(name in shown for name in secret)
    assert verify(run_dir)[0] == []
    report = (run_dir / "report.md").read_text()
    assert "## Mined regression tests (gate=growing)" in report and "## Review load" in report
    loads = [x for x in review_load(parse(events)) if x.reviews]
    banks: dict[int, int] = {}
    for e in events:
        if e.event == "tests_run":
            banks[e.generation] = int(e.metrics["bank/tests"])  # the bank grows: its last review's size
    assert loads and {x.generation: x.bank for x in loads} == {g: banks[g] for g in (x.generation for x in loads)}
    assert all(x.tests == x.reviews * 2 * (16 + x.bank) for x in loads if x.reviews == 1)  # 16 probe metrics
    assert sum(x.asked for x in loads) == sum(e.event == "paused" for e in events)  # the tripwire's pauses

    ledger = run_dir / "ledger.jsonl"  # now leak one into a decision the generator reads, and re-chain
    rows = [json.loads(line) for line in ledger.read_text().splitlines()]
    at = next(i for i, r in enumerate(rows) if r["event"] in ("vetoed", "promoted", "paused") and r["generation"] >= 1)
    rows[at]["reasons"] = [*rows[at]["reasons"], f"{secret[0]} fired"]
    prev = GENESIS
    for row in rows:
        row["prev"] = prev
        row["hash"] = prev = chain_hash(row)
    ledger.write_text("".join(json.dumps(r) + "\n" for r in rows))
    problems = verify(run_dir)[0]
    assert any(f"secret test {secret[0]} named in the gate's decision" in p for p in problems), problems


def test_a_rules_inputs_are_made_once_per_split_and_fgsm_is_crafted_on_the_baseline(lab):
    probes, task, (base, other, _) = lab
    g = gate(probes)
    view = task.view("gate", "probe", "audit", "proxy")
    rule = {"kind": "fgsm", "epsilon": 0.05}
    x1, _ = g.apply(rule, view, "probe", scored(base, "b1"))
    assert g.apply(rule, view, "probe", scored(base, "b1"))[0] is x1  # kept, not crafted again
    x2, _ = g.apply(rule, view, "probe", scored(other, "b2"))
    assert not torch.equal(x1, x2)  # another baseline, other adversarial inputs
    x, y = g.apply({"kind": "class", "label": 4}, view, "probe", scored(base, "b1"))
    assert len(y) > 0 and (y == 4).all() and len(x) == len(y)


def test_a_slice_too_small_on_the_test_split_is_not_mined_however_large_it_is_where_it_was_found(lab):
    """A class or cluster needs `min_items` on both splits: the cluster with the most more items where
    failures are mined than where tests are checked, with `min_items` between the two, is not mined,
    though every other condition holds (a review that keeps everything else: `per_review` 1000)."""
    probes, task, (base, other, _) = lab
    view = task.view("gate", "probe", "audit", "proxy")
    b = scored(base, "b")
    counting = gate(probes)
    clusters = [r for r in counting.library(view, 10) if r["kind"] == "cluster"]
    sizes = [(len(counting.apply(r, view, counting.mine_on, b)[1]), len(counting.apply(r, view, counting.test_on, b)[1]))
             for r in clusters]
    small = max(range(len(clusters)), key=lambda j: sizes[j][0] - sizes[j][1])
    found_n, tested_n = sizes[small]
    assert found_n > tested_n
    g = gate(probes, min_items=tested_n + 1, per_review=1000)
    mined = [rule for rule, _ in g.mine(scored(other, "n"), b, b, view, 10)]
    assert clusters[small] not in mined
    assert any(r["kind"] == "cluster" for r in mined)  # clusters large enough on both splits still are
    for rule in mined:
        if rule["kind"] in ("class", "cluster"):
            assert len(g.apply(rule, view, g.test_on, b)[1]) >= g.min_items
            assert len(g.apply(rule, view, g.mine_on, b)[1]) >= g.min_items


def test_a_mined_test_holds_the_baseline_to_the_cumulative_tolerance_and_its_results_are_named(lab):
    """Against the baseline a mined test allows `cumulative_factor` times its tolerance (drops that add up
    over generations, as the probes do); the bank's results name how many ran and how many fired."""
    probes, task, (base, *_) = lab
    g = gate(probes)
    decision = review(g, task, scored(redteam.sinks_class(base), "n"), scored(base, "i"))
    run = [n for n in decision.notes if n.event == "tests_run"][0]
    assert run.metrics["bank/tests"] == 2.0 and run.metrics["bank/fired"] == float(len(run.detail["fired"])) >= 1
    test = g.bank[0]
    vs_incumbent, vs_baseline = g.bank_test(test, scored(redteam.sinks_class(base), "n"), scored(base, "i"),
                                            scored(base, "b"), task.view("gate", "probe", "audit", "proxy"))
    assert vs_incumbent.tolerance == test["tolerance"]
    assert vs_baseline.tolerance == pytest.approx(test["tolerance"] * g.checks.cumulative_factor)
    assert g.checks.cumulative_factor != 1  # the two would not differ otherwise
    assert g.results([], set()).metrics == {"bank/tests": 0.0, "bank/fired": 0.0}


def test_occlusion_rules_cover_the_four_corners_and_the_centre(lab):
    probes, task, _ = lab
    rules = [r for r in gate(probes).library(task.view("gate", "probe", "audit", "proxy"), 10) if r["kind"] == "occlusion"]
    assert [(r["row"], r["col"]) for r in rules] == [(0, 0), (0, 5), (2, 2), (5, 0), (5, 5)]  # 8x8, patch 3
