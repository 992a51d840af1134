"""How reports write numbers and names: one formatter for every report (a run's, a sweep's, the
level above's), so the same value always reads the same."""

from __future__ import annotations

import math
import statistics
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping, Sequence

from loop.ledger import Event


def num(x: Any, sign: bool = False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{x:+.4f}" if sign else f"{x:.4f}"


def short(successor: str | None) -> str:
    return f"`{successor[:8]}`" if successor else "—"


def reasons(e: Event) -> str:
    return "; ".join(e.reasons) if e.reasons else "(no reason recorded)"


def finite(values: Iterable[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def spread(values: Iterable[float | None], sign: bool = False, show: Callable[[float], str] | None = None) -> str:
    """Median and (min–max) of the finite values, e.g. `0.9196 (0.9018–0.9375)`; `—` if none. `show`
    formats each number (default: `num`, 4 decimals)."""
    vs = finite(values)
    if not vs:
        return "—"
    fmt = show or (lambda v: num(v, sign))
    if min(vs) == max(vs):
        return fmt(vs[0])
    return f"{fmt(statistics.median(vs))} ({fmt(min(vs))}–{fmt(max(vs))})"


def counts(values: Sequence[float]) -> str:
    """Median (min–max) of whole numbers, with thousands separators; infinite ones shown as inf."""
    show = lambda v: "inf" if math.isinf(v) else f"{v:,.0f}" if v == int(v) else f"{v:g}"  # noqa: E731
    return f"{show(statistics.median(values))} ({show(min(values))}–{show(max(values))})" \
        if len(set(values)) > 1 else show(values[0])


def tally(counts: Mapping[str, int]) -> str:
    """`calibration 2, shortcut 1`, most frequent first; `—` when nothing vetoed or paused."""
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))) or "—"


def pgr(value: float | None) -> str:
    return "undefined" if value is None else num(value)  # absent where ceiling - weak < 0.05


def utc(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
