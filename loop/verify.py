"""`rsi-loop-verify`: is a run directory intact?

Checks, without torch:
1. the ledger's hash chain (a changed byte, a deleted, inserted or reordered line);
2. every checkpoint the ledger recorded: the weights file's and the card's sha256, and the
   successor id recomputed from the card's genome and the weights;
3. the composed config (`.hydra/config.yaml`) against the hash recorded when the run started.
"""

from __future__ import annotations

from pathlib import Path

from loop.checkpoints import Checkpoints, successor_id
from loop.ledger import LedgerError, canonical, read, sha256_file, sha256_text


def verify(run_dir: Path) -> tuple[list[str], str]:
    """Return (problems, summary of what was checked); no problems means intact."""
    try:
        events = read(run_dir / "ledger.jsonl")
    except LedgerError as err:
        return [str(err)], ""
    problems: list[str] = []
    store = Checkpoints(run_dir)
    weights = {e.successor: e.detail.get("weights_sha256") for e in events if e.event == "trained"}
    cards = {e.successor: e.detail.get("card_sha256") for e in events if e.event == "evaluated"}
    recorded = {"checkpoint": (store.weights_path, weights), "successor card": (store.card_path, cards)}
    intact: dict[str, set[str]] = {label: set() for label in recorded}
    for label, (path_of, hashes) in recorded.items():
        for sid, expected in sorted(hashes.items()):
            path = path_of(sid)
            if not path.is_file():
                problems.append(f"{label} {path.name} recorded in the ledger is missing")
            elif sha256_file(path) != expected:
                problems.append(f"{label} {path.name} differs from the sha256 recorded in the ledger")
            else:
                intact[label].add(sid)
    for sid in sorted(intact["checkpoint"] & intact["successor card"]):  # both files as recorded
        if successor_id(store.load_card(sid)["genome"], store.load_arrays(sid)) != sid:
            problems.append(f"successor {sid}: its id does not match its genome and weights")
    started = next((e for e in events if e.event == "run_started"), None)
    config = run_dir / ".hydra" / "config.yaml"
    if started is not None and config.is_file():
        from omegaconf import OmegaConf

        recorded = started.detail.get("config_sha256")
        actual = sha256_text(canonical(OmegaConf.to_container(OmegaConf.load(config), resolve=True)))
        if recorded != actual:
            problems.append(".hydra/config.yaml differs from the config hashed when the run started")
    summary = (f"{len(events)} ledger lines, {len(weights)} checkpoints, {len(cards)} successor cards"
               + (", config hash" if started is not None and config.is_file() else ""))
    return problems, summary
