"""`generator=bandit` (`loop.generator.bandit`): its bookkeeping against a hand-worked UCB1 replay,
its operators, and its settings. Its behaviour over a synthetic history: test_generators.py."""

from __future__ import annotations

import re

import numpy as np
import pytest

from loop.generator.bandit import OPERATORS, Bandit, Tally, sibling_ranks
from loop.stages import Past
from successors.space import SuccessorSpace
from test_generators import changed, mlp_spec


@pytest.fixture(scope="module")
def space() -> SuccessorSpace:
    return SuccessorSpace(**mlp_spec())


def test_tally_means_start_at_a_middle_rank():
    tally = Tally({"all": 2, "arch": 0}, {"all": 1.5, "arch": 0.0})
    assert tally.mean("all") == 0.75 and tally.mean("arch") == 0.5


def test_bandit_replays_ucb1_as_worked_out_by_hand(space):
    """Three operators, exploration 0.5, no preference genes (each weighs 1).
    Generation 1 (nothing tried): all, arch, lr in order (untried first, ties to the first); proxies
    0.9, 0.5, 0.7 give ranks 1, 0, 0.5. Generation 2, total pulls 3 + pending picks:
    child 1: all 1 + 0.5 sqrt(ln 3) = 1.524 > lr 0.5 + 0.524 > arch 0.524 -> all;
    child 2: all 1 + 0.5 sqrt(ln 4 / 2) = 1.416 > lr 0.5 + 0.589 = 1.089 -> all;
    child 3: all 1 + 0.5 sqrt(ln 5 / 3) = 1.367 > lr 0.5 + 0.634 = 1.134 -> all.
    Its proxies 0.6, 0.8, 0.7 give ranks 0, 1, 0.5, all three to `all`."""
    bandit = Bandit(space, operators=("all", "arch", "lr"), exploration=0.5)
    g = space.initial
    history = [Past(1, (g, g, g), (0.9, 0.5, 0.7), "promoted", ()), Past(2, (g, g, g), (0.6, 0.8, 0.7), "none", ())]
    operators, tally = bandit.replay(history)
    assert operators == [("all", "arch", "lr"), ("all", "all", "all")]
    assert tally.pulls == {"all": 4, "arch": 1, "lr": 1}
    assert tally.reward == pytest.approx({"all": 1.0 + 0.0 + 1.0 + 0.5, "arch": 0.0, "lr": 0.5})
    assert bandit.preferences(g) == {"all": 1.0, "arch": 1.0, "lr": 1.0}


def test_a_lone_child_teaches_the_bandit_nothing(space):
    bandit = Bandit(space)
    g = space.initial
    operators, tally = bandit.replay([Past(1, (g,), (0.9,), "promoted", ())])
    assert operators == [("all",)] and sum(tally.pulls.values()) == 0 and sum(tally.reward.values()) == 0


def test_the_bandit_crossover_operator_recombines_with_past_genomes(space):
    parent = space.initial
    mate = parent.replace(arch={"width": 60}, recipe={"steps": 400})
    history = [Past(1, (mate,), (0.9,), "promoted", ())]
    bandit = Bandit(space, operators=("crossover",), tau=1e-9)
    first = bandit.propose(parent, [], 4, np.random.default_rng(0))  # no mate yet: mutates everything
    assert all(c != parent for c in first)
    children = bandit.propose(parent, history, 12, np.random.default_rng(0))
    assert any(c.arch["width"] == 60 or c.recipe["steps"] == 400 for c in children)
    assert bandit.replay(history + [Past(2, tuple(children), (0.5,) * 12, "none", ())])[0][1] == ("crossover",) * 12


def test_sibling_ranks_of_a_lone_or_quarantined_child():
    assert sibling_ranks([0.5]) == [0.0]  # ranks against nobody
    assert sibling_ranks([None, 0.3, 0.3]) == [0.0, 0.75, 0.75]  # a quarantined child beats no one


@pytest.mark.parametrize("part", ["arch", "recipe"])
def test_an_arch_or_recipe_operator_mutates_that_part_only(space, part):
    kids = Bandit(space, operators=(part,)).propose(space.initial, [], 12, np.random.default_rng(0))
    for kid in kids:
        moved = changed(space.initial, kid)
        assert moved and {p for p, _ in moved} == {part}


def test_replaying_the_history_gives_back_the_operators_propose_applied(space, monkeypatch):
    """The bandit keeps no state: the operators it applies are the ones a replay of the history
    (with the new generation appended) recovers, crossover included once a mate exists."""
    bandit = Bandit(space, operators=("all", "arch", "crossover"))
    applied, apply = [], Bandit.apply
    monkeypatch.setattr(Bandit, "apply", lambda self, op, child, mates, rng: applied.append(op) or
                        apply(self, op, child, mates, rng))
    history, parent, rng = [], space.initial, np.random.default_rng(3)
    for g in range(1, 5):
        start = len(applied)
        kids = bandit.propose(parent, history, 6, rng)
        history.append(Past(g, tuple(kids), tuple(float(rng.random()) for _ in kids), "promoted", ()))
        assert bandit.replay(history)[0][-1] == tuple(applied[start:])
    assert "crossover" in applied[6:] and "crossover" not in applied[:6]  # mates exist from generation 2 on


@pytest.mark.parametrize("setting,message", [
    (dict(operators=("lr",)), "'lr' has no gene to mutate in this successor space (recipe.lr); leave it out"),
    (dict(operators=("arch",)), "'arch' has no gene to mutate in this successor space (arch genes); leave it out"),
    (dict(exploration=True), "generator.exploration must be a number >= 0, got True"),
    (dict(exploration=-0.1), "generator.exploration must be a number >= 0, got -0.1"),
    (dict(operators="all"), None),  # one operator named alone is a list of one
    (dict(exploration=0), None),  # pure exploitation is allowed
])
def test_bandit_settings_are_checked_with_what_is_wrong(setting, message):
    spec = mlp_spec()
    if "operators" in setting and setting["operators"] in (("lr",), ("arch",)):
        part, gene = ("recipe", "lr") if setting["operators"] == ("lr",) else ("arch", None)
        for key in ([gene] if gene else list(spec["space"][part])):
            spec["space"][part].pop(key), spec["init"][part].pop(key)
    space = SuccessorSpace(**spec)
    if message is None:
        assert Bandit(space, **setting).operators in (("all",), OPERATORS)
    else:
        with pytest.raises(ValueError, match=re.escape(message)):
            Bandit(space, **setting)


def test_a_preference_gene_must_be_positive():
    spec = mlp_spec()
    spec["space"]["generator"]["prefer_arch"] = {"type": "float", "low": 0.0, "high": 2.0}
    spec["init"]["generator"]["prefer_arch"] = 1.0
    with pytest.raises(ValueError, match="prefer_arch must be a positive number gene"):
        Bandit(SuccessorSpace(**spec))


def test_two_siblings_are_enough_to_learn_from(space):
    g = space.initial
    _, tally = Bandit(space, operators=("all", "arch")).replay([Past(1, (g, g), (0.9, 0.1), "promoted", ())])
    assert tally.pulls == {"all": 1, "arch": 1} and tally.reward == {"all": 1.0, "arch": 0.0}


def test_the_bandit_crossover_keeps_each_childs_own_generator_genes(space):
    parent = space.initial
    mate = parent.replace(arch={"width": 60}, generator={"rate": 0.9, "scale": 0.9})
    kids = Bandit(space, operators=("crossover",), tau=1e-9, pool=1).propose(
        parent, [Past(1, (mate,), (0.9,), "promoted", ())], 12, np.random.default_rng(0))
    assert any(k.arch["width"] == 60 for k in kids)  # the mate's architecture genes reach some children
    assert all(k.generator["rate"] == pytest.approx(parent.generator["rate"]) for k in kids)  # never its own


def test_a_recipe_operator_needs_recipe_genes():
    spec = mlp_spec()
    for key in list(spec["space"]["recipe"]):
        spec["space"]["recipe"].pop(key), spec["init"]["recipe"].pop(key)
    with pytest.raises(ValueError, match=re.escape("'recipe' has no gene to mutate in this successor space "
                                                   "(recipe genes); leave it out")):
        Bandit(SuccessorSpace(**spec), operators=("recipe",))


def test_an_operator_never_pulled_goes_first_even_without_exploration(space):
    """Untried first is a rule of its own, not the exploration bonus: with c = 0 an operator never
    pulled still beats one whose mean reward is 1."""
    bandit = Bandit(space, operators=("all", "arch"), exploration=0.0)
    tally = Tally({"all": 10, "arch": 0}, {"all": 10.0, "arch": 0.0})
    assert bandit.assign(tally, [{"all": 1.0, "arch": 1.0}], mates=False) == ("arch",)


def test_each_pick_counts_as_one_pending_pull(space):
    """Worked by hand, exploration 1: all (mean 1.0) and arch (mean 0.52), one pull each.
    Child 1: all 1 + sqrt(ln 2) = 1.833 > arch 0.52 + 0.833 -> all (now 2 tries of 3).
    Child 2: all 1 + sqrt(ln 3 / 2) = 1.741 > arch 0.52 + sqrt(ln 3) = 1.568 -> all. Counting the
    first pick twice would give all 1 + sqrt(ln 4 / 3) = 1.680 < arch 0.52 + sqrt(ln 4) = 1.697."""
    bandit = Bandit(space, operators=("all", "arch"), exploration=1.0)
    tally = Tally({"all": 1, "arch": 1}, {"all": 1.0, "arch": 0.52})
    prefs = [{"all": 1.0, "arch": 1.0}] * 2
    assert bandit.assign(tally, prefs, mates=False) == ("all", "all")


def test_the_crossover_operator_mates_only_within_its_pool(space):
    """The same history and rng, a pool of 1 against a pool of 5: different mates, different children."""
    rng = np.random.default_rng(0)
    genomes = tuple(space.check(space.initial.replace(arch={"width": int(w)})) for w in rng.integers(8, 256, 6))
    history = [Past(1, genomes, (0.1, 0.9, 0.5, 0.7, 0.3, 0.8), "none", ())]
    narrow = Bandit(space, operators=("crossover",), pool=1).propose(space.initial, history, 6, np.random.default_rng(1))
    wide = Bandit(space, operators=("crossover",), pool=5).propose(space.initial, history, 6, np.random.default_rng(1))
    assert narrow != wide
