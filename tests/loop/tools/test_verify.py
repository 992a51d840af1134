"""`rsi-loop-verify` against one real tiny run, tampered in every way it must catch.

The run is built once per module; each test tampers with its own copy. What a chain alone cannot
see, by design: a ledger cut after a complete line, or rewritten and re-hashed from some line on,
is still a valid chain (a chain cannot know its own end). Those two pass without an anchor and are
caught with one (`--anchor PATH`, a file kept outside the run directory).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import run_loop
from loop.tools.cli import verify_main
from loop.ledger import GENESIS, Ledger, LedgerError, chain_hash, read, read_anchor, sha256_text
from loop.tools.verify import configured_anchor, verify


@dataclass(frozen=True)
class Run:
    path: Path
    anchor: Path


@pytest.fixture(scope="module")
def intact(tmp_path_factory) -> Run:
    base = tmp_path_factory.mktemp("verify")
    run_dir, anchor = base / "run", base / "anchors" / "run.json"
    run_loop(run_dir, f"ledger.anchor={anchor}")  # the engine under test keeps the anchor
    last = read(run_dir / "ledger.jsonl")[-1]
    kept = read_anchor(anchor)
    assert (kept["seq"], kept["hash"]) == (last.seq, last.hash)
    assert kept["ledger"] == str((run_dir / "ledger.jsonl").resolve())
    return Run(run_dir, anchor)


@pytest.fixture
def run(intact, tmp_path) -> Path:
    """A private copy of the intact run to tamper with."""
    copy = tmp_path / "run"
    shutil.copytree(intact.path, copy)
    return copy


def verify_cli(capsys, *args: str) -> tuple[int, str]:
    try:
        verify_main([str(a) for a in args])
        code = 0
    except SystemExit as exit:
        code = exit.code
    return code, capsys.readouterr().out


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "ledger.jsonl").read_text().splitlines()]


def write_records(run_dir: Path, rows: list[dict]) -> None:
    (run_dir / "ledger.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def rehash(rows: list[dict]) -> list[dict]:
    """Recompute the whole chain, as someone who rewrote a line and knows the format would."""
    prev = GENESIS
    for row in rows:
        row["prev"] = prev
        row["hash"] = prev = chain_hash(row)
    return rows


def first(rows: list[dict], event: str) -> int:
    """The 0-based index of the first `event` line (its line number is index + 1)."""
    return next(i for i, r in enumerate(rows) if r["event"] == event)


# --- intact -----------------------------------------------------------------------------------


def test_an_intact_run_passes_with_and_without_its_anchor(intact, capsys):
    code, out = verify_cli(capsys, intact.path, "--no-anchor")
    assert code == 0 and out.startswith("intact: ")
    n = len(records(intact.path))
    cards = len(list((intact.path / "successors").glob("*.json")))
    assert out == (f"intact: {n} ledger lines, {cards} checkpoints, {cards} successor cards, config, thresholds, "
                   f"3 code files, 5 data splits\n")
    code, out = verify_cli(capsys, intact.path, "--anchor", intact.anchor)
    assert code == 0 and f"anchor {intact.anchor} (line {n})" in out


def test_bad_usage_exits_2(intact, tmp_path, capsys):
    assert verify_cli(capsys, tmp_path / "nowhere")[0] == 2
    assert verify_cli(capsys)[0] == 2
    assert verify_cli(capsys, intact.path, "--anchor", intact.anchor, "--no-anchor")[0] == 2


# --- the chain: caught with or without an anchor ----------------------------------------------


def test_one_changed_byte_names_its_line(run, capsys):
    lines = (run / "ledger.jsonl").read_bytes().splitlines(keepends=True)
    k = first(records(run), "evaluated")
    at = lines[k].index(b'"proxy": 0.') + len(b'"proxy": 0.')
    changed = bytearray(lines[k])
    changed[at] = ord("9") if changed[at] != ord("9") else ord("8")
    lines[k] = bytes(changed)
    (run / "ledger.jsonl").write_bytes(b"".join(lines))
    code, out = verify_cli(capsys, run, "--no-anchor")
    assert code == 1
    assert f"TAMPERED: ledger.jsonl line {k + 1}: hash does not match the line's content" in out


def test_a_deleted_line_names_where_the_gap_is(run, capsys):
    lines = (run / "ledger.jsonl").read_bytes().splitlines(keepends=True)
    k = len(lines) // 2
    (run / "ledger.jsonl").write_bytes(b"".join(lines[:k] + lines[k + 1:]))
    code, out = verify_cli(capsys, run, "--no-anchor")
    assert code == 1 and f"ledger.jsonl line {k + 1}: seq is {k + 1}, expected {k}" in out


def test_two_reordered_lines_name_the_first_one_moved(run, capsys):
    lines = (run / "ledger.jsonl").read_bytes().splitlines(keepends=True)
    k = len(lines) // 2
    lines[k], lines[k + 1] = lines[k + 1], lines[k]
    (run / "ledger.jsonl").write_bytes(b"".join(lines))
    code, out = verify_cli(capsys, run, "--no-anchor")
    assert code == 1 and f"ledger.jsonl line {k + 1}: seq is {k + 1}, expected {k}" in out


def test_a_line_appended_by_hand_with_a_plausible_hash(run, capsys):
    rows = records(run)
    forged = {**rows[-1], "seq": len(rows), "event": "promoted", "prev": rows[-1]["hash"],
              "reasons": ["promoted by hand"]}
    forged["hash"] = sha256_text(forged["prev"] + "promoted by hand")  # 64 hex digits, wrong
    write_records(run, rows + [forged])
    code, out = verify_cli(capsys, run, "--no-anchor")
    assert code == 1 and f"ledger.jsonl line {len(rows) + 1}: hash does not match" in out


# --- what only an anchor sees -----------------------------------------------------------------


def test_a_truncated_tail_passes_the_chain_but_not_the_anchor(run, intact, capsys):
    lines = (run / "ledger.jsonl").read_bytes().splitlines(keepends=True)
    n = len(lines)
    (run / "ledger.jsonl").write_bytes(b"".join(lines[:-3]))
    assert verify_cli(capsys, run, "--no-anchor")[0] == 0  # a chain cannot know its own end
    code, out = verify_cli(capsys, run, "--anchor", intact.anchor)
    assert code == 1
    assert (f"ledger.jsonl was truncated: the anchor records line {n} (seq {n - 1}) but the ledger ends "
            f"at line {n - 3}") in out


def test_a_fully_recomputed_chain_passes_the_chain_but_not_the_anchor(run, intact, capsys):
    rows = records(run)
    k = first(rows, "evaluated")
    rows[k]["metrics"]["truth"] = 0.999  # a better hidden score than the run ever had
    write_records(run, rehash(rows))
    assert verify(run) == ([], verify(intact.path)[1])  # every check but the anchor is satisfied
    code, out = verify_cli(capsys, run, "--anchor", intact.anchor)
    assert code == 1
    assert f"ledger.jsonl line {len(rows)}: hash differs from the anchor (the chain was recomputed)" in out


def test_lines_appended_with_a_recomputed_hash_are_not_covered_by_the_anchor(run, intact, capsys):
    rows = records(run)
    rows.append({**rows[-1], "seq": len(rows), "event": "approved", "reasons": ["approved by nobody"]})
    write_records(run, rehash(rows))
    assert verify_cli(capsys, run, "--no-anchor")[0] == 0
    code, out = verify_cli(capsys, run, "--anchor", intact.anchor)
    assert code == 1 and f"ledger.jsonl line {len(rows)}: not covered by the anchor" in out


def test_a_missing_or_broken_anchor_is_a_problem(run, tmp_path, capsys):
    code, out = verify_cli(capsys, run, "--anchor", tmp_path / "gone.json")
    assert code == 1 and "does not exist" in out
    (tmp_path / "bad.json").write_text('{"seq": "three"}')
    code, out = verify_cli(capsys, run, "--anchor", tmp_path / "bad.json")
    assert code == 1 and "is not a ledger anchor" in out


def test_the_anchor_defaults_to_the_runs_ledger_anchor(tmp_path):
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text("seed: 0\nledger:\n  anchor: /elsewhere/a.json\n")
    assert configured_anchor(tmp_path) == Path("/elsewhere/a.json")
    (tmp_path / ".hydra" / "config.yaml").write_text("seed: 0\nledger:\n  anchor: null\n")
    assert configured_anchor(tmp_path) is None
    (tmp_path / ".hydra" / "config.yaml").write_text("seed: 0\nledger:\n  anchor: ''\n")
    assert configured_anchor(tmp_path) is None  # an empty path is no anchor, not the current folder
    (tmp_path / ".hydra" / "config.yaml").write_text("seed: 0\n")
    assert configured_anchor(tmp_path) is None


def test_a_run_that_names_its_anchor_is_checked_against_it_by_default(run, intact, capsys):
    if configured_anchor(run) is None:
        pytest.skip("the config has no ledger.anchor yet")
    lines = (run / "ledger.jsonl").read_bytes().splitlines(keepends=True)
    (run / "ledger.jsonl").write_bytes(b"".join(lines[:-1]))
    code, out = verify_cli(capsys, run)
    assert code == 1 and "ledger.jsonl was truncated" in out


# --- files and hashes recorded in the ledger ---------------------------------------------------


def test_a_changed_checkpoint_byte_names_the_line_that_recorded_it(run, capsys):
    rows = records(run)
    k = first(rows, "trained")
    checkpoint = run / "successors" / f"{rows[k]['successor']}.safetensors"
    data = bytearray(checkpoint.read_bytes())
    data[-1] ^= 0x01
    checkpoint.write_bytes(bytes(data))
    code, out = verify_cli(capsys, run, "--no-anchor")
    assert code == 1
    assert f"ledger.jsonl line {k + 1} (trained): checkpoint {checkpoint.name} differs" in out


def test_a_changed_card_byte_names_the_line_that_recorded_it(run, capsys):
    rows = records(run)
    k = first(rows, "evaluated")
    card = run / "successors" / f"{rows[k]['successor']}.json"
    data = bytearray(card.read_bytes())
    at = data.index(b'"proxy": 0.') + len(b'"proxy": 0.')  # one digit of its proxy score
    data[at] = ord("9") if data[at] != ord("9") else ord("8")
    card.write_bytes(bytes(data))
    code, out = verify_cli(capsys, run, "--no-anchor")
    assert code == 1
    assert f"ledger.jsonl line {k + 1} (evaluated): successor card {card.name} differs" in out


def test_a_changed_gate_threshold_is_caught_in_config_and_thresholds(run, capsys):
    from omegaconf import OmegaConf

    path = run / ".hydra" / "config.yaml"
    config = OmegaConf.to_container(OmegaConf.load(path), resolve=True)

    def loosen(node) -> bool:  # the first number of the gate node, e.g. a probe's tolerance
        for key, value in (node.items() if isinstance(node, dict) else enumerate(node)):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                node[key] = value + 1
                return True
            if isinstance(value, (dict, list)) and loosen(value):
                return True
        return False

    assert loosen(config["gate"])
    OmegaConf.save(OmegaConf.create(config), path)
    code, out = verify_cli(capsys, run, "--no-anchor")
    assert code == 1
    assert "ledger.jsonl line 1 (run_started): .hydra/config.yaml differs from the config hashed" in out
    assert "ledger.jsonl line 1 (run_started): thresholds (the config's gate node) differ" in out


def test_changed_data_is_caught_even_when_the_chain_was_recomputed(run, capsys):
    rows = records(run)
    rows[0]["detail"]["hashes"]["data/train"] = sha256_text("other training data")
    write_records(run, rehash(rows))
    code, out = verify_cli(capsys, run, "--no-anchor")
    assert code == 1
    assert out.count("TAMPERED") == 1
    assert "ledger.jsonl line 1 (run_started): data/train differs from the hash recorded at run start" in out


def test_changed_evaluator_code_is_caught_even_when_the_chain_was_recomputed(run, capsys):
    rows = records(run)
    rows[0]["detail"]["hashes"]["code/evaluator"] = sha256_text("another evaluator")
    write_records(run, rehash(rows))
    code, out = verify_cli(capsys, run, "--no-anchor")
    assert code == 1 and "ledger.jsonl line 1 (run_started): code/evaluator changed since the run started" in out


# --- the anchor as the ledger keeps it --------------------------------------------------------


def test_the_ledger_rewrites_its_anchor_after_every_append(tmp_path):
    path, anchor = tmp_path / "run" / "ledger.jsonl", tmp_path / "anchors" / "a.json"
    path.parent.mkdir()
    ledger = Ledger(path, anchor=anchor)
    for i in range(3):
        event = ledger.append("proposed", 1, successor=f"s{i}")
        assert read_anchor(anchor) == {"ledger": str(path.resolve()), "seq": i, "hash": event.hash}
    assert not list(anchor.parent.glob("*.tmp"))  # written to a temporary name, then renamed
    assert verify(path.parent, anchor)[0] == []


def test_an_anchor_inside_the_run_directory_is_refused(tmp_path):
    with pytest.raises(ValueError, match="ledger.anchor must be outside the run directory"):
        Ledger(tmp_path / "ledger.jsonl", anchor=tmp_path / "anchor.json")
    with pytest.raises(ValueError, match=str(tmp_path / "sub" / "a.json")):
        Ledger(tmp_path / "ledger.jsonl", anchor=tmp_path / "sub" / "a.json")
    assert not (tmp_path / "ledger.jsonl").exists()


def test_reopening_checks_the_ledger_against_its_anchor(tmp_path):
    path, anchor = tmp_path / "run" / "ledger.jsonl", tmp_path / "a.json"
    path.parent.mkdir()
    ledger = Ledger(path, anchor=anchor)
    for i in range(4):
        ledger.append("proposed", 1, successor=f"s{i}")
    whole = path.read_bytes()
    lines = whole.splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]))
    with pytest.raises(LedgerError, match="truncated: the anchor records line 4"):
        Ledger(path, anchor=anchor)
    path.write_bytes(whole)
    Ledger(path).append("proposed", 1, successor="late")  # a crash between line and anchor: one line ahead
    Ledger(path, anchor=anchor).append("run_finished", 1)  # accepted and re-anchored
    assert read_anchor(anchor)["seq"] == 5
    Ledger(path).append("proposed", 1, successor="x")
    Ledger(path).append("proposed", 1, successor="y")  # two lines the anchor never saw
    with pytest.raises(LedgerError, match="line 7: not covered by the anchor"):
        Ledger(path, anchor=anchor)


# --- the recorded hashes, case by case --------------------------------------------------------


def test_an_unreadable_config_is_a_problem_that_says_so(run, capsys):
    (run / ".hydra" / "config.yaml").write_text("seed: [unclosed\n")
    code, out = verify_cli(capsys, run, "--no-anchor")
    assert code == 1 and ("TAMPERED: ledger.jsonl line 1 (run_started): .hydra/config.yaml cannot be read (" in out)
    assert "so the config hashed when the run started cannot be checked" in out


def test_a_code_hash_recorded_as_unknown_is_left_unchecked(run):
    rows = records(run)
    rows[0]["detail"]["hashes"]["code/evaluator"] = "unknown"  # the engine could not find the source
    write_records(run, rehash(rows))
    problems, checked = verify(run)
    assert problems == [] and "2 code files" in checked


def test_a_moved_plugin_is_skipped_and_the_rest_still_checked(run):
    rows = records(run)
    rows[0]["detail"]["plugins"]["gate"] = "loop.gates.Probes"  # where the gate lived before the move
    rows[0]["detail"]["hashes"]["code/truth"] = sha256_text("another truth evaluator")  # checked after the gate
    write_records(run, rehash(rows))
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
    rows = records(run)
    rows[0]["detail"]["config_sha256"] = sha256_text(canonical(OmegaConf.to_container(config, resolve=True)))
    write_records(run, rehash(rows))
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
    rows = records(run)
    rows[0]["detail"]["config_sha256"] = sha256_text(canonical(resolved))
    rows[0]["detail"]["hashes"]["thresholds"] = sha256_text(canonical(resolved.get("gate", {})))
    write_records(run, rehash(rows))


def test_data_splits_added_or_dropped_since_the_start_are_named(run):
    rows = records(run)
    hashes = rows[0]["detail"]["hashes"]
    hashes.pop("data/probe")
    hashes["data/extra"] = sha256_text("a split the objective no longer makes")
    write_records(run, rehash(rows))
    problems, _ = verify(run)
    assert problems == [
        "ledger.jsonl line 1 (run_started): data/extra was recorded at run start but the objective no longer "
        "has that split",
        "ledger.jsonl line 1 (run_started): data/probe was not recorded at run start"]


def test_a_run_that_recorded_no_data_hashes_is_not_checked_for_data(run):
    rows = records(run)
    rows[0]["detail"]["hashes"] = {k: v for k, v in rows[0]["detail"]["hashes"].items() if not k.startswith("data/")}
    write_records(run, rehash(rows))
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
    rows = records(run)
    rows[0]["detail"]["plugins"]["evaluator"] = "not_installed_here.Evaluator"
    rows[0]["detail"]["hashes"]["code/truth"] = sha256_text("another truth evaluator")
    write_records(run, rehash(rows))
    problems, checked = verify(run)
    assert "2 code files" in checked  # the gate and the truth evaluator; the evaluator left unchecked
    assert len(problems) == 1 and "code/truth changed since the run started" in problems[0]


def test_a_config_without_a_gate_node_hashes_its_thresholds_as_empty(run):
    reconfigure(run, lambda c: c.pop("gate"))
    problems, checked = verify(run)
    assert not any("thresholds" in p for p in problems) and "thresholds" in checked
