"""Turning a composed Hydra config into stage objects, safely and with errors a person can act on.

- `_target_` is instantiated only from allowed prefixes: this package's own modules and those the
  user lists in `allowed_targets` (for plugins in their own module).
- Any failure to build a stage is re-raised as one `ConfigError` paragraph naming the config key,
  the target and what is wrong, never a wall of traceback.
"""

from __future__ import annotations

import inspect
import logging
import sys
from pathlib import Path
from typing import Any, Iterator

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)

CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "configs")  # the shipped configs
BUILTIN_PREFIXES = ("loop.", "successors.", "evaluators.")
STAGES = ("objective", "generator", "execution", "evaluator", "promotion", "gate")


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key, the value and what is allowed."""


# Plugins that moved when `loop/` took one package per stage. A run directory written before the
# move names the old paths in its `.hydra/config.yaml`; resuming and verifying it map them here
# (the file itself is left as it was: its hash is in the ledger).
MOVED = {f"loop.{old}": f"loop.{new}" for old, new in {
    "objectives.Digits": "objective.tasks.Digits",
    "objectives.ModularArithmetic": "objective.tasks.ModularArithmetic",
    "objectives.SequenceTask": "objective.tasks.SequenceTask",
    "scenarios.DigitsShortcut": "objective.scenarios.DigitsShortcut",
    "generators.Mutate": "generator.mutation.Mutate",
    "generators.SelfAdaptive": "generator.mutation.SelfAdaptive",
    "generators.Crossover": "generator.crossover.Crossover",
    "generators.Bandit": "generator.bandit.Bandit",
    "execution.Serial": "execution.serial.Serial",
    "batched.Batched": "execution.batched.Batched",
    "pools.Processes": "execution.pools.Processes",
    "pools.Ray": "execution.pools.Ray",
    "promotion.Greedy": "promotion.greedy.Greedy",
    "gates.Off": "gate.gates.Off",
    "gates.Probes": "gate.gates.Probes",
    "gates.Human": "gate.gates.Human",
    "trackers.NoTracker": "tracker.trackers.NoTracker",
    "trackers.Wandb": "tracker.trackers.Wandb",
}.items()}


def moved_targets(cfg: DictConfig) -> list[str]:
    """Rewrite, in place, every `_target_` of `cfg` that names a plugin where it lived before the
    move to one package per stage; return `old -> new` for each one rewritten."""
    rewritten = []
    for path, target in _targets(cfg, ""):
        if target in MOVED:
            node = OmegaConf.select(cfg, path) if path else cfg
            with open_dict(node):
                node._target_ = MOVED[target]
            rewritten.append(f"{target} -> {MOVED[target]}")
    return rewritten


def _targets(node: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, DictConfig):
        for key in node.keys():
            child = node._get_node(key)
            if key == "_target_":
                yield path, str(node[key])
            elif isinstance(child, (DictConfig, ListConfig)):
                yield from _targets(child, f"{path}.{key}" if path else str(key))
    elif isinstance(node, ListConfig):
        for i, child in enumerate(node):
            yield from _targets(child, f"{path}[{i}]")


def builtin_modules(cfg: DictConfig) -> list[str]:
    """The modules of this project's own plugins that `cfg` names (`_target_`s under the built-in
    prefixes), in order, each once."""
    return list(dict.fromkeys(target.rsplit(".", 1)[0] for _, target in _targets(cfg, "")
                              if target.startswith(BUILTIN_PREFIXES)))


def allowed_prefixes(cfg: DictConfig) -> tuple[str, ...]:
    extra = cfg.get("allowed_targets")
    extra = [] if extra is None else extra
    if not isinstance(extra, (ListConfig, list)) or not all(isinstance(p, str) and p for p in extra):
        raise ConfigError(f"allowed_targets must be a list of module prefixes such as ['my_plugins.'], "
                          f"got {OmegaConf.to_container(extra) if isinstance(extra, ListConfig) else extra!r}")
    return BUILTIN_PREFIXES + tuple(p if p.endswith(".") else p + "." for p in extra)


def _allowed(name: str, prefixes: tuple[str, ...]) -> bool:
    return name.startswith(prefixes) or f"{name}." in prefixes


def check_targets(cfg: DictConfig) -> None:
    """Refuse any `_target_` outside the allowed prefixes, before anything is instantiated.

    The name is checked, and so is where it leads: `loop.ledger.os.system` starts with `loop.` but
    resolves to `posix.system`, which is refused.
    """
    from hydra._internal.utils import _locate

    prefixes = allowed_prefixes(cfg)
    for path, target in _targets(cfg, ""):
        key = f"{path}._target_" if path else "_target_"
        if not target.startswith(prefixes):
            top = target.split(".")[0]
            example = "my_plugins" if top in sys.stdlib_module_names else top
            raise ConfigError(
                f"{key}={target!r} is not an allowed plugin; allowed module prefixes: "
                f"{', '.join(prefixes)}; to use your own plugin, add its module to allowed_targets, "
                f"e.g. `'allowed_targets=[{example}]'`."
            )
        try:
            found = _locate(target)
        except Exception as err:
            raise ConfigError(f"{key}={target!r} cannot be imported ({err})") from None
        home = found.__name__ if inspect.ismodule(found) else getattr(found, "__module__", None) or ""
        if not _allowed(home, prefixes):
            raise ConfigError(f"{key}={target!r} resolves to {home or 'an object'}."
                              f"{getattr(found, '__qualname__', '')}, outside the allowed module prefixes "
                              f"{', '.join(prefixes)}")


def instantiate(node: DictConfig, key: str, **kwargs: Any) -> Any:
    """Build the object a config node describes; on failure raise `ConfigError` naming `key`."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    if not isinstance(node, DictConfig) or "_target_" not in node:
        raise ConfigError(f"{key} must be a config group entry with a _target_, got {node!r}")
    log.debug("instantiating %s: %s", key, node._target_)
    try:
        return hydra_instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as err:
        cause = err.__cause__ or err
        message = str(cause).strip().splitlines()[-1] if str(cause).strip() else type(cause).__name__
        if isinstance(cause, (ImportError, AttributeError)) or "Error locating target" in str(err):
            message = f"cannot import {node._target_!r} ({message})"
        raise ConfigError(f"{key} ({node._target_}): {message}") from None
    except Exception as err:  # a plugin's own validation (ValueError, TypeError, ...)
        raise ConfigError(f"{key} ({node._target_}): {err}") from None
