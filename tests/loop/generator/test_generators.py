"""Generators: plain mutation, self-adaptive mutation whose step sizes are inherited genes,
crossover with past genomes, and the operator bandit; each also in a real tiny loop that resumes."""

from __future__ import annotations

import shutil

import numpy as np

import pytest
from omegaconf import OmegaConf

from conftest import CONFIGS, ledger_events, run_loop
from loop.generator.bandit import OPERATORS, Bandit, sibling_ranks
from loop.generator.credit import GroupElite, Lineage
from loop.generator.crossover import Crossover, mating_pool, recombine
from loop.generator.mutation import Mutate, SelfAdaptive
from loop.stages import Genome, Past
from loop.state import settle
from loop.tools.verify import verify
from successors.space import SuccessorSpace


def mlp_spec() -> dict:
    spec = OmegaConf.to_container(OmegaConf.load(CONFIGS / "successor" / "mlp.yaml"))
    spec.pop("_target_")
    return spec


@pytest.fixture(scope="module")
def space() -> SuccessorSpace:
    return SuccessorSpace(**mlp_spec())


def children(generator, space, n=200, seed=0):
    return generator.propose(space.initial, [], n, np.random.default_rng(seed))


def test_self_adaptive_mutates_and_bounds_its_own_genes(space):
    kids = children(SelfAdaptive(space), space)
    rates = {k.generator["rate"] for k in kids}
    scales = {k.generator["scale"] for k in kids}
    assert len(rates) > 150 and len(scales) > 150  # every child carries its own step sizes
    for kid in kids:
        assert space.check(kid) == kid  # all genes, its own included, within bounds
    # log-normal around the parent's genes: the median stays near them
    assert np.median([k.generator["scale"] for k in kids]) == pytest.approx(space.initial.generator["scale"], rel=0.15)


def test_fixed_keeps_the_generator_genes_and_still_mutates_the_rest(space):
    kids = children(SelfAdaptive(space, adapt=False), space)
    assert all(dict(k.generator) == dict(space.initial.generator) for k in kids)
    assert all((dict(k.arch), dict(k.recipe)) != (dict(space.initial.arch), dict(space.initial.recipe)) for k in kids)


def test_a_larger_inherited_step_size_moves_genes_further(space):
    def spread(scale: float) -> float:
        parent = space.initial.replace(generator={"scale": scale, "rate": 1.0})
        kids = SelfAdaptive(space, adapt=False).propose(parent, [], 300, np.random.default_rng(1))
        return float(np.std([np.log(k.recipe["lr"]) for k in kids]))

    assert spread(1.0) > 2 * spread(0.1)


def test_plain_mutation_leaves_the_generator_genes_alone(space):
    kids = children(Mutate(space), space)
    assert all(dict(k.generator) == dict(space.initial.generator) for k in kids)


def test_same_seed_same_children(space):
    assert children(SelfAdaptive(space), space, 20, 5) == children(SelfAdaptive(space), space, 20, 5)


def test_self_adaptive_needs_its_genes_in_the_space(space):
    spec = mlp_spec()
    spec["init"]["generator"], spec["space"]["generator"] = {}, {}
    with pytest.raises(ValueError, match="needs the generator genes"):
        SelfAdaptive(SuccessorSpace(**spec))
    with pytest.raises(ValueError, match="tau"):
        SelfAdaptive(space, tau=0)


# --- crossover ------------------------------------------------------------------------------


def past(generation: int, genomes, proxies) -> Past:
    return Past(generation, tuple(genomes), tuple(proxies), "none", ())


def history_of(space, seed=0, generations=3, n=4):
    """A synthetic history: mutants of the initial genome with made-up proxies, one quarantined."""
    rng = np.random.default_rng(seed)
    out = []
    for g in range(1, generations + 1):
        kids = Mutate(space).propose(space.initial, [], n, rng)
        out.append(past(g, kids, [None if i == 0 and g == 1 else float(rng.random()) for i in range(n)]))
    return out


def test_recombination_takes_every_gene_from_one_of_the_two_parents(space):
    first = space.initial
    second = Mutate(space, rate=1.0, scale=1.0).propose(first, [], 1, np.random.default_rng(3))[0]
    second = second.replace(generator={"rate": 0.9, "scale": 1.5})
    rng = np.random.default_rng(0)
    kids = [recombine(first, second, rng) for _ in range(200)]
    from_second = 0
    for kid in kids:
        for part in ("arch", "recipe", "generator"):
            for key, value in getattr(kid, part).items():
                assert value in (getattr(first, part)[key], getattr(second, part)[key]), (part, key)
                from_second += value == getattr(second, part)[key] != getattr(first, part)[key]
        assert space.check(kid) == kid
    differing = sum(getattr(first, p)[k] != getattr(second, p)[k] for p in ("arch", "recipe", "generator")
                    for k in getattr(first, p))
    assert from_second / (200 * differing) == pytest.approx(0.5, abs=0.06)  # uniform: a fair coin per gene
    only_arch = recombine(first, second, rng, parts=("arch",))
    assert (only_arch.recipe, only_arch.generator) == (first.recipe, first.generator)


def test_recombination_refuses_genomes_of_different_shapes(space):
    other = Genome("mlp", {"depth": 1}, dict(space.initial.recipe), dict(space.initial.generator))
    with pytest.raises(ValueError, match="arch genes differ"):
        recombine(space.initial, other, np.random.default_rng(0))


def test_mating_pool_is_the_best_scored_distinct_genomes_other_than_the_parent(space):
    a, b, c = Mutate(space).propose(space.initial, [], 3, np.random.default_rng(1))
    history = [past(1, [a, b, space.initial], [0.5, None, 0.99]), past(2, [a, c, b], [0.7, 0.6, 0.4])]
    assert mating_pool(space.initial, history, 4) == [a, c, b]  # a once, at its best; b's 0.4 counts
    assert mating_pool(space.initial, history, 1) == [a]
    assert mating_pool(space.initial, [], 4) == []


def test_crossover_without_a_second_parent_is_exactly_self_adaptive(space):
    same = lambda gen: gen.propose(space.initial, [], 30, np.random.default_rng(7))  # noqa: E731
    assert same(Crossover(space)) == same(SelfAdaptive(space))


def test_crossover_children_mix_in_past_genomes_and_stay_in_bounds(space):
    history = history_of(space)
    kids = Crossover(space, pool=2).propose(space.initial, history, 200, np.random.default_rng(0))
    mates = mating_pool(space.initial, history, 2)
    for kid in kids:
        assert space.check(kid) == kid
    # some genes no mutation of the initial genome would give, but a mate carries
    borrowed = sum(any(kid.arch[k] == m.arch[k] != space.initial.arch[k] for m in mates for k in kid.arch)
                   for kid in kids)
    assert borrowed > 50
    assert kids != SelfAdaptive(space).propose(space.initial, history, 200, np.random.default_rng(0))


def test_the_crossover_operator_mixes_architecture_and_recipe_and_keeps_the_childs_own_step_sizes(space):
    """SelfAdaptive's `crossover` operator (an improver's operator weights pick it): the child's rate and
    scale are its own, self-adapted ones, never a mate's; its other genes mix with the mates'."""
    history = history_of(space)
    child = space.initial.replace(generator={"rate": 0.77, "scale": 0.33})
    mates = mating_pool(space.initial, history, 4)
    assert mates and all(m.generator != child.generator for m in mates)
    kids = [SelfAdaptive(space).operate("crossover", child, 0.3, 0.4, space.initial, history,
                                        np.random.default_rng(seed)) for seed in range(20)]
    assert all(kid.generator == child.generator for kid in kids)
    assert any(kid.arch[k] == m.arch[k] != child.arch[k] for kid in kids for m in mates for k in kid.arch)


def test_crossover_is_deterministic_given_rng_and_history(space):
    history = history_of(space)
    one = Crossover(space).propose(space.initial, history, 12, np.random.default_rng(4))
    two = Crossover(space).propose(space.initial, history, 12, np.random.default_rng(4))
    assert one == two and [k.canonical() for k in one] == [k.canonical() for k in two]


def test_crossover_checks_its_settings(space):
    with pytest.raises(ValueError, match="generator.pool must be a whole number >= 1, got 0"):
        Crossover(space, pool=0)
    with pytest.raises(ValueError, match="tau"):
        Crossover(space, tau=-1)


# --- operator bandit ------------------------------------------------------------------------


def changed(parent: Genome, child: Genome) -> set[tuple[str, str]]:
    return {(p, k) for p in ("arch", "recipe") for k in getattr(parent, p)
            if getattr(parent, p)[k] != getattr(child, p)[k]}


def evolve(bandit, space, payoff, generations=10, n=8, seed=0):
    """Run the bandit on a synthetic history whose proxy is `payoff[operator]` (plus a little noise);
    return the operators of each generation, recovered from the history by a fresh bandit."""
    rng, history = np.random.default_rng(seed), []
    for g in range(1, generations + 1):
        kids = bandit.propose(space.initial, history, n, rng)
        ops = type(bandit)(**vars_of(bandit)).replay([*history, past(g, kids, [None] * n)])[0][-1]
        for op, kid in zip(ops, kids):  # what each operator may touch, read off the child
            allowed = {"arch": {("arch", k) for k in kid.arch}, "recipe": {("recipe", k) for k in kid.recipe},
                       "lr": {("recipe", "lr")}}.get(op)
            assert allowed is None or changed(space.initial, kid) <= allowed, (op, changed(space.initial, kid))
            assert space.check(kid) == kid
        history.append(past(g, kids, [payoff[op] + 0.01 * rng.random() for op in ops]))
    return Bandit(**vars_of(bandit)).replay(history)[0]


def vars_of(bandit: Bandit) -> dict:
    return {k: getattr(bandit, k) for k in ("space", "operators", "exploration", "pool", "tau")}


def test_bandit_shifts_towards_the_operator_that_pays_off(space):
    payoff = {"all": 0.5, "arch": 0.1, "recipe": 0.5, "lr": 0.9, "crossover": 0.5}
    ops = evolve(Bandit(space), space, payoff)
    assert set(ops[0]) == {"all", "arch", "recipe", "lr"}  # no mate yet: everything else tried first
    assert "crossover" in ops[1]
    first, last = ops[0], [op for gen in ops[-3:] for op in gen]
    assert last.count("lr") / len(last) > 0.5 > first.count("lr") / len(first)
    assert last.count("arch") / len(last) < 0.1 < first.count("arch") / len(first)
    # and the other way round when the architecture pays off
    flipped = evolve(Bandit(space), space, {**payoff, "arch": 0.9, "lr": 0.1}, seed=1)
    last = [op for gen in flipped[-3:] for op in gen]
    assert last.count("arch") > len(last) / 2 and last.count("lr") < len(last) / 10


def test_bandit_rewards_are_sibling_ranks():
    assert sibling_ranks([0.2, 0.8, None, 0.5]) == [1 / 3, 1.0, 0.0, 2 / 3]
    assert sibling_ranks([0.5, 0.5]) == [0.5, 0.5]


def test_bandit_is_deterministic_and_keeps_no_state(space):
    history = history_of(space, generations=4, n=6)
    used = Bandit(space)
    used.propose(space.initial, history[:2], 6, np.random.default_rng(9))  # a bandit that has run before
    one = used.propose(space.initial, history, 6, np.random.default_rng(3))
    two = Bandit(space).propose(space.initial, history, 6, np.random.default_rng(3))
    assert one == two and [k.canonical() for k in one] == [k.canonical() for k in two]
    assert one != Bandit(space).propose(space.initial, history, 6, np.random.default_rng(4))


def test_bandit_operator_preferences_are_inherited_genes(space):
    spec = mlp_spec()
    for op in OPERATORS:
        spec["space"]["generator"][f"prefer_{op}"] = {"type": "float", "low": 0.25, "high": 8.0, "log": True}
        spec["init"]["generator"][f"prefer_{op}"] = 1.0
    spec["init"]["generator"]["prefer_lr"] = 8.0
    prefs = SuccessorSpace(**spec)
    bandit = Bandit(prefs, tau=0.05)
    kids = bandit.propose(prefs.initial, [], 8, np.random.default_rng(0))
    assert all(prefs.check(k) == k for k in kids)
    assert len({k.generator["prefer_arch"] for k in kids}) == 8  # self-adapted per child
    ops = bandit.replay([past(1, kids, [0.5] * 8)])[0][0]
    assert ops[0] == "lr" and ops.count("lr") > 2  # the preferred operator goes first, and more often
    assert all(changed(prefs.initial, k) == {("recipe", "lr")} for k, op in zip(kids, ops) if op == "lr")
    plain = Bandit(space).replay([past(1, Bandit(space).propose(space.initial, [], 8, np.random.default_rng(0)),
                                      [0.5] * 8)])[0][0]
    assert plain.count("lr") == 2  # without the genes: every operator weighs the same


def test_bandit_checks_its_settings(space):
    with pytest.raises(ValueError, match=r"generator.operators must be .* from \['all', 'arch'.*got \['mutate'\]"):
        Bandit(space, operators=["mutate"])
    with pytest.raises(ValueError, match="distinct"):
        Bandit(space, operators=["lr", "lr"])
    with pytest.raises(ValueError, match="exploration must be a number >= 0, got -1"):
        Bandit(space, exploration=-1)
    spec = mlp_spec()
    del spec["init"]["recipe"]["lr"], spec["space"]["recipe"]["lr"]
    no_lr = SuccessorSpace(**spec)
    with pytest.raises(ValueError, match="'lr' has no gene to mutate .*recipe.lr"):
        Bandit(no_lr)
    assert Bandit(no_lr, operators=["all", "recipe"]).propose(no_lr.initial, [], 3, np.random.default_rng(0))
    spec = mlp_spec()
    spec["space"]["generator"]["prefer_all"] = {"type": "choice", "choices": [1, 2]}
    spec["init"]["generator"]["prefer_all"] = 1
    with pytest.raises(ValueError, match="prefer_all must be a positive number gene"):
        Bandit(SuccessorSpace(**spec))


# --- in a real loop -------------------------------------------------------------------------


def counted(run_dir):
    """Every counted event of finished generations, without wall-clock readings."""
    return [(e.generation, e.event, e.successor, e.parent, dict(e.metrics), e.reasons,
             {k: v for k, v in e.detail.items() if k != "seconds"})
            for g, events in sorted(settle(ledger_events(run_dir)).generations.items()) for e in events]


@pytest.mark.parametrize("generator", ["crossover", "bandit", "credit", "lineage"])
def test_generator_runs_a_real_loop_and_resumes_identically(tmp_path, generator, space):
    # gate off: promotions, so parents change; 50 steps (the gene space's floor) keeps it quick
    overrides = (f"generator={generator}", "gate=off", "objective.budget.steps=50",
                 *(["generator.depth=1"] if generator == "lineage" else []))  # credit lines within 3 generations
    reference = tmp_path / "reference"
    state, _ = run_loop(reference, *overrides)
    assert state.finished and state.completed == 3
    events = ledger_events(reference)
    proposed = [e for e in events if e.event == "proposed"]
    assert [e.generation for e in proposed] == [0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    for e in proposed:
        genome = Genome.from_dict(e.detail["genome"])
        assert space.check(genome) == genome
    assert verify(reference)[0] == []
    # cut the ledger after generation 2's first trained candidate, as a kill would, and resume
    cut = tmp_path / "cut"
    shutil.copytree(reference, cut)
    lines = (cut / "ledger.jsonl").read_text().splitlines(keepends=True)
    stop = next(i for i, e in enumerate(events) if e.event == "trained" and e.generation == 2)
    (cut / "ledger.jsonl").write_text("".join(lines[:stop + 1]))
    state, _ = run_loop(cut, *overrides, resume=True)
    assert state.finished and [e.event for e in ledger_events(cut)].count("resumed") == 1
    assert counted(cut) == counted(reference)  # the same proposals, scores and decisions


@pytest.mark.parametrize("pool,ok", [(1, True), (4, True), (0, False), (True, False), (1.5, False), (-2, False)])
def test_crossover_pool_must_be_a_whole_number_of_mates(space, pool, ok):
    if ok:
        Crossover(space, pool=pool)
    else:
        with pytest.raises(ValueError, match=f"generator.pool must be a whole number >= 1, got {pool!r}"):
            Crossover(space, pool=pool)


@pytest.mark.parametrize("plugin,name", [(Crossover, "crossover"), (Bandit, "bandit"), (SelfAdaptive, "self_adaptive"),
                                         (GroupElite, "credit"), (Lineage, "lineage")])
def test_a_self_adaptive_generator_names_itself_when_its_genes_are_missing(plugin, name):
    spec = mlp_spec()
    spec["init"]["generator"], spec["space"]["generator"] = {}, {}
    with pytest.raises(ValueError, match=rf"^generator={name} needs the generator genes \['rate', 'scale'\]"):
        plugin(SuccessorSpace(**spec))


def test_crossover_mates_only_with_the_pool_of_best_past_genomes(space):
    """pool=1: every child's genes come from the incumbent or the single best past genome, never
    from the second best."""
    parent = space.initial
    best = parent.replace(arch={"width": 60}, recipe={"steps": 400})
    second = parent.replace(arch={"width": 7}, recipe={"steps": 33})
    history = [Past(1, (second, best), (0.8, 0.9), "promoted", ())]
    children = Crossover(space, pool=1, tau=1e-9).propose(parent, history, 12, np.random.default_rng(0))
    widths = {c.arch["width"] for c in children}
    assert widths & {60} and not widths & {7}


def moved(parent: Genome, child: Genome) -> int:
    return sum(parent.arch[k] != child.arch[k] for k in parent.arch) + \
        sum(parent.recipe[k] != child.recipe[k] for k in parent.recipe)


def test_steps_from_sets_whose_rate_and_step_size_move_the_other_genes(space):
    bold = space.check(space.initial.replace(generator={"rate": 1.0, "scale": 2.0}))
    own = SelfAdaptive(space, tau=0.01).propose(bold, [], 60, np.random.default_rng(0))
    first = SelfAdaptive(space, tau=0.01, steps_from="generation0").propose(bold, [], 60, np.random.default_rng(0))
    n_genes = len(space.genes["arch"]) + len(space.genes["recipe"])
    assert np.mean([moved(bold, c) for c in own]) > 0.9 * n_genes  # rate ~1: nearly every gene moves
    assert np.mean([moved(bold, c) for c in first]) < 0.5 * n_genes  # generation 0's rate 0.3
    assert all(abs(c.generator["rate"] - 1.0) < 0.05 for c in first)  # its own genes still self-adapt, as genes
    assert len({c.generator["scale"] for c in first}) > 1
    with pytest.raises(ValueError, match=r"generator.steps_from must be one of \['self', 'generation0'\], got 'x'"):
        SelfAdaptive(space, steps_from="x")


def test_group_elite_credits_the_genes_whose_child_did_best_not_the_carrier(space):
    gen = GroupElite(space, groups=2, tau=0.3)
    first = gen.propose(space.initial, [], 6, np.random.default_rng(0))
    settings = [(c.generator["rate"], c.generator["scale"]) for c in first]
    assert settings[0] == settings[2] == settings[4] == (space.initial.generator["rate"], space.initial.generator["scale"])
    assert settings[1] == settings[3] == settings[5] != settings[0]  # one perturbed group, dealt round-robin
    # group 1's child 3 did best, but a group-0 child is the one promoted: the next groups start from group 1
    past = Past(1, tuple(first), (0.5, 0.6, 0.4, 0.9, 0.3, 0.2), "promoted", ())
    promoted = first[0]
    second = gen.propose(promoted, [past], 4, np.random.default_rng(1))
    assert (second[0].generator["rate"], second[0].generator["scale"]) == settings[1]
    assert all(moved(promoted, c) >= 1 for c in second)  # children of the incumbent, not of the credited genes' carrier
    assert gen.elite(promoted, [past, Past(2, tuple(second), (None,) * 4, "none", ())]) == dict(
        zip(("rate", "scale"), settings[1]))  # a generation with nothing scored decides nothing
    with pytest.raises(ValueError, match="generator.groups must be a whole number >= 1, got 0"):
        GroupElite(space, groups=0)


def test_group_elite_credits_each_gene_setting_with_its_best_child(space):
    gen = GroupElite(space, groups=2)
    timid = space.initial.replace(generator={"rate": 0.1, "scale": 0.1})
    bold = space.initial.replace(generator={"rate": 0.5, "scale": 0.5})
    # the timid genes' best child (0.9) beats the bold genes' best (0.6), though their last child is worse
    past = Past(1, (timid, bold, timid, bold), (0.9, 0.5, 0.1, 0.6), "promoted", ())
    assert gen.elite(bold, [past]) == {"rate": 0.1, "scale": 0.1}
    assert GroupElite(space, groups=1).propose(bold, [past], 3, np.random.default_rng(0))[2].generator["rate"] == 0.1


@pytest.mark.parametrize("groups", [True, 0, 1.5, "2"])
def test_group_elite_groups_must_be_a_whole_number_of_at_least_one(space, groups):
    with pytest.raises(ValueError, match=f"generator.groups must be a whole number >= 1, got {groups!r}"):
        GroupElite(space, groups=groups)


def test_lineage_credits_a_promoted_successors_genes_with_what_its_descendants_gained(space):
    """The best carrier is not the best line: A (proxy 0.8) was followed by nothing better than 0.82;
    B (0.6) by 0.9 within depth 2. B's genes lead, though A's proxy was higher and C is the parent."""
    a, b, c = (space.initial.replace(generator={"rate": r, "scale": s}) for r, s in ((0.2, 0.2), (0.4, 0.6), (0.9, 0.9)))
    other = space.initial
    history = [Past(1, (other, b), (0.3, 0.6), "promoted", (), nominee=1),
               Past(2, (other, other), (0.5, 0.9), "vetoed", (), nominee=1),  # vetoed: proposed, never promoted
               Past(3, (a, other), (0.8, 0.4), "promoted", (), nominee=0),
               Past(4, (other, other), (0.82, None), "none", ()),
               Past(5, (c, other), (0.85, 0.1), "promoted", (), nominee=0)]
    gen = Lineage(space, depth=2)
    assert [(g, round(gain, 6)) for g, _, gain in gen.clade_gains(history)] == [(1, 0.3), (3, 0.05)]  # 5: not yet
    assert gen.elite(c, history) == {"rate": 0.4, "scale": 0.6}
    # up to generation 4, A (promoted at 3) has not yet run its depth: B leads; at depth 4 only B is credited
    assert gen.elite(c, history[:4]) == {"rate": 0.4, "scale": 0.6}
    assert Lineage(space, depth=4).clade_gains(history) == [(1, b, pytest.approx(0.3))]
    # ties go to the latest; before any line has run its depth, the parent's own genes lead
    tie = [Past(1, (b,), (0.5,), "promoted", (), nominee=0), Past(2, (a,), (0.6,), "promoted", (), nominee=0),
           Past(3, (other,), (0.7,), "none", ())]
    assert Lineage(space, depth=1).elite(c, tie) == {"rate": 0.2, "scale": 0.2}
    assert gen.elite(c, history[:1]) == {"rate": 0.9, "scale": 0.9}
    first = gen.propose(c, history, 4, np.random.default_rng(0))
    assert (first[0].generator["rate"], first[0].generator["scale"]) == (0.4, 0.6)  # group 0: the credited genes
    assert all(moved(c, child) >= 1 for child in first)  # children of the parent, with the credited genes
    for bad in (0, True, 2.5):
        with pytest.raises(ValueError, match=f"generator.depth must be a whole number >= 1, got {bad!r}"):
            Lineage(space, depth=bad)


# --- operator weights (an improver's `weight_<op>` genes, frozen into its inner loops) -----------

def weighted_space(**weights: float) -> SuccessorSpace:
    """successor=mlp with operator weights as frozen generator genes, as `inner_config` writes them."""
    spec = mlp_spec()
    for op, w in weights.items():
        spec["space"]["generator"][f"weight_{op}"] = {"type": "float", "low": w, "high": w}
        spec["init"]["generator"][f"weight_{op}"] = w
    return SuccessorSpace(**spec)


def test_one_operator_carrying_all_the_weight_draws_nothing_and_all_of_it_is_todays_mutation(space):
    from loop.generator.mutation import pick_operator

    rng = np.random.default_rng(0)
    assert pick_operator(space.initial, rng) == "all" and rng.random() == np.random.default_rng(0).random()
    only_all = weighted_space(all=1.0, arch=0.0, lr=0.0)
    assert pick_operator(only_all.initial, rng := np.random.default_rng(0)) == "all"
    assert rng.random() == np.random.default_rng(0).random()  # no draw was made
    plain = SelfAdaptive(space).propose(space.initial, [], 30, np.random.default_rng(3))
    weighted = SelfAdaptive(only_all).propose(only_all.initial, [], 30, np.random.default_rng(3))
    assert [(k.arch, k.recipe) for k in plain] == [(k.arch, k.recipe) for k in weighted]  # generation 0 = today


def test_operators_are_drawn_in_proportion_to_their_weights():
    from loop.generator.mutation import pick_operator

    genome = weighted_space(all=0.2, lr=0.6, restart=0.2).initial
    rng = np.random.default_rng(0)
    drawn = [pick_operator(genome, rng) for _ in range(3000)]
    shares = {op: drawn.count(op) / len(drawn) for op in ("all", "lr", "restart")}
    assert set(drawn) == {"all", "lr", "restart"}
    assert shares["lr"] == pytest.approx(0.6, abs=0.03) and shares["all"] == pytest.approx(0.2, abs=0.03)


def test_each_operator_moves_only_what_it_names():
    lr_only = weighted_space(all=0.0, lr=1.0)
    kids = SelfAdaptive(lr_only).propose(lr_only.initial, [], 40, np.random.default_rng(1))
    assert all(changed(k, lr_only.initial) == {("recipe", "lr")} for k in kids)
    arch_only = weighted_space(arch=1.0)
    kids = SelfAdaptive(arch_only).propose(arch_only.initial, [], 40, np.random.default_rng(1))
    assert all(changed(k, arch_only.initial) and {p for p, _ in changed(k, arch_only.initial)} == {"arch"}
               for k in kids)


def test_restart_starts_from_generation_zero_and_crossover_from_a_past_best():
    restart = weighted_space(restart=1.0)
    far = restart.check(restart.initial.replace(arch={"width": 200, "depth": 3, "activation": "relu"},
                                                recipe={"lr": 0.1, "optimizer": "adam", "batch_size": 128}))
    kids = SelfAdaptive(restart).propose(far, [], 40, np.random.default_rng(2))
    from_far = [len(changed(k, far)) for k in kids]
    from_zero = [len(changed(k, restart.initial)) for k in kids]
    assert sum(from_zero) < sum(from_far) and min(from_far) >= 3  # near generation 0, not near the parent
    cross = weighted_space(crossover=1.0)
    mate = cross.check(cross.initial.replace(arch={"width": 200, "activation": "gelu"}))
    past = Past(1, (mate,), (0.99,), "vetoed", ())
    kids = SelfAdaptive(cross).propose(cross.initial, [past], 60, np.random.default_rng(4))
    assert any(k.arch["activation"] == "gelu" and k.arch["width"] == 200 for k in kids)  # genes of the mate


def test_only_the_genes_named_may_mutate(space):
    """`only` (the bandit's operators) narrows mutation to those genes and leaves every other as it was."""
    from loop.generator.mutation import mutate_genes

    rng = np.random.default_rng(0)
    parent = space.initial
    kids = [mutate_genes(space, parent, 0.9, 0.5, rng, only={("recipe", "lr")}) for _ in range(30)]
    assert all(k.arch == parent.arch and {g: v for g, v in k.recipe.items() if g != "lr"} ==
               {g: v for g, v in parent.recipe.items() if g != "lr"} for k in kids)
    assert all(k.recipe["lr"] != parent.recipe["lr"] for k in kids)  # at least one gene mutates: the only one


def test_steps_from_is_refused_by_name(space):
    with pytest.raises(ValueError, match=r"^generator.steps_from must be one of \['self', 'generation0'\], "
                                         r"got 'parent'$"):
        SelfAdaptive(space, steps_from="parent")
