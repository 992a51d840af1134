"""`rsi-loop-transfer <run_dir | sweep_dir> [key=value ...]`: does a run's improver improve, on tasks it never saw?

A run's successors carry the machinery that proposed them (their generator genes: mutation rate,
step size, operator preferences). This command takes that *snapshot* from every promoted successor,
freezes it, and runs fresh inner loops with it on held-out task families (`loop.meta`), next to the
run's generation-0 improver on the same task draws and seeds. It reports, per snapshot, imp@k (the
truth gained after k inner generations) and the paired difference from generation 0 with a
bootstrap interval; and a negative control, generation 0 against itself on other inner seeds,
which must come out null for any difference to mean something.

The protocol (held-out families, paired seeds, inner budget) is `configs/transfer.yaml`, changed with
`key=value` arguments (`seeds=20 'families=[classification]'`); it is recorded with its sha256 in
the results. Output, beside the runs and touching nothing of them: `<dir>/transfer/transfer.md`,
`transfer.json`, `imp_at_k.png`, and `inner/` (each inner loop's ledger and what was read from it:
a rerun reads back what was already measured).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from omegaconf import DictConfig, OmegaConf

from loop.checkpoints import atomic_write
from loop.config import CONFIG_DIR, ConfigError, moved_targets
from loop.ledger import Event, LedgerError, read
from loop.meta.improver import Protocol, Snapshot, snapshot_config
from loop.meta.utility import InnerLoops, InnerRun, Paired, imp_difference, measure
from loop.tools.compare import SweepError, find_runs, group, is_sweep, load, overrides_of
from loop.tools.runs import parse


class TransferError(ValueError):
    """Bad usage (exit 2): a path that holds no runs, a protocol value out of bounds."""


# --- what is measured ----------------------------------------------------------------------


def protocol_from(overrides: Sequence[str]) -> Protocol:
    """`configs/transfer.yaml` with `key=value` overrides, checked: a `TransferError` names the key."""
    cfg = OmegaConf.load(f"{CONFIG_DIR}/transfer.yaml")
    bad = [o for o in overrides if "=" not in o or o.split("=", 1)[0] not in cfg]
    if bad:
        raise TransferError(f"{', '.join(map(repr, bad))}: overrides must be key=value with a key of "
                            f"configs/transfer.yaml: {', '.join(cfg)}")
    try:
        cfg.merge_with(OmegaConf.from_dotlist(list(overrides)))
        values = OmegaConf.to_container(cfg, resolve=True)
    except Exception as err:  # a malformed value
        raise TransferError(f"overrides {' '.join(overrides)}: {err}") from None
    if values.get("snapshots") not in ("all", "final"):
        raise TransferError(f"snapshots must be all or final, got {values.get('snapshots')!r}")
    snapshots = values.pop("snapshots")
    try:
        return Protocol(**{**values, "families": tuple(values["families"] or ()),
                           "extra": {"snapshots": snapshots}})
    except (TypeError, ValueError) as err:
        raise TransferError(f"configs/transfer.yaml: {err}") from None


@dataclass
class Source:
    """One run: its config and the snapshots of its promoted successors (generation 0's first)."""

    path: Path
    name: str
    config: DictConfig
    snapshots: list[Snapshot]
    overrides: dict[str, str] = field(default_factory=dict)


def snapshots_of(events: Sequence[Event], final_only: bool = False) -> list[Snapshot]:
    """Generation 0's improver, then one snapshot per distinct set of generator genes that a promoted
    successor carried, in the order they were first promoted (read from the ledger alone).
    `final_only`: generation 0's and the final incumbent's only."""
    run = parse(list(events))
    genome_of = {e.detail["candidate"]: e.detail["genome"] for e in events if e.event == "proposed"}
    candidate_of = {e.successor: e.detail["candidate"] for e in events if e.event == "trained"}
    found: dict[str, Snapshot] = {}
    for e in sorted(run.kept("promoted"), key=lambda e: e.seq):
        genes = genome_of[candidate_of[e.successor]]["generator"]
        name = "generation 0" if e.generation == 0 else f"generation {e.generation} ({e.successor[:8]})"
        snap = Snapshot(name, genes, e.generation, e.successor, (e.generation,))
        old = found.get(snap.key)
        found[snap.key] = snap if old is None else \
            Snapshot(old.name, old.genes, old.generation, old.successor, (*old.promoted, e.generation))
    snaps = list(found.values())
    final = run.last_finished
    if final_only and snaps and final is not None:
        last = Snapshot("", genome_of[candidate_of[final.successor]]["generator"]).key
        snaps = snaps[:1] + [s for s in snaps[1:] if s.key == last]
    return snaps


def read_source(path: Path, name: str, final_only: bool) -> Source:
    config_file = path / ".hydra" / "config.yaml"
    if not config_file.is_file():
        raise TransferError(f"{path} has no .hydra/config.yaml: the run's config is needed to rerun its improver")
    try:
        events = read(path / "ledger.jsonl")
    except LedgerError as err:
        raise LedgerError(0, "", message=f"{path}: {err}; check it with `rsi-loop-verify {path}`") from None
    snaps = snapshots_of(events, final_only)
    if not snaps:
        raise TransferError(f"{path} has no generation-0 successor in its ledger yet: nothing to measure")
    config = OmegaConf.load(config_file)
    moved_targets(config)
    return Source(path, name, config, snaps, overrides_of(path))


def sources_of(path: Path, final_only: bool) -> tuple[Path, list[Source]]:
    """The runs under `path` (one run, or a sweep of them) and where the results go."""
    if (path / "ledger.jsonl").is_file():
        return path, [read_source(path, path.name, final_only)]
    if not is_sweep(path):
        try:
            load(path)  # its error names what is wrong with the path
        except SweepError as err:
            raise TransferError(str(err)) from None
    return path, [read_source(p, str(p.relative_to(path)), final_only) for p in find_runs(path)]


def check_inner(sources: Sequence[Source], protocol: Protocol) -> None:
    """Build (but do not run) one inner loop per run and family: a successor family that cannot read
    a held-out family's inputs, or a run whose config no longer builds, fails before anything is run."""
    from loop.tools.cli import prepare

    for source in sources:
        for i in range(min(protocol.seeds, len(protocol.families))):
            try:
                prepare(snapshot_config(source.config, source.snapshots[0], protocol, i))
            except (ConfigError, ValueError) as err:
                raise TransferError(f"{source.path}: its improver cannot run on held-out family "
                                    f"{protocol.task(i)[0]!r}: {err}") from None


# --- measuring -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    """One snapshot's inner loops, and its paired differences from the run's generation 0."""

    source: str
    snapshot: Snapshot
    runs: list[InnerRun]
    imp: list[Paired]  # imp@1 .. imp@K, minus generation 0's on the same seeds
    area: Paired


def compare(source: str, snapshot: Snapshot, runs: list[InnerRun], reference: list[InnerRun], k: int) -> Measured:
    return Measured(source, snapshot, runs, [imp_difference(runs, reference, j) for j in range(1, k + 1)],
                    imp_difference(runs, reference))


@dataclass
class Transfer:
    protocol: Protocol
    sources: list[Source]
    measured: list[Measured]  # per source: generation 0, the control, then each later snapshot
    inner_loops: int  # run now (not read back)
    seconds: float
    groups: dict[str, list[str]]  # sweep groups: label -> source names


def run_transfer(path: Path, overrides: Sequence[str] = (), say: Callable[[str], None] = print) -> Path:
    """Measure every snapshot under `path`; write `<path>/transfer/` and return its transfer.md."""
    protocol = protocol_from(overrides)
    out, sources = sources_of(path, protocol.extra["snapshots"] == "final")
    check_inner(sources, protocol)
    folder = out / "transfer"
    loops = InnerLoops(folder)
    total = sum((len(s.snapshots) + 1) * protocol.seeds for s in sources)
    done = [0]
    began = time.perf_counter()

    def progress(name: str) -> Callable[[int], None]:
        def tick(n: int) -> None:
            done[0] += n
            elapsed = time.perf_counter() - began
            left = f", ~{elapsed / done[0] * (total - done[0]):.0f} s left" if done[0] < total else ""
            say(f"transfer: {done[0]}/{total} inner loops ({name}; {elapsed:.0f} s{left})")
        return tick

    measured: list[Measured] = []
    k = protocol.generations
    for source in sources:
        g0 = source.snapshots[0]
        reference = measure(loops, source.config, g0, protocol, progress=progress(f"{source.name}: generation 0"))
        control = measure(loops, source.config, g0, protocol, control=True,
                          progress=progress(f"{source.name}: negative control"))
        measured.append(compare(source.name, g0, reference, reference, k))
        measured.append(compare(source.name, Snapshot("negative control", g0.genes), control, reference, k))
        for snap in source.snapshots[1:]:
            runs = measure(loops, source.config, snap, protocol, progress=progress(f"{source.name}: {snap.name}"))
            measured.append(compare(source.name, snap, runs, reference, k))
    groups = {label: [s.name for s in members] for label, members in group(sources).items()}  # as a sweep report
    result = Transfer(protocol, sources, measured, loops.ran, round(time.perf_counter() - began, 1), groups)
    write(folder, result)
    return folder / "transfer.md"


def pooled_final(result: Transfer, names: Sequence[str]) -> Paired | None:
    """The final snapshot of each named run against its generation 0, over runs and seeds (`paired_grid`)."""
    from loop.meta.utility import paired_grid

    grid: list[list[float]] = []
    k = result.protocol.generations
    for name in names:
        own = [m for m in result.measured if m.source == name and m.snapshot.name != "negative control"]
        reference, final = own[0], max(own, key=lambda m: max(m.snapshot.promoted))  # the last promoted
        grid.append([a.imp(k) - b.imp(k) for a, b in zip(final.runs, reference.runs)])
    return paired_grid(grid) if grid else None


# --- writing -------------------------------------------------------------------------------


def markdown(result: Transfer, path_name: str) -> str:
    p, k = result.protocol, result.protocol.generations
    unique = list({r.ledger: r for m in result.measured for r in m.runs}.values())  # a loop shared by rows once
    trained, steps = sum(r.trained for r in unique), sum(r.steps for r in unique)
    out = [f"# Transfer: {path_name}", "",
           f"Each improver (the generator genes a promoted successor carried, frozen) ran fresh inner loops "
           f"on **held-out** task families ({', '.join(p.families)}), never used by any selection, "
           f"{p.seeds} paired seeds each (seed i: the same task draw and inner seed for every improver), "
           f"{k} inner generations of {p.candidates} candidates of at most {p.steps} steps, gate {p.gate}.",
           "**imp@k** is the incumbent's truth after k inner generations minus generation 0's; the paired "
           "difference is a snapshot's imp@k minus the run's generation-0 improver's on the same seeds, "
           "mean over seeds with a 95% percentile-bootstrap interval. The **negative control** is "
           "generation 0 against itself on other inner seeds (the same task draws): its interval should "
           "hold 0.", "",
           f"Protocol sha256 `{p.sha256()}`: `{json.dumps(p.record(), sort_keys=True)}`", "",
           f"Compute: {len(unique)} distinct inner loops ({result.inner_loops} run by this command, the rest "
           f"read back from `inner/`), {trained} inner successors trained, {steps} optimizer steps, "
           f"{sum(r.seconds for r in unique):.0f} s of inner-loop wall time when they ran (this command: "
           f"{result.seconds:.0f} s).", ""]
    if len(result.groups) > 1 or len(result.sources) > 1:
        out += ["## Final improver against generation 0, per group", "",
                f"| group | runs | final improver's imp@{k} minus generation 0's, mean over runs and seeds [95% CI, runs and seeds resampled] | verdict |",
                "|---|---:|---:|---|"]
        for label, names in result.groups.items():
            pooled = pooled_final(result, names)
            if pooled is not None:
                out.append(f"| {label} | {len(names)} | {pooled.show()} | {pooled.words()} |")
        out.append("")
    for source in result.sources:
        own = [m for m in result.measured if m.source == source.name]
        out += [f"## {source.name}" if len(result.sources) > 1 else "## Snapshots", "",
                f"| improver | promoted in | genes | mean imp@{k} | "
                + " | ".join(f"imp@{j} difference [95% CI]" for j in range(1, k + 1))
                + " | area difference | verdict (imp@k) |",
                "|---|---|---|---:|" + "---:|" * k + "---:|---|"]
        for m in own:
            genes = ", ".join(f"{g}={v:.3g}" if isinstance(v, float) else f"{g}={v}"
                              for g, v in sorted(m.snapshot.genes.items()))
            mean_imp = sum(r.imp(k) for r in m.runs) / len(m.runs)
            promoted = ", ".join(map(str, m.snapshot.promoted)) or "—"
            reference = m.snapshot.name == "generation 0"
            diffs = " | ".join("(reference)" if reference else d.show() for d in m.imp)
            out.append(f"| {m.snapshot.name} | {promoted} | {genes} | {mean_imp:+.4f} | {diffs} | "
                       f"{'(reference)' if reference else m.area.show()} | "
                       f"{'—' if reference else m.imp[-1].words()} |")
        out.append("")
    out += ["Plot: `imp_at_k.png` (paired difference of imp@k per snapshot, with intervals).", ""]
    return "\n".join(out)


def plot(result: Transfer) -> bytes:
    from loop.tools.plots import figure, png_bytes

    k = result.protocol.generations
    fig = figure(8, 4.5)
    ax = fig.subplots()
    shown = [m for m in result.measured if m.snapshot.name != "generation 0"]
    for i, m in enumerate(shown):
        d = m.imp[-1]
        control = m.snapshot.name == "negative control"
        ax.errorbar([i], [d.mean], yerr=[[d.mean - d.low], [d.high - d.mean]], fmt="s" if control else "o",
                    color="grey" if control else "C0", capsize=3)
    ax.axhline(0, color="black", linewidth=0.8)
    labels = [(f"{m.source}: " if len(result.sources) > 1 else "") + m.snapshot.name.split(" (")[0] for m in shown]
    ax.set_xticks(range(len(shown)), labels, rotation=60, ha="right", fontsize="x-small")
    ax.set(title=f"imp@{k} of each frozen improver minus generation 0's (held-out families, 95% CI)",
           ylabel=f"paired difference of imp@{k}")
    fig.subplots_adjust(bottom=0.35)
    return png_bytes(fig)


def write(folder: Path, result: Transfer) -> None:
    record = {"protocol": result.protocol.record(), "protocol_sha256": result.protocol.sha256(),
              "inner_loops_run": result.inner_loops, "seconds": result.seconds, "groups": result.groups,
              "measured": [{"source": m.source, "snapshot": {**asdict(m.snapshot), "key": m.snapshot.key},
                            "imp": [asdict(d) for d in m.imp], "area": asdict(m.area),
                            "runs": [asdict(r) for r in m.runs]} for m in result.measured]}
    atomic_write(folder / "transfer.json", json.dumps(record, indent=1).encode())
    atomic_write(folder / "imp_at_k.png", plot(result))
    atomic_write(folder / "transfer.md", markdown(result, folder.parent.resolve().name).encode())
