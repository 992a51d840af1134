"""Goodhart measurements: does the proxy the loop optimises still track the hidden truth?

Computed from the ledger's `evaluated` events alone (proxy and truth of every candidate), after
each generation, for the ledger and the report. Nothing here flows back into the loop: the
generator never sees `generation_finished` metrics.

- `gap/incumbent`: the incumbent's proxy minus its truth (the Goodhart gap);
- `gap/selection`: the nominee's gap minus the mean gap of its generation's candidates: how much
  of the gap comes from picking the candidate the proxy overrates most (regressional Goodhart);
- `spearman/proxy_truth`: rank correlation of proxy and truth over the candidates of the last
  `WINDOW` generations: near 1, the proxy orders candidates as the truth would;
- `truth/regret`: the best truth any candidate reached so far minus the incumbent's truth.
"""

from __future__ import annotations

import math
from typing import Sequence

from loop.ledger import Event
from loop.state import settle

WINDOW = 3  # generations of candidates in the rolling rank correlation: enough points, still recent


def goodhart_metrics(events: Sequence[Event], generation: int, incumbent: str,
                     nominee: str | None) -> dict[str, float]:
    from scipy.stats import spearmanr

    settled = settle(events)
    kept = [e for g, evs in settled.generations.items() if g <= generation for e in evs]
    evaluated = [e for e in [*kept, *settled.unfinished] if e.event == "evaluated"]
    by_id = {e.successor: e.metrics for e in evaluated}
    gap = lambda sid: by_id[sid]["proxy"] - by_id[sid]["truth"]  # noqa: E731
    out = {"gap/incumbent": gap(incumbent),
           "truth/regret": max(m["truth"] for m in by_id.values()) - by_id[incumbent]["truth"]}
    here = [e.successor for e in evaluated if e.generation == generation]
    if nominee is not None and here:
        out["gap/selection"] = gap(nominee) - sum(gap(s) for s in here) / len(here)
    recent = [e.metrics for e in evaluated if generation - WINDOW < e.generation <= generation]
    proxies, truths = [m["proxy"] for m in recent], [m["truth"] for m in recent]
    if len(recent) >= 3 and len(set(proxies)) > 1 and len(set(truths)) > 1:  # a constant has no rank order
        rho = spearmanr(proxies, truths).statistic
        if not math.isnan(rho):
            out["spearman/proxy_truth"] = float(rho)
    return out
