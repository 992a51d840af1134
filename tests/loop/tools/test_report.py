"""`loop.tools.report`: report.md and plots rebuilt from synthetic ledgers alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loop.ledger import Ledger, LedgerError
from loop.tools.report import write_report

NAN = float("nan")  # what the engine writes for "no best candidate"; the ledger stores null
PLUGINS = {"objective": "loop.objective.tasks.Digits", "generator": "loop.generator.mutation.Mutation",
           "execution": "loop.execution.serial.Serial", "evaluator": "loop.evaluators.HeldOut",
           "promotion": "loop.promotion.greedy.Greedy", "gate": "loop.gate.gates.Probes"}


def start(ledger: Ledger, generations: int, seed: int = 7) -> None:
    ledger.append("run_started", 0, reasons=[f"seed {seed}, objective digits, {generations} generations x 2 candidates"],
                  detail={"seed": seed, "config_sha256": "c" * 64, "hashes": {},
                          "budget": {"generations": generations, "candidates": 2, "steps": 50},
                          "plugins": PLUGINS})


def candidates(ledger: Ledger, gen: int, incumbent: str | None,
               scored: list[tuple[str, float, float]], quarantined: list[str] = ()) -> None:
    """proposed + trained + evaluated for each (id, proxy, truth); proposed + quarantined for each reason."""
    for i, (sid, proxy, truth) in enumerate(scored):
        cand = f"{gen}.{i}"
        ledger.append("proposed", gen, parent=incumbent, detail={"candidate": cand, "genome": {"w": i}, "seed": i})
        ledger.append("trained", gen, successor=sid, parent=incumbent,
                      metrics={"train_loss": 0.5, "steps": 50, "parameters": 1000}, detail={"candidate": cand})
        ledger.append("evaluated", gen, successor=sid, metrics={"proxy": proxy, "truth": truth, "score": proxy},
                      detail={"candidate": cand, "card_sha256": "d" * 64})
    for j, why in enumerate(quarantined, start=len(scored)):
        ledger.append("proposed", gen, parent=incumbent, detail={"candidate": f"{gen}.{j}", "genome": {}, "seed": j})
        ledger.append("quarantined", gen, reasons=[why], detail={"candidate": f"{gen}.{j}"})


def generation(ledger: Ledger, gen: int, incumbent: str, inc: tuple[float, float],
               scored: list[tuple[str, float, float]], decision: str, quarantined: list[str] = (),
               probes: dict[str, tuple[float, float]] | None = None, why: str | list[str] = "ok",
               extra: dict[str, float | None] | None = None) -> str:
    """One whole generation; returns the incumbent after it. `inc` is the incumbent's (proxy, truth);
    `why` the gate's reasons; `extra` more `generation_finished` metrics (Goodhart, w2s/*)."""
    why = [why] if isinstance(why, str) else why
    candidates(ledger, gen, incumbent, scored, quarantined)
    best = max(scored, key=lambda s: s[1]) if scored else (None, NAN, NAN)
    after, after_scores = incumbent, inc
    if decision in ("promoted", "vetoed", "paused"):
        ledger.append("nominated", gen, successor=best[0], metrics={"score": best[1], "proxy": best[1]},
                      reasons=["best proxy beats incumbent"])
        metrics = {}
        for name, (nominee, old) in (probes or {}).items():
            metrics |= {f"probe/{name}": nominee, f"probe/{name}/incumbent": old}
        ledger.append(decision, gen, successor=best[0], parent=incumbent, metrics=metrics, reasons=why)
        if decision == "promoted":
            after, after_scores = best[0], best[1:]
    else:
        ledger.append("not_nominated", gen, reasons=why)
    ledger.append("generation_finished", gen, successor=after,
                  metrics={"incumbent/proxy": after_scores[0], "incumbent/truth": after_scores[1],
                           "incumbent/score": after_scores[0], "best/proxy": best[1], "best/truth": best[2],
                           "trained": len(scored), "quarantined": len(quarantined), **(extra or {})},
                  detail={"decision": decision})
    return after


def baseline(ledger: Ledger, proxy: float, truth: float, sid: str = "base0000aaaaffff") -> str:
    candidates(ledger, 0, None, [(sid, proxy, truth)])
    ledger.append("promoted", 0, successor=sid, reasons=["generation-0 baseline"])
    ledger.append("generation_finished", 0, successor=sid,
                  metrics={"incumbent/proxy": proxy, "incumbent/truth": truth, "incumbent/score": proxy,
                           "best/proxy": proxy, "best/truth": truth, "trained": 1, "quarantined": 0},
                  detail={"decision": "baseline"})
    return sid


def section(report: str, title: str) -> str:
    """The text under `## title`, up to the next section."""
    return report.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def table_row(report: str, gen: int, title: str = "Generations") -> str:
    rows = [line for line in section(report, title).splitlines() if line.startswith(f"| {gen} | ")]
    assert len(rows) == 1, rows
    return rows[0]


def check_outputs(run: Path) -> str:
    path = write_report(run)
    assert path == run / "report.md"
    for png in ("scores.png", "gate.png"):
        assert (run / "plots" / png).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    text = path.read_text()
    assert write_report(run).read_text() == text  # rebuilt identically
    assert "![proxy and truth per generation](plots/scores.png)" in text
    assert "(plots/gate.png)" in text
    return text


def test_finished_run_with_promotions_and_a_veto(tmp_path: Path) -> None:
    run = tmp_path / "run-a"
    run.mkdir()
    ledger = Ledger(run / "ledger.jsonl")
    start(ledger, 3)
    inc = baseline(ledger, 0.80, 0.78)
    inc = generation(ledger, 1, inc, (0.80, 0.78), [("c1aaaaaa11111111", 0.85, 0.83), ("c2bbbbbb22222222", 0.82, 0.80)],
                     "promoted", probes={"calibration": (0.030, 0.032), "robustness": (0.70, 0.68)},
                     why="calibration: ECE 0.030 vs incumbent 0.032 (tolerance 0.05): ok")
    inc = generation(ledger, 2, inc, (0.85, 0.83), [("d1cccccc33333333", 0.90, 0.79)], "vetoed",
                     quarantined=["training loss became NaN at step 12"],
                     probes={"calibration": (0.081, 0.030)},
                     why="calibration: ECE 0.081 vs incumbent 0.030 (tolerance 0.05): regresses")
    inc = generation(ledger, 3, inc, (0.85, 0.83), [("e1dddddd44444444", 0.91, 0.86)], "promoted",
                     probes={"calibration": (0.031, 0.030), "robustness": (0.72, 0.70)})
    ledger.append("run_finished", 3, successor=inc,
                  metrics={"incumbent/proxy": 0.91, "incumbent/truth": 0.86, "baseline/truth": 0.78},
                  reasons=["budget of 3 generations spent"])

    text = check_outputs(run)
    assert text.startswith("# rsi-loop run `run-a`")
    assert "| status | **finished** |" in text
    assert "| seed | 7 |" in text
    assert "| budget | 3 generations x 2 candidates x 50 steps |" in text
    assert "| gate | `loop.gate.gates.Probes` |" in text
    assert "| final incumbent | `e1dddddd` |" in text
    assert "| incumbent proxy | 0.9100 |" in text
    assert "| incumbent truth | 0.8600 |" in text
    assert "| baseline truth (generation 0) | 0.7800 |" in text
    assert "| truth change vs baseline | +0.0800 |" in text
    assert "| promotions / vetoes / pauses | 2 / 1 / 0 |" in text
    assert "| approvals | 0 |" in text
    assert "| quarantined | 1 |" in text
    assert table_row(text, 0) == "| 0 | baseline | `base0000` | 0.8000 | 0.7800 | 0.8000 | 0.7800 | 1 / 0 |"
    assert table_row(text, 1) == "| 1 | promoted | `c1aaaaaa` | 0.8500 | 0.8300 | 0.8500 | 0.8300 | 2 / 0 |"
    # vetoed: the incumbent stays while the best candidate's proxy rose and its truth fell (Goodhart)
    assert table_row(text, 2) == "| 2 | vetoed | `c1aaaaaa` | 0.8500 | 0.8300 | 0.9000 | 0.7900 | 1 / 1 |"
    assert "- generation 2: **vetoed** nominee `d1cccccc` vs incumbent `c1aaaaaa`" in text
    assert "  - calibration: ECE 0.081 vs incumbent 0.030 (tolerance 0.05): regresses" in text
    assert "generation-0 baseline" not in text.split("## Gate decisions")[1]  # gen 0 is no gate decision
    assert "- generation 2, candidate 2.1: training loss became NaN at step 12" in text
    assert "Finished: budget of 3 generations spent" in text


def test_paused_approved_resumed_run_does_not_double_count(tmp_path: Path) -> None:
    run = tmp_path / "run-b"
    run.mkdir()
    ledger = Ledger(run / "ledger.jsonl")
    start(ledger, 3)
    inc = baseline(ledger, 0.70, 0.69)
    inc = generation(ledger, 1, inc, (0.70, 0.69), [("f1eeeeee55555555", 0.75, 0.74)], "promoted")
    inc = generation(ledger, 2, inc, (0.75, 0.74), [("g1ffffff66666666", 0.80, 0.78)], "paused",
                     why="human approval required: proxy jumped 0.05 in one generation")
    text = check_outputs(run)
    assert "| status | **paused awaiting approval** |" in text
    assert "- generation 2: **paused** — human approval required: proxy jumped 0.05 in one generation" in text

    ledger.append("approved", 2, reasons=["approved by alice: checked the probes"],
                  detail={"by": "alice", "reason": "checked the probes"})
    assert "| status | **approved, waiting to be resumed** |" in check_outputs(run)

    # first attempt at generation 3 crashes half way; `resumed` reruns it from scratch
    candidates(ledger, 3, inc, [("h0abandoned00000", 0.99, 0.10)], quarantined=["abandoned attempt OOM"])
    ledger.append("vetoed", 3, successor="h0abandoned00000", parent=inc, reasons=["abandoned veto"])
    ledger.append("resumed", 3, detail={"restarted_generation": 3, "discarded_events": 6})
    inc = generation(ledger, 3, inc, (0.75, 0.74), [("h1aaaaaa77777777", 0.82, 0.80)], "promoted",
                     quarantined=["diverged: loss 1e9"])
    ledger.append("run_finished", 3, successor=inc,
                  metrics={"incumbent/proxy": 0.82, "incumbent/truth": 0.80, "baseline/truth": 0.69})

    text = check_outputs(run)
    assert "| status | **finished** |" in text
    assert table_row(text, 3) == "| 3 | promoted | `h1aaaaaa` | 0.8200 | 0.8000 | 0.8200 | 0.8000 | 1 / 1 |"
    assert "| promotions / vetoes / pauses | 2 / 0 / 1 |" in text
    assert "| approvals | 1 |" in text
    assert "| quarantined | 1 |" in text
    assert "| truth change vs baseline | +0.1100 |" in text
    assert "abandoned" not in text.replace("6 events of attempts abandoned", "")
    assert "6 events of attempts abandoned before a resume are not counted." in text
    assert "- generation 2: **approved** — approved by alice: checked the probes" in text
    assert "- generation 3: **resumed** — restarted generation 3, discarded 6 events" in text
    human = text.split("## Pauses and resumes")[1].split("## Quarantined")[0]
    assert human.index("**paused**") < human.index("**approved**") < human.index("**resumed**")
    assert "- generation 3, candidate 3.1: diverged: loss 1e9" in text


def test_interrupted_run_shows_partial_generation(tmp_path: Path) -> None:
    run = tmp_path / "run-c"
    run.mkdir()
    ledger = Ledger(run / "ledger.jsonl")
    start(ledger, 5)
    inc = baseline(ledger, 0.60, 0.61)
    inc = generation(ledger, 1, inc, (0.60, 0.61), [("i1aaaaaa88888888", 0.65, 0.64)], "promoted")
    candidates(ledger, 2, inc, [("j1bbbbbb99999999", 0.8765, 0.8)], quarantined=["timed out"])

    text = check_outputs(run)
    assert "| status | **interrupted (or still running)** |" in text
    assert table_row(text, 2) == ("| 2 | _in progress / interrupted_ | — | — | — | 0.8765 | 0.8000 | "
                                  "1 / 1 so far |")
    # the final incumbent is the last settled one, from generation 1
    assert "| final incumbent | `i1aaaaaa` |" in text
    assert "| truth change vs baseline | +0.0300 |" in text
    assert "| promotions / vetoes / pauses | 1 / 0 / 0 |" in text
    assert "- generation 1: **promoted** nominee `i1aaaaaa` vs incumbent `base0000`" in text


def test_generation_with_nothing_trained_and_no_probes(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    start(ledger, 1)
    inc = baseline(ledger, 0.5, 0.5)
    generation(ledger, 1, inc, (0.5, 0.5), [], "none", quarantined=["a", "b"], why="every candidate quarantined")
    text = check_outputs(tmp_path)
    assert table_row(text, 1) == "| 1 | none | `base0000` | 0.5000 | 0.5000 | — | — | 0 / 2 |"
    assert "_No gate decisions after generation 0._" in text


def test_empty_ledger_still_reports(tmp_path: Path) -> None:
    (tmp_path / "ledger.jsonl").write_text("")
    assert "interrupted" in check_outputs(tmp_path)


def test_tampered_ledger_raises(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    start(ledger, 1)
    baseline(ledger, 0.5, 0.5)
    lines = (tmp_path / "ledger.jsonl").read_text().splitlines(keepends=True)
    record = json.loads(lines[3])  # the baseline's evaluated event
    record["metrics"]["proxy"] = 0.99
    lines[3] = json.dumps(record) + "\n"
    (tmp_path / "ledger.jsonl").write_text("".join(lines))
    with pytest.raises(LedgerError):
        write_report(tmp_path)
    assert not (tmp_path / "report.md").exists()


def test_plots_are_rgb_pngs_with_one_gate_panel_per_probe(tmp_path: Path) -> None:
    from PIL import Image

    ledger = Ledger(tmp_path / "ledger.jsonl")
    start(ledger, 2)
    inc = baseline(ledger, 0.80, 0.78)
    inc = generation(ledger, 1, inc, (0.80, 0.78), [("m1aaaaaa11111111", 0.85, 0.83)], "vetoed",
                     probes={"calibration": (4.2, 0.0), "ood": (0.2, 0.1), "shortcut": (1.5, 0.0),
                             "robustness": (0.3, None)})  # no incumbent value: a summary panel
    generation(ledger, 2, inc, (0.80, 0.78), [("m2bbbbbb22222222", 0.86, 0.84)], "promoted",
               probes={"calibration": (0.5, 0.4), "ood": (0.1, 0.1)})
    check_outputs(tmp_path)
    # 110 dpi; four probes make a 3 x 2 grid of 4.5 x 3.3 inch panels
    sizes = {"scores.png": (880, 528), "goodhart.png": (880, 605), "gate.png": (1485, 726),
             "lineage.png": (880, 528)}
    for name, size in sizes.items():
        with Image.open(tmp_path / "plots" / name) as image:
            assert (image.format, image.mode, image.size) == ("PNG", "RGB", size), name


def test_report_module_does_not_import_torch() -> None:
    root = Path(__file__).resolve().parents[3]
    subprocess.run([sys.executable, "-c", "import loop.tools.report, sys; assert 'torch' not in sys.modules"],
                   cwd=root, check=True)


def test_gate_timeline_and_lineage_name_what_stopped_each_nominee(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    start(ledger, 4)
    inc = baseline(ledger, 0.80, 0.78)
    inc = generation(ledger, 1, inc, (0.80, 0.78), [("k1aaaaaa11111111", 0.85, 0.83)], "promoted",
                     why=["calibration/ece: ECE 0.030 vs incumbent 0.032 (tolerance 0.03, p=1): ok"],
                     extra={"gap/incumbent": 0.02, "truth/regret": 0.0, "spearman/proxy_truth": 1.0})
    # the probe gate's wording (loop.gate.gates.Probes): a summary, one sentence per regressing test, the rest ok
    inc = generation(ledger, 2, inc, (0.85, 0.83), [("k2bbbbbb22222222", 0.95, 0.70)], "vetoed",
                     probes={"calibration": (4.2, 0.0), "shortcut": (1.5, 0.0), "ood": (0.2, 0.0)},
                     why=["vetoed on calibration/ece vs incumbent (p=0.001 < Holm threshold 0.0017), shortcut/"
                          "worst_group vs baseline (p=0.002 < Holm threshold 0.0018)",
                          "calibration/ece: ECE 0.231 vs incumbent 0.106 (tolerance 0.03, p=0.001): regresses",
                          "calibration/ece_mass: ECE 0.231 vs incumbent 0.110 (tolerance 0.03, p=0.001): regresses",
                          "shortcut/worst_group: worst-group accuracy 0.5 vs baseline 0.9 (tolerance 0.16, "
                          "p=0.002): regresses",
                          "ood/auroc: AUROC 0.870 vs incumbent 0.830 (tolerance 0.06, p=1): ok"],
                     extra={"gap/incumbent": 0.02, "truth/regret": 0.0, "gap/selection": 0.2})
    jump = "tripwire: capability jump +0.140 in one generation (limit 0.1)"
    inc = generation(ledger, 3, inc, (0.85, 0.83), [("k3cccccc33333333", 0.99, 0.84)], "paused",
                     why=[jump, "the loop pauses until a person decides; the nominee is not promoted"],
                     extra={"gap/incumbent": 0.02, "truth/regret": 0.01})
    # a person approves what the pause held; the resumed run promotes it and finishes generation 3 again
    ledger.append("approved", 3, successor="k3cccccc33333333", parent=inc, reasons=["approved by bob: fine"],
                  detail={"by": "bob", "reason": "fine", "decision": "promote", "nominee": "k3cccccc33333333"})
    ledger.append("resumed", 4, detail={"restarted_generation": 4, "discarded_events": 0})
    ledger.append("promoted", 3, successor="k3cccccc33333333", parent=inc, reasons=[jump, "human: approved by bob: fine"])
    ledger.append("generation_finished", 3, successor="k3cccccc33333333",
                  metrics={"incumbent/proxy": 0.99, "incumbent/truth": 0.84, "gap/incumbent": 0.15,
                           "truth/regret": 0.0}, detail={"decision": "promoted"})
    inc = generation(ledger, 4, "k3cccccc33333333", (0.99, 0.84), [("k4dddddd44444444", 0.90, 0.88)], "promoted",
                     extra={"gap/incumbent": 0.02, "truth/regret": 0.0})
    text = check_outputs(tmp_path)
    assert (tmp_path / "plots" / "lineage.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert (tmp_path / "plots" / "goodhart.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

    assert "| vetoed / paused by | calibration 1, shortcut 1, tripwire capability jump 1 |" in text
    assert table_row(text, 1, "Gate timeline") == "| 1 | promoted | `k1aaaaaa` | 0.8500 | 0.8300 | 0.7800 | — |"
    assert table_row(text, 2, "Gate timeline") == ("| 2 | vetoed | `k2bbbbbb` | 0.9500 | 0.7000 | 0.8300 | "
                                                   "calibration, shortcut |")
    assert table_row(text, 3, "Gate timeline").endswith("| promoted | `k3cccccc` | 0.9900 | 0.8400 | 0.8300 | "
                                                        "paused by tripwire capability jump, then approved by a "
                                                        "person |")
    assert table_row(text, 2, "Proxy vs truth") == "| 2 | 0.8500 | 0.8300 | +0.0200 | +0.2000 | — | 0.0000 |"
    assert "the incumbent's proxy changed by +0.1000 and its truth by +0.1000" in text
    assert section(text, "Lineage").split("```")[1].strip("\n").splitlines() == [
        "base0000  gen 0  truth 0.7800  baseline",
        "└─ k1aaaaaa  gen 1  truth 0.8300  promoted",
        "   ├─ k2bbbbbb  gen 2  truth 0.7000  vetoed by calibration, shortcut",
        "   └─ k3cccccc  gen 3  truth 0.8400  promoted",
        "      └─ k4dddddd  gen 4  truth 0.8800  promoted"]
    assert "| 3 | bob | approved | `k3cccccc` | fine |" in section(text, "Human decisions")
    decisions = section(text, "Gate decisions")  # passing tests fold away, what decided stays in sight
    assert "  - calibration/ece: ECE 0.231 vs incumbent 0.106 (tolerance 0.03, p=0.001): regresses" in decisions
    assert "  <details><summary>1 tests within tolerance</summary>" in decisions


def test_lineage_of_a_real_run(finished_run: Path) -> None:
    from loop.ledger import read

    text = check_outputs(finished_run)
    tree = section(text, "Lineage").split("```")[1].strip("\n").splitlines()
    events = read(finished_run / "ledger.jsonl")
    truth = {e.successor: e.metrics["truth"] for e in events if e.event == "evaluated"}
    branch = "│├└─ "
    at = {line.lstrip(branch)[:8]: (i, len(line) - len(line.lstrip(branch))) for i, line in enumerate(tree)}
    gated = [e for e in events if e.event in ("promoted", "vetoed", "paused") and e.successor]
    assert len(tree) == len(gated)
    for e in gated:
        line, depth = at[e.successor[:8]]
        assert f"  gen {e.generation}  truth {truth[e.successor]:.4f}  " in tree[line]
        if e.generation == 0:
            assert depth == 0 and tree[line].endswith("baseline")
        else:  # under the incumbent it was built from, one level deeper
            parent_line, parent_depth = at[e.parent[:8]]
            assert parent_line < line and depth == parent_depth + 3
    finished = [e for e in events if e.event == "generation_finished"]
    for e in finished:
        assert table_row(text, e.generation, "Proxy vs truth").split(" | ")[3] == f"{e.metrics['gap/incumbent']:+.4f}"


def test_decisions_in_hindsight_are_the_hidden_truths_own_and_their_regret(tmp_path: Path) -> None:
    """Truth promotes its best candidate when it beats the incumbent's truth, else keeps the incumbent."""
    from loop.ledger import read
    from loop.tools.runs import hindsight, parse

    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.append("run_started", 0, detail={"seed": 0, "plugins": {"promotion": "loop.promotion.pareto.Pareto"}})

    def generation(g: int, truths: dict[str, float], event: str, after: str) -> None:
        for sid, truth in truths.items():
            ledger.append("evaluated", g, successor=sid * 16, metrics={"proxy": truth, "truth": truth},
                          detail={"candidate": f"{g}.{sid}"})
        ledger.append(event, g, successor=max(truths, key=truths.get) * 16)
        ledger.append("generation_finished", g, successor=after * 16, detail={"decision": event})

    generation(0, {"a": 0.5}, "promoted", "a")
    generation(1, {"b": 0.6, "c": 0.7}, "promoted", "b")  # truth would have taken c: regret 0.1
    generation(2, {"d": 0.55}, "vetoed", "b")  # kept b (0.6): truth agrees
    generation(3, {"e": 0.65}, "not_nominated", "b")  # truth would have taken e: regret 0.05
    decisions = hindsight(parse(read(tmp_path / "ledger.jsonl")))
    assert [(d.generation, d.chose[0], d.truth_chose[0], round(d.regret, 6)) for d in decisions] == [
        (1, "b", "c", 0.1), (2, "b", "b", 0.0), (3, "b", "e", 0.05)]
    text = write_report(tmp_path).read_text()
    assert "**Decision accuracy: 1 of 3 generations (33%)**; truth regret of the 2 others: 0.1500 in all, " \
           "0.1000 at most." in text
    assert "| 1 | `bbbbbbbb` | `cccccccc` | 0.1000 |" in text
    assert (tmp_path / "plots" / "front.png").is_file() and "plots/front.png" in text  # a pareto run's fronts


def test_a_real_run_paused_by_a_tripwire_reads_as_paused_though_its_nominee_was_audited(tmp_path: Path) -> None:
    """The held-out audit writes its `audited` event after the gate's `paused`: still a pause, not a crash."""
    from conftest import ledger_events, run_loop

    state, _ = run_loop(tmp_path, "gate.tripwires.capability_jump=0.01")  # any real gain trips it
    assert state.paused
    events = [e.event for e in ledger_events(tmp_path)]
    assert events[events.index("paused") + 1] == "audited"
    assert "| status | **paused awaiting approval** |" in write_report(tmp_path).read_text()


def test_a_tie_on_the_truth_split_is_the_same_decision(tmp_path: Path) -> None:
    """The loop promoting a candidate whose truth equals truth's own pick agrees with it (regret 0)."""
    from loop.ledger import read
    from loop.tools.runs import hindsight, parse

    ledger = Ledger(tmp_path / "ledger.jsonl")
    for g, truths, after in ((0, {"a": 0.5}, "a"), (1, {"b": 0.7, "c": 0.7}, "c"), (2, {"d": 0.7}, "c")):
        for sid, truth in truths.items():
            ledger.append("evaluated", g, successor=sid * 16, metrics={"proxy": truth, "truth": truth})
        ledger.append("generation_finished", g, successor=after * 16)
    first, second = hindsight(parse(read(tmp_path / "ledger.jsonl")))
    assert first.truth_chose == "b" * 16 and first.chose == "c" * 16 and first.agrees  # both promote, no regret
    assert second.truth_chose == "c" * 16 and second.agrees  # d ties the incumbent: truth keeps it, as the loop did
