"""`rsi-loop-verify` against one real tiny run, tampered in every way it must catch.

The run is built once per module; each test tampers with its own copy. What a chain alone cannot
see, by design: a ledger cut after a complete line, or rewritten and re-hashed from some line on,
is still a valid chain (a chain cannot know its own end). Those two pass without an anchor and are
caught with one (`--anchor PATH`, a file kept outside the run directory).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loop.ledger import Ledger, LedgerError, read_anchor, sha256_text
from loop.tools.verify import configured_anchor, verify
from tampering import first, records, rehash, started, verify_cli, write_records

pytest_plugins = ["tampering"]  # the fixtures: intact, run


# --- intact -----------------------------------------------------------------------------------


def test_an_intact_run_passes_with_and_without_its_anchor(intact, capsys):
    code, out = verify_cli(capsys, intact.path, "--no-anchor")
    assert code == 0 and out.startswith("intact: ")
    n = len(records(intact.path))
    cards = len(list((intact.path / "successors").glob("*.json")))
    assert out == (f"intact: {n} ledger lines, {cards} checkpoints, {cards} successor cards, config, thresholds, "
                   f"4 code files, 5 data splits\n")  # evaluator, truth, gate, held-out audit
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
    with started(run) as detail:
        detail["hashes"]["data/train"] = sha256_text("other training data")
    code, out = verify_cli(capsys, run, "--no-anchor")
    assert code == 1
    assert out.count("TAMPERED") == 1
    assert "ledger.jsonl line 1 (run_started): data/train differs from the hash recorded at run start" in out


def test_changed_evaluator_code_is_caught_even_when_the_chain_was_recomputed(run, capsys):
    with started(run) as detail:
        detail["hashes"]["code/evaluator"] = sha256_text("another evaluator")
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


# --- checkpoints, case by case ----------------------------------------------------------------


def test_checkpoint_problems_come_in_ledger_order_with_their_lines(run):
    rows = records(run)
    trained = [(i, r["successor"]) for i, r in enumerate(rows) if r["event"] == "trained"]
    assert [sid for _, sid in trained] != sorted(sid for _, sid in trained)  # id order is not ledger order
    for _, sid in trained:
        (run / "successors" / f"{sid}.safetensors").unlink()
    first_card = next(r for r in rows if r["event"] == "evaluated")["successor"]
    (run / "successors" / f"{first_card}.json").unlink()
    problems, _ = verify(run)
    assert problems == [f"ledger.jsonl line {i + 1} (trained): checkpoint {sid}.safetensors recorded here is missing"
                        for i, sid in trained] + [
        f"ledger.jsonl line {trained[0][0] + 2} (evaluated): successor card {first_card}.json recorded here is missing"]


def test_cards_whose_genome_was_changed_with_their_hash_name_the_trained_lines_in_order(run):
    """Cards rewritten and their sha256 updated in the ledger (a chain recomputed by someone who knows
    the format): the successor ids, a hash of genome and weights, no longer match."""
    import hashlib

    rows = records(run)
    trained = [(i, r["successor"]) for i, r in enumerate(rows) if r["event"] == "trained"]
    # two successors whose ids sort against their ledger order, so the order of the problems shows
    early, late = next((a, b) for a in trained for b in trained if a[0] < b[0] and a[1] > b[1])
    for _, sid in (early, late):
        card = run / "successors" / f"{sid}.json"
        data = json.loads(card.read_text())
        data["genome"]["arch"]["width"] += 1
        card.write_text(json.dumps(data))
        for row in rows:
            if row["successor"] == sid and "card_sha256" in row.get("detail", {}):
                row["detail"]["card_sha256"] = hashlib.sha256(card.read_bytes()).hexdigest()
    write_records(run, rehash(rows))
    problems, _ = verify(run)
    assert problems == [f"ledger.jsonl line {i + 1} (trained): successor {sid}: its id does not match its genome "
                        f"and weights" for i, sid in (early, late)]


def test_an_anchor_written_for_another_ledger_says_so(run, intact, tmp_path):
    from loop.ledger import write_anchor

    elsewhere = tmp_path / "anchor.json"
    recorded = read_anchor(intact.anchor)
    write_anchor(elsewhere, tmp_path / "other" / "ledger.jsonl", recorded["seq"], "0" * 64)
    problems, _ = verify(run, elsewhere)
    assert problems[0].endswith(f"(the chain was recomputed) (the anchor was written for "
                                f"{(tmp_path / 'other' / 'ledger.jsonl').resolve()})")
    write_anchor(elsewhere, run / "ledger.jsonl", recorded["seq"], "0" * 64)
    assert verify(run, elsewhere)[0][0].endswith("(the chain was recomputed)")  # its own ledger: no note


def test_what_could_not_be_checked_is_said(run):
    (run / ".hydra" / "config.yaml").unlink()
    assert verify(run)[1].endswith("no .hydra/config.yaml: config, thresholds and data not checked")
    rows = [r for r in records(run) if r["event"] != "run_started"]
    for seq, row in enumerate(rows):
        row["seq"] = seq
    write_records(run, rehash(rows))
    assert verify(run)[1].endswith("no run_started line: recorded hashes not checked")
    (run / "ledger.jsonl").write_text("not a ledger line\n")
    problems, checked = verify(run)
    assert len(problems) == 1 and checked == ""


def test_the_mined_test_bank_is_checked_rule_by_rule_against_its_bound_and_its_retirements(tmp_path):
    """verify's `check_bank` on a hand-written bank of bound 2: a retired test frees its place; a third
    live test at a review is over the bound; a retirement of a test not in the bank is named; a rule
    that no longer matches its recorded sha256 is named."""
    from loop.ledger import Ledger, canonical, read
    from loop.tools.verify import check_bank, sha256_text

    ledger = Ledger(tmp_path / "ledger.jsonl")

    def add(name: str, rule: dict, recorded: dict | None = None) -> None:
        test = {"name": name, "rule": rule, "sha256": sha256_text(canonical(recorded or rule)), "secret": False}
        ledger.append("test_added", 1, detail={"test": test, "bank_size": 2})

    add("mined1", {"kind": "class", "label": 1})
    add("mined2", {"kind": "class", "label": 2})
    ledger.append("test_retired", 1, detail={"name": "mined1"})
    add("mined3", {"kind": "class", "label": 3})
    ledger.append("vetoed", 1, successor="n" * 16, reasons=["vetoed on 1 secret regression test"])  # 2 live: fine
    problems: list[str] = []
    assert check_bank(read(tmp_path / "ledger.jsonl"), problems) == ["3 mined tests"] and problems == []

    add("mined4", {"kind": "class", "label": 4}, recorded={"kind": "class", "label": 5})  # rule changed after
    ledger.append("test_retired", 1, detail={"name": "mined9"})
    ledger.append("promoted", 1, successor="m" * 16)  # 3 live at this review
    check_bank(read(tmp_path / "ledger.jsonl"), problems)
    assert problems == [
        "ledger.jsonl line 6 (test_added): mined test mined4: its rule does not match the sha256 recorded with it",
        "ledger.jsonl line 7 (test_retired): retired test mined9 is not in the bank",
        "ledger.jsonl line 8 (promoted): the gate reviewed with 3 mined tests, above its bound 2"]
