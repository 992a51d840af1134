"""`hydra/launcher=processes`: a multirun's runs on worker processes started once, for all of them.

Hydra's basic launcher runs a sweep's runs one after another in one process: start-up is paid
once, but one core works. Here `workers` processes (spawned, one torch thread each by default)
take the runs in turn; each worker imports torch, Hydra and the loop once and then runs as many
runs as come to it, each exactly as the basic launcher would (`hydra.core.utils.run_job`: the
run's own config, directory, `.hydra/` files and callbacks). A run's ledger does not depend on
which worker ran it or when (same config and seed, same ledger), so a sweep gives the same results
either way, up to the float rounding that another torch thread count can give (the workers use
`threads`, 1 by default, reset before every run; the basic launcher uses torch's default).

    rsi-loop -m experiment=quick seed=0,1,2,3 hydra/launcher=processes
    rsi-loop -m ... hydra/launcher=processes hydra.launcher.workers=4

Hydra instantiates launchers only from its `hydra_plugins` namespace; `register()` (called by
`rsi-loop` before Hydra starts) puts this class there, so no top-level package is installed for it.
"""

from __future__ import annotations

import logging
import multiprocessing
import sys
import types
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Sequence

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

from loop.config import builtin_modules

log = logging.getLogger(__name__)
MODULE = "hydra_plugins.rsi_loop"


def _start_worker(threads: int | None) -> None:
    import torch

    if threads is not None:
        torch.set_num_threads(threads)


def _warm(modules: Sequence[str]) -> None:
    """Import what runs need, so a worker pays for it while Hydra's sweeper still checks the jobs:
    torch and the loop, scipy.stats (a gate's first comparison), the report's plotting, and the
    sweep's own stages (`modules`: the project's plugins its config names; a plugin of yours is
    imported by its run, after the run has checked it)."""
    import importlib

    for module in ("loop.engine", "loop.tools.cli", "loop.tools.report", "scipy.stats", "matplotlib.figure",
                   "matplotlib.backends.backend_agg", "PIL.Image", *modules):
        importlib.import_module(module)


def _run(index: int, sweep_config: DictConfig, callbacks: Any, task_function: TaskFunction,
         singletons: dict[Any, Any], threads: int | None) -> JobReturn:
    """One run of the sweep, in a worker, as the basic launcher runs it in the main process, on the
    config the main process composed for it. The worker's torch threads are reset first: a run that
    set its own (`execution.threads`) must not change the float rounding of the runs after it on
    the same worker."""
    _start_worker(threads)
    Singleton.set_state(singletons)
    setup_globals()  # Hydra's resolvers (${now:...}), left out of the state: their closures do not pickle
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{index}"
        sweep_config.hydra.job.num = index
    HydraConfig.instance().set_config(sweep_config)
    # run_job reads only the callbacks of its context; the config loader stays in the main process
    result = run_job(hydra_context=HydraContext(config_loader=None, callbacks=callbacks),  # type: ignore[arg-type]
                     config=sweep_config, task_function=task_function,
                     job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
    # The configs hold classes Hydra's plugin scan redefined in this worker, which do not pickle back;
    # the sweeper reads only the status and return value (the run wrote its configs to .hydra/).
    result.cfg, result.hydra_cfg = None, None
    return result


class ProcessesLauncher(Launcher):
    """A sweep's runs on `workers` long-lived worker processes. Selected with `hydra/launcher=processes`."""

    __module__ = MODULE  # where Hydra looks for plugins (see `register`)

    def __init__(self, workers: int = 2, threads: int | None = 1) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"hydra.launcher.workers must be a whole number >= 1, got {workers!r}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"hydra.launcher.threads must be null or a whole number >= 1, got {threads!r}")
        self.workers, self.threads = workers, threads
        self.pool: ProcessPoolExecutor | None = None
        self.warming: list = []
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        """Start the workers now: their start-up (a Python, torch, the loop) overlaps Hydra's sweeper
        composing every job's config to check it, which it does before it launches any."""
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function
        self.composed: dict[tuple[str, ...], DictConfig] = {}
        self.remember(True)
        self.start()

    def remember(self, on: bool) -> None:
        """Keep the job configs Hydra's sweeper composes to check them (it does so for every job before
        it launches any), so a worker runs its job on that config instead of composing it again
        (0.1-0.3 s a run). Off while jobs are handed to the workers: Hydra's state goes with them, and
        its config loader must then be Hydra's own."""
        assert self.hydra_context is not None
        loader = self.hydra_context.config_loader
        if not on:
            loader.__dict__.pop("load_sweep_config", None)
            return
        compose = type(loader).load_sweep_config

        def remembering(master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
            composed = compose(loader, master_config=master_config, sweep_overrides=sweep_overrides)
            if master_config is self.config:
                self.composed[tuple(sweep_overrides)] = composed
            return composed

        loader.load_sweep_config = remembering  # type: ignore[method-assign]

    def start(self) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch's threads
        self.pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_start_worker,
                                        initargs=(self.threads,))
        try:  # only what to import early: a config that cannot be read here fails in its run, with the reason
            modules = builtin_modules(self.config) if self.config is not None else []
        except Exception:
            modules = []
        self.warming = [self.pool.submit(_warm, modules) for _ in range(self.workers)]

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        log.info(f"launching {len(job_overrides)} runs on {self.workers} worker processes")
        for i, overrides in enumerate(job_overrides):
            log.info(f"\t#{initial_job_idx + i} : {' '.join(filter_overrides(overrides))}")
        if self.pool is None:  # a later batch (hydra.sweeper.max_batch_size): workers again
            self.start()
        try:
            loader = self.hydra_context.config_loader
            configs = [self.composed.pop(tuple(overrides), None)
                       or loader.load_sweep_config(master_config=self.config, sweep_overrides=list(overrides))
                       for overrides in job_overrides]
            self.remember(False)
            singletons = {**Singleton.get_state(), "omegaconf_resolvers": {}}
            futures = [self.pool.submit(_run, initial_job_idx + i, config, self.hydra_context.callbacks,
                                        self.task_function, singletons, self.threads)
                       for i, config in enumerate(configs)]
            return [f.result() for f in futures]
        finally:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None
            self.remember(True)  # for the sweeper's check of a next batch


def register() -> None:
    """Make `hydra_plugins.rsi_loop.ProcessesLauncher` known to Hydra (its plugins must live in
    `hydra_plugins`): the class is registered by hand, and the module name points back to it."""
    from hydra.core.plugins import Plugins

    try:
        import hydra_plugins as root  # installed plugins (e.g. the Ray launcher) share the namespace
    except ImportError:
        root = sys.modules.setdefault("hydra_plugins", types.ModuleType("hydra_plugins"))
        root.__path__ = []  # a package with nothing else in it
    module = sys.modules.setdefault(MODULE, types.ModuleType(MODULE, __doc__))
    module.ProcessesLauncher = ProcessesLauncher  # type: ignore[attr-defined]
    root.rsi_loop = module  # type: ignore[attr-defined]
    Plugins.instance().register(ProcessesLauncher)
