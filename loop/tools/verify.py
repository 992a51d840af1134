"""`rsi-loop-verify`: is a run directory intact?

Checks:
1. the ledger's hash chain (a changed byte, a deleted, inserted or reordered line, a line appended
   by hand);
2. with an anchor (`--anchor PATH`, or the run's `ledger.anchor`): the ledger's end and last hash
   against the anchor, which catches what a chain alone cannot see: a truncated tail and a chain
   recomputed from a changed line on;
3. every checkpoint the ledger recorded: the weights file's and the card's sha256, and the
   successor id recomputed from the card's genome and the weights;
4. the hashes recorded at `run_started` against the run as it is now: the composed config
   (`.hydra/config.yaml`), the gate's thresholds, the source files of the evaluator, gate and
   truth evaluator, and the data splits rebuilt from the config's objective.

Every problem names the ledger line it concerns (`ledger.jsonl line N: ...`). Checks 1-3 and the
config and thresholds need no torch; the code and data checks import the objective (torch,
scikit-learn) only here, when the command runs.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from loop.checkpoints import Checkpoints, successor_id
from loop.ledger import (AnchorError, Event, LedgerError, anchor_mismatch, canonical, read_anchor, read_records,
                         sha256_file, sha256_text)

TRUTH = "evaluators.accuracy.Accuracy"  # the truth evaluator of a run that records none (config `truth: null`)


def line_of(event: Event) -> str:
    """An intact chain holds seq `s` on line `s + 1`."""
    return f"ledger.jsonl line {event.seq + 1} ({event.event})"


def configured_anchor(run_dir: Path) -> Path | None:
    """The `ledger.anchor` of the run's `.hydra/config.yaml`, if it names one."""
    from omegaconf import OmegaConf

    try:
        value = OmegaConf.select(OmegaConf.load(run_dir / ".hydra" / "config.yaml"), "ledger.anchor")
    except Exception:  # no or unreadable config: the config check reports what is wrong
        return None
    return Path(str(value)).expanduser() if value not in (None, "") else None


def verify(run_dir: Path, anchor: Path | str | None = None) -> tuple[list[str], str]:
    """Return (problems, summary of what was checked); no problems means intact.

    Without `anchor`, a ledger cut after any complete line, or rewritten and re-hashed from some
    line on, is a valid chain and passes check 1: only an anchor kept outside the run sees that.
    """
    run_dir = Path(run_dir)
    try:
        records = [record for _, record in read_records(run_dir / "ledger.jsonl")]
    except LedgerError as err:
        return [str(err)], ""
    events = [Event.from_record(r) for r in records]
    problems: list[str] = []
    checked = [f"{len(events)} ledger lines"]
    if anchor is not None:
        try:
            recorded = read_anchor(anchor)
        except AnchorError as err:
            problems.append(f"{err}: the ledger's end cannot be checked")
        else:
            mismatch = anchor_mismatch([r["hash"] for r in records], recorded)
            if mismatch is not None:
                here = str((run_dir / "ledger.jsonl").resolve())
                elsewhere = "" if recorded["ledger"] == here else f" (the anchor was written for {recorded['ledger']})"
                problems.append(f"{mismatch}{elsewhere}")
            checked.append(f"anchor {anchor} (line {recorded['seq'] + 1})")

    checked += check_checkpoints(run_dir, events, problems)
    checked += check_bank(events, problems)
    started = next((e for e in events if e.event == "run_started"), None)
    config_path = run_dir / ".hydra" / "config.yaml"
    if started is None:
        checked.append("no run_started line: recorded hashes not checked")
    elif not config_path.is_file():
        checked.append("no .hydra/config.yaml: config, thresholds and data not checked")
    else:
        checked += check_started(started, config_path, problems)
    return problems, ", ".join(checked)


def check_checkpoints(run_dir: Path, events: list[Event], problems: list[str]) -> list[str]:
    """Weights and cards against the sha256 the ledger recorded; successor ids against both."""
    store = Checkpoints(run_dir)
    weights: dict[str, tuple[Event, str]] = {}
    cards: dict[str, tuple[Event, str]] = {}
    for e in events:  # the first line that recorded each file
        if e.event == "trained" and e.successor:
            weights.setdefault(e.successor, (e, e.detail.get("weights_sha256")))
        elif e.event == "evaluated" and e.successor:
            cards.setdefault(e.successor, (e, e.detail.get("card_sha256")))
    recorded = {"checkpoint": (store.weights_path, weights), "successor card": (store.card_path, cards)}
    intact: dict[str, set[str]] = {label: set() for label in recorded}
    for label, (path_of, hashes) in recorded.items():
        for sid, (event, expected) in sorted(hashes.items(), key=lambda kv: kv[1][0].seq):
            path = path_of(sid)
            if not path.is_file():
                problems.append(f"{line_of(event)}: {label} {path.name} recorded here is missing")
            elif sha256_file(path) != expected:
                problems.append(f"{line_of(event)}: {label} {path.name} differs from the sha256 recorded here")
            else:
                intact[label].add(sid)
    for sid in sorted(intact["checkpoint"] & intact["successor card"], key=lambda s: weights[s][0].seq):
        if successor_id(store.load_card(sid)["genome"], store.load_arrays(sid)) != sid:
            problems.append(f"{line_of(weights[sid][0])}: successor {sid}: its id does not match its genome "
                            f"and weights")
    return [f"{len(weights)} checkpoints", f"{len(cards)} successor cards"]


def check_bank(events: list[Event], problems: list[str]) -> list[str]:
    """gate=growing's mined tests: each rule against the sha256 recorded with it, the bank within its
    bound and retiring only live tests (over the events a resume kept, as the gate rebuilt its bank),
    and no secret test named in what the generator reads (the gate's decisions' reasons and metrics)."""
    from loop.state import settle

    added = [e for e in events if e.event == "test_added"]
    if not added:
        return []
    for e in added:
        test = e.detail.get("test", {})
        if sha256_text(canonical(test.get("rule"))) != test.get("sha256"):
            problems.append(f"{line_of(e)}: mined test {test.get('name')}: its rule does not match the sha256 "
                            f"recorded with it")
    settled = settle(events)
    kept = sorted([e for g in settled.generations.values() for e in g] + settled.unfinished, key=lambda e: e.seq)
    live: set[str] = set()
    secret = {e.detail["test"]["name"] for e in added if e.detail.get("test", {}).get("secret")}
    bound = None
    for e in kept:
        if e.event == "test_added":
            live.add(e.detail["test"]["name"])
            bound = e.detail.get("bank_size", bound)
        elif e.event == "test_retired":
            if e.detail.get("name") not in live:
                problems.append(f"{line_of(e)}: retired test {e.detail.get('name')} is not in the bank")
            live.discard(e.detail.get("name"))
        elif e.event in ("promoted", "vetoed", "paused"):
            if bound is not None and len(live) > bound:
                problems.append(f"{line_of(e)}: the gate reviewed with {len(live)} mined tests, above its bound {bound}")
    for e in events:
        if e.event in ("promoted", "vetoed", "paused"):
            shown = " ".join([*e.reasons, *e.metrics])
            leaked = sorted(n for n in secret if n in shown)
            if leaked:
                problems.append(f"{line_of(e)}: secret test{'s' * (len(leaked) > 1)} {', '.join(leaked)} named in "
                                f"the gate's decision, which the generator reads")
    return [f"{len(added)} mined tests"]


def check_started(started: Event, config_path: Path, problems: list[str]) -> list[str]:
    """The config, thresholds, code and data hashes recorded at run start, against the run now."""
    from omegaconf import OmegaConf

    where = line_of(started)
    try:
        config = OmegaConf.to_container(OmegaConf.load(config_path), resolve=True)
    except Exception as err:
        problems.append(f"{where}: .hydra/config.yaml cannot be read ({err}), so the config hashed when the "
                        f"run started cannot be checked")
        return []
    checked = ["config"]
    if started.detail.get("config_sha256") != sha256_text(canonical(config)):
        problems.append(f"{where}: .hydra/config.yaml differs from the config hashed when the run started")
    hashes: dict[str, Any] = dict(started.detail.get("hashes") or {})
    if "thresholds" in hashes:
        checked.append("thresholds")
        if hashes["thresholds"] != sha256_text(canonical(config.get("gate", {}))):
            problems.append(f"{where}: thresholds (the config's gate node) differ from those recorded at run start")
    checked += check_code(config, started, hashes, problems)
    checked += check_data(config, started, hashes, problems)
    return checked


def _allowed(config: dict[str, Any]) -> tuple[str, ...]:
    from omegaconf import OmegaConf

    from loop.config import ConfigError, allowed_prefixes

    try:
        return allowed_prefixes(OmegaConf.create({"allowed_targets": config.get("allowed_targets") or []}))
    except ConfigError:
        return allowed_prefixes(OmegaConf.create({}))


def source_file(qualified: str, prefixes: tuple[str, ...]) -> Path | None:
    """The source file of the module that defines `module.Qualname`, found without running it
    (only its parent packages are imported); None if it is not an allowed, findable module."""
    if not qualified.startswith(prefixes):
        return None
    parts = qualified.split(".")
    for cut in range(len(parts) - 1, 0, -1):  # the longest prefix that is a module
        try:
            spec = importlib.util.find_spec(".".join(parts[:cut]))
        except (ImportError, ValueError, AttributeError):
            continue
        if spec is not None and spec.origin and spec.origin.endswith(".py"):
            return Path(spec.origin)
    return None


def check_code(config: dict[str, Any], started: Event, hashes: dict[str, Any], problems: list[str]) -> list[str]:
    """Source files of the evaluator, gate, truth evaluator, held-out audit and contamination check
    against the hashes recorded at start.
    A file that cannot be found here (a user's module not on the path) is left unchecked, and so is
    a plugin that has moved to another module since the run started (`loop.config.MOVED`): the file
    that was hashed no longer exists, so there is nothing to compare it with."""
    from loop.config import MOVED

    plugins = started.detail.get("plugins") or {}
    classes = {"evaluator": plugins.get("evaluator"), "gate": plugins.get("gate"), "truth": plugins.get("truth", TRUTH),
               "audit": plugins.get("audit"), "contamination": plugins.get("contamination")}
    prefixes, n, moved = _allowed(config), 0, []
    for stage, qualified in classes.items():
        expected = hashes.get(f"code/{stage}")
        if not qualified or not expected or expected == "unknown":
            continue
        if qualified in MOVED:
            moved.append(f"code/{stage} not checked ({qualified} has moved to {MOVED[qualified]})")
            continue
        path = source_file(str(qualified), prefixes)
        if path is None or not path.is_file():
            continue
        n += 1
        if sha256_file(path) != expected:
            problems.append(f"{line_of(started)}: code/{stage} changed since the run started ({path})")
    return [f"{n} code files", *moved]


def check_data(config: dict[str, Any], started: Event, hashes: dict[str, Any], problems: list[str]) -> list[str]:
    """Rebuild the objective's splits from the config and compare them with the hashes recorded at
    start. Needs the objective's code (torch, scikit-learn): imported here only."""
    recorded = {k: v for k, v in hashes.items() if k.startswith("data/")}
    if not recorded or "objective" not in config:
        return []
    from omegaconf import OmegaConf

    from loop.config import check_targets, instantiate, moved_targets

    node = OmegaConf.create({"allowed_targets": config.get("allowed_targets") or [],
                             "objective": config["objective"]})
    moved_targets(node)  # a run written before the objective's plugin moved
    try:
        check_targets(node)  # never instantiate what the run itself would have refused
        task = instantiate(node.objective, "objective").prepare()
    except Exception as err:  # ConfigError, ImportError, the objective's own validation
        return [f"data not checked ({str(err).splitlines()[0]})"]
    from loop.objective.tasks import split_hash

    actual = {f"data/{name}": split_hash(split) for name, split in task.splits.items()}
    for key in sorted(set(recorded) | set(actual)):
        if key not in actual:
            problems.append(f"{line_of(started)}: {key} was recorded at run start but the objective no longer "
                            f"has that split")
        elif key not in recorded:
            problems.append(f"{line_of(started)}: {key} was not recorded at run start")
        elif recorded[key] != actual[key]:
            problems.append(f"{line_of(started)}: {key} differs from the hash recorded at run start")
    return [f"{len(actual)} data splits"]
