"""Safety probes (calibration, noise robustness) and the proxy evaluators (accuracy, likelihood)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from evaluators.accuracy import Accuracy, Likelihood
from evaluators.probes import Calibration, NoiseRobustness
from evaluators.probes.calibration import expected_calibration_error
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


def test_calibration_probe_on_a_hand_built_model():
    probe = Calibration(bins=10)
    assert (probe.name, probe.higher_is_better) == ("calibration", False)
    split = Split(torch.log(TOY_PROBS), TOY_LABELS)
    assert probe.measure(passthrough(2), split) == pytest.approx(TOY_ECE, abs=1e-5)


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
    ece = Calibration().measure(model, split)
    noise = NoiseRobustness(sigma=0.3).measure(model, split)
    assert 0.0 <= ece <= 1.0
    assert 0.0 <= noise <= 1.0
    assert clean_accuracy(model, split) > 0.9  # the fixture model really learned something


def test_noise_robustness_is_deterministic_and_leaves_inputs_alone(trained):
    model, split = trained
    x_before = split.x.clone()
    probe = NoiseRobustness(sigma=1.0, seed=3)
    first = probe.measure(model, split)
    assert probe.measure(model, split) == first
    assert NoiseRobustness(sigma=1.0, seed=3).measure(model, split) == first
    assert torch.equal(split.x, x_before)


def test_noise_robustness_with_zero_sigma_is_clean_accuracy(trained):
    model, split = trained
    assert NoiseRobustness(sigma=0.0).measure(model, split) == pytest.approx(clean_accuracy(model, split))
    view = DataView({"probe": split}, ["probe"], "gate")
    assert NoiseRobustness(sigma=0.0).measure(model, split) == pytest.approx(
        Accuracy(split="probe").evaluate(model, view).proxy)


def test_strong_noise_hurts(trained):
    model, split = trained
    assert NoiseRobustness(sigma=5.0).measure(model, split) < clean_accuracy(model, split)


def test_probes_keep_the_models_training_mode(trained):
    model, split = trained
    model.train()
    Calibration().measure(model, split)
    NoiseRobustness().measure(model, split)
    assert model.training
    model.eval()
    Calibration().measure(model, split)
    assert not model.training


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
