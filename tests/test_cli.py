"""Every console script, run as a user would: in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import BIN, OUTER, TINY, TRANSFER_FAST, ledger_events, run_loop

ENV = {**os.environ, "WANDB_MODE": "disabled"}


def cli(*args: str, cwd: Path | None = None, timeout: float = 180, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [str(BIN / args[0]), *args[1:]] if args[0].startswith("rsi-loop") else list(args)
    return subprocess.run(command, cwd=cwd, env=env or ENV, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)  # unattended: gate=human never finds a terminal


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """One tiny run through the real `rsi-loop` command."""
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    done = cli("rsi-loop", *TINY, f"hydra.run.dir={run_dir}")
    assert done.returncode == 0, done.stderr
    return run_dir, done


def test_rsi_loop_runs_with_progress_and_writes_the_run_dir(cli_run):
    run_dir, done = cli_run
    lines = [line for line in done.stdout.splitlines() if line.startswith("gen ")]
    assert len(lines) == 4  # generation 0 and 3 more, one live line each
    assert all("best proxy" in line and "truth" in line for line in lines)
    for name in ("ledger.jsonl", "report.md", ".hydra/config.yaml", "plots/scores.png", "plots/gate.png"):
        assert (run_dir / name).is_file(), name
    assert ledger_events(run_dir)[-1].event == "run_finished"


def test_two_processes_with_the_same_config_and_seed_write_the_same_ledger(cli_run, tmp_path):
    """Determinism across interpreters (hash seeds, import order, thread pools), not only within one."""
    run_dir, _ = cli_run
    again = cli("rsi-loop", *TINY, f"hydra.run.dir={tmp_path / 'again'}")
    assert again.returncode == 0, again.stderr

    def timeless(path: Path) -> list[dict]:
        rows = [json.loads(line) for line in (path / "ledger.jsonl").read_text().splitlines()]
        for r in rows:
            r.pop("time"), r.pop("prev"), r.pop("hash")  # the chain hashes cover `time`
            r.get("detail", {}).pop("seconds", None)  # wall time per stage
        return rows

    first, second = timeless(run_dir), timeless(tmp_path / "again")
    assert len(first) > 40 and first == second


def test_python_dash_m_loop_and_hydra_flags_work(tmp_path):
    shown = cli(sys.executable, "-m", "loop", "--cfg", "job", "evaluator=likelihood")
    assert shown.returncode == 0 and "evaluators.accuracy.Likelihood" in shown.stdout
    cache = {**ENV, "XDG_CACHE_HOME": str(tmp_path)}  # --help keeps the config it composed there
    helped = cli("rsi-loop", "--help", env=cache)
    assert helped.returncode == 0 and "evaluator: accuracy, confidence, exploitable, frozen_judge, likelihood" in helped.stdout
    assert "generator: bandit, credit, crossover, fixed, lineage, mutate, self_adaptive" in helped.stdout
    assert "hydra" not in helped.stdout.split("== Configuration groups ==")[1].split("== Config ==")[0]
    assert len(list((tmp_path / "rsi-loop").glob("config-*.yaml"))) == 1
    assert cli("rsi-loop", "--help", env=cache).stdout == helped.stdout  # read back: the same help
    overridden = cli("rsi-loop", "gate=off", "--help", env=cache)  # the config shown is the one composed
    assert overridden.returncode == 0 and "loop.gate.gates.Off" in overridden.stdout
    bad = cli("rsi-loop", "evaluator=nope", "--help", env=cache)
    assert bad.returncode == 2 and "evaluator/nope" in bad.stderr
    assert len(list((tmp_path / "rsi-loop").glob("config-*.yaml"))) == 2  # nothing kept for a bad override
    assert cli("rsi-loop", "--hydra-help").returncode == 0


def test_verify_exits_0_intact_1_tampered_2_bad_usage(cli_run, tmp_path):
    run_dir, _ = cli_run
    ok = cli("rsi-loop-verify", str(run_dir))
    assert ok.returncode == 0 and "intact" in ok.stdout
    assert cli("rsi-loop-verify", str(tmp_path / "nowhere")).returncode == 2
    assert cli("rsi-loop-verify").returncode == 2

    ledger_copy = tmp_path / "ledger_tampered"
    shutil.copytree(run_dir, ledger_copy)
    ledger = ledger_copy / "ledger.jsonl"
    data = bytearray(ledger.read_bytes())
    at = data.index(b'"proxy": 0.') + len(b'"proxy": 0.')  # one digit of one proxy score
    data[at] = ord("9") if data[at] != ord("9") else ord("8")
    ledger.write_bytes(bytes(data))
    bad = cli("rsi-loop-verify", str(ledger_copy))
    assert bad.returncode == 1 and "hash does not match" in bad.stdout

    weights_copy = tmp_path / "weights_tampered"
    shutil.copytree(run_dir, weights_copy)
    checkpoint = sorted((weights_copy / "successors").glob("*.safetensors"))[0]
    data = bytearray(checkpoint.read_bytes())
    data[-1] ^= 0x01
    checkpoint.write_bytes(bytes(data))
    bad = cli("rsi-loop-verify", str(weights_copy))
    assert bad.returncode == 1 and checkpoint.name in bad.stdout


def test_report_is_rebuilt_from_the_ledger_alone(cli_run, tmp_path):
    run_dir, _ = cli_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    original = (copy / "report.md").read_text()
    shutil.rmtree(copy / "plots")
    shutil.rmtree(copy / "successors")  # the report must not need checkpoints or config
    shutil.rmtree(copy / ".hydra")
    (copy / "report.md").unlink()
    done = cli("rsi-loop-report", str(copy))
    assert done.returncode == 0, done.stderr
    assert (copy / "report.md").read_text() == original
    assert (copy / "plots" / "scores.png").is_file()
    assert cli("rsi-loop-report", str(tmp_path / "nowhere")).returncode == 2


def test_approve_and_resume_through_the_cli(tmp_path):
    run_dir = tmp_path / "r"
    pause = ["gate.tripwires.capability_jump=0.01"]  # any promotion trips the wire
    first = cli("rsi-loop", *TINY, *pause, f"hydra.run.dir={run_dir}")
    assert first.returncode == 0 and "paused" in first.stdout
    refused = cli("rsi-loop", f"resume={run_dir}")
    assert refused.returncode == 1 and "rsi-loop-approve" in refused.stderr
    assert cli("rsi-loop-approve", str(run_dir), "--by", "Ada").returncode == 2  # --reason is required
    approved = cli("rsi-loop-approve", str(run_dir), "--by", "Ada", "--reason", "expected in a test")
    assert approved.returncode == 0, approved.stderr
    assert cli("rsi-loop-approve", str(run_dir), "--by", "Ada", "--reason", "again").returncode == 2
    resumed = cli("rsi-loop", f"resume={run_dir}")
    assert resumed.returncode == 0, resumed.stderr
    kinds = [e.event for e in ledger_events(run_dir)]
    assert kinds.count("approved") == 1 and kinds.count("resumed") == 1 and kinds.count("paused") == 2
    assert cli("rsi-loop-verify", str(run_dir)).returncode == 0


def age(run_dir: Path) -> None:
    """Make `run_dir` look written before loop/ took one package per stage: its config and its
    ledger's run_started name the plugins where they lived then, and the gate's code hash is of a
    file that no longer exists; the chain is re-hashed as that run would have written it."""
    from omegaconf import OmegaConf

    from loop.config import MOVED
    from loop.ledger import GENESIS, canonical, chain_hash, sha256_text

    old = {new: old for old, new in MOVED.items()}
    config_path = run_dir / ".hydra" / "config.yaml"
    text = config_path.read_text()
    for new, before in old.items():
        text = text.replace(f"_target_: {new}\n", f"_target_: {before}\n")
    config_path.write_text(text)
    config = OmegaConf.to_container(OmegaConf.load(config_path), resolve=True)
    rows = [json.loads(line) for line in (run_dir / "ledger.jsonl").read_text().splitlines()]
    started = rows[0]["detail"]
    started["plugins"] = {stage: old.get(name, name) for stage, name in started["plugins"].items()}
    started["config_sha256"] = sha256_text(canonical(config))
    started["hashes"]["thresholds"] = sha256_text(canonical(config["gate"]))
    started["hashes"]["code/gate"] = sha256_text("loop/gates.py as it was")
    prev = GENESIS
    for row in rows:
        row["prev"] = prev
        row["hash"] = prev = chain_hash(row)
    (run_dir / "ledger.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_a_run_written_before_the_move_to_stage_packages_verifies_reports_and_resumes(tmp_path):
    run_dir = tmp_path / "old"
    paused = cli("rsi-loop", *TINY, "gate.tripwires.capability_jump=0.01", f"hydra.run.dir={run_dir}")
    assert paused.returncode == 0 and "paused" in paused.stdout
    age(run_dir)
    assert "_target_: loop.gates.Probes" in (run_dir / ".hydra" / "config.yaml").read_text()

    verified = cli("rsi-loop-verify", str(run_dir))
    assert verified.returncode == 0, verified.stdout
    assert "code/gate not checked (loop.gates.Probes has moved to loop.gate.gates.Probes)" in verified.stdout
    assert "5 data splits" in verified.stdout  # the objective's old path was mapped to rebuild them
    assert cli("rsi-loop-report", str(run_dir)).returncode == 0
    assert cli("rsi-loop-approve", str(run_dir), "--by", "Ada", "--reason", "an old run").returncode == 0
    resumed = cli("rsi-loop", f"resume={run_dir}")
    assert resumed.returncode == 0, resumed.stderr
    assert "loop.batched.Batched -> loop.execution.batched.Batched" in resumed.stdout
    first = [e for e in ledger_events(run_dir) if e.event == "generation_finished" and e.generation == 1]
    assert first[-1].detail["decision"] == "promoted"  # the approved nominee of the old run was promoted
    assert cli("rsi-loop-verify", str(run_dir)).returncode == 0


def the(event: str, generation: int, run_dir: Path):
    return next(e for e in ledger_events(run_dir) if e.event == event and e.generation == generation)


def test_a_person_approves_or_rejects_what_gate_human_paused_on(tmp_path):
    run_dir = tmp_path / "human"
    first = cli("rsi-loop", *TINY, "gate=human", f"hydra.run.dir={run_dir}")
    assert first.returncode == 0, first.stderr
    nominee = the("paused", 1, run_dir).successor
    assert f"{run_dir} paused at generation 1 (gate=human asks a person to approve every promotion)" in first.stdout
    assert "tripwire" not in first.stdout and "--reject" in first.stdout and f"to promote {nominee}" in first.stdout

    approved = cli("rsi-loop-approve", str(run_dir), "--by", "Ana", "--reason", "probes and numbers look right")
    assert approved.returncode == 0, approved.stderr
    assert f"nominee {nominee} of generation 1 is promoted when the run resumes" in approved.stdout
    assert the("approved", 1, run_dir).successor == nominee
    resumed = cli("rsi-loop", f"resume={run_dir}")
    assert resumed.returncode == 0, resumed.stderr
    promoted = the("promoted", 1, run_dir)
    assert promoted.successor == nominee
    assert promoted.reasons[-1] == "human: approved by Ana: probes and numbers look right"
    finished = [e for e in ledger_events(run_dir) if e.event == "generation_finished" and e.generation == 1]
    assert [e.detail["decision"] for e in finished] == ["paused", "promoted"] and finished[-1].successor == nominee

    rejected_nominee = the("paused", 2, run_dir).successor  # gate=human asks again at generation 2
    rejected = cli("rsi-loop-approve", str(run_dir), "--by", "Ana", "--reason", "too good to be true", "--reject")
    assert rejected.returncode == 0 and f"nominee {rejected_nominee} of generation 2 is vetoed" in rejected.stdout
    assert cli("rsi-loop", f"resume={run_dir}").returncode == 0
    vetoed = the("vetoed", 2, run_dir)
    assert vetoed.successor == rejected_nominee and vetoed.reasons[-1] == "human: vetoed by Ana: too good to be true"
    after = [e for e in ledger_events(run_dir) if e.event == "generation_finished" and e.generation == 2][-1]
    assert after.detail["decision"] == "vetoed" and after.successor == nominee  # goes on from the incumbent

    report = (run_dir / "report.md").read_text()
    human = report.split("## Human decisions")[1].split("##")[0]
    assert f"| 1 | Ana | approved | `{nominee[:8]}` | probes and numbers look right |" in human
    assert f"| 2 | Ana | rejected | `{rejected_nominee[:8]}` | too good to be true |" in human
    assert cli("rsi-loop-verify", str(run_dir)).returncode == 0


def test_reject_is_refused_where_the_pause_holds_no_nominee(tmp_path, capsys):
    from loop.ledger import Ledger
    from loop.tools.cli import approve_main

    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.append("run_started", 0)
    ledger.append("promoted", 0, successor="a" * 16)
    ledger.append("generation_finished", 0, successor="a" * 16, detail={"decision": "baseline"})
    ledger.append("paused", 1, parent="a" * 16, reasons=["tripwire: 3 vetoes in a row (limit 3)",
                                                          "the loop pauses until a person decides"])
    ledger.append("generation_finished", 1, successor="a" * 16, detail={"decision": "paused"})
    with pytest.raises(SystemExit) as refused:
        approve_main([str(tmp_path), "--by", "Ana", "--reason", "no", "--reject"])
    assert refused.value.code == 2 and "holds no nominee to reject" in capsys.readouterr().err
    approve_main([str(tmp_path), "--by", "Ana", "--reason", "the vetoes were right; go on"])
    assert "the pause promotes nothing; the loop goes on from incumbent aaaa" in capsys.readouterr().out


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    reference = tmp_path_factory.mktemp("reference") / "run"
    whole_run(reference, *STOPPABLE)
    return reference


def whole_run(run_dir: Path, *overrides: str) -> None:
    """The reference for a stopped run, in a process of its own as the stopped run has: a run in this
    one would train on however many torch threads an earlier test left, and a product's rounding
    depends on how many threads share it."""
    done = cli("rsi-loop", *TINY, *overrides, f"hydra.run.dir={run_dir}")
    assert done.returncode == 0, done.stderr


STOPPABLE = ["objective.budget.generations=4", "objective.budget.candidates=4", "objective.budget.steps=300"]


def start_and_stop_in_generation_2(run_dir: Path, how: signal.Signals, *overrides: str) -> subprocess.CompletedProcess:
    """Start a run, wait until generation 2 has trained a candidate, then send it `how`."""
    proc = subprocess.Popen([str(BIN / "rsi-loop"), *TINY, *STOPPABLE, *overrides, f"hydra.run.dir={run_dir}"], env=ENV,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ledger, deadline = run_dir / "ledger.jsonl", time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if ledger.exists() and any(json.loads(line)["event"] == "trained" and json.loads(line)["generation"] == 2
                                   for line in ledger.read_text().splitlines()):
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be stopped"
    proc.send_signal(how)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.parametrize("how,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_stops_cleanly_and_resume_ends_as_the_uninterrupted_run(tmp_path, uninterrupted, how, code):
    run_dir = tmp_path / "stopped"
    stopped = start_and_stop_in_generation_2(run_dir, how)
    assert stopped.returncode == code
    assert stopped.stderr.strip().splitlines() == [
        f"interrupted ({how.name}): generation 2 was cut off and reruns from its start; "
        f"continue with: rsi-loop resume={run_dir}"]
    assert ledger_events(run_dir)[-1].generation == 2  # every line whole (a torn one would not read)
    resumed = cli("rsi-loop", f"resume={run_dir}")
    assert resumed.returncode == 0, resumed.stderr
    assert final_incumbent(run_dir) == final_incumbent(uninterrupted)
    assert cli("rsi-loop-verify", str(run_dir)).returncode == 0


def final_incumbent(run_dir: Path) -> str:
    return [e.successor for e in ledger_events(run_dir) if e.event == "generation_finished"][-1]


def test_a_run_killed_mid_generation_resumes_to_the_same_incumbent(tmp_path, uninterrupted):
    run_dir = tmp_path / "killed"
    killed = start_and_stop_in_generation_2(run_dir, signal.SIGKILL)  # no warning, no clean-up
    assert killed.returncode == -signal.SIGKILL
    events = ledger_events(run_dir)
    assert events[-1].event != "run_finished" and events[-1].generation == 2

    resumed = cli("rsi-loop", f"resume={run_dir}")
    assert resumed.returncode == 0, resumed.stderr
    after = ledger_events(run_dir)
    restart = next(e for e in after if e.event == "resumed")
    assert restart.detail["restarted_generation"] == 2 and restart.detail["discarded_events"] > 0
    finished = [e.generation for e in after if e.event == "generation_finished"]
    assert finished == [0, 1, 2, 3, 4]  # no generation lost, none repeated
    assert final_incumbent(run_dir) == final_incumbent(uninterrupted)
    assert cli("rsi-loop-verify", str(run_dir)).returncode == 0


def test_a_killed_map_elites_run_resumes_with_the_archives_of_the_uninterrupted_run(tmp_path):
    overrides = ["promotion=map_elites", "gate=off"]
    whole_run(tmp_path / "whole", *STOPPABLE, *overrides)
    killed = start_and_stop_in_generation_2(tmp_path / "killed", signal.SIGKILL, *overrides)
    assert killed.returncode == -signal.SIGKILL
    assert cli("rsi-loop", f"resume={tmp_path / 'killed'}").returncode == 0

    def archives(run_dir):
        return [(e.generation, e.detail["archive"]) for e in ledger_events(run_dir) if e.event == "generation_finished"]

    assert len(archives(tmp_path / "killed")) == 5 and archives(tmp_path / "killed") == archives(tmp_path / "whole")


@pytest.mark.parametrize("override,expected,code", [
    ("evaluator=nope", "Available options in 'evaluator'", 1),
    ("objective.budget.generations=-3", "budget.generations must be a whole number >= 1, got -3", 2),
    ("objective.budget.candidates=many", "budget.candidates must be a whole number >= 1, got 'many'", 2),
    ("evaluator._target_=os.system", "is not an allowed plugin", 2),
    ("promotion.margin=-1", "promotion.margin must be a number >= 0", 2),
    ("device=tpu", "device='tpu'", 2),
    ("successor=transformer", "successor=transformer cannot take objective=digits", 2),
    ("weak_to_strong=maybe", "weak_to_strong must be true or false", 2),
    ("error_inheritance=1", "error_inheritance must be true or false, got 1", 2),
    ("+truth={_target_: evaluators.judge.Judge}", "the hidden truth has no incumbent or baseline to judge by", 2),
])
def test_bad_input_is_one_clear_error_and_leaves_no_run_dir(tmp_path, override, expected, code):
    run_dir = tmp_path / "run"
    done = cli("rsi-loop", *TINY, override, f"hydra.run.dir={run_dir}")
    assert done.returncode == code
    assert expected in done.stderr
    assert "Traceback" not in done.stderr
    assert not run_dir.exists()


@pytest.mark.parametrize("overrides,expected", [
    (["promotion.descriptors.compute=[]"], "promotion.descriptors.compute has no bins"),
    (["+promotion.descriptors.speed=[1]"], "'speed' is not a descriptor"),
])
def test_a_bad_archive_is_one_clear_error_and_leaves_no_run_dir(tmp_path, overrides, expected):
    run_dir = tmp_path / "run"
    done = cli("rsi-loop", *TINY, "promotion=map_elites", *overrides, f"hydra.run.dir={run_dir}")
    assert done.returncode == 2 and expected in done.stderr and "Traceback" not in done.stderr
    assert not run_dir.exists()


def test_resume_of_something_that_is_not_a_run(tmp_path):
    done = cli("rsi-loop", f"resume={tmp_path}")
    assert done.returncode == 2 and "not a run directory" in done.stderr


def test_a_run_being_written_cannot_be_resumed_twice(cli_run, tmp_path):
    from loop.ledger import writer_lock

    run_dir = tmp_path / "run"
    shutil.copytree(cli_run[0], run_dir)
    with writer_lock(run_dir):  # as if another rsi-loop process were writing this run
        busy = cli("rsi-loop", f"resume={run_dir}")
    assert busy.returncode == 1 and "another rsi-loop process is writing" in busy.stderr
    finished = cli("rsi-loop", f"resume={run_dir}")
    assert finished.returncode == 0 and "already finished" in finished.stdout


def test_the_cli_imports_torch_and_wandb_only_when_a_command_needs_them():
    code = ("import sys, loop.tools.cli, loop.tools.verify, loop.tools.report, loop.state; "
            "heavy = [m for m in ('torch', 'wandb', 'ray') if m in sys.modules]; "
            "assert not heavy, heavy")
    done = cli(sys.executable, "-c", code)
    assert done.returncode == 0, done.stderr


def test_rsi_loop_transfer_command(cli_run, tmp_path):
    """rsi-loop-transfer on a run: its frozen improvers measured on a held-out family (tests/loop/tools/test_transfer.py
    checks what it measures)."""
    run = tmp_path / "run"
    shutil.copytree(cli_run[0], run)
    env = ENV
    done = subprocess.run([str(BIN / "rsi-loop-transfer"), str(run), *TRANSFER_FAST, "snapshots=final"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(run / "transfer" / "transfer.md")
    assert "transfer: 2/6 inner loops (run: generation 0" in done.stderr  # progress, on stderr
    assert "negative control" in (run / "transfer" / "transfer.md").read_text()
    bad = subprocess.run([str(BIN / "rsi-loop-transfer"), str(run), "families=[mnist]"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown task family 'mnist'" in bad.stderr
    verify = subprocess.run([str(BIN / "rsi-loop-verify"), str(run)], env=env, capture_output=True, text=True,
                            timeout=120)
    assert verify.returncode == 0, verify.stdout + verify.stderr  # the run itself is untouched


def test_both_arms_through_the_command_line(tmp_path):
    """`rsi-loop -m experiment=recursive_improver_quick`: inside Hydra's app the inner config is
    composed from its search path; both arms run, and the sweep report compares them."""
    from omegaconf import OmegaConf

    env = ENV
    done = subprocess.run([str(BIN / "rsi-loop"), "-m", *OUTER, "evaluator.workers=2", "hydra.sweeper.params.seed=0",
                           f"hydra.sweep.dir={tmp_path}"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "sweep: 1/2 runs done; 0 (" in done.stdout and "sweep: 2/2 runs done; 1 (" in done.stdout  # progress
    arms = {}
    for run in ("0", "1"):
        events = ledger_events(tmp_path / run)
        config = OmegaConf.load(tmp_path / run / ".hydra" / "config.yaml")
        arms[config.generator.steps_from] = events
        assert events[-1].event == "run_finished"
        assert all("truth/imp/1" in e.metrics for e in events if e.event == "evaluated")
    assert set(arms) == {"self", "generation0"}
    report = subprocess.run([str(BIN / "rsi-loop-report"), str(tmp_path)], env=env, capture_output=True, text=True,
                            timeout=120)
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "report.md").read_text()
    assert "generator.steps_from=self" in text and "generator.steps_from=generation0" in text
    assert "## Improvers: meta-train and held-out imp@k per outer generation" in text
    assert "minus `generator.steps_from=generation0`, paired by seed (1 pairs)" in text
    assert "## Improvers: meta-utility on meta-train and held-out tasks" in (tmp_path / "0" / "report.md").read_text()


def test_a_sweep_on_worker_processes_writes_the_runs_the_basic_launcher_writes(tmp_path):
    """`hydra/launcher=processes`: the runs of a sweep on 2 worker processes, each a whole run with its
    own directory, .hydra/ files, report and progress line; each ledger is the one the same config
    and seed give one at a time in this process (clock readings aside)."""
    from omegaconf import OmegaConf

    # in batches of 2 (the sweeper checks each batch's configs, which the launcher keeps and hands on)
    done = cli("rsi-loop", "-m", *TINY, "seed=0,1,2", "objective.budget.generations=1", "hydra/launcher=processes",
               "hydra.sweeper.max_batch_size=2", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "sweep: 3/3 runs done" in done.stdout
    for seed in range(3):
        run = tmp_path / "sweep" / str(seed)
        assert (run / "report.md").is_file() and f"seed={seed}" in (run / ".hydra" / "overrides.yaml").read_text()
        job = OmegaConf.load(run / ".hydra" / "hydra.yaml").hydra.job
        assert (job.num, job.id) == (seed, f"{job.name}_{seed}")
        alone = tmp_path / f"alone{seed}"
        run_loop(alone, f"seed={seed}", "objective.budget.generations=1")
        assert counted(run) == counted(alone)
    bad = cli("rsi-loop", "-m", *TINY, "seed=0,1", "hydra/launcher=processes", "hydra.launcher.workers=0",
              f"hydra.sweep.dir={tmp_path / 'bad'}")
    assert bad.returncode == 1 and "hydra.launcher.workers must be a whole number >= 1, got 0" in bad.stderr
    assert not (tmp_path / "bad" / "0").exists()


def counted(run_dir: Path) -> list[tuple]:
    """A run's events without clock readings (`time`, a generation's stage `seconds`)."""
    return [(e.generation, e.event, e.successor, e.parent, dict(e.metrics), e.reasons,
             {k: v for k, v in e.detail.items() if k != "seconds"}) for e in ledger_events(run_dir)]


def test_a_multiruns_wandb_runs_share_one_group_with_the_arm_as_job_type(tmp_path):
    """Offline wandb runs of a sweep, read back from their run files (tests/wandb_records.py)."""
    from wandb_records import of_kind, offline_run

    sweep = tmp_path / "sweep"
    done = subprocess.run([str(BIN / "rsi-loop"), "-m", "experiment=quick", "tracker=wandb", "seed=0,1",
                           "objective.budget.generations=1", f"hydra.sweep.dir={sweep}"],
                          env={**ENV, "WANDB_MODE": "offline"}, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-2000:]
    runs = [of_kind(next(offline_run(sweep / seed).glob("*.wandb")), "run")[0] for seed in ("0", "1")]
    assert [r.run_group for r in runs] == [f"{tmp_path.name}/sweep"] * 2
    assert [r.job_type for r in runs] == ["experiment=quick tracker=wandb objective.budget.generations=1"] * 2
    assert [sorted(r.tags) for r in runs] == [sorted(["experiment=quick", "tracker=wandb", f"seed={s}",
                                                      "objective.budget.generations=1"]) for s in (0, 1)]


def test_a_process_freezes_what_it_held_before_its_first_run_once_and_later_runs_cycles_are_collected(tmp_path):
    """`collector_frozen`: a process's first run puts what lives into the cycle collector's permanent
    generation, once; later runs in the same process (a sweep's) add nothing to it, so an object
    caught in a reference cycle that a later run made garbage is still collected."""
    script = f"""
import gc, sys, weakref
sys.path.append({str(Path(__file__).parent)!r})  # after the repository: tests/loop must not shadow loop
from conftest import TINY, compose_config
from loop.tools.cli import run_experiment

class Cyclic:  # garbage only the cycle collector can free, made before each run as its config is
    pass

frozen, refs = [], []
for seed in range(3):
    cfg = compose_config(*TINY, "objective.budget.generations=1", f"seed={{seed}}")
    gc.disable()  # as `main` does before a run; the run turns it on
    marker = Cyclic()
    marker.me = marker
    refs.append(weakref.ref(marker))
    del marker
    run_experiment(cfg, __import__("pathlib").Path({str(tmp_path)!r}) / str(seed), say=lambda _: None, freeze=True)
    frozen.append(gc.get_freeze_count())
gc.collect()
print(__import__('json').dumps([frozen, [r() is None for r in refs]]))
"""
    done = subprocess.run([sys.executable, "-c", script], env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    counts, collected = json.loads(done.stdout.strip().splitlines()[-1])
    assert counts[0] > 0 and counts[0] >= counts[1] >= counts[2]  # it may shrink (freed by reference counts), never grow
    assert collected == [False, True, True]  # the first run's own start-up stays frozen: once per process
