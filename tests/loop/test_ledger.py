"""`loop.ledger`: the append-only, hash-chained ledger.jsonl and its tamper detection."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest

from loop.ledger import (EVENTS, FIELDS, GENESIS, Ledger, LedgerError, canonical, chain_hash, read,
                         repair_torn_tail)


def write_ledger(path: Path, n: int = 5) -> list:
    ledger = Ledger(path)
    out = [ledger.append("run_started", 0, reasons=["seed 1"], detail={"seed": 1})]
    for i in range(1, n):
        out.append(ledger.append("evaluated", i, successor=f"s{i:02d}", parent=f"s{i - 1:02d}",
                                 metrics={"proxy": 0.5 + i / 100, "truth": 0.4 + i / 100},
                                 reasons=[f"reason number {i}"]))
    return out


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def error_line(path: Path) -> int:
    with pytest.raises(LedgerError) as info:
        read(path)
    return info.value.line


def error_text(path: Path) -> str:
    with pytest.raises(LedgerError) as info:
        read(path)
    return str(info.value)


# --- a valid chain ---------------------------------------------------------------------------


def test_append_builds_a_chain_that_reads_back(tmp_path):
    path = tmp_path / "ledger.jsonl"
    written = write_ledger(path, 6)
    events = read(path)
    assert events == written
    assert [e.seq for e in events] == list(range(6))
    assert [e.event for e in events] == ["run_started"] + ["evaluated"] * 5
    assert [e.generation for e in events] == list(range(6))
    assert events[3].successor == "s03" and events[3].parent == "s02"
    assert events[2].reasons == ("reason number 2",)
    assert events[0].detail == {"seed": 1}
    records = [json.loads(line) for line in lines_of(path)]
    assert records[0]["prev"] == GENESIS
    for before, after in zip(records, records[1:]):
        assert after["prev"] == before["hash"]
    assert [r["hash"] for r in records] == [e.hash for e in events]
    assert len({r["hash"] for r in records}) == len(records)


def test_every_line_is_newline_terminated_json_with_the_contract_fields(tmp_path):
    path = tmp_path / "ledger.jsonl"
    write_ledger(path, 4)
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    lines = lines_of(path)
    assert len(lines) == 4
    contract = {"seq", "time", "generation", "event", "successor", "parent", "metrics", "reasons", "prev", "hash"}
    assert set(FIELDS) == contract
    for line in lines:
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        record = json.loads(line)
        assert contract <= set(record)
        assert set(record) - contract <= {"detail"}
        assert isinstance(record["seq"], int) and isinstance(record["generation"], int)
        assert isinstance(record["time"], (int, float))
        assert isinstance(record["metrics"], dict) and isinstance(record["reasons"], list)
        assert len(record["hash"]) == 64 and len(record["prev"]) == 64


def test_chain_hash_is_sha256_over_prev_and_canonical_rest(tmp_path):
    path = tmp_path / "ledger.jsonl"
    write_ledger(path, 3)
    for line in lines_of(path):
        record = json.loads(line)
        body = {k: v for k, v in record.items() if k not in ("prev", "hash")}
        expected = hashlib.sha256((record["prev"] + canonical(body)).encode("utf-8")).hexdigest()
        assert chain_hash(record) == expected == record["hash"]
        # every other field, `detail` included, is covered by the hash
        for key in body:
            changed = dict(record, **{key: "something else"})
            assert chain_hash(changed) != record["hash"], key
        assert chain_hash(dict(record, prev="f" * 64)) != record["hash"]


def test_canonical_is_order_independent_and_refuses_nan():
    assert canonical({"b": 1, "a": [1, 2]}) == canonical({"a": [1, 2], "b": 1}) == '{"a":[1,2],"b":1}'
    with pytest.raises(ValueError):
        canonical({"x": float("nan")})


# --- tamper detection ------------------------------------------------------------------------


def test_one_changed_byte_is_detected_at_that_line(tmp_path):
    path = tmp_path / "ledger.jsonl"
    write_ledger(path, 5)
    lines = lines_of(path)
    assert b"reason number 2" in lines[2]
    lines[2] = lines[2].replace(b"reason number 2", b"reason number 3")  # still valid JSON
    assert json.loads(lines[2])["reasons"] == ["reason number 3"]
    path.write_bytes(b"".join(lines))
    with pytest.raises(LedgerError) as info:
        read(path)
    assert info.value.line == 3
    assert "line 3" in str(info.value)
    assert "hash" in str(info.value)


def test_a_changed_metric_is_detected(tmp_path):
    path = tmp_path / "ledger.jsonl"
    write_ledger(path, 5)
    lines = lines_of(path)
    record = json.loads(lines[4])
    record["metrics"]["proxy"] = 0.99
    lines[4] = (json.dumps(record) + "\n").encode()
    path.write_bytes(b"".join(lines))
    assert error_line(path) == 5


def test_a_deleted_line_is_detected(tmp_path):
    path = tmp_path / "ledger.jsonl"
    write_ledger(path, 5)
    lines = lines_of(path)
    del lines[2]
    path.write_bytes(b"".join(lines))
    assert error_line(path) == 3


def test_a_deleted_first_line_is_detected(tmp_path):
    path = tmp_path / "ledger.jsonl"
    write_ledger(path, 3)
    path.write_bytes(b"".join(lines_of(path)[1:]))
    assert error_line(path) == 1


def test_two_swapped_lines_are_detected(tmp_path):
    path = tmp_path / "ledger.jsonl"
    write_ledger(path, 5)
    lines = lines_of(path)
    lines[1], lines[2] = lines[2], lines[1]
    path.write_bytes(b"".join(lines))
    assert error_line(path) == 2


def test_an_inserted_copy_of_a_line_is_detected(tmp_path):
    path = tmp_path / "ledger.jsonl"
    write_ledger(path, 5)
    lines = lines_of(path)
    lines.insert(3, lines[1])
    path.write_bytes(b"".join(lines))
    assert error_line(path) == 4


def test_an_inserted_forged_line_with_a_valid_hash_breaks_the_next_line(tmp_path):
    path = tmp_path / "ledger.jsonl"
    write_ledger(path, 5)
    lines = lines_of(path)
    before = json.loads(lines[1])
    forged = {"seq": 2, "time": before["time"], "generation": 1, "event": "promoted", "successor": "evil",
              "parent": None, "metrics": {}, "reasons": [], "prev": before["hash"]}
    forged["hash"] = chain_hash(forged)
    lines.insert(2, (json.dumps(forged) + "\n").encode())
    path.write_bytes(b"".join(lines))
    assert error_line(path) == 4  # the forged line itself chains; the old third line no longer does


def test_a_line_rehashed_onto_another_predecessor_is_named_by_its_broken_link(tmp_path):
    """A line whose own hash is right but whose `prev` is another line's (a branch spliced in)."""
    path = tmp_path / "ledger.jsonl"
    write_ledger(path, 4)
    lines = lines_of(path)
    record = json.loads(lines[2])
    record["prev"] = json.loads(lines[0])["hash"]
    record["hash"] = chain_hash(record)
    path.write_bytes(b"".join([*lines[:2], (json.dumps(record) + "\n").encode(), *lines[3:]]))
    assert error_text(path) == ("ledger.jsonl line 3: prev does not match the previous line's hash (lines deleted, "
                                "reordered or inserted)")


def test_an_incomplete_last_line_is_detected(tmp_path):
    path = tmp_path / "ledger.jsonl"
    write_ledger(path, 4)
    raw = path.read_bytes()
    path.write_bytes(raw[:-20])  # cut inside the last line
    with pytest.raises(LedgerError) as info:
        read(path)
    assert info.value.line == 4
    assert "incomplete" in str(info.value)
    path.write_bytes(raw[:-1])  # only the newline is missing: still torn
    assert error_line(path) == 4


def test_a_line_that_is_not_json_or_misses_fields_is_detected(tmp_path):
    path = tmp_path / "ledger.jsonl"
    write_ledger(path, 3)
    lines = lines_of(path)
    path.write_bytes(b"".join([lines[0], b"not json\n", lines[2]]))
    assert error_line(path) == 2
    record = json.loads(lines[1])
    del record["reasons"]
    path.write_bytes(b"".join([lines[0], (json.dumps(record) + "\n").encode(), lines[2]]))
    assert error_text(path) == "ledger.jsonl line 2: missing fields ['reasons']"  # not only its hash: named
    path.write_bytes(b"".join([lines[0], b"[1, 2]\n", lines[2]]))
    assert error_text(path) == f"ledger.jsonl line 2: missing fields {list(FIELDS)}"


# --- torn tail repair ------------------------------------------------------------------------


def test_a_file_is_written_whole_through_a_temporary_beside_it(tmp_path, monkeypatch):
    """`atomic_write`: the temporary lies in the file's own folder (a rename is atomic only within one
    file system, and fails across two), then replaces the file; nothing else is left behind."""
    import os

    from loop.ledger import atomic_write

    renamed = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: renamed.append((Path(src), Path(dst))) or real(src, dst))
    target = tmp_path / "run" / "report.md"
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two" and sorted(p.name for p in target.parent.iterdir()) == ["report.md"]
    assert [(src.parent, dst) for src, dst in renamed] == [(target.parent, target)] * 2
    assert all(src.name.startswith(".report.md.") and src.suffix == ".tmp" for src, _ in renamed)


def test_repair_torn_tail_cuts_only_the_unterminated_tail(tmp_path):
    path = tmp_path / "ledger.jsonl"
    write_ledger(path, 3)
    clean = path.read_bytes()
    torn = b'{"seq": 3, "time": 12'
    path.write_bytes(clean + torn)
    assert repair_torn_tail(path) == len(torn)
    assert path.read_bytes() == clean
    assert len(read(path)) == 3
    # the run can go on from there
    Ledger(path).append("run_finished", 3)
    assert [e.seq for e in read(path)] == [0, 1, 2, 3]


def test_repair_torn_tail_on_a_clean_or_empty_file_changes_nothing(tmp_path):
    path = tmp_path / "ledger.jsonl"
    write_ledger(path, 3)
    clean = path.read_bytes()
    assert repair_torn_tail(path) == 0
    assert path.read_bytes() == clean
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert repair_torn_tail(empty) == 0
    assert empty.read_bytes() == b""


def test_repair_torn_tail_of_a_single_torn_line_empties_the_file(tmp_path):
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(b'{"seq": 0')
    assert repair_torn_tail(path) == 9
    assert path.read_bytes() == b""


# --- metrics, events, reopening ---------------------------------------------------------------


def test_metrics_are_rounded_and_non_finite_values_become_null(tmp_path):
    path = tmp_path / "ledger.jsonl"
    event = Ledger(path).append("evaluated", 0, successor="a", metrics={
        "proxy": 0.123456789, "big": 12.0000004, "neg": -1.9999996, "int": 3,
        "nan": float("nan"), "inf": float("inf"), "ninf": float("-inf"), "none": None})
    expected = {"proxy": 0.123457, "big": 12.0, "neg": -2.0, "int": 3.0,
                "nan": None, "inf": None, "ninf": None, "none": None}
    assert dict(event.metrics) == expected
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    record = json.loads(text)
    assert record["metrics"] == expected
    assert dict(read(path)[0].metrics) == expected


def test_unknown_events_are_refused_and_nothing_is_written(tmp_path):
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path)
    ledger.append("run_started", 0)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="unknown ledger event 'promoted_quietly'"):
        ledger.append("promoted_quietly", 0)
    assert path.read_bytes() == before
    ledger.append("run_finished", 0)
    assert [e.seq for e in read(path)] == [0, 1]


@pytest.mark.parametrize("event", EVENTS)
def test_every_known_event_is_accepted(tmp_path, event):
    path = tmp_path / "ledger.jsonl"
    assert Ledger(path).append(event, 0).event == event
    assert read(path)[0].event == event


def test_reopening_a_ledger_continues_the_chain(tmp_path):
    path = tmp_path / "ledger.jsonl"
    first = write_ledger(path, 3)
    again = Ledger(path)
    assert again.seq == 3 and again.prev == first[-1].hash
    again.append("resumed", 3, reasons=["resumed after a crash"])
    Ledger(path).append("run_finished", 3)
    events = read(path)
    assert [e.seq for e in events] == [0, 1, 2, 3, 4]
    assert [e.event for e in events][-2:] == ["resumed", "run_finished"]
    records = [json.loads(line) for line in lines_of(path)]
    assert records[3]["prev"] == records[2]["hash"] and records[4]["prev"] == records[3]["hash"]


def test_reopening_a_tampered_ledger_refuses(tmp_path):
    path = tmp_path / "ledger.jsonl"
    write_ledger(path, 3)
    lines = lines_of(path)
    path.write_bytes(lines[0] + lines[2])
    with pytest.raises(LedgerError):
        Ledger(path)


def test_detail_must_be_plain_json(tmp_path):
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path)
    event = ledger.append("proposed", 1, detail={"genome": {"b": 2, "a": [1, 2.5]}, "seed": 3})
    assert event.detail == {"genome": {"a": [1, 2.5], "b": 2}, "seed": 3}
    assert read(path)[0].detail == event.detail
    with pytest.raises(ValueError):
        ledger.append("proposed", 1, detail={"x": math.nan})
    assert len(read(path)) == 1


# --- the anchor, branch by branch: which line, and the exact words a person reads -------------


def test_anchor_mismatch_names_the_line_and_the_problem_of_each_case():
    from loop.ledger import anchor_mismatch

    hashes = [f"{i:064x}" for i in range(5)]
    assert anchor_mismatch(hashes, {"seq": 4, "hash": hashes[4]}) is None  # ends where the anchor says

    cut = anchor_mismatch(hashes[:2], {"seq": 4, "hash": hashes[4]})
    assert cut.line == 3 and str(cut) == ("ledger.jsonl was truncated: the anchor records line 5 (seq 4) but the "
                                          "ledger ends at line 2")
    empty = anchor_mismatch([], {"seq": 0, "hash": hashes[0]})
    assert empty.line == 1 and str(empty).endswith("the anchor records line 1 (seq 0) but the ledger is empty")

    recomputed = anchor_mismatch(hashes, {"seq": 2, "hash": "f" * 64})
    assert recomputed.line == 3
    assert str(recomputed) == "ledger.jsonl line 3: hash differs from the anchor (the chain was recomputed)"

    one = anchor_mismatch(hashes, {"seq": 3, "hash": hashes[3]})  # one line past the anchor: maybe a crash
    assert one.line == 5 and str(one) == (
        "ledger.jsonl line 5: not covered by the anchor, which ends at line 4 (seq 3): 1 line(s) were appended "
        "without updating the anchor (or a crash fell between writing that line and the anchor: resuming the "
        "run re-anchors it)")
    two = anchor_mismatch(hashes, {"seq": 2, "hash": hashes[2]})
    assert two.line == 4 and str(two) == ("ledger.jsonl line 4: not covered by the anchor, which ends at line 3 "
                                          "(seq 2): 2 line(s) were appended without updating the anchor")


@pytest.mark.parametrize("content,expected", [
    (None, "does not exist"),
    ("{not json", "cannot be read (Expecting property name"),
    ('{"ledger": "/x", "seq": 1}', 'is not a ledger anchor (expected {"ledger": path, "seq": n, "hash": sha256}, '
                                   "got {'ledger': '/x', 'seq': 1})"),
    ('{"ledger": "/x", "seq": true, "hash": "' + "a" * 64 + '"}', "is not a ledger anchor"),
    ('{"ledger": "/x", "seq": -1, "hash": "' + "a" * 64 + '"}', "is not a ledger anchor"),
    ('{"ledger": 3, "seq": 1, "hash": "' + "a" * 64 + '"}', "is not a ledger anchor"),
    ('{"ledger": "/x", "seq": 1, "hash": "' + "a" * 63 + '"}', "is not a ledger anchor"),
    ('{"ledger": "/x", "seq": 1, "hash": 7}', "is not a ledger anchor"),
    ("[1, 2]", "is not a ledger anchor"),
])
def test_read_anchor_refuses_what_is_not_an_anchor_with_its_reason(tmp_path, content, expected):
    from loop.ledger import AnchorError, read_anchor

    path = tmp_path / "anchor.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(AnchorError) as err:
        read_anchor(path)
    assert str(err.value).startswith(f"anchor {path} ") and expected in str(err.value)


def test_read_anchor_shows_at_most_200_characters_of_what_it_found(tmp_path):
    from loop.ledger import AnchorError, read_anchor

    path = tmp_path / "anchor.json"
    path.write_text('{"junk": "' + "z" * 500 + '"}')
    with pytest.raises(AnchorError) as err:
        read_anchor(path)
    found = str(err.value).split("got ", 1)[1]
    assert found == ("{'junk': '" + "z" * 500 + "'}")[:200] + ")"
