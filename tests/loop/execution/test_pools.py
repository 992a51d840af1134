"""`loop.execution.pools`: process-pool and Ray execution give exactly what serial execution gives.

The Ray tests start a real local Ray (about 10 s). Without Ray installed they are skipped on a
developer's machine, but fail in CI (env CI set), which must install `.[ray]`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import synthetic_train_view

from loop.execution.serial import Serial
from loop.execution.pools import Processes, Ray, chunks
from loop.stages import AccessError, Candidate, DataView, Genome, Quarantined, Split, Successor, TaskShape

FEATURES, CLASSES = 64, 10
SHAPE = TaskShape(FEATURES, CLASSES, 600, "cpu")


def genome(activation="tanh", depth=1, width=16, optimizer="adam", lr=0.01, steps=40, dropout=0.1) -> Genome:
    return Genome("mlp", {"depth": depth, "width": width, "activation": activation, "dropout": dropout},
                  {"optimizer": optimizer, "lr": lr, "steps": steps, "batch_size": 32, "weight_decay": 0.0})


# Three that train, one that raises (an activation the space would never propose) and one that
# diverges (ReLU + SGD at lr 1e20 overflows within 25 steps): both quarantined, by different paths.
CANDIDATES = [
    Candidate("1.0", genome(), "parent", 1),
    Candidate("1.1", genome(activation="nope"), "parent", 2),
    Candidate("1.2", genome(depth=2, width=8, optimizer="sgd", lr=0.05), "parent", 3),
    Candidate("1.3", genome(activation="relu", optimizer="sgd", lr=1e20, steps=30, dropout=0.0), "parent", 4),
    Candidate("1.4", genome(activation="gelu", width=32), "parent", 5),
]


@pytest.fixture(scope="module")
def data() -> DataView:
    return synthetic_train_view()


@pytest.fixture(scope="module")
def serial(data) -> list[Successor | Quarantined]:
    return Serial().train(CANDIDATES, data, SHAPE)


@pytest.fixture(scope="module")
def processes():
    execution = Processes(workers=2)
    yield execution
    execution.close()


def require_ray() -> None:
    """Skip without Ray on a developer's machine; in CI a missing Ray is a failure."""
    if os.environ.get("CI"):
        import ray  # noqa: F401  (ImportError here fails the test: CI must install '.[ray]')
    else:
        pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_execution():
    require_ray()
    execution = Ray(actors=2)
    yield execution
    execution.close()
    import ray

    ray.shutdown()


@pytest.fixture(params=["processes", "ray_execution"])
def execution(request):
    return request.getfixturevalue(request.param)


def assert_same_as_serial(results, expected):
    assert [r.candidate for r in results] == [e.candidate for e in expected]  # the input's order
    for got, want in zip(results, expected):
        assert type(got) is type(want), (got, want)
        if isinstance(want, Quarantined):
            assert got.reason == want.reason
        else:
            assert got.id == want.id and got.train == want.train
            assert not got.model.training
            for (name, a), (_, b) in zip(got.model.state_dict().items(), want.model.state_dict().items()):
                assert torch.equal(a, b), name


def test_same_successors_and_quarantines_as_serial(execution, data, serial):
    assert [type(r).__name__ for r in serial] == ["Successor", "Quarantined", "Successor", "Quarantined",
                                                   "Successor"]
    assert "ValueError" in serial[1].reason and "nope" in serial[1].reason
    assert "at step 25/30" in serial[3].reason
    assert_same_as_serial(execution.train(CANDIDATES, data, SHAPE), serial)


def test_workers_are_reused_and_the_order_follows_the_input(execution, data, serial):
    order = [4, 0, 3, 2, 1]
    again = execution.train([CANDIDATES[i] for i in order], data, SHAPE)
    assert_same_as_serial(again, [serial[i] for i in order])
    (one,) = execution.train(CANDIDATES[:1], data, SHAPE)  # fewer candidates than workers
    assert one.id == serial[0].id
    assert execution.train([], data, SHAPE) == []


def test_execution_sees_only_the_train_split(execution):
    held_out = DataView({"train": Split(torch.zeros(2, FEATURES), torch.zeros(2, dtype=torch.long))},
                        [], "execution")
    with pytest.raises(AccessError):
        execution.train(CANDIDATES[:1], held_out, SHAPE)


def test_a_worker_killed_between_generations_is_replaced(processes, data, serial):
    processes.train(CANDIDATES[:1], data, SHAPE)
    pool = processes._pool
    os.kill(next(iter(pool._processes)), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not pool._broken and time.monotonic() < deadline:  # the pool notices on its own thread
        time.sleep(0.05)
    assert_same_as_serial(processes.train(CANDIDATES, data, SHAPE), serial)
    assert processes._pool is not pool


@pytest.mark.parametrize("settings", [{"workers": 0}, {"workers": True}, {"time_limit_s": 0}])
def test_bad_process_settings_are_refused(settings):
    with pytest.raises(ValueError, match=rf"execution\.{next(iter(settings))}"):
        Processes(**settings)


@pytest.mark.parametrize("settings", [{"actors": 0}, {"actors": 1.5}, {"time_limit_s": -1}, {"address": ""}])
def test_bad_ray_settings_are_refused(settings):
    require_ray()
    with pytest.raises(ValueError, match=rf"execution\.{next(iter(settings))}"):
        Ray(**settings)


def test_ray_missing_says_how_to_install_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(ValueError, match=r"pip install 'rsi-loop\[ray\]'"):
        Ray()


def test_importing_the_plugins_does_not_import_ray():
    code = "import sys, loop.execution.pools; assert 'ray' not in sys.modules, 'ray imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_chunks_are_contiguous_and_balanced():
    assert chunks(list(range(5)), 2) == [[0, 1, 2], [3, 4]]
    assert chunks(list(range(5)), 3) == [[0, 1], [2, 3], [4]]
    assert chunks([0], 4) == [[0]]
    assert chunks([], 2) == []
