"""Calibration and robustness probes on hand-built and toy models, and the proxy evaluators
(accuracy, likelihood). The whole probe suite on digits, against planted models, is in
test_probe_suite.py."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest
import torch
from torch import nn

from evaluators.accuracy import Accuracy, Likelihood
from evaluators.probes import Calibration, Robustness
from evaluators.probes.calibration import (ece, ece_equal_mass, ece_equal_mass_stack, ece_stack,
                                           expected_calibration_error, nll, nll_stack)
from evaluators.probes.consistency import noise_gain, noise_gain_stack
from evaluators.probes.ood import auroc, auroc_stack, fpr_at_95_tpr, fpr_at_95_tpr_stack
from evaluators.probes.readouts import (column_gap, column_gap_stack, group_gap, group_gap_stack, worst_group,
                                        worst_group_stack)
from evaluators.probes.robustness import fgsm
from loop.stages import AccessError, DataView, Scores, Split


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def passthrough(classes: int) -> nn.Module:
    """A model whose logits are its inputs: feed it log-probabilities and softmax gives them back."""
    model = nn.Linear(classes, classes, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(classes))
    return model


# Hand-computed example, 10 bins, two classes, confidences away from bin edges:
#   bin (0.8, 0.9]: 2 items at confidence 0.85, 1 right -> |0.5 - 0.85| = 0.35,  weight 2/5
#   bin (0.6, 0.7]: 3 items at confidence 0.65, 2 right -> |2/3 - 0.65| = 1/60,  weight 3/5
#   ECE = 0.4 * 0.35 + 0.6 / 60 = 0.14 + 0.01 = 0.15
TOY_PROBS = torch.tensor([[0.85, 0.15], [0.85, 0.15], [0.35, 0.65], [0.35, 0.65], [0.35, 0.65]])
TOY_LABELS = torch.tensor([0, 1, 1, 1, 0])
TOY_ECE = 0.15


def test_ece_is_zero_when_perfectly_calibrated():
    # confidence 0.75 and exactly 3 of 4 right; plus confidence 1.0 and always right
    probs = torch.tensor([[0.75, 0.25]] * 4 + [[0.0, 1.0]] * 2)
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-6)
    assert expected_calibration_error(probs, labels, bins=1) == pytest.approx(0.0, abs=1e-6)


def test_ece_equals_the_hand_computed_value():
    assert expected_calibration_error(TOY_PROBS, TOY_LABELS, bins=10) == pytest.approx(TOY_ECE, abs=1e-6)
    # one bin: |accuracy 3/5 - mean confidence (2*0.85 + 3*0.65)/5 = 0.73| = 0.13
    assert expected_calibration_error(TOY_PROBS, TOY_LABELS, bins=1) == pytest.approx(0.13, abs=1e-6)


def test_ece_of_confidently_wrong_predictions_is_one():
    probs = torch.tensor([[1.0, 0.0, 0.0]] * 3)
    labels = torch.tensor([1, 2, 1])
    assert expected_calibration_error(probs, labels) == pytest.approx(1.0)


def gate_view(split: Split) -> DataView:
    return DataView({"probe": split}, ["probe"], "gate")


def readouts(probe, model: nn.Module, split: Split) -> dict:
    return {r.metric: r for r in probe.measure(model, gate_view(split), model)}


def test_calibration_probe_on_a_hand_built_model():
    probe = Calibration(bins=10, shift=False)  # two features are not an image to move
    out = readouts(probe, passthrough(2), Split(torch.log(TOY_PROBS), TOY_LABELS))
    assert set(out) == {"calibration/ece", "calibration/ece_mass", "calibration/nll"}
    assert all(not r.higher_is_better and r.kind == "statistic" for r in out.values())
    assert out["calibration/ece"].value == pytest.approx(TOY_ECE, abs=1e-5)
    nll = -sum(math.log(p) for p in (0.85, 0.15, 0.65, 0.65, 0.35)) / 5
    assert out["calibration/nll"].value == pytest.approx(nll, rel=1e-5)
    items = out["calibration/ece"].items
    # equal mass, 2 bins of the sorted confidences: [.65 .65 .65] and [.85 .85], the same bins as above
    assert ece_equal_mass(items, bins=2) == pytest.approx(TOY_ECE, abs=1e-6)
    # 5 bins of one item each: mean |correct - confidence| = (.15 + .85 + .35 + .35 + .65) / 5
    assert ece_equal_mass(items, bins=5) == pytest.approx(0.47, abs=1e-6)


def test_equal_mass_ece_with_one_bin_is_equal_width_ece_with_one_bin():
    items = Calibration(shift=False).measure(passthrough(2), gate_view(Split(torch.log(TOY_PROBS), TOY_LABELS)),
                                  passthrough(2))[0].items
    assert ece_equal_mass(items, bins=1) == pytest.approx(ece(items, bins=1))


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, Split]:
    """A small linear classifier trained a few steps on separable 3-class blobs."""
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    y = torch.randint(0, 3, (90,), generator=g)
    x = centres[y] + 0.2 * torch.randn(90, 4, generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(40):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model, Split(x, y)


def clean_accuracy(model: nn.Module, split: Split) -> float:
    with torch.no_grad():
        return (model(split.x).argmax(1) == split.y).float().mean().item()


def test_probes_measure_values_in_unit_interval(trained):
    model, split = trained
    values = {**readouts(Calibration(), model, split), **readouts(Robustness(), model, split)}
    for metric in ("calibration/ece", "calibration/ece_mass", "calibration/ece_shift", "robustness/noise_0.1", "robustness/noise_0.3",
                   "robustness/fgsm", "robustness/fgsm_transfer"):
        assert 0.0 <= values[metric].value <= 1.0, metric
    assert values["calibration/nll"].value > 0.0
    assert clean_accuracy(model, split) > 0.9  # the fixture model really learned something


def test_robustness_is_deterministic_and_leaves_inputs_alone(trained):
    model, split = trained
    x_before = split.x.clone()
    first = readouts(Robustness(sigmas=[1.0], seed=3), model, split)
    again = readouts(Robustness(sigmas=[1.0], seed=3), model, split)
    assert list(first) == ["robustness/noise_1", "robustness/fgsm", "robustness/fgsm_transfer"]
    for metric in first:
        assert again[metric].value == first[metric].value
        assert (again[metric].items == first[metric].items).all()
    assert torch.equal(split.x, x_before)


def test_robustness_with_zero_sigma_and_epsilon_is_clean_accuracy(trained):
    model, split = trained
    out = readouts(Robustness(sigmas=[0.0], epsilon=0.0), model, split)
    assert all(r.value == pytest.approx(clean_accuracy(model, split)) for r in out.values())
    assert out["robustness/noise_0"].value == pytest.approx(
        Accuracy(split="probe").evaluate(model, gate_view(split)).proxy)


def test_strong_noise_and_fgsm_hurt(trained):
    model, split = trained
    out = readouts(Robustness(sigmas=[5.0], epsilon=0.5), model, split)
    assert out["robustness/noise_5"].value < clean_accuracy(model, split)
    assert out["robustness/fgsm"].value < clean_accuracy(model, split)


def test_fgsm_steps_every_pixel_by_epsilon_within_the_pixel_range(trained):
    model, split = trained
    x = split.x.clamp(0.1, 0.9)
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    adversarial = fgsm(model, x, split.y, 0.05)
    assert torch.allclose((adversarial - x).abs(), torch.full_like(x, 0.05))
    assert fgsm(model, x, split.y, 0.5).min() >= 0.0 and fgsm(model, x, split.y, 0.5).max() <= 1.0
    for before, p in zip(grads, model.parameters()):  # no parameter gradient accumulated
        assert (before is None and p.grad is None) or torch.equal(before, p.grad)


def test_probes_keep_the_models_training_mode(trained):
    model, split = trained
    model.train()
    readouts(Calibration(), model, split)
    readouts(Robustness(), model, split)
    assert model.training
    model.eval()
    readouts(Robustness(), model, split)
    assert not model.training


# --- the statistics' vectorised twins (what the gate's bootstrap calls) ----------------------

RNG = np.random.default_rng(0)
CONFIDENCE = np.r_[RNG.uniform(0.1, 1.0, 60), [1.0] * 10, [0.5] * 10, [0.2, 0.4, 0.0, 1.0 / 3.0]]  # bin edges, ties
CALIBRATION = np.c_[CONFIDENCE, RNG.integers(0, 2, len(CONFIDENCE)), np.log(RNG.uniform(0.01, 1.0, len(CONFIDENCE)))]
SCORES = np.round(RNG.normal(size=90), 1)  # many ties between and within the two kinds
SCORES[[0, 1, 60, 61]], SCORES[[2, 62]] = np.nan, np.inf  # a model that outputs NaN or inf
OOD = np.c_[SCORES, np.r_[np.zeros(30), np.ones(60)]]  # rows (score, is_ood): inside first
GROUPS = np.c_[RNG.uniform(size=40), np.r_[np.zeros(20), np.ones(20)]]  # rows (value, group): group 0 first
CORRECT = RNG.integers(0, 2, (40, 3)).astype(float)
TWINS = {  # name -> (statistic, its vectorised twin, items)
    **{f"ece bins={b}": (partial(ece, bins=b), partial(ece_stack, bins=b), CALIBRATION) for b in (1, 2, 15, 200)},
    **{f"ece_equal_mass bins={b}": (partial(ece_equal_mass, bins=b), partial(ece_equal_mass_stack, bins=b),
                                     CALIBRATION) for b in (1, 2, 15, 200)},
    "nll": (nll, nll_stack, CALIBRATION),
    "auroc": (auroc, auroc_stack, OOD),
    "fpr95": (fpr_at_95_tpr, fpr_at_95_tpr_stack, OOD),
    "fpr95, threshold NaN": (fpr_at_95_tpr, fpr_at_95_tpr_stack, np.r_[OOD[2:3], [[np.nan, 0.0]] * 29, OOD[30:]]),
    "column_gap": (column_gap, column_gap_stack, RNG.uniform(size=(40, 2))),
    "group_gap": (group_gap, group_gap_stack, GROUPS),
    "worst_group": (worst_group, worst_group_stack, GROUPS),
    "noise_gain": (noise_gain, noise_gain_stack, CORRECT),
    "noise_gain, none right as is": (noise_gain, noise_gain_stack, np.c_[np.zeros(40), CORRECT[:, 1:]]),
}


@pytest.mark.parametrize("name", list(TWINS))
def test_each_vectorised_statistic_matches_its_statistic_on_every_resample(name):
    one, many, items = TWINS[name]
    n = len(items)
    resamples = [RNG.integers(0, n, (200, n)),  # the bootstrap's own
                 RNG.integers(0, n // 4, (20, n)), RNG.integers(n - n // 4, n, (20, n)),  # one kind or group only
                 np.arange(n)[None], np.zeros((3, 1), np.int64), np.array([[0, n - 1], [n - 1, 0]])]
    for rows in resamples:
        expected = np.array([one(items[r]) for r in rows])
        np.testing.assert_allclose(many(items[rows]), expected, rtol=0, atol=1e-12, err_msg=name)


def test_the_vectorised_twins_keep_the_fallbacks_for_a_missing_kind_or_group():
    inside, outside = OOD[None, 3:30], OOD[None, 63:]
    assert auroc_stack(inside)[0] == 0.5 and auroc_stack(outside)[0] == 0.5
    assert fpr_at_95_tpr_stack(inside)[0] == 0.95 and fpr_at_95_tpr_stack(outside)[0] == 0.95
    first_group = GROUPS[None, :20]
    assert group_gap_stack(first_group)[0] == 0.0
    assert worst_group_stack(first_group)[0] == worst_group(GROUPS[:20]) == GROUPS[:20, 0].mean()


# --- proxy evaluators -----------------------------------------------------------------------


def toy_view(*allowed: str) -> DataView:
    # passthrough logits: predictions [0, 0, 1, 1, 1] vs labels [0, 1, 1, 1, 0] -> 3/5 right
    split = Split(torch.log(TOY_PROBS), TOY_LABELS)
    return DataView({"proxy": split, "truth": split}, allowed, "evaluator")


def test_accuracy_evaluate():
    scores = Accuracy().evaluate(passthrough(2), toy_view("proxy"))
    assert isinstance(scores, Scores)
    assert scores.proxy == pytest.approx(0.6)
    nll = -sum(math.log(p) for p in (0.85, 0.15, 0.65, 0.65, 0.35)) / 5
    assert scores.metrics["nll"] == pytest.approx(nll, rel=1e-5)


def test_likelihood_evaluate():
    scores = Likelihood().evaluate(passthrough(2), toy_view("proxy"))
    nll = -sum(math.log(p) for p in (0.85, 0.15, 0.65, 0.65, 0.35)) / 5
    assert 0.0 <= scores.proxy <= 1.0
    assert scores.proxy == pytest.approx(math.exp(-nll), rel=1e-5)
    assert scores.metrics["nll"] == pytest.approx(nll, rel=1e-5)
    assert scores.metrics["accuracy"] == pytest.approx(0.6)


def test_evaluators_on_a_trained_model(trained):
    model, split = trained
    view = DataView({"proxy": split}, ["proxy"], "evaluator")
    for evaluator in (Accuracy(), Likelihood()):
        scores = evaluator.evaluate(model, view)
        assert 0.0 <= scores.proxy <= 1.0
    assert Accuracy().evaluate(model, view).proxy > Likelihood().evaluate(model, view).proxy > 0.5


@pytest.mark.parametrize("evaluator", [Accuracy(split="truth"), Likelihood(split="truth")])
def test_evaluators_refuse_a_split_they_may_not_see(evaluator):
    with pytest.raises(AccessError, match="truth"):
        evaluator.evaluate(passthrough(2), toy_view("proxy"))
    assert evaluator.evaluate(passthrough(2), toy_view("truth")).proxy == pytest.approx(
        Accuracy().evaluate(passthrough(2), toy_view("proxy")).proxy if isinstance(evaluator, Accuracy)
        else Likelihood().evaluate(passthrough(2), toy_view("proxy")).proxy)


def test_access_error_is_a_permission_error():
    with pytest.raises(PermissionError):
        toy_view()["proxy"]
