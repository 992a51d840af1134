"""Task families: many related tasks, one per `draw`, for measuring an improver on tasks it never saw.

An improver (the machinery that proposes successors: `loop.meta`) is judged the way the field judges
one: frozen, run from scratch on fresh tasks under a fixed budget. A *family* is a recipe for such
tasks; a *draw* (a whole number) picks one member, deterministically: which classes, which label
permutation, how much noise, which random problem, which split. Every member is an ordinary
objective with the five splits (train, proxy, audit, probe, truth), so one family draw can also be
run on its own: `rsi-loop objective=family objective.family=wine objective.draw=3 successor=mlp`.

| family | what a draw changes |
|---|---|
| `digits_subset` | 4 to 7 of the 10 digit classes, relabelled 0..k-1 |
| `digits_permuted` | a random permutation of the 10 labels |
| `digits_noisy` | Gaussian pixel noise of sigma 0.1 to 0.4 (pixels in 0..1) |
| `wine`, `breast_cancer`, `iris` | scikit-learn's bundled tabular sets; the draw reshuffles the split |
| `classification` | `make_classification`: 3 classes, 4 to 10 informative of 20 features, class separation 0.5 to 1.5 |
| `modular` | (a + b) mod p for a prime p from 11 to 31 (token inputs) |

Tabular features are standardised with the train split's mean and spread only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from loop.objective.tasks import Generated, _check_count, split_items
from loop.stages import Split, Task

if TYPE_CHECKING:
    import numpy as np
    import torch

PRIMES = (11, 13, 17, 19, 23, 29, 31)


def _digits() -> tuple["torch.Tensor", "torch.Tensor"]:
    from loop.objective.tasks import digits

    return digits()


def _digits_subset(rng: "np.random.Generator"):
    import torch

    x, y = _digits()
    classes = torch.from_numpy(rng.choice(10, size=int(rng.integers(4, 8)), replace=False))
    keep = torch.isin(y, classes)
    relabel = torch.full((10,), -1, dtype=torch.long)
    relabel[classes] = torch.arange(len(classes))
    return x[keep], relabel[y[keep]], len(classes), {"image": (8, 8)}


def _digits_permuted(rng: "np.random.Generator"):
    import torch

    x, y = _digits()
    return x, torch.from_numpy(rng.permutation(10))[y], 10, {"image": (8, 8)}


def _digits_noisy(rng: "np.random.Generator"):
    import torch

    x, y = _digits()
    noise = torch.from_numpy(rng.standard_normal(x.shape).astype("float32")) * float(rng.uniform(0.1, 0.4))
    return x + noise, y, 10, {"image": (8, 8)}


def _bundled(loader: str) -> Callable:
    def load(rng: "np.random.Generator"):
        import sklearn.datasets
        import torch

        data = getattr(sklearn.datasets, loader)()
        y = torch.tensor(data.target, dtype=torch.long)
        return torch.tensor(data.data, dtype=torch.float32), y, int(y.max()) + 1, {"standardise": True}
    return load


def _classification(rng: "np.random.Generator"):
    import torch
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=800, n_features=20, n_informative=int(rng.integers(4, 11)),
                               n_redundant=2, n_classes=3, class_sep=float(rng.uniform(0.5, 1.5)),
                               random_state=int(rng.integers(2**31 - 1)))
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long), 3, {"standardise": True}


def _modular(rng: "np.random.Generator"):
    import torch

    p = int(rng.choice(PRIMES))
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    x = torch.stack([a.flatten(), b.flatten()], 1)
    return x, (x[:, 0] + x[:, 1]) % p, p, {"inputs": "tokens", "vocab": p, "seq_len": 2}


FAMILIES: dict[str, Callable] = {
    "digits_subset": _digits_subset,
    "digits_permuted": _digits_permuted,
    "digits_noisy": _digits_noisy,
    "wine": _bundled("load_wine"),
    "breast_cancer": _bundled("load_breast_cancer"),
    "iris": _bundled("load_iris"),
    "classification": _classification,
    "modular": _modular,
}


def check_families(names: object, key: str) -> list[str]:
    """`names` as a list of known family names, or a ValueError naming `key` and what is allowed."""
    if isinstance(names, str) or not all(isinstance(n, str) for n in names or []) or not names:
        raise ValueError(f"{key} must be a non-empty list of task families, got {names!r}; "
                         f"known families: {', '.join(FAMILIES)}")
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise ValueError(f"{key} names unknown task famil{'ies' if len(unknown) > 1 else 'y'} "
                         f"{', '.join(map(repr, unknown))}; known families: {', '.join(FAMILIES)}")
    return list(names)


def _standardise(splits: dict[str, Split]) -> dict[str, Split]:
    """Every split scaled by the train split's per-feature mean and spread (no other split leaks in)."""
    train = splits["train"].x
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    return {name: Split((s.x - mean) / std, s.y) for name, s in splits.items()}


@dataclass
class Family(Generated):
    """One draw of a task family. Selected with `objective=family` (`objective.family`, `objective.draw`)."""

    family: str = "wine"
    draw: int = 0  # which member of the family: its knobs and its split

    def __post_init__(self) -> None:
        super().__post_init__()
        check_families([self.family], "objective.family")
        _check_count("draw", self.draw, 0)

    @property
    def name(self) -> str:
        return f"{self.family}#{self.draw}"

    def prepare(self) -> Task:
        import numpy as np

        from loop.engine import derive_seed

        rng = np.random.default_rng(derive_seed("family", self.family, self.draw))
        x, y, n_classes, extra = FAMILIES[self.family](rng)
        splits = split_items(x, y, self.fractions, derive_seed("family split", self.family, self.draw, self.split_seed))
        if extra.pop("standardise", False):
            splits = _standardise(splits)
        inputs = {"inputs": "tokens", "vocab": extra["vocab"], "seq_len": extra["seq_len"]} \
            if extra.get("inputs") == "tokens" else {"image": extra.get("image", ())}
        return Task(self.name, splits, self.budget, in_features=int(x.shape[1]), n_classes=n_classes,
                    compute_penalty=float(self.compute_penalty), target=self.target, **inputs)
