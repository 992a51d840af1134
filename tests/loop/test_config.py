"""`loop.config`: the `_target_` allow-list and turning config nodes into stage objects."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from loop.config import BUILTIN_PREFIXES, ConfigError, allowed_prefixes, builtin_modules, check_targets, instantiate
from loop.promotion.greedy import Greedy


def cfg(**tree):
    return OmegaConf.create({"allowed_targets": [], **tree})


def refused(config) -> str:
    with pytest.raises(ConfigError) as info:
        check_targets(config)
    return str(info.value)


# --- check_targets ---------------------------------------------------------------------------


def test_builtin_targets_are_accepted_anywhere():
    check_targets(cfg(
        execution={"_target_": "loop.execution.serial.Serial", "time_limit_s": 5},
        evaluator={"_target_": "evaluators.accuracy.Accuracy"},
        successor={"_target_": "successors.SuccessorSpace", "family": "mlp"},
        gate={"_target_": "loop.gate.gates.Probes",
              "probes": [{"_target_": "evaluators.probes.Calibration"},
                         {"_target_": "evaluators.probes.Robustness"}]},
    ))


def test_the_shipped_gate_config_is_accepted():
    from pathlib import Path

    gate = OmegaConf.load(Path(__file__).resolve().parents[2] / "configs" / "gate" / "probes.yaml")
    check_targets(cfg(gate=gate))


@pytest.mark.parametrize("tree, key", [
    ({"evaluator": {"_target_": "os.system"}}, "evaluator._target_"),
    ({"a": {"b": {"c": {"_target_": "os.system", "x": 1}}}}, "a.b.c._target_"),
    ({"gate": {"_target_": "loop.gate.gates.Probes",
               "probes": [{"_target_": "evaluators.probes.Calibration"}, {"_target_": "os.system"}]}},
     "gate.probes[1]._target_"),
    ({"deep": [[{"_target_": "os.system"}]]}, "deep[0][0]._target_"),
    ({"x": {"items": [1, "two", {"inner": {"_target_": "os.system"}}]}}, "x.items[2].inner._target_"),
])
def test_a_foreign_target_is_refused_with_its_key_path(tree, key):
    message = refused(cfg(**tree))
    assert f"{key}='os.system'" in message
    for prefix in BUILTIN_PREFIXES:
        assert prefix in message
    assert "allowed_targets" in message


@pytest.mark.parametrize("target", ["os.system", "subprocess.run", "builtins.eval", "loopy.thing",
                                    "loop", "evaluatorsX.Accuracy", "my_plugins.Thing"])
def test_lookalike_and_foreign_targets_are_refused(target):
    assert repr(target) in refused(cfg(evaluator={"_target_": target}))


def test_user_prefixes_in_allowed_targets_are_accepted(tmp_path, monkeypatch):
    (tmp_path / "my_plugins").mkdir()
    (tmp_path / "my_plugins" / "__init__.py").write_text("")
    (tmp_path / "my_plugins" / "evals.py").write_text("class Mine:\n    pass\n")
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "__init__.py").write_text("")
    (tmp_path / "lab" / "probes.py").write_text("class Toxicity:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = OmegaConf.create({"allowed_targets": ["my_plugins", "lab.probes."],
                               "evaluator": {"_target_": "my_plugins.evals.Mine"},
                               "gate": {"_target_": "loop.gate.gates.Probes",
                                        "probes": [{"_target_": "lab.probes.Toxicity"}]}})
    check_targets(config)
    assert allowed_prefixes(config) == BUILTIN_PREFIXES + ("my_plugins.", "lab.probes.")
    message = refused(OmegaConf.create({"allowed_targets": ["my_plugins"],
                                        "evaluator": {"_target_": "my_pluginsX.Mine"}}))
    assert "my_plugins." in message  # the user's own prefixes are listed as allowed too


def test_an_allowed_name_that_cannot_be_imported_is_refused():
    message = refused(OmegaConf.create({"evaluator": {"_target_": "evaluators.nowhere.Mine"}}))
    assert "evaluator._target_" in message and "cannot be imported" in message


def test_builtin_modules_are_the_projects_own_plugin_modules_a_config_names_each_once():
    """What a sweep's workers import while Hydra checks the jobs (`hydra/launcher=processes`): never a
    plugin outside the project's prefixes, which a run imports only after checking it."""
    assert builtin_modules(cfg(
        execution={"_target_": "loop.execution.batched.Batched"},
        evaluator={"_target_": "evaluators.accuracy.Accuracy", "inner": {"_target_": "my_plugins.Scorer"}},
        gate={"_target_": "loop.gate.gates.Probes", "probes": [{"_target_": "evaluators.probes.Calibration"},
                                                               {"_target_": "evaluators.probes.Shortcut"}]},
        tracker={"_target_": "os.system"})) == ["loop.execution.batched", "evaluators.accuracy", "loop.gate.gates",
                                                "evaluators.probes"]


def test_missing_allowed_targets_means_builtins_only():
    config = OmegaConf.create({"evaluator": {"_target_": "evaluators.accuracy.Accuracy"}})
    check_targets(config)
    assert allowed_prefixes(config) == BUILTIN_PREFIXES
    refused(OmegaConf.create({"evaluator": {"_target_": "os.system"}}))


@pytest.mark.parametrize("bad", ["my_plugins", [""], [1], {"a": "b"}])
def test_allowed_targets_must_be_a_list_of_prefixes(bad):
    with pytest.raises(ConfigError, match="allowed_targets"):
        check_targets(OmegaConf.create({"allowed_targets": bad}))


def test_a_target_reaching_through_an_allowed_module_is_refused():
    with pytest.raises(ConfigError):
        check_targets(cfg(evaluator={"_target_": "loop.ledger.os.system", "_args_": ["true"]}))


# --- instantiate -----------------------------------------------------------------------------


def test_instantiate_builds_a_stage():
    greedy = instantiate(OmegaConf.create({"_target_": "loop.promotion.greedy.Greedy", "margin": 0.01}), "promotion")
    assert isinstance(greedy, Greedy) and greedy.margin == 0.01


def test_instantiate_converts_to_plain_containers():
    gate = instantiate(OmegaConf.create({"_target_": "loop.gate.gates.Probes", "tripwires": {"vetoes_in_a_row": 2},
                                         "probes": [{"_target_": "evaluators.probes.Calibration",
                                                     "ece_tolerance": 0.1}]}), "gate")
    assert isinstance(gate.probes, list) and gate.probes[0].ece_tolerance == 0.1
    assert gate.tripwires.vetoes_in_a_row == 2


def test_instantiate_passes_keyword_arguments():
    class Space:  # the generator needs the successor space, passed by the CLI
        genes = {"arch": {}, "recipe": {}, "generator": {}}

    mutate = instantiate(OmegaConf.create({"_target_": "loop.generator.mutation.Mutate", "rate": 0.5}), "generator",
                         space=Space())
    assert mutate.rate == 0.5 and isinstance(mutate.space, Space)


def test_a_plugins_value_error_becomes_a_config_error_naming_the_key():
    node = OmegaConf.create({"_target_": "loop.promotion.greedy.Greedy", "margin": -1})
    with pytest.raises(ConfigError) as info:
        instantiate(node, "promotion")
    message = str(info.value)
    assert message.startswith("promotion (loop.promotion.greedy.Greedy)")
    assert "promotion.margin must be a number >= 0, got -1" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__  # one paragraph, no chain
    assert isinstance(info.value, ValueError)


def test_an_unexpected_keyword_becomes_a_config_error():
    with pytest.raises(ConfigError, match=r"execution \(loop.execution.serial.Serial\).*time_limit"):
        instantiate(OmegaConf.create({"_target_": "loop.execution.serial.Serial", "time_limit": 5}), "execution")


@pytest.mark.parametrize("target", ["loop.no_such_module.Thing", "loop.promotion.greedy.NoSuchClass",
                                    "evaluators.probes.Nope"])
def test_a_target_that_cannot_be_imported_gives_a_config_error(target):
    with pytest.raises(ConfigError) as info:
        instantiate(OmegaConf.create({"_target_": target}), "evaluator")
    message = str(info.value)
    assert message.startswith("evaluator (")
    assert f"cannot import {target!r}" in message


@pytest.mark.parametrize("node", [OmegaConf.create({"margin": 1}), OmegaConf.create([1, 2]), None, "x"])
def test_instantiate_needs_a_node_with_a_target(node):
    with pytest.raises(ConfigError, match="promotion must be a config group entry with a _target_"):
        instantiate(node, "promotion")
