"""Meta-utility, one level up (experiment=recursive_improver): what an improver's inner loops achieve.

`evaluate(improver, data)` runs one fresh inner loop per task draw of its split (rows of
`objective=improvers`: family, draw, inner seed), with the improver's genes frozen in
(`loop.meta.improver.improver_config`), and scores it by imp@k: the inner incumbent's truth after k
inner generations minus generation 0's, averaged over the draws. As the proxy (`split: proxy`) it
sees meta-train draws only; as the truth evaluator (`split: truth`) the held-out draws, which feed
only the ledger and the report, as the truth split does one level down.

The inner loops' config is composed from `configs/` with the `inner` overrides (the inner successor
family, generator, execution, evaluator and promotion); the improver sets their generator genes,
candidates per generation (at a fixed compute per generation) and promotion margin.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from loop.stages import DataView, Scores

if TYPE_CHECKING:
    from torch import nn


@dataclass
class MetaUtility:
    """imp@k of an improver's inner loops on its split's task draws. `evaluator=meta_utility`."""

    inner: Sequence[str] = field(default_factory=lambda: ["tracker=none"])  # overrides of the inner config
    generations: int = 3  # k: inner generations after generation 0
    compute: int = 600  # inner candidates x steps per candidate, the same for every improver
    split: str = "proxy"  # proxy: meta-train draws; truth: held-out draws (the truth evaluator)
    gate: str = "off"  # the inner loops' gate: off, or run (the one `inner` composes)
    workers: int = 1  # 1: inner loops in this process; N: on N worker processes of one torch thread each
    _source: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.inner, str) or not all(isinstance(o, str) for o in self.inner):
            raise ValueError(f"inner must be a list of overrides such as ['successor=mlp'], got {self.inner!r}")
        for name, value in (("generations", self.generations), ("compute", self.compute), ("workers", self.workers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        from loop.meta.improver import check_gate

        check_gate(self.gate)
        self.inner = list(self.inner)
        from loop.tools.cli import build_stages

        build_stages(self.source())  # a bad inner config fails now, before the outer run writes anything

    def source(self):
        """The inner loops' base config, composed once from `configs/` (and a user's `--config-dir`)."""
        if self._source is None:
            from hydra import compose, initialize_config_dir
            from hydra.core.global_hydra import GlobalHydra

            from loop.config import CONFIG_DIR, ConfigError

            overrides = [o for o in self.inner if not o.startswith("hydra")]
            try:
                if GlobalHydra.instance().is_initialized():  # inside `rsi-loop`: its search path
                    self._source = compose("config", overrides=overrides)
                else:
                    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
                        self._source = compose("config", overrides=overrides)
            except Exception as err:  # Hydra's own message names the bad override
                raise ConfigError(f"inner={overrides} does not compose into an inner loop's config: "
                                  f"{' '.join(str(err).split())}") from None
        return self._source

    def source_with(self, *overrides: str):
        """The inner config with more overrides (e.g. another gate), composed the same way."""
        return MetaUtility(inner=[*self.inner, *overrides], generations=self.generations, compute=self.compute,
                           split=self.split, gate=self.gate, workers=self.workers).source()

    def evaluate(self, model: "nn.Module", data: DataView) -> Scores:
        from loop.meta.improver import improver_config
        from loop.meta.utility import run_inners
        from loop.objective.improvers import task_draw

        genome = getattr(model, "genome", None)
        if genome is None or genome.family != "improver":
            raise TypeError(f"meta_utility scores improvers (successor=improver), got {type(model).__name__}")
        runs = run_inners([improver_config(self.source(), genome, task_draw(row), self.generations, self.compute,
                                           self.gate) for row in data[self.split].x.tolist()], self.workers)
        imps = [r.imp(self.generations) for r in runs]
        return Scores(statistics.fmean(imps), {
            "area": statistics.fmean(r.area for r in runs),
            "sd": statistics.stdev(imps) if len(imps) > 1 else 0.0,
            "inner_loops": float(len(runs)),
            "inner_trained": float(sum(r.trained for r in runs)),
            "inner_steps": float(sum(r.steps for r in runs)),
            **{f"imp/{i}": v for i, v in enumerate(imps)},  # per draw: paired comparisons read them back
        })
