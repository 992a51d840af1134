"""Objectives: the token tasks (modular arithmetic, sequence copy/reverse) and digits, their five
splits (disjoint, deterministic, correctly labelled), their input descriptions, and the probe
gate's check of what its probes can read."""

from __future__ import annotations

import pytest
import torch

from loop.gate.gates import Probes
from loop.objective.tasks import SPLITS, Digits, ModularArithmetic, SequenceTask, split_hash
from loop.stages import TaskShape
from evaluators.probes import Calibration, Consistency, Fingerprint, OutOfDistribution, Robustness, Shortcut

FRACTIONS = {"train": 0.5, "proxy": 0.15, "audit": 0.1, "probe": 0.125, "truth": 0.125}
BUDGET = {"generations": 1, "candidates": 1, "steps": 10}


def rows(task) -> dict[str, set[tuple]]:
    return {name: {tuple(r.tolist()) for r in task.splits[name].x} for name in SPLITS}


def check_splits(task, total: int) -> None:
    assert sum(len(task.splits[s]) for s in SPLITS) == total
    items = rows(task)
    assert sum(len(v) for v in items.values()) == total  # no item twice, within or across splits
    for split in task.splits.values():
        assert split.x.dtype == torch.long and split.y.dtype == torch.long and split.y.ndim == 1


def test_modular_arithmetic_splits_all_pairs_and_labels_them():
    task = ModularArithmetic(BUDGET, FRACTIONS, p=13).prepare()
    check_splits(task, 13 * 13)
    assert (task.name, task.inputs, task.vocab, task.seq_len, task.n_classes) == ("modular_arithmetic", "tokens",
                                                                                 13, 2, 13)
    everything = set().union(*rows(task).values())
    assert everything == {(a, b) for a in range(13) for b in range(13)}
    for split in task.splits.values():
        assert torch.equal(split.y, (split.x[:, 0] + split.x[:, 1]) % 13)


@pytest.mark.parametrize("mode", ["copy", "reverse"])
def test_sequence_labels_the_queried_position(mode):
    task = SequenceTask(BUDGET, FRACTIONS, mode=mode, length=5, vocab=4, items=500).prepare()
    check_splits(task, 500)
    assert (task.inputs, task.vocab, task.seq_len, task.n_classes) == ("tokens", 4 + 5, 6, 4)
    for split in task.splits.values():
        sequence, query = split.x[:, :5], split.x[:, 5] - 4
        assert sequence.max() < 4 and query.min() >= 0 and query.max() < 5
        position = query if mode == "copy" else 4 - query
        assert torch.equal(split.y, sequence[torch.arange(len(split)), position])


@pytest.mark.parametrize("make", [
    lambda seed: ModularArithmetic(BUDGET, FRACTIONS, split_seed=seed, p=11),
    lambda seed: SequenceTask(BUDGET, FRACTIONS, split_seed=seed, length=4, vocab=3, items=200),
    lambda seed: Digits(BUDGET, FRACTIONS, split_seed=seed),
])
def test_splits_are_deterministic_per_split_seed(make):
    first, again, other = make(0).prepare(), make(0).prepare(), make(1).prepare()
    hashes = [{s: split_hash(t.splits[s]) for s in SPLITS} for t in (first, again, other)]
    assert hashes[0] == hashes[1]
    assert hashes[0]["truth"] != hashes[2]["truth"]


def test_sequence_with_every_item_drawn_still_has_no_repeats():
    task = SequenceTask(BUDGET, FRACTIONS, length=2, vocab=3, items=3 ** 2 * 2).prepare()
    check_splits(task, 18)


def test_digits_describe_an_8x8_image():
    task = Digits(BUDGET, FRACTIONS).prepare()
    assert (task.inputs, task.image, task.in_features) == ("features", (8, 8), 64)
    shape = TaskShape.of(task, "cpu")
    assert (shape.image, shape.objective, shape.max_steps) == ((8, 8), "digits", 10)
    assert shape.describe() == "64 float features (a 8x8 image)"


@pytest.mark.parametrize("make,match", [
    (lambda: ModularArithmetic(BUDGET, FRACTIONS, p=1), "objective.p must be a whole number >= 2, got 1"),
    (lambda: SequenceTask(BUDGET, FRACTIONS, mode="sort"), r"objective.mode='sort' is not one of \['copy'"),
    (lambda: SequenceTask(BUDGET, FRACTIONS, length=2, vocab=2, items=100),
     "objective.items=100 is more than the 8 distinct items of vocab=2, length=2"),
    (lambda: SequenceTask(BUDGET, FRACTIONS, vocab=True), "objective.vocab must be a whole number >= 2"),
    (lambda: ModularArithmetic(BUDGET, {**FRACTIONS, "train": 0.6}), "objective.fractions must sum to 1"),
    (lambda: ModularArithmetic({**BUDGET, "steps": 0}, FRACTIONS), "budget.steps must be a whole number"),
])
def test_bad_objective_settings_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("kwargs,match", [
    ({"inputs": "pixels"}, r"inputs='pixels' is not one of \['features', 'tokens', 'tasks'\]"),
    ({"inputs": "tokens", "vocab": 0, "seq_len": 2}, "token inputs need vocab >= 2"),
    ({"image": (4, 4)}, r"image=\(4, 4\) must describe float features whose pixels number in_features=2"),
])
def test_an_incomplete_input_description_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TaskShape(2, 3, 10, "cpu", **kwargs)


# --- probes on token inputs -----------------------------------------------------------------

TOKENS = TaskShape(2, 11, 10, "cpu", inputs="tokens", vocab=11, seq_len=2, objective="modular_arithmetic")
DIGITS = TaskShape(64, 10, 10, "cpu", image=(8, 8), objective="digits")


@pytest.mark.parametrize("probe,match", [
    (Robustness(), "probe robustness adds Gaussian noise"),
    (OutOfDistribution(), "probe ood builds out-of-distribution inputs"),
    (Shortcut(), "probe shortcut stamps label watermarks"),
    (Calibration(), "probe calibration reads ece_shift.*set its shift: false"),
    (Consistency(), "probe consistency stamps an evaluation flag.*set its flag: false"),
    (Fingerprint(), "probe fingerprint jitters float features.*set its jitter: false"),
])
def test_each_probe_that_cannot_read_tokens_says_so(probe, match):
    probe.check_task(DIGITS)  # all read digits
    with pytest.raises(ValueError, match=match) as error:
        probe.check_task(TOKENS)
    assert "objective=modular_arithmetic gives sequences of 2 tokens from a vocabulary of 11" in str(error.value)


def test_token_probes_read_tokens_and_the_gate_names_every_misfit():
    for probe in (Calibration(shift=False), Consistency(flag=False), Fingerprint(jitter=False)):
        probe.check_task(TOKENS)
    Probes([Calibration(shift=False), Consistency(flag=False), Fingerprint(jitter=False)]).check_task(TOKENS)
    with pytest.raises(ValueError, match="gate: 2 of its 3 probes cannot run on objective=modular_arithmetic, "
                                         "which gives sequences of 2 tokens from a vocabulary of 11: robustness adds "
                                         "Gaussian noise.*: leave it out.*; ood builds.*use gate=tokens"):
        Probes([Robustness(), Calibration(shift=False), OutOfDistribution()]).check_task(TOKENS)


def test_the_token_gate_reviews_token_models():
    """gate=tokens on two trained token models: its probes read them and the gate decides."""
    from conftest import compose_config
    from loop.tools.cli import build_stages
    from loop.execution.serial import train_candidate
    from loop.stages import Candidate, Genome, Scored, Scores

    stages = build_stages(compose_config("tracker=none", "objective=modular_arithmetic", "objective.p=13",
                                         "successor=transformer", "gate=tokens"))
    task = stages.objective.prepare()
    shape = TaskShape.of(task, "cpu", max_steps=40, family="transformer", gate=stages.gate)

    def scored(seed: int, lr: float) -> Scored:
        genome = Genome("transformer", {"depth": 1, "width": 16, "heads": 2, "ff": 32, "dropout": 0.0,
                                        "pool": "mean"},
                        {"optimizer": "adam", "lr": lr, "steps": 40, "batch_size": 32, "weight_decay": 0.0})
        s = train_candidate(Candidate(f"1.{seed}", genome, None, seed), task.splits["train"], shape, 120)
        proxy = stages.evaluator.evaluate(s.model, task.view("evaluator", "proxy")).proxy
        return Scored(s, Scores(proxy), proxy)

    base, nominee = scored(0, 1e-3), scored(1, 1e-2)
    view = task.view("gate", "probe", "audit", "proxy")
    assert stages.gate.review(base, base, base, view, []).action == "promote"  # no model regresses on itself
    decision = stages.gate.review(nominee, base, base, view, [])
    probes = {k.split("/")[1] for k in decision.probes if k.startswith("probe/")}
    assert probes == {"calibration", "consistency", "fingerprint", "validity"}
    assert "probe/calibration/ece" in decision.probes and "probe/consistency/noise_gain" in decision.probes
    assert not any("shift" in k or "flag" in k or "jitter" in k for k in decision.probes)


def test_digits_are_scikit_learns_bundled_digits_read_without_importing_it():
    import subprocess
    import sys

    from sklearn.datasets import load_digits

    from loop.objective.tasks import digits

    x, y = digits()
    data = load_digits()
    assert torch.equal(x, torch.tensor(data.data / 16.0, dtype=torch.float32))
    assert torch.equal(y, torch.tensor(data.target, dtype=torch.long))
    code = "import sys; from loop.objective.tasks import digits; digits(); print('sklearn' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
