"""`rsi-loop-verify` against what was recorded at run start: the config, thresholds, code and data
hashes, case by case (a copy of one real tiny run each, see `tampering`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loop.ledger import sha256_text
from loop.tools.verify import verify
from tampering import started, verify_cli

pytest_plugins = ["tampering"]  # the fixtures: intact, run


def test_an_unreadable_config_is_a_problem_that_says_so(run, capsys):
    (run / ".hydra" / "config.yaml").write_text("seed: [unclosed\n")
    code, out = verify_cli(capsys, run, "--no-anchor")
    assert code == 1 and ("TAMPERED: ledger.jsonl line 1 (run_started): .hydra/config.yaml cannot be read (" in out)
    assert "so the config hashed when the run started cannot be checked" in out


def test_a_code_hash_recorded_as_unknown_is_left_unchecked(run):
    with started(run) as detail:
        detail["hashes"]["code/evaluator"] = "unknown"  # the engine could not find the source
    problems, checked = verify(run)
    assert problems == [] and "3 code files" in checked


def test_a_moved_plugin_is_skipped_and_the_rest_still_checked(run):
    with started(run) as detail:
        detail["plugins"]["gate"] = "loop.gates.Probes"  # where the gate lived before the move
        detail["hashes"]["code/truth"] = sha256_text("another truth evaluator")  # checked after the gate
    problems, checked = verify(run)
    assert "code/gate not checked (loop.gates.Probes has moved to loop.gate.gates.Probes)" in checked
    assert problems == ["ledger.jsonl line 1 (run_started): code/truth changed since the run started "
                        f"({Path(__import__('evaluators.accuracy').accuracy.__file__)})"]


def test_the_allowed_prefixes_include_the_runs_own_plugins():
    from loop.tools.verify import _allowed

    assert _allowed({"allowed_targets": ["my_plugins"]}) == ("loop.", "successors.", "evaluators.", "my_plugins.")
    assert _allowed({}) == _allowed({"allowed_targets": None}) == ("loop.", "successors.", "evaluators.")
    assert _allowed({"allowed_targets": "not a list"}) == ("loop.", "successors.", "evaluators.")


@pytest.mark.parametrize("qualified,found", [
    ("evaluators.accuracy.Accuracy", "evaluators/accuracy.py"),
    ("evaluators.probes.calibration.Calibration", "evaluators/probes/calibration.py"),
    ("loop.gate.gates.Probes.review", "loop/gate/gates.py"),  # a method: still its module
    ("successors.SuccessorSpace", "successors/__init__.py"),  # re-exported by a package
    ("loop.nowhere.Thing", "loop/__init__.py"),  # the nearest module there is: its hash will not match
    ("nosuch_module_xyz.Thing", None),
    ("math.sqrt", None),  # built in: no source file
    ("os.path.join", None),  # not allowed
])
def test_source_file_finds_the_module_that_defines_a_plugin(qualified, found):
    from conftest import ROOT
    from loop.tools.verify import source_file

    prefixes = ("loop.", "successors.", "evaluators.", "nosuch_module_xyz.", "math.")
    path = source_file(qualified, prefixes)
    assert path == (None if found is None else ROOT / found)


def test_the_config_is_compared_as_the_run_resolved_it(run):
    """Hydra writes interpolations as written (`${...}`); the run hashed their values."""
    from omegaconf import OmegaConf

    from loop.ledger import canonical

    config = OmegaConf.load(run / ".hydra" / "config.yaml")
    config.echo_seed = "${seed}"
    OmegaConf.save(config, run / ".hydra" / "config.yaml")
    assert "${seed}" in (run / ".hydra" / "config.yaml").read_text()
    with started(run) as detail:
        detail["config_sha256"] = sha256_text(canonical(OmegaConf.to_container(config, resolve=True)))
    assert verify(run)[0] == []


def reconfigure(run: Path, change) -> None:
    """Edit the run's .hydra/config.yaml with `change(config)` and record the result at run start,
    as if the run had been started with it (the chain re-hashed)."""
    from omegaconf import OmegaConf

    from loop.ledger import canonical

    config = OmegaConf.load(run / ".hydra" / "config.yaml")
    change(config)
    OmegaConf.save(config, run / ".hydra" / "config.yaml")
    resolved = OmegaConf.to_container(config, resolve=True)
    with started(run) as detail:
        detail["config_sha256"] = sha256_text(canonical(resolved))
        detail["hashes"]["thresholds"] = sha256_text(canonical(resolved.get("gate", {})))


def test_data_splits_added_or_dropped_since_the_start_are_named(run):
    with started(run) as detail:
        hashes = detail["hashes"]
        hashes.pop("data/probe")
        hashes["data/extra"] = sha256_text("a split the objective no longer makes")
    problems, _ = verify(run)
    assert problems == [
        "ledger.jsonl line 1 (run_started): data/extra was recorded at run start but the objective no longer "
        "has that split",
        "ledger.jsonl line 1 (run_started): data/probe was not recorded at run start"]


def test_a_run_that_recorded_no_data_hashes_is_not_checked_for_data(run):
    with started(run) as detail:
        detail["hashes"] = {k: v for k, v in detail["hashes"].items() if not k.startswith("data/")}
    problems, checked = verify(run)
    assert problems == [] and "data splits" not in checked


def test_an_objective_that_cannot_be_rebuilt_leaves_the_data_unchecked_and_says_why(run):
    reconfigure(run, lambda c: setattr(c.objective, "_target_", "loop.objective.tasks.Nowhere"))
    problems, checked = verify(run)
    assert problems == []
    assert "data not checked (objective._target_='loop.objective.tasks.Nowhere' cannot be imported (" in checked
    reconfigure(run, lambda c: (setattr(c.objective, "_target_", "loop.objective.tasks.Digits"),
                                setattr(c.objective.budget, "generations", -1)))
    problems, checked = verify(run)
    assert problems == [] and ("data not checked (objective (loop.objective.tasks.Digits): budget.generations "
                               "must be a whole number >= 1, got -1)") in checked


def test_the_data_of_a_run_written_before_the_move_is_rebuilt_from_the_old_path(run):
    reconfigure(run, lambda c: setattr(c.objective, "_target_", "loop.objectives.Digits"))
    problems, checked = verify(run)
    assert problems == [] and checked.endswith("5 data splits")


def test_a_users_own_objective_is_rebuilt_from_its_allowed_module(run, tmp_path, monkeypatch):
    (tmp_path / "my_objectives.py").write_text("from loop.objective.tasks import Digits\n\n\n"
                                               "class Mine(Digits):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def mine(c):
        c.objective._target_, c.allowed_targets = "my_objectives.Mine", ["my_objectives"]
    reconfigure(run, mine)
    problems, checked = verify(run)
    assert problems == [] and checked.endswith("5 data splits")


def test_a_plugin_whose_source_is_not_here_is_skipped_and_the_rest_still_checked(run):
    with started(run) as detail:
        detail["plugins"]["evaluator"] = "not_installed_here.Evaluator"
        detail["hashes"]["code/truth"] = sha256_text("another truth evaluator")
    problems, checked = verify(run)
    assert "3 code files" in checked  # the gate, the truth evaluator and the audit; the evaluator left unchecked
    assert len(problems) == 1 and "code/truth changed since the run started" in problems[0]


def test_a_config_without_a_gate_node_hashes_its_thresholds_as_empty(run):
    reconfigure(run, lambda c: c.pop("gate"))
    problems, checked = verify(run)
    assert not any("thresholds" in p for p in problems) and "thresholds" in checked


def test_a_run_that_recorded_no_truth_plugin_has_its_truth_code_checked_as_accuracy(run):
    """Runs from before the truth evaluator was configurable name no `truth` plugin: theirs was the
    accuracy evaluator, and its code is checked as such."""
    with started(run) as detail:
        del detail["plugins"]["truth"]
        detail["hashes"]["code/truth"] = sha256_text("another truth evaluator")
    problems, checked = verify(run)
    assert "4 code files" in checked  # evaluator, truth, gate, held-out audit
    assert problems == ["ledger.jsonl line 1 (run_started): code/truth changed since the run started "
                        f"({Path(__import__('evaluators.accuracy').accuracy.__file__)})"]


def test_a_plugin_without_a_recorded_code_hash_is_left_unchecked(run):
    with started(run) as detail:
        del detail["hashes"]["code/gate"]
    problems, checked = verify(run)
    assert problems == [] and "3 code files" in checked


def test_a_changed_held_out_audit_is_named(run):
    with started(run) as detail:
        detail["hashes"]["code/audit"] = sha256_text("another audit")
    problems, _ = verify(run)
    assert problems == ["ledger.jsonl line 1 (run_started): code/audit changed since the run started "
                        f"({Path(__import__('loop.gate.audit').gate.audit.__file__)})"]


def test_the_engine_records_unknown_for_a_plugin_without_a_source_file(tmp_path, monkeypatch):
    """A plugin imported from a compiled file alone (no .py beside it) has no source to hash: the engine
    records "unknown" (which verify leaves unchecked, above), and hashes the file of one that has a source."""
    import importlib.util
    import py_compile

    from loop.engine import code_hash
    from loop.ledger import sha256_file

    source = tmp_path / "compiled_plugin.py"
    source.write_text("class Plugin:\n    pass\n")
    compiled = Path(py_compile.compile(str(source), cfile=str(tmp_path / "compiled_plugin.pyc")))
    source.unlink()
    spec = importlib.util.spec_from_file_location("compiled_plugin", compiled)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(__import__("sys").modules, "compiled_plugin", module)
    spec.loader.exec_module(module)
    assert code_hash(module.Plugin()) == "unknown"
    from loop.gate.gates import Probes

    assert code_hash(Probes.__new__(Probes)) == sha256_file(__import__("loop.gate.gates").gate.gates.__file__)


def test_the_contamination_checks_code_is_checked_like_the_other_stages(run):
    with started(run) as detail:
        detail["plugins"]["contamination"] = "loop.contamination.Twin"
        detail["hashes"]["code/contamination"] = sha256_text("another contamination check")
    problems, checked = verify(run)
    assert problems == ["ledger.jsonl line 1 (run_started): code/contamination changed since the run started "
                        f"({Path(__import__('loop.contamination').contamination.__file__)})"]
    assert "5 code files" in checked  # evaluator, gate, truth, the held-out audit and the contamination check
