"""A model as judge (`evaluator=self_judge`, `frozen_judge`) and error inheritance: scores recomputed
from the checkpoints of a real loop, never from the code's own formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import TINY, compose_config, ledger_events, run_loop
from evaluators.judge import Judge
from loop.stages import DataView, Split


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def linear(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Linear(5, 3)


def test_a_model_scores_the_probability_it_gives_the_judges_answers_and_labels_are_never_read():
    x = torch.randn(40, 5, generator=torch.Generator().manual_seed(1))
    model, judge = linear(0), linear(1)
    with torch.no_grad():
        p, answers = softmax(model(x).numpy()), judge(x).numpy().argmax(1)
    scores = [Judge().evaluate(model, DataView({"proxy": Split(x, y)}, ["proxy"], "evaluator"), judge=judge)
              for y in (torch.zeros(40, dtype=torch.long), torch.randint(0, 3, (40,)))]
    assert scores[0] == scores[1]  # gold labels of any kind: the same score
    assert scores[0].proxy == pytest.approx(p[np.arange(40), answers].mean(), rel=1e-6)
    assert scores[0].metrics["agreement"] == pytest.approx((p.argmax(1) == answers).mean())
    assert scores[0].metrics["confidence"] == pytest.approx(p.max(1).mean(), rel=1e-6)
    alone = Judge().evaluate(model, DataView({"proxy": Split(x, x[:, 0].long())}, ["proxy"], "evaluator"), judge=model)
    assert alone.proxy == pytest.approx(p.max(1).mean(), rel=1e-6) and alone.metrics["agreement"] == 1


def test_a_judge_needs_a_model_to_judge_by_and_a_known_judge():
    data = DataView({"proxy": Split(torch.zeros(2, 5), torch.zeros(2, dtype=torch.long))}, ["proxy"], "evaluator")
    with pytest.raises(ValueError, match=r"was given no judge model: it can only score successors inside a loop"):
        Judge().evaluate(linear(0), data)
    with pytest.raises(ValueError, match=r"evaluator.judge must be one of \['incumbent', 'baseline'\]"):
        Judge(judge="oracle")


def test_a_judge_cannot_be_the_hidden_truth():
    from loop.config import ConfigError
    from loop.tools.cli import build_stages

    with pytest.raises(ConfigError, match="the hidden truth has no incumbent or baseline to judge by"):
        build_stages(compose_config(*TINY, "+truth={_target_: evaluators.judge.Judge, split: truth}"))


@pytest.mark.parametrize("judge", ["self_judge", "frozen_judge"])
def test_a_real_loop_scores_each_successor_by_its_judge_and_measures_error_inheritance(tmp_path, judge):
    """Every proxy recomputed from the checkpoints: generation 0 judged by itself, later generations by the
    incumbent they started from (self_judge) or by generation 0 (frozen_judge); error inheritance recomputed
    from the successor's and its parent's answers on the truth split."""
    from loop.checkpoints import Checkpoints
    from loop.stages import Genome, TaskShape
    from loop.tools.cli import build_stages

    state, _ = run_loop(tmp_path, f"evaluator={judge}", "gate=off", "error_inheritance=true")
    assert state.finished
    events = ledger_events(tmp_path)
    task = build_stages(compose_config(*TINY)).objective.prepare()
    shape = TaskShape.of(task, "cpu")
    cards = Checkpoints(tmp_path)

    def model(sid: str):
        return cards.load_model(sid, Genome.from_dict(cards.load_card(sid)["genome"]), shape).eval()

    def probs(sid: str, split: str) -> np.ndarray:
        with torch.no_grad():
            return softmax(model(sid)(task.splits[split].x).numpy())

    incumbent = {e.generation: e.successor for e in events if e.event == "generation_finished"}
    evaluated = [e for e in events if e.event == "evaluated"]
    assert len(evaluated) == 1 + 3 * 3
    inherited = 0
    for e in evaluated:
        judged_by = e.successor if e.generation == 0 else incumbent[e.generation - 1 if judge == "self_judge" else 0]
        answers = probs(judged_by, "proxy").argmax(1)
        mine = probs(e.successor, "proxy")
        assert e.metrics["proxy"] == pytest.approx(mine[np.arange(len(answers)), answers].mean(), abs=2e-6)
        if e.parent is None:
            assert "truth/error_base" not in e.metrics
            continue
        y = task.splits["truth"].y.numpy()
        wrong, parent_wrong = probs(e.successor, "truth").argmax(1) != y, probs(e.parent, "truth").argmax(1) != y
        assert e.metrics["truth/error_base"] == pytest.approx(wrong.mean(), abs=1e-6)
        assert e.metrics["truth/error_inheritance"] == pytest.approx(wrong[parent_wrong].mean(), abs=1e-6)
        inherited += 1
    assert inherited == 9
