"""Command-line entry points (see DESIGN.md, "CLI"):

    rsi-loop [overrides]                   run an experiment (Hydra: -m, --cfg, --config-dir; --help: ours)
    rsi-loop resume=<run_dir>              continue a stopped or crashed run in place
    rsi-loop-report <run_dir>              rebuild report.md and plots/ from the ledger alone
    rsi-loop-report <multirun_dir>         ... for every run of a sweep, plus one comparing them
    rsi-loop-verify <run_dir>              check ledger chain, checkpoints and recorded hashes
    rsi-loop-approve <run_dir> --by NAME --reason TEXT [--reject]   decide what a pause asked about
    rsi-loop-transfer <run_dir | sweep_dir> [key=value ...]   frozen improvers on held-out task families

Ctrl-C (SIGINT) and SIGTERM stop a run cleanly: one line, exit 130 or 143, resume continues it.

torch and wandb are imported only by the commands that need them.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, NoReturn

from omegaconf import DictConfig, OmegaConf

from loop.config import CONFIG_DIR, STAGES, ConfigError, check_targets, instantiate, moved_targets


def fail(message: str, code: int) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


# --- rsi-loop ------------------------------------------------------------------------------


def resolve_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device={requested!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={requested!r} but no CUDA GPU is available here; use device=auto or cpu")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device={requested!r} is not supported; use auto, cpu, cuda or cuda:N")
    return str(device)


def build_stages(cfg: DictConfig):
    """Check and instantiate every stage; any problem is one `ConfigError`."""
    from loop.engine import Stages, judges
    from evaluators.accuracy import Accuracy

    check_targets(cfg)
    seed = cfg.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a whole number >= 0, got {seed!r}")
    for flag in ("weak_to_strong", "error_inheritance"):
        if not isinstance(cfg.get(flag, False), bool):
            raise ConfigError(f"{flag} must be true or false, got {cfg.get(flag)!r}")
    for key in (*STAGES, "successor", "tracker"):
        if key not in cfg:
            raise ConfigError(f"the config has no {key!r} group; choose one with `{key}=<name>`")
    space = instantiate(cfg.successor, "successor")
    built = {key: instantiate(cfg[key], key) for key in STAGES if key != "generator"}
    built["generator"] = instantiate(cfg.generator, "generator", space=space)
    truth = instantiate(cfg.truth, "truth") if cfg.get("truth") is not None else Accuracy(split="truth")
    if judges(truth):
        raise ConfigError(f"truth: {type(truth).__name__} scores by a judge model's answers, and the hidden truth has no "
                          f"incumbent or baseline to judge by; it must be independent of the loop (an evaluator "
                          f"with gold labels, e.g. evaluators.accuracy.Accuracy on the truth split)")
    audit = instantiate(cfg.audit, "audit") if cfg.get("audit") is not None else None
    contamination = instantiate(cfg.contamination, "contamination") if cfg.get("contamination") is not None else None
    return Stages(**built, truth=truth, space=space, tracker=instantiate(cfg.tracker, "tracker"), audit=audit,
                  contamination=contamination)


class RunPaused(RuntimeError):
    """The run waits for a human decision before it may continue."""


def pause_message(run_dir: Path, pause, what: str) -> str:
    """One paragraph: the run, why it paused (a person's approval, which tripwire, integrity) and
    the exact commands that decide the pause."""
    from loop.tools.runs import how_to_continue, pause_cause

    return (f"{run_dir} {what} at generation {pause.generation} ({pause_cause(pause)}); "
            f"{how_to_continue(run_dir, pause)}")


def events_to_resume(run_dir: Path, say: Callable[[str], None]):
    """The ledger of a stopped run, ready to continue: a torn last line (a write cut by a crash)
    is dropped, temporary files of a cut-off checkpoint write are swept, the chain is checked."""
    from loop.checkpoints import Checkpoints
    from loop.ledger import read, repair_torn_tail
    from loop.state import fold

    torn = repair_torn_tail(run_dir / "ledger.jsonl")
    if torn:
        say(f"dropped an incomplete last ledger line ({torn} bytes, a torn write)")
    events = read(run_dir / "ledger.jsonl")
    state = fold(events)
    if state.paused:
        raise RunPaused(pause_message(run_dir, state.pause, "is paused"))
    Checkpoints(run_dir).sweep_temporaries()
    return events


_started_frozen = False  # whether this process has frozen what its first run found (`collector_frozen`)


@contextmanager
def collector_frozen(enabled: bool) -> Iterator[None]:
    """Keep the cycle collector off what a process loaded before its first run. That first run puts
    everything alive (imported modules, the config, the data) into the collector's permanent
    generation (`gc.freeze`), once: full collections stop rescanning torch's, scipy's and Hydra's
    objects. `main` keeps the collector off until then, and the start-up's own garbage (about 60,000
    objects; a quick run's peak memory grew by 0.5 MB) is frozen with the rest rather than found by a
    full collection (0.15 s).
    A later run in the same process (a sweep's) first collects the earlier run's garbage, which
    costs little since the frozen part is not scanned; nothing is frozen for it, so no run's cycles
    outlive it."""
    global _started_frozen
    if not enabled:
        yield
        return
    if _started_frozen:
        gc.collect()
    else:
        gc.freeze()
        _started_frozen = True
    gc.enable()
    yield


def prepare(cfg: DictConfig):
    """Every check a config gets before anything is written: its stages built, its task prepared,
    the device resolved and the successor family and gate paired with the task's inputs. Returns
    (stages, task, device, config as plain data) for an `Engine`."""
    from loop.stages import TaskShape

    stages = build_stages(cfg)
    device = resolve_device(str(cfg.get("device", "auto")))
    task = stages.objective.prepare()
    TaskShape.of(task, device, family=stages.space.family, gate=stages.gate)  # a bad pairing fails here
    return stages, task, device, OmegaConf.to_container(cfg, resolve=True)


def run_experiment(cfg: DictConfig, run_dir: Path, resume: bool = False, say: Callable[[str], None] = print,
                   freeze: bool = False):
    """Build the stages from `cfg` and run in `run_dir`; with `resume`, continue after its ledger.
    `freeze`: the command line's runs freeze the cycle collector's view of what was loaded before
    the run (`collector_frozen`; about 0.5 s of full collections in a default run)."""
    from loop.engine import Engine
    from loop.ledger import check_anchor_outside, writer_lock
    from loop.tools.report import write_report
    from loop.state import fold

    anchor = OmegaConf.select(cfg, "ledger.anchor")
    if anchor not in (None, ""):
        try:
            anchor = check_anchor_outside(str(anchor), run_dir)
        except ValueError as err:
            raise ConfigError(str(err)) from None
    stages, task, device, config = prepare(cfg)
    if cfg.get("frontier") is not None:  # experiment=control_frontier: a study of protocols, not a loop
        from loop.stages import TaskShape
        from loop.tools.frontier import run_frontier

        if (run_dir / "frontier.json").exists():
            raise ConfigError(f"{run_dir} already holds a control frontier; give the study a new directory")
        run_frontier(cfg, stages, task, TaskShape.of(task, device), run_dir, say)
        say(f"finished: report at {run_dir / 'report.md'}")
        return None
    if stages.contamination is not None:  # the key is read and the private twin drawn before anything is written
        try:
            stages.contamination.prepare(stages.objective, run_dir)
        except ValueError as err:
            raise ConfigError(str(err)) from None
    run_dir.mkdir(parents=True, exist_ok=True)
    with collector_frozen(freeze), writer_lock(run_dir):  # one writer per run: two resumes cannot interleave
        events = events_to_resume(run_dir, say) if resume else ()
        if fold(events).finished:
            say(f"{run_dir} already finished; nothing to resume")
            return fold(events)
        engine = Engine(run_dir, stages, task, int(cfg.seed), device, config, say=say, anchor=anchor or None)
        state = engine.run(events, before_close=lambda: write_report(run_dir))  # the tracker may log the report
        report = run_dir / "report.md"
    if state.paused:
        say(f"{pause_message(run_dir, state.pause, 'paused')}. Report: {report}")
    else:
        say(f"finished: report at {report}")
    return state


def only_hydra_files(run_dir: Path) -> bool:
    return run_dir.exists() and all(p.name == ".hydra" or p.suffix == ".log" for p in run_dir.iterdir())


def say(line: str) -> None:
    print(line, flush=True)


class Terminated(BaseException):
    """SIGTERM, raised where the run is, like KeyboardInterrupt for SIGINT: the same clean stop."""


def stop_on_signals() -> None:
    """Ctrl-C (SIGINT) and SIGTERM stop a run between two Python steps, unwinding it: the writer lock
    is released, the tracker closed, and what was written stays whole (ledger lines are single
    writes, files are renamed into place). SIGINT is set explicitly: a shell that starts the
    command in the background would otherwise have it ignored."""
    def terminate(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, terminate)


def interrupted(run_dir: Path, code: int) -> NoReturn:
    """One line naming what was cut off and how to continue; exit 130 (SIGINT) or 143 (SIGTERM)."""
    from loop.ledger import LedgerError, read
    from loop.state import fold

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut this line short
    name = "SIGINT" if code == 130 else "SIGTERM"

    def stop(line: str) -> NoReturn:
        print(line, file=sys.stderr, flush=True)
        raise SystemExit(code)

    ledger = run_dir / "ledger.jsonl"
    if not ledger.is_file():
        if only_hydra_files(run_dir):
            shutil.rmtree(run_dir)
        stop(f"interrupted ({name}) before the run's first ledger line; nothing was kept")
    try:
        state = fold(read(ledger))
    except LedgerError as err:  # a line cut mid-write: resume drops it
        stop(f"interrupted ({name}) as a ledger line was written ({err}); continue with: "
             f"rsi-loop resume={run_dir}")
    if state.paused:
        stop(f"interrupted ({name}); {pause_message(run_dir, state.pause, 'is paused')}")
    if state.finished:
        stop(f"interrupted ({name}) after the run finished, as its report was written; rebuild it with: "
             f"rsi-loop-report {run_dir}")
    stop(f"interrupted ({name}): generation {state.next_generation} was cut off and reruns from its start; "
         f"continue with: rsi-loop resume={run_dir}")


def run_or_fail(cfg: DictConfig, run_dir: Path, resume: bool = False) -> None:
    """Run, turning the errors a user can act on into one paragraph and a non-zero exit."""
    from loop.engine import RunError
    from loop.ledger import AnchorError, LedgerError, RunBusy
    from loop.stages import AccessError

    try:
        run_experiment(cfg, run_dir, resume, say=say, freeze=True)
    except KeyboardInterrupt:
        interrupted(run_dir, 130)
    except Terminated:
        interrupted(run_dir, 143)
    except ConfigError as err:
        if only_hydra_files(run_dir):  # nothing of the run was written: leave no half run behind
            shutil.rmtree(run_dir)
        fail(str(err), 2)
    except AccessError as err:
        fail(f"{err} (DESIGN.md, 'who sees what'); the run stopped, its ledger is intact", 1)
    except RunError as err:
        fail(f"{err}; the run stopped, see {run_dir / 'ledger.jsonl'}", 1)
    except (RunBusy, RunPaused, AnchorError) as err:
        fail(str(err), 1)
    except LedgerError as err:
        fail(f"{err}. The run is not resumed; `rsi-loop-verify {run_dir}` tells more", 1)


def _hydra_task(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    run_or_fail(cfg, Path(HydraConfig.get().runtime.output_dir))


def _resume(argv: list[str]) -> None:
    value = argv[0].split("=", 1)[1]
    if len(argv) > 1:
        fail(f"resume continues a run with its recorded config; other overrides are not allowed "
             f"(got {' '.join(argv[1:])})", 2)
    run_dir = Path(value)
    ledger, config = run_dir / "ledger.jsonl", run_dir / ".hydra" / "config.yaml"
    if not ledger.is_file() or not config.is_file():
        fail(f"resume={value!r} is not a run directory: it needs ledger.jsonl and .hydra/config.yaml", 2)
    cfg = OmegaConf.load(config)
    moved = moved_targets(cfg)  # a run written before the plugins moved to one package per stage
    if moved:
        say(f"this run's config names plugins where they lived before loop/ took one package per stage; "
            f"read as: {', '.join(moved)}")
    run_or_fail(cfg, run_dir, resume=True)


def main() -> None:
    """`rsi-loop`: run an experiment with Hydra, or resume one in place."""
    # Importing torch, scipy and Hydra makes millions of objects that live until exit; full
    # collections among them cost about 0.5 s of start-up and find next to nothing. Collection
    # resumes once the run's data are loaded (`collector_frozen`).
    gc.disable()
    stop_on_signals()
    if "" not in sys.path and os.getcwd() not in sys.path:  # as `python -m loop` would: your own
        sys.path.append(os.getcwd())  # plugins next to you import (appended: never shadows ours)
    argv = sys.argv[1:]
    flags = [a for a in argv if a.startswith("-")]
    if flags and set(flags) <= {"--help", "-h"}:
        from loop.tools.usage import print_help

        return print_help([a for a in argv if a not in flags])
    resume = [a for a in argv if a.startswith("resume=") and a != "resume=null"]
    try:
        if resume:
            _resume([resume[0]] + [a for a in argv if a != resume[0]])
        else:
            import hydra

            if "-m" in argv or "--multirun" in argv:
                from loop.tools.launcher import register

                register()  # hydra/launcher=processes
            hydra.main(config_path=CONFIG_DIR, config_name="config", version_base="1.3")(_hydra_task)()
    except (KeyboardInterrupt, Terminated) as err:  # before a run began (a run stops in run_or_fail)
        print(f"interrupted ({'SIGINT' if isinstance(err, KeyboardInterrupt) else 'SIGTERM'}) before the run "
              f"started", file=sys.stderr)
        raise SystemExit(130 if isinstance(err, KeyboardInterrupt) else 143) from None
    gc.freeze()  # the process ends here: spare the interpreter's last full collections (~0.7 s)


# --- rsi-loop-report, rsi-loop-verify, rsi-loop-approve -------------------------------------


def _run_dir_arg(parser: argparse.ArgumentParser, argv: list[str] | None) -> tuple[argparse.Namespace, Path]:
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir)
    if not (run_dir / "ledger.jsonl").is_file():
        parser.exit(2, f"error: {run_dir} is not a run directory (no ledger.jsonl)\n")
    return args, run_dir


def report_main(argv: list[str] | None = None) -> None:
    """`rsi-loop-report <run_dir | multirun_dir> [--target T]`: rebuild report.md and plots/ from the
    ledger alone; for a multirun directory, every run's report and one comparing the runs."""
    from loop.tools.compare import TARGET, BrokenRuns, SweepError, write_sweep_report
    from loop.ledger import LedgerError
    from loop.tools.report import write_report

    parser = argparse.ArgumentParser(prog="rsi-loop-report", description=report_main.__doc__)
    parser.add_argument("run_dir", metavar="DIR", help="a run directory (holds ledger.jsonl) or a multirun "
                        "directory (its subdirectories are runs, e.g. multirun/<date>/<time>)")
    parser.add_argument("--target", type=float, default=TARGET, help="the truth an incumbent must reach for "
                        f"generations-to-target in a multirun report (default {TARGET})")
    args = parser.parse_args(argv)
    path = Path(args.run_dir)
    from loop.tools.frontier import frontier_runs, rewrite, write_sweep

    if (path / "frontier.json").is_file():  # experiment=control_frontier runs no loop: no ledger, its own report
        print(rewrite(path))
        return
    if path.is_dir() and not (path / "ledger.jsonl").is_file() and frontier_runs(path):
        print(write_sweep(path))
        return
    if not (path / "ledger.jsonl").is_file():  # not one run: a sweep of them, or bad usage
        try:
            print(write_sweep_report(path, args.target))
        except BrokenRuns as err:  # like one run's broken ledger: exit 1, as rsi-loop-verify would
            fail(str(err), 1)
        except SweepError as err:
            parser.exit(2, f"error: {err}\n")
        return
    try:
        print(write_report(path))
    except LedgerError as err:
        fail(f"{err}; check the run with `rsi-loop-verify {path}`", 1)


def verify_main(argv: list[str] | None = None) -> None:
    """`rsi-loop-verify <run_dir> [--anchor PATH]`: exit 0 if intact, 1 if tampered, 2 on bad usage."""
    from loop.tools.verify import configured_anchor, verify

    parser = argparse.ArgumentParser(prog="rsi-loop-verify", description=verify_main.__doc__)
    parser.add_argument("run_dir")
    anchoring = parser.add_mutually_exclusive_group()
    anchoring.add_argument("--anchor", metavar="PATH", help="the ledger's anchor file, kept outside the run "
                           "directory: also catches a truncated tail and a recomputed chain "
                           "(default: the run's ledger.anchor, if it names one)")
    anchoring.add_argument("--no-anchor", action="store_true", help="check the chain alone, even if the run "
                           "names an anchor")
    args, run_dir = _run_dir_arg(parser, argv)
    anchor = None if args.no_anchor else Path(args.anchor) if args.anchor else configured_anchor(run_dir)
    problems, checked = verify(run_dir, anchor)
    if problems:
        for problem in problems:
            print(f"TAMPERED: {problem}")
        raise SystemExit(1)
    print(f"intact: {checked}")


def approve_main(argv: list[str] | None = None) -> None:
    """`rsi-loop-approve <run_dir> --by NAME --reason TEXT [--reject]`: decide what a pause asked
    about. Where it holds a nominee the checks passed (gate=human, a capability jump, a
    proxy-vs-audit gap), approving promotes that nominee when the run resumes and --reject vetoes
    it; where it promotes nothing (an integrity failure, vetoes in a row), approving lifts it."""
    from loop.ledger import Ledger, LedgerError, RunBusy, read, writer_lock
    from loop.state import fold
    from loop.tools.runs import holds_nominee, pause_cause
    from loop.tools.verify import configured_anchor

    parser = argparse.ArgumentParser(prog="rsi-loop-approve", description=approve_main.__doc__)
    parser.add_argument("run_dir")
    parser.add_argument("--by", required=True, help="who decides (a name a person can be found by)")
    parser.add_argument("--reason", required=True, help="why")
    parser.add_argument("--reject", action="store_true", help="veto the nominee the pause holds; the loop goes "
                        "on from the incumbent")
    args, run_dir = _run_dir_arg(parser, argv)
    if not args.by.strip() or not args.reason.strip():
        parser.exit(2, "error: --by and --reason must not be empty\n")
    try:
        with writer_lock(run_dir):
            state = fold(read(run_dir / "ledger.jsonl"))
            if not state.paused:
                parser.exit(2, f"error: {run_dir} is not paused; there is nothing to approve\n")
            pause = state.pause
            held = pause.successor if holds_nominee(pause) else None
            if args.reject and held is None:
                parser.exit(2, f"error: the pause of generation {pause.generation} ({pause_cause(pause)}) holds no "
                               f"nominee to reject; approve it to go on from incumbent {pause.parent}, or leave the "
                               f"run paused\n")
            if held is None:
                decision = "continue"
                outcome = f"the pause promotes nothing; the loop goes on from incumbent {pause.parent}"
            elif args.reject:
                decision = "veto"
                outcome = (f"nominee {held} of generation {pause.generation} is vetoed; the loop goes on from "
                           f"incumbent {pause.parent}")
            else:
                decision = "promote"
                outcome = f"nominee {held} of generation {pause.generation} is promoted when the run resumes"
            verb = "rejected" if args.reject else "approved"
            Ledger(run_dir / "ledger.jsonl", anchor=configured_anchor(run_dir)).append(
                "approved", state.completed, successor=held, parent=pause.parent,
                reasons=[f"{verb} by {args.by}: {args.reason}", outcome],
                detail={"by": args.by, "reason": args.reason, "decision": decision, "nominee": held})
    except (LedgerError, RunBusy, ValueError) as err:  # ValueError: an unusable anchor
        fail(f"{err}; nothing approved", 1)
    print(f"{verb}: {outcome} (the pause: {pause_cause(pause)}). Continue with: rsi-loop resume={run_dir}")


def transfer_main(argv: list[str] | None = None) -> None:
    """`rsi-loop-transfer <run_dir | sweep_dir> [key=value ...]`: freeze the improver (generator genes)
    of every promoted successor and measure it on held-out task families against the run's
    generation-0 improver: imp@k per snapshot with paired-seed bootstrap intervals, and a negative
    control. The protocol is configs/transfer.yaml (keys: families, seeds, generations, candidates,
    steps, gate, seed, snapshots); results go to <dir>/transfer/."""
    from loop.ledger import LedgerError
    from loop.tools.transfer import TransferError, run_transfer

    parser = argparse.ArgumentParser(prog="rsi-loop-transfer", description=transfer_main.__doc__)
    parser.add_argument("run_dir", metavar="DIR", help="a run directory (holds ledger.jsonl) or a multirun "
                        "directory (its subdirectories are runs)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="changes to configs/transfer.yaml")
    args = parser.parse_args(argv)
    stop_on_signals()
    try:
        print(run_transfer(Path(args.run_dir), args.overrides, say=lambda line: print(line, file=sys.stderr,
                                                                                      flush=True)))
    except TransferError as err:
        parser.exit(2, f"error: {err}\n")
    except LedgerError as err:
        fail(str(err), 1)
    except (KeyboardInterrupt, Terminated):
        fail("interrupted; what was measured is kept in transfer/inner/ and a rerun reads it back", 130)
