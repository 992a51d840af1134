"""`rsi-loop --help`: the commands, the configuration groups (the folders of configs/) and the
config the given overrides compose, kept in the user's cache (`composed_yaml`)."""

from __future__ import annotations

import hashlib
import os
from contextlib import suppress
from pathlib import Path

from omegaconf import OmegaConf

from loop.config import CONFIG_DIR
from loop.tools.cli import fail

HELP = """rsi-loop: run one experiment of the self-improvement loop (a sweep with -m).

  rsi-loop [group=option ...] [key=value ...]     e.g. rsi-loop evaluator=likelihood gate=off
  rsi-loop -m experiment=recursion                a sweep: one run per combination
  rsi-loop resume=<run_dir>                       continue a stopped run in place
  rsi-loop --hydra-help                           Hydra's own flags (--cfg job, --info, ...)

== Configuration groups ==
Compose your configuration from those groups (group=option)

{groups}

== Config ==
Override anything in the config (foo.bar=value)

{config}"""


def print_help(overrides: list[str]) -> None:
    """`rsi-loop [overrides] --help`. Hydra's own app help lists the groups by building a config
    repository per group, which takes longer than the rest of the help together; the groups are
    the folders of configs/, so they are read from there."""
    folders = sorted(p for p in Path(CONFIG_DIR).iterdir() if p.is_dir() and p.name != "hydra")
    groups = "\n".join(f"{folder.name}: {', '.join(sorted(f.stem for f in folder.glob('*.yaml')))}"
                       for folder in folders)
    print(HELP.format(groups=groups, config=composed_yaml(overrides)), end="")


def composed_yaml(overrides: list[str]) -> str:
    """The config that `overrides` compose, as YAML. Composing it takes Hydra about 0.2 s (its import
    and some 25 YAML files), most of `--help`'s time, so the text is kept in the user's cache
    ($XDG_CACHE_HOME or ~/.cache, rsi-loop/) under a hash of everything it is made from: every file
    under configs/, the overrides, and the versions of Hydra and OmegaConf. Change any of them and the
    next help composes afresh. A cache that cannot be read or written is only slower."""
    from importlib.metadata import version

    digest = hashlib.sha256("\0".join([version("hydra-core"), version("omegaconf"), *overrides]).encode())
    for path in sorted(Path(CONFIG_DIR).rglob("*")):
        if path.is_file():
            digest.update(b"\0" + str(path.relative_to(CONFIG_DIR)).encode() + b"\0" + path.read_bytes())
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rsi-loop"
    cached = cache / f"config-{digest.hexdigest()[:32]}.yaml"
    with suppress(OSError):
        return cached.read_text()
    from hydra import compose, initialize_config_dir

    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            text = OmegaConf.to_yaml(compose("config", overrides=overrides))
    except Exception as err:  # a bad override: say which, as a run would
        fail(str(err), 2)
    with suppress(OSError):
        from loop.ledger import atomic_write

        atomic_write(cached, text.encode())
        for old in sorted(cache.glob("config-*.yaml"), key=lambda p: p.stat().st_mtime)[:-HELP_CACHE]:
            old.unlink(missing_ok=True)  # the oldest past the newest HELP_CACHE
    return text


HELP_CACHE = 32  # composed configs kept for --help
