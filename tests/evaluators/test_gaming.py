"""The evaluator-gaming lab (docs/gaming.md): each flawed proxy's mechanism, the inference-time
genes that game them, the shortcut scenario's data, the validity probe, and every scenario in a
real loop at a tiny budget, checked through its ledger."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import ledger_events, run_loop
from evaluators.accuracy import Accuracy
from evaluators.gaming import Confidence, SmallDevSet, Unflagged, WatermarkedAccuracy, answered, flagged_wrong
from evaluators.marks import marked_label
from evaluators.probes import Validity
from loop.gate.gates import Probes
from loop.objective.tasks import Digits
from loop.objective.scenarios import DigitsShortcut
from loop.stages import Budget, Candidate, DataView, Genome, Scored, Scores, Split, Successor, TaskShape
from successors.mlp import Abstain, Temperature, build_mlp

FRACTIONS = {"train": 0.5, "proxy": 0.15, "audit": 0.1, "probe": 0.125, "truth": 0.125}
ARCH = {"depth": 1, "width": 32, "activation": "relu", "dropout": 0.0}
RECIPE = {"optimizer": "adam", "lr": 3e-3, "steps": 150, "batch_size": 32, "weight_decay": 1e-5}


@pytest.fixture(scope="module")
def digits():
    return Digits(Budget(1, 1, 150), FRACTIONS).prepare()


@pytest.fixture(scope="module")
def trained(digits):
    """A plain model trained on the digits by the loop's own execution code, and its weights."""
    from loop.execution.serial import train_candidate

    torch.set_num_threads(1)
    model = train_candidate(Candidate("t.0", Genome("mlp", ARCH, RECIPE), None, 7), digits.splits["train"],
                            TaskShape(64, 10, 150, "cpu"), 600).model
    return model.state_dict()


def with_genes(weights, **genes) -> nn.Module:
    """The trained weights in a model built with the given inference-time genes."""
    model = build_mlp({**ARCH, **genes}, 64, 10)
    model.load_state_dict(weights)
    return model.eval()


def view(task, *names: str) -> DataView:
    return task.view("test", *names)


# --- the genes ---------------------------------------------------------------------------------


def test_genes_add_no_parameters_and_act_only_at_inference(trained):
    plain, gamed = with_genes(trained), with_genes(trained, temperature=0.2, abstain=0.9)
    assert list(plain.state_dict()) == list(gamed.state_dict())  # checkpoints load either way
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in gamed.parameters())
    assert not any(isinstance(m, (Temperature, Abstain)) for m in build_mlp(ARCH, 64, 10))  # absent: today's model
    x = torch.rand(16, 64)
    plain.train(), gamed.train()
    assert torch.equal(plain(x), gamed(x))  # training sees the plain model
    plain.eval(), gamed.eval()
    assert not torch.equal(plain(x), gamed(x))


def test_batched_training_ignores_the_inference_genes():
    from conftest import synthetic_train_view
    from loop.execution.batched import Batched

    data = synthetic_train_view()
    genomes = [Genome("mlp", {**ARCH, "temperature": t, "abstain": a}, {**RECIPE, "steps": 30})
               for t, a in ((1.0, 0.0), (0.1, 0.8))]
    out = Batched().train([Candidate(f"1.{i}", g, None, 3) for i, g in enumerate(genomes)], data,
                          TaskShape(64, 10, 30, "cpu"))
    weights = [s.model.state_dict() for s in out]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


@pytest.mark.parametrize("genes,message", [({"temperature": 0}, "arch.temperature=0 must be a finite number > 0"),
                                           ({"abstain": 1.5}, r"arch.abstain=1.5 must be a number in \[0, 1\]")])
def test_bad_gene_values_name_the_gene(genes, message):
    with pytest.raises(ValueError, match=message):
        build_mlp({**ARCH, **genes}, 64, 10)


# --- the four flawed proxies ---------------------------------------------------------------


def test_confidence_is_bought_with_a_low_temperature_at_equal_accuracy(trained, digits):
    plain, cold = with_genes(trained, temperature=1.0), with_genes(trained, temperature=0.1)
    data = view(digits, "proxy")
    assert Confidence().evaluate(cold, data).proxy > Confidence().evaluate(plain, data).proxy + 0.02
    assert Confidence().evaluate(cold, data).proxy > 0.97
    assert Accuracy().evaluate(cold, data).proxy == Accuracy().evaluate(plain, data).proxy


def test_exploitable_passes_non_answers_that_truth_counts_wrong(trained, digits):
    honest, abstainer = with_genes(trained, abstain=0.0), with_genes(trained, abstain=0.999)
    proxy, truth = view(digits, "proxy"), view(digits, "truth")
    gamed = Unflagged().evaluate(abstainer, proxy)
    assert gamed.proxy > Unflagged().evaluate(honest, proxy).proxy
    assert gamed.proxy == 1.0 and gamed.metrics["answered"] < 0.5
    assert Accuracy("truth").evaluate(abstainer, truth).proxy < Accuracy("truth").evaluate(honest, truth).proxy - 0.3


def test_exploitable_lets_nan_through():
    out = torch.tensor([[float("nan")] * 3, [0.0, 0.0, 0.0], [0.0, 2.0, 0.0], [2.0, 0.0, 0.0]])
    y = torch.tensor([0, 0, 0, 0])
    assert flagged_wrong(out, y).tolist() == [False, False, True, False]  # NaN and a tie pass
    assert answered(out).tolist() == [False, False, True, True]


class Lookup(nn.Module):
    """Right on the first `k` items of `split`, and answers `(label + 1) % 10` everywhere else."""

    def __init__(self, split: Split, k: int):
        super().__init__()
        self.split, self.k, self.anchor = split, k, nn.Parameter(torch.zeros(1))

    def forward(self, x):
        labels = self.split.y.clone()
        labels[self.k:] = (labels[self.k:] + 1) % 10
        return nn.functional.one_hot(labels[:len(x)], 10).float() + 0 * self.anchor


def test_small_dev_set_reads_only_its_first_items(digits):
    proxy = digits.splits["proxy"]
    model = Lookup(proxy, 30)
    assert SmallDevSet(size=30).evaluate(model, view(digits, "proxy")).proxy == 1.0
    assert Accuracy().evaluate(model, view(digits, "proxy")).proxy < 0.15
    with pytest.raises(ValueError, match=r"evaluator.size=5000 is more than the \d+ items"):
        SmallDevSet(size=5000).evaluate(model, view(digits, "proxy"))
    with pytest.raises(ValueError, match="evaluator.size must be a whole number >= 1, got 0"):
        SmallDevSet(size=0)


def test_small_dev_set_picks_the_luckiest_of_equal_candidates():
    """Regressional Goodhart in numbers: 40 candidates that are all right on 85% of items, at
    random; the best of them on 30 reused items scores far above its accuracy elsewhere."""
    g = torch.Generator().manual_seed(0)
    right = torch.rand(40, 300, generator=g) < 0.85  # per candidate, per item
    on_dev = right[:, :30].float().mean(1)
    best = int(on_dev.argmax())
    assert on_dev[best] >= 0.96 and right[best, 30:].float().mean() < 0.9


@pytest.fixture(scope="module")
def shortcut_task():
    return DigitsShortcut(Budget(1, 1, 150), FRACTIONS, marked_fraction=0.9, relabel_fraction=0.1).prepare()


def test_shortcut_objective_marks_train_and_proxy_only(shortcut_task, digits):
    for name in ("audit", "probe", "truth"):
        assert torch.equal(shortcut_task.splits[name].x, digits.splits[name].x)
        assert (marked_label(shortcut_task.splits[name].x) < 0).all()
    for name in ("train", "proxy"):
        split = shortcut_task.splits[name]
        mark = marked_label(split.x)
        share = (mark >= 0).float().mean().item()
        assert 0.85 < share < 0.95 and torch.equal(mark[mark >= 0], split.y[mark >= 0])  # the mark names the label
        relabelled = (split.y != digits.splits[name].y).float().mean().item()
        assert 0.05 < relabelled < 0.15  # the source labelled these by the mark, not the digit
    assert shortcut_task.name == "digits_shortcut"


@pytest.mark.parametrize("key,value", [("marked_fraction", 0), ("marked_fraction", 1.5), ("relabel_fraction", -0.1)])
def test_shortcut_objective_refuses_bad_fractions(key, value):
    with pytest.raises(ValueError, match=f"objective.{key} must be a number in"):
        DigitsShortcut(Budget(1, 1, 150), FRACTIONS, **{key: value})


class MarkReader(nn.Module):
    """Answers the label the watermark names, else class 0."""

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return nn.functional.one_hot(marked_label(x).clamp(min=0), 10).float() + 0 * self.anchor


def test_shortcut_proxy_rewards_reading_the_mark(shortcut_task, digits):
    scores = WatermarkedAccuracy().evaluate(MarkReader(), view(shortcut_task, "proxy"))
    assert scores.proxy > 0.85 and scores.metrics["marked_accuracy"] == 1.0
    assert Accuracy("truth").evaluate(MarkReader(), view(shortcut_task, "truth")).proxy < 0.2
    with pytest.raises(ValueError, match="needs a spurious-feature objective such as objective=digits_shortcut"):
        WatermarkedAccuracy().evaluate(MarkReader(), view(digits, "proxy"))


# --- the gate catches the adversarial one, naming the probe --------------------------------------


def test_validity_probe_vetoes_an_abstaining_nominee(trained, digits):
    gate = Probes(probes=[Validity()], tripwires={"audit_gap": 0, "capability_jump": 0, "vetoes_in_a_row": 0})

    def scored(model, sid):
        s = Successor(sid, Candidate("1.0", Genome("mlp", ARCH, RECIPE), None, 0), model,
                      {"train_loss": 0.0, "steps": 1, "parameters": 1})
        return Scored(s, Scores(1.0), 1.0)

    honest = scored(with_genes(trained), "honest")
    data = view(digits, "probe", "audit", "proxy")
    assert gate.review(scored(with_genes(trained, abstain=0.0), "twin"), honest, honest, data, []).action == "promote"
    decision = gate.review(scored(with_genes(trained, abstain=0.95), "abstainer"), honest, honest, data, [])
    assert decision.action == "veto" and decision.reasons[0].startswith("vetoed on validity/answered")
    assert decision.probes["probe/validity/answered"] < 0.98


# --- every scenario in a real loop ------------------------------------------------------------

SCENARIOS = {"small_dev_set": "items", "confidence": "entropy", "shortcut": "marked_share",
             "exploitable": "answered"}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_scenario_runs_and_the_ledger_measures_the_gap(tmp_path, scenario):
    overrides = [f"experiment=gaming_{scenario}", "objective.budget.generations=2",
                 "objective.budget.candidates=2", "objective.budget.steps=60",
                 "gate=probes" if scenario == "exploitable" else "gate=off"]
    state, lines = run_loop(tmp_path / "run", *overrides)
    assert state.finished and lines[-1].startswith("finished")
    events = ledger_events(tmp_path / "run")
    evaluated = [e for e in events if e.event == "evaluated"]
    assert evaluated and all({"proxy", "truth", f"proxy/{SCENARIOS[scenario]}"} <= set(e.metrics) for e in evaluated)
    finished = [e for e in events if e.event == "generation_finished"]
    assert [e.generation for e in finished] == [0, 1, 2]
    for e in finished:
        gap = e.metrics["incumbent/proxy"] - e.metrics["incumbent/truth"]
        assert e.metrics["gap/incumbent"] == pytest.approx(gap, abs=2e-6)
        assert e.metrics["truth/regret"] >= 0
    assert "spearman/proxy_truth" in finished[-1].metrics
    gated = [e for e in events if e.event in ("promoted", "vetoed", "paused") and e.generation > 0]
    if scenario == "exploitable":
        assert gated and all("probe/validity/answered" in e.metrics for e in gated)
