"""`rsi-loop-transfer`: every promoted successor's improver, frozen and measured on held-out families
against the run's generation 0, with a negative control; bad input stops before anything is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import TRANSFER_FAST as FAST, ledger_events, run_loop
from loop.tools.transfer import TransferError, protocol_from, run_transfer, snapshots_of



@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A sweep of two tiny runs, self_adaptive and fixed, as `rsi-loop -m` lays it out."""
    root = tmp_path_factory.mktemp("sweep")
    for i, generator in enumerate(("self_adaptive", "fixed")):
        run_loop(root / str(i), f"generator={generator}", "execution=serial")
        (root / str(i) / ".hydra" / "overrides.yaml").write_text(f"- generator={generator}\n- seed=0\n")
    return root


def test_the_shipped_protocol_loads_and_holds_out_what_it_says():
    protocol = protocol_from([])
    assert protocol.families == ("classification", "digits_subset", "digits_noisy")
    assert protocol.seeds >= 10 and protocol.extra == {"snapshots": "all"}
    assert protocol_from(["seeds=12", "families=[wine]"]).record()["families"] == ["wine"]


def test_snapshots_are_the_genes_of_each_promoted_successor_from_the_ledger(sweep):
    events = ledger_events(sweep / "0")
    snaps = snapshots_of(events)
    promoted = [e for e in events if e.event == "promoted"]
    assert snaps[0].name == "generation 0" and snaps[0].promoted[0] == 0
    genes = {e.detail["candidate"]: e.detail["genome"]["generator"] for e in events if e.event == "proposed"}
    candidate = {e.successor: e.detail["candidate"] for e in events if e.event == "trained"}
    for e in promoted:
        assert any(dict(s.genes) == genes[candidate[e.successor]] and e.generation in s.promoted for s in snaps)
    assert len({s.key for s in snaps}) == len(snaps)  # one snapshot per distinct set of genes
    assert len(snapshots_of(events, final_only=True)) <= 2
    fixed = snapshots_of(ledger_events(sweep / "1"))
    assert len(fixed) == 1  # frozen genes never moved: every promotion carried generation 0's


def test_transfer_of_a_sweep_measures_every_snapshot_and_groups_the_arms(sweep):
    report = run_transfer(sweep, FAST, say=lambda line: None)
    text = report.read_text()
    record = json.loads((sweep / "transfer" / "transfer.json").read_text())
    assert record["protocol"]["families"] == ["classification"] and len(record["protocol_sha256"]) == 64
    assert record["protocol_sha256"] in text and "held-out" in text and "imp@1" in text
    measured = record["measured"]
    for name in ("0", "1"):
        own = [m for m in measured if m["source"] == name]
        assert [m["snapshot"]["name"] for m in own[:2]] == ["generation 0", "negative control"]
        assert len(own) == 1 + len(snapshots_of(ledger_events(sweep / name)))
        assert all(len(m["runs"]) == 2 for m in own)
        assert own[0]["imp"][0] == {"mean": 0.0, "low": 0.0, "high": 0.0, "n": 2}  # the reference itself
    assert "generator=self_adaptive" in text and "generator=fixed" in text  # the groups table
    assert (sweep / "transfer" / "imp_at_k.png").read_bytes()[:4] == b"\x89PNG"
    assert record["inner_loops_run"] == sum(len(m["runs"]) for m in measured)
    for m in measured:
        for r in m["runs"]:
            assert (sweep / "transfer" / r["ledger"]).is_file()
    run_transfer(sweep, FAST, say=lambda line: None)  # a rerun reads every inner loop back
    again = json.loads((sweep / "transfer" / "transfer.json").read_text())
    assert again["inner_loops_run"] == 0 and again["measured"] == measured


@pytest.mark.parametrize("overrides,message", [
    (["families=[mnist]"], "unknown task family 'mnist'"),
    (["seeds=1"], "seeds must be a whole number >= 2, got 1"),
    (["budget=3"], "'budget=3': overrides must be key=value with a key of configs/transfer.yaml"),
    (["snapshots=some"], "snapshots must be all or final, got 'some'"),
])
def test_bad_protocol_values_stop_before_anything_is_written(sweep, tmp_path, overrides, message):
    run = tmp_path / "run"
    shutil.copytree(sweep / "0", run)
    with pytest.raises(TransferError, match=message):
        run_transfer(run, overrides)
    assert not (run / "transfer").exists()


def test_a_path_without_runs_is_named(tmp_path):
    with pytest.raises(TransferError, match="is neither a run directory"):
        run_transfer(tmp_path, FAST)
    assert list(tmp_path.iterdir()) == []


def test_a_successor_family_that_cannot_read_a_held_out_family_is_refused_before_running():
    from conftest import compose_config
    from loop.meta.improver import Snapshot
    from loop.tools.transfer import Source, check_inner

    cfg = compose_config("tracker=none", "successor=cnn")
    source = Source(Path("runs/cnn"), "cnn", cfg, [Snapshot("generation 0", dict(cfg.successor.init.generator))])
    with pytest.raises(TransferError, match=r"runs/cnn: its improver cannot run on held-out family "
                                            r"'classification': successor=cnn cannot take objective=classification#0"):
        check_inner([source], protocol_from(FAST))
    check_inner([source], protocol_from(["families=[digits_noisy]"]))  # an image family it can read
