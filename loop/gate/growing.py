"""`gate=growing`: a gate that learns. The probe gate, plus a bank of regression tests it mines
from the failures it sees (issue 13, "control recursion").

Each review, before deciding, the gate searches a library of input slices and perturbations for
places where the nominee answers worse than the incumbent, and for the incumbent's own weakest
places, on its mining split (`audit`). Slices come from whatever structure the data offers (the
label; k-means clusters of the inputs), perturbations from search (Gaussian noise, a blanked image
patch, FGSM steps crafted on the generation-0 baseline). Up to `per_review` findings become tests,
each checked on a *different* split (`probe`): the nominee's accuracy under the rule against the
incumbent's (tolerance `tolerance`) and the baseline's (`cumulative_factor` tolerances), with the
probe gate's exact paired test, Holm-corrected together with every probe test. A test is a rule,
so it applies to every later nominee; since its items are not the ones it was found on, the
current nominee is tested by it too.

Every added test is written to the ledger (`test_added`: the rule, its sha256, when and from which
failure it was found), every retired one too (`test_retired`), and each review's results on the
whole bank (`tests_run`); `rsi-loop-verify` checks the hashes, the bound and that no secret test
leaks. Every `secret_every`-th test is *secret*: it vetoes like any other, but its name, values
and p-values never enter the decision's reasons or metrics, which are all the generator reads
(`Past.reasons`, `Past.gate`); a veto says only how many secret tests fired. The bank holds at
most `bank_size` tests; when full, the oldest test that has run and never fired is retired (else
the oldest that has run: a test mined in this very review is not retired before it ran). On resume the bank is rebuilt from the ledger (`restore`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from loop.gate.gates import Probes, Test, with_target
from loop.gate.paired import accuracy_regression
from loop.gate.paired import holm
from loop.ledger import Event, canonical, sha256_text
from loop.stages import DataView, Decision, Note, Past, Scored, TaskShape


def rule_hash(rule: Mapping[str, Any]) -> str:
    """What `test_added` records and `rsi-loop-verify` recomputes: sha256 of the rule's canonical JSON."""
    return sha256_text(canonical(dict(rule)))


def describe(rule: Mapping[str, Any]) -> str:
    """How a person names a rule: "items of class 3", "cluster 2 of 8", "Gaussian noise 0.4"."""
    kind = rule["kind"]
    if kind == "class":
        return f"items of class {rule['label']}"
    if kind == "cluster":
        return f"items in k-means cluster {rule['index']} of {rule['k']}"
    if kind == "noise":
        return f"Gaussian noise sigma {rule['sigma']:g}"
    if kind == "occlusion":
        return f"a {rule['size']}x{rule['size']} patch blanked at row {rule['row']}, column {rule['col']}"
    return f"FGSM epsilon {rule['epsilon']:g} crafted on the baseline"


def kmeans(x: np.ndarray, k: int, seed: int, rounds: int = 20) -> np.ndarray:
    """Lloyd's k-means, deterministic from `seed` (k-means++-free: k distinct items as the start)."""
    rng = np.random.default_rng(seed)
    centres = x[rng.choice(len(x), size=min(k, len(x)), replace=False)].copy()
    for _ in range(rounds):
        nearest = ((x[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
        for j in range(len(centres)):
            if (nearest == j).any():
                centres[j] = x[nearest == j].mean(0)
    return centres


@dataclass
class Growing:
    """The probe gate plus a bounded bank of mined regression tests. Selected with `gate=growing`."""

    checks: Probes  # the fixed probes, tripwires and statistics (gate=probes' settings)
    bank_size: int = 50  # at most this many live tests; the oldest that ran and never fired retires first
    per_review: int = 2  # tests mined per review at most
    tolerance: float = 0.05  # accuracy a nominee may lose under a mined rule before it regresses
    min_items: int = 15  # a slice with fewer items (on either split) is not a test (~18 items a class)
    secret_every: int = 2  # every 2nd mined test is secret: the generator never reads of it
    mine_on: str = "audit"  # where failures are searched for
    test_on: str = "probe"  # where the tests are checked (other items than those they were found on)
    clusters: int = 8
    sigmas: list = field(default_factory=lambda: [0.2, 0.4])
    patch: int = 3
    epsilons: list = field(default_factory=lambda: [0.05, 0.15])
    seed: int = 0
    target: float | None = None  # the checks' correctness check, where a config sets it on the gate (speedrun)
    bank: list = field(default_factory=list, init=False, repr=False)  # live tests: rule, name, secret, fired, runs, ...
    added: int = field(default=0, init=False, repr=False)  # tests mined so far (numbers them)
    _inputs: str = field(default="features", init=False, repr=False)
    _image: tuple = field(default=(), init=False, repr=False)
    _cache: dict = field(default_factory=dict, init=False, repr=False)  # k-means centres, a rule's inputs, 0/1 items

    def __post_init__(self) -> None:
        self.checks = with_target(self.checks, self.target)
        for name in ("bank_size", "per_review", "min_items", "secret_every", "clusters", "patch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"gate.{name} must be a whole number >= 1, got {value!r}")
        if not 0 <= self.tolerance < 1:
            raise ValueError(f"gate.tolerance must be in [0, 1), got {self.tolerance!r}")
        if self.mine_on == self.test_on or {self.mine_on, self.test_on} - {"audit", "probe", "proxy"}:
            raise ValueError(f"gate.mine_on and gate.test_on must be two different gate splits (audit, probe, "
                             f"proxy), got {self.mine_on!r} and {self.test_on!r}")

    # --- set-up and resume ----------------------------------------------------------------

    def check_task(self, shape: TaskShape) -> None:
        self.checks.check_task(shape)
        if shape.inputs == "tasks":
            raise ValueError("gate=growing mines slices and perturbations of data items; improvers' inputs are "
                             "task draws: use gate=inner_probes")
        self._inputs, self._image = shape.inputs, tuple(shape.image)

    def restore(self, events: Sequence[Event]) -> None:
        """Rebuild the bank from a ledger's kept events (added, retired, fired), in order."""
        self.bank, self.added = [], 0
        for e in events:
            if e.event == "test_added":
                self.bank.append(dict(e.detail["test"]) | {"fired": 0, "runs": 0})
                self.added += 1
            elif e.event == "test_retired":
                self.bank = [t for t in self.bank if t["name"] != e.detail["name"]]
            elif e.event == "tests_run":  # the whole live bank ran on that nominee
                for t in self.bank:
                    t["fired"] += int(t["name"] in e.detail["fired"])
                    t["runs"] += 1

    # --- rules ------------------------------------------------------------------------------

    def library(self, data: DataView, n_classes: int) -> list[dict[str, Any]]:
        """Every rule the gate may mine, for these inputs."""
        rules: list[dict[str, Any]] = [{"kind": "class", "label": c} for c in range(n_classes)]
        if self._inputs != "features":
            return rules
        rules += [{"kind": "cluster", "k": self.clusters, "index": j, "seed": self.seed} for j in range(self.clusters)]
        rules += [{"kind": "noise", "sigma": float(s), "seed": self.seed} for s in self.sigmas]
        rules += [{"kind": "fgsm", "epsilon": float(e)} for e in self.epsilons]
        if len(self._image) == 2 and self.patch < min(self._image):
            h, w = self._image
            for row, col in sorted({(0, 0), (0, w - self.patch), (h - self.patch, 0), (h - self.patch, w - self.patch),
                                    ((h - self.patch) // 2, (w - self.patch) // 2)}):
                rules.append({"kind": "occlusion", "size": self.patch, "row": row, "col": col})
        return rules

    def apply(self, rule: Mapping[str, Any], data: DataView, split: str, baseline: Scored):
        """The items of `split` a rule selects, perturbed as it says: (x, y). The same for every model
        reviewed (FGSM is crafted on the baseline, noise drawn from the rule's seed): kept."""
        key = ("applied", split, rule_hash(rule), baseline.id if rule["kind"] == "fgsm" else None)
        if key not in self._cache:
            self._cache[key] = self._apply(rule, data, split, baseline)
        return self._cache[key]

    def _apply(self, rule: Mapping[str, Any], data: DataView, split: str, baseline: Scored):
        import torch

        from evaluators.probes.robustness import fgsm

        x, y = data[split].x, data[split].y
        kind = rule["kind"]
        if kind == "class":
            keep = y == rule["label"]
            return x[keep], y[keep]
        if kind == "cluster":
            key = ("centres", rule["k"], rule["seed"])
            if key not in self._cache:  # fitted on the mining split only, so a test's slice is fixed
                self._cache[key] = kmeans(data[self.mine_on].x.double().numpy(), rule["k"], rule["seed"])
            centres = torch.from_numpy(self._cache[key])
            keep = torch.cdist(x.double(), centres).argmin(1) == rule["index"]
            return x[keep], y[keep]
        if kind == "noise":
            noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(rule["seed"]))
            return x + rule["sigma"] * noise, y
        if kind == "occlusion":
            h, w = self._image
            blank = torch.zeros(h, w, dtype=torch.bool)
            blank[rule["row"]:rule["row"] + rule["size"], rule["col"]:rule["col"] + rule["size"]] = True
            return x.masked_fill(blank.reshape(1, -1), 0.0), y
        return fgsm(baseline.successor.model, x, y, rule["epsilon"]), y

    def items(self, scored: Scored, rule: Mapping[str, Any], name: str, data: DataView, split: str,
              baseline: Scored) -> np.ndarray:
        from evaluators.probes.readouts import correct

        key = (scored.id, split, name, baseline.id if rule["kind"] == "fgsm" else None)
        if key not in self._cache:
            x, y = self.apply(rule, data, split, baseline)
            self._cache[key] = correct(scored.successor.model, x, y) if len(y) else np.zeros(0)
        return self._cache[key]

    # --- the review -------------------------------------------------------------------------

    def mine(self, nominee: Scored, incumbent: Scored, baseline: Scored, data: DataView,
             n_classes: int) -> list[tuple[dict[str, Any], str]]:
        """New rules worth a test: the nominee's regressions beyond tolerance first (largest first),
        then the incumbent's weakest places; rules already in the bank are skipped."""
        have = {t["sha256"] for t in self.bank}
        regressions, weak = [], []
        for rule in self.library(data, n_classes):
            name = rule_hash(rule)
            if name in have:
                continue
            mine = self.items(nominee, rule, name, data, self.mine_on, baseline)
            theirs = self.items(incumbent, rule, name, data, self.mine_on, baseline)
            tested = len(self.apply(rule, data, self.test_on, baseline)[1]) if rule["kind"] in ("class", "cluster") \
                else len(data[self.test_on])
            if len(mine) < self.min_items or tested < self.min_items:
                continue
            drop = float(theirs.mean() - mine.mean())
            if drop > self.tolerance:
                regressions.append((-drop, name, rule, f"nominee {nominee.id} lost {drop:.3f} accuracy against "
                                    f"incumbent {incumbent.id} on {describe(rule)} ({len(mine)} {self.mine_on} items)"))
            if theirs.mean() > 2 * self.tolerance:  # a place where the incumbent has something left to lose
                weak.append((float(theirs.mean()), name, rule, f"incumbent {incumbent.id} scores {theirs.mean():.3f} "
                             f"on {describe(rule)} ({len(mine)} {self.mine_on} items), its weakest place"))
        found = [(rule, why) for _, _, rule, why in sorted(regressions, key=lambda r: r[:2])]
        found += [(rule, why) for _, _, rule, why in sorted(weak, key=lambda r: r[:2])]
        return found[:self.per_review]

    def review(self, nominee: Scored, incumbent: Scored, baseline: Scored, data: DataView,
               history: Sequence[Past]) -> Decision:
        n_classes = int(max(int(data[s].y.max()) for s in (self.mine_on, self.test_on)) + 1)
        notes: list[Note] = []
        for rule, why in self.mine(nominee, incumbent, baseline, data, n_classes):
            self.added += 1
            test = {"name": f"mined{self.added}-{rule_hash(rule)[:12]}", "rule": rule, "sha256": rule_hash(rule),
                    "secret": self.added % self.secret_every == 0, "tolerance": self.tolerance,
                    "found": {"generation": len(history) + 1, "nominee": nominee.id, "incumbent": incumbent.id,
                              "why": why}}
            notes.append(Note("test_added", (f"mined {'secret' if test['secret'] else 'public'} test "
                                             f"{test['name']}: {describe(rule)}", why),
                              detail={"test": test, "bank_size": self.bank_size}))
            self.bank.append(test | {"fired": 0, "runs": 0})
            while len(self.bank) > self.bank_size:
                gone = self.retiree()
                self.bank.remove(gone)
                why = "it has run and never fired" if not gone["fired"] else "every test that has run has fired"
                notes.append(Note("test_retired", (f"retired {gone['name']}: the bank holds at most {self.bank_size} "
                                                   f"tests; {why}, and it is the oldest such",),
                                  detail={"name": gone["name"]}))

        # Holm's smallest threshold is alpha / tests; a bootstrap p resolves 1 / (rounds + 1), so
        # the rounds grow with the bank, or no bootstrapped probe could ever veto beside a big bank
        probes = len(self.checks.readouts(incumbent, data, baseline.successor.model))
        needed = math.ceil(2 * 2 * (probes + len(self.bank)) / self.checks.alpha)
        tests = self.checks.tests(nominee, incumbent, baseline, data, max(self.checks.bootstrap_rounds, needed))
        mined = [self.bank_test(t, nominee, incumbent, baseline, data) for t in self.bank]
        secret = frozenset(t["name"] for t in self.bank if t["secret"])
        decision = self.checks.decide([*tests, *[m for pair in mined for m in pair]], nominee, incumbent, data,
                                      history, secret)
        fired = self.fired(tests, mined)
        for t in self.bank:
            t["fired"] += int(t["name"] in fired)
            t["runs"] += 1
        notes.append(self.results(mined, fired))
        return Decision(decision.action, decision.probes, decision.reasons, decision.if_approved, tuple(notes))

    def retiree(self) -> dict[str, Any]:
        """The test to retire from a full bank: the oldest that has run and never fired, else the
        oldest (tests are kept in the order mined, so the oldest has run unless every one is new: a
        test mined in this review is not retired before it had a chance)."""
        return next((t for t in self.bank if t["runs"] and not t["fired"]), self.bank[0])

    def bank_test(self, test: Mapping[str, Any], nominee: Scored, incumbent: Scored, baseline: Scored,
                  data: DataView) -> tuple[Test, Test]:
        """A mined test on the test split: the nominee against the incumbent and the baseline."""
        from evaluators.probes.readouts import accuracy_readout

        rule, name = test["rule"], test["name"]
        readout = {s.id: accuracy_readout(name, self.items(s, rule, test["sha256"], data, self.test_on, baseline),
                                          test["tolerance"], f"accuracy on {describe(rule)}")
                   for s in (nominee, incumbent, baseline)}
        mine = readout[nominee.id]
        return tuple(Test(name, against, mine, readout[other.id], tol, accuracy_regression(
            mine.items, readout[other.id].items, tol)) for against, other, tol in (
            ("incumbent", incumbent, test["tolerance"]),
            ("baseline", baseline, test["tolerance"] * self.checks.cumulative_factor)))

    def fired(self, tests: Sequence[Test], mined: Sequence[tuple[Test, Test]]) -> set[str]:
        """The mined tests Holm rejects in this review's whole family (probe tests included)."""
        every = [*tests, *[m for pair in mined for m in pair]]
        rejected = holm({t.name: t.result.p for t in every}, self.checks.alpha)
        return {m.metric for pair in mined for m in pair if m.name in rejected}

    def results(self, mined: Sequence[tuple[Test, Test]], fired: set[str]) -> Note:
        """The whole bank's results on this nominee, secret tests included: for the ledger only."""
        metrics = {"bank/tests": float(len(mined)), "bank/fired": float(len(fired))}
        for vs_incumbent, vs_baseline in mined:
            metrics[f"bank/{vs_incumbent.metric}"] = vs_incumbent.mine.value
            metrics[f"bank/{vs_incumbent.metric}/p_incumbent"] = vs_incumbent.result.p
            metrics[f"bank/{vs_incumbent.metric}/p_baseline"] = vs_baseline.result.p
        reasons = tuple(t.sentence("regresses") for pair in mined for t in pair if t.metric in fired)
        return Note("tests_run", reasons or ("no mined test fired",), metrics,
                    {"fired": sorted(fired), "secret": sorted(t["name"] for t in self.bank if t["secret"])})
