"""The protocol's guards: a verdict only where rate and budget were found.

A comparison of two algorithms at "their best learning rate" means nothing
when the best rate lies at the end of the grid (a better one may lie
beyond), or when the validation accuracy still rises at the end of the
budget (a longer run may do better). `search` chooses an algorithm's rate
on the validation accuracy averaged over several seeds and extends the grid
and the budget until both are found, or until a cap; `Search.passed` says
whether both guards held, and `verdict` gives `inconclusive` (with the
reason) unless they held for both algorithms compared.

Pure Python and NumPy: the tests drive `search` with synthetic validation
surfaces instead of training.
"""

import dataclasses

import numpy as np

from examples.common import results

# The grid is `base * 1.5**i`; extending it adds the next `i` on that side
# (the starting grid's own step: 1 on the paper's grid, 2 on every other
# point of it).
GRID_RATIO = 1.5
# At most this many points beyond the starting grid on each side (5x the
# edge rate on the paper's grid, 25x on every other point): Lemma B.2 puts
# MK's effective SGD rate at `lr / e`, so with e = 3 MK's best rate may lie
# ~3x beyond a baseline's; and on MNIST-1D's A1 under Adam every algorithm
# is best near 0.06, 8x the top of the paper's grid.
MAX_EXTRA_POINTS = 4
# A grid's end is "clearly lower" than the best when the drop exceeds this
# many standard errors of the difference of the two seed means.
CLEARLY_LOWER = 2.0
# The budget is "still rising" when the median best-validation epoch lies in
# the last 10% of it; it then doubles, up to 4x the starting budget.
LAST_FRACTION = 0.1
BUDGET_STEP = 2
MAX_BUDGET_FACTOR = 4
# 80% power at the 5% level (two-sided), normal approximation:
# z(0.975) + z(0.80) = 1.96 + 0.84.
POWER_FACTOR = 2.8
# A run diverged when its outputs stopped being finite, or when its best
# validation accuracy is within this much of chance (it never learned).
CHANCE_MARGIN = 0.05
# "No detectable difference" says nothing when the seeds detect only
# differences this large: MK's measured effects are 1-3 points.
UNINFORMATIVE = 0.05


@dataclasses.dataclass
class Search:
    """Where one algorithm's guarded search ended.

    Attributes:
        grid: the exponents `i` of the final grid (sorted).
        start_grid: the exponents it started from.
        exponent: the chosen exponent.
        epochs: the final budget.
        start_epochs: the starting budget.
        validation: `{exponent: mean validation accuracy}` at `epochs`.
        best_epochs: the chosen point's best epochs (1-based), per seed.
        edge: `"low"` or `"high"` when the choice is still at that end of
            the grid (the grid guard failed), else None.
        rising: the median best epoch is in the last `LAST_FRACTION` of
            the final budget (the budget guard failed).
        checked: False when the guards were off (`--smoke`).
    """

    grid: list
    start_grid: list
    exponent: int
    epochs: int
    start_epochs: int
    validation: dict
    best_epochs: list
    edge: str = None
    rising: bool = False
    checked: bool = True

    @property
    def passed(self):
        """Both guards checked and held."""
        return self.checked and self.edge is None and not self.rising

    @property
    def extra_points(self):
        """`{"low": n, "high": n}`: grid points beyond the starting grid."""
        return {
            "low": sum(i < min(self.start_grid) for i in self.grid),
            "high": sum(i > max(self.start_grid) for i in self.grid),
        }

    def reasons(self):
        """Why the guards failed (empty when they held)."""
        if not self.checked:
            return ["guards off (--smoke)"]
        found = []
        if self.edge:
            found.append(
                f"best rate at the grid's {self.edge} end "
                f"(cap: {MAX_EXTRA_POINTS} extra points)"
            )
        if self.rising:
            found.append(
                "still rising at "
                f"{self.epochs // self.start_epochs}x the budget (cap)"
            )
        return found

    def describe(self):
        """One cell: the guards' outcome and what they extended."""
        if not self.checked:
            return "off (smoke)"
        extra = self.extra_points
        parts = [f"+{n} {side}" for side, n in extra.items() if n]
        if self.epochs != self.start_epochs:
            parts.append(f"budget {self.epochs // self.start_epochs}x")
        state = (
            "held" if self.passed else "FAILED: " + "; ".join(self.reasons())
        )
        return state + (f" ({', '.join(parts)})" if parts else "")

    def as_dict(self):
        """JSON-ready fields of the search and its outcome."""
        return {
            "grid": list(self.grid),
            "start_grid": list(self.start_grid),
            "exponent": self.exponent,
            "epochs": self.epochs,
            "start_epochs": self.start_epochs,
            "edge": self.edge,
            "rising": self.rising,
            "checked": self.checked,
            "passed": self.passed,
            "reasons": self.reasons(),
            "guards": self.describe(),
        }


def choose(validation):
    """The exponent of best mean validation accuracy (smallest on ties)."""
    exponents = sorted(validation)
    return exponents[int(np.argmax([validation[i] for i in exponents]))]


def edge_of(grid, exponent):
    """`"low"` / `"high"` when `exponent` is an end of `grid`, else None."""
    if len(grid) > 1 and exponent == min(grid):
        return "low"
    if len(grid) > 1 and exponent == max(grid):
        return "high"
    return None


def still_rising(best_epochs, epochs, fraction=LAST_FRACTION):
    """The median best epoch (1-based) lies in the last `fraction`."""
    return float(np.median(best_epochs)) > (1 - fraction) * epochs


def _neighbours(grid, exponent):
    """`exponent` and its neighbours in `grid`: the grid after a longer
    budget (the optimum moves little; the edge guard follows it)."""
    index = grid.index(exponent)
    return grid[max(index - 1, 0) : index + 2]


def clearly_lower(best, end, standard_errors=CLEARLY_LOWER):
    """The grid's end is clearly below the best, not within the noise.

    Args:
        best, end: per-seed validation accuracies of the best point and of
            the grid's end point.
        standard_errors: how many standard errors of the difference of
            the two means the drop must exceed.

    Returns:
        True when `mean(best) - mean(end)` exceeds `standard_errors` times
        `sqrt(var(best) / n + var(end) / m)`.
    """
    best, end = np.asarray(best, "float64"), np.asarray(end, "float64")
    spread = 0.0
    if len(best) > 1 and len(end) > 1:
        spread = np.sqrt(
            best.var(ddof=1) / len(best) + end.var(ddof=1) / len(end)
        )
    return float(best.mean() - end.mean()) > standard_errors * spread


def _sides_to_extend(grid, chosen, values):
    """The sides of `grid` to extend: where the best is the end, or where
    the end is not clearly lower than the best (a plateau within the noise
    may hide a better rate beyond it)."""
    return [
        side
        for side, end in (("low", min(grid)), ("high", max(grid)))
        if end == chosen or not clearly_lower(values[chosen], values[end])
    ]


def search(
    evaluate, exponents, epochs, guarded=True, rate_factor=1, confirm=None
):
    """Chooses a rate on seed-averaged validation accuracy, guarded.

    The grid grows by its own step (`exponents`' smallest gap: ratio 1.5
    on the paper's grid, 1.5**2 on every other point of it) on a side while
    the best rate is that end of the grid or that end is not clearly lower
    than the best (`clearly_lower`), at most `MAX_EXTRA_POINTS` beyond the
    starting grid per side; the budget grows while the median best epoch
    of the best rate is in the last `LAST_FRACTION` of it.

    Args:
        evaluate: `(exponent, epochs) -> [(val_accuracy, best_epoch)]`, one
            pair per selection seed, read at the best validation epoch
            (`best_epoch` 1-based). Called again with the same arguments
            when a point is needed again: it should cache.
        exponents: the starting grid's exponents.
        epochs: the starting budget.
        guarded: False evaluates the starting grid only (`--smoke`).
        rate_factor: the high cap is this many times higher (MK under SGD:
            `e`, Lemma B.2's `lr / e`; `mk_rate_factor`).
        confirm: optional `(exponent, epochs) -> [best_epoch]` over every
            seed of the final runs: the budget guard then checks all seeds
            at the chosen rate, not only the selection seeds.

    Returns:
        A `Search`.
    """
    start = sorted(set(exponents))
    step = int(min(np.diff(start))) if len(start) > 1 else 1
    # MK's cap at least `rate_factor` times higher, in whole grid steps:
    # rounding down on a coarse grid (1.5**2 = 2.25 < e = 3) would cap MK
    # below the rates Lemma B.2 points it to.
    beyond = np.log(rate_factor) / np.log(GRID_RATIO)
    beyond = step * int(np.ceil(beyond / step - 1e-9))
    bounds = {
        "low": min(start) - MAX_EXTRA_POINTS * step,
        "high": max(start) + MAX_EXTRA_POINTS * step + beyond,
    }
    grid, start_epochs = list(start), epochs
    while True:
        values = {i: [v for v, _ in evaluate(i, epochs)] for i in grid}
        validation = {i: float(np.mean(v)) for i, v in values.items()}
        chosen = choose(validation)
        sides = _sides_to_extend(grid, chosen, values) if guarded else []
        new = [
            min(grid) - step if side == "low" else max(grid) + step
            for side in sides
        ]
        new = [i for i in new if bounds["low"] <= i <= bounds["high"]]
        if new:
            grid = sorted(grid + new[:1])
            continue
        edge = edge_of(grid, chosen)
        if guarded and confirm is not None:
            best_epochs = list(confirm(chosen, epochs))
        else:
            best_epochs = [b for _, b in evaluate(chosen, epochs)]
        rising = still_rising(best_epochs, epochs)
        longer = epochs * BUDGET_STEP
        if guarded and rising and longer <= start_epochs * MAX_BUDGET_FACTOR:
            grid, epochs = _neighbours(grid, chosen), longer
            continue
        return Search(
            grid=grid,
            start_grid=start,
            exponent=chosen,
            epochs=epochs,
            start_epochs=start_epochs,
            validation=validation,
            best_epochs=best_epochs,
            edge=edge if guarded else None,
            rising=rising if guarded else False,
            checked=guarded,
        )


def mk_rate_factor(algorithm_is_mk, optimizer, expansion):
    """How much higher an algorithm's rate cap lies: `e` for MK under SGD.

    Lemma B.2: under SGD the mean of MK's copies moves at `lr / e`, so its
    best rate can lie `e` times above a baseline's (measured on MNIST-1D
    A2: BASELINE-LONG best at 2.2, MK still rising at 4.9, the cap of the
    plain grid). Adam's steps do not scale with the gradient: 1.
    """
    return expansion if algorithm_is_mk and optimizer == "sgd" else 1


def minimum_detectable_difference(differences):
    """The smallest mean difference the seeds could detect.

    `2.8 * sd(differences) / sqrt(n)`: a paired difference of this size is
    found at the 5% level (two-sided) with 80% power, by the normal
    approximation (`z(0.975) + z(0.8) = 2.8`); NaN below two seeds.
    """
    differences = np.asarray(differences, dtype="float64")
    if len(differences) < 2:
        return float("nan")
    spread = differences.std(ddof=1)
    return float(POWER_FACTOR * spread / np.sqrt(len(differences)))


def budget_reasons(best_epochs, epochs):
    """The budget guard on every seed's run, not only the selection seeds'.

    The search checks the best epochs of the selection seeds; the other
    seeds may still peak at the end of the budget. Returns the reason the
    guard fails over all seeds (a list of at most one), empty when it holds.
    """
    if not still_rising(best_epochs, epochs):
        return []
    return [
        f"median best epoch {np.median(best_epochs):g} of {epochs} over all "
        f"{len(best_epochs)} seeds (in the last {LAST_FRACTION:.0%})"
    ]


def chance_level(labels):
    """The accuracy of always predicting the most frequent label."""
    labels = np.asarray(labels)
    if not len(labels):
        return 0.0
    return float(np.bincount(labels).max() / len(labels))


def diverged(val_accuracy, nonfinite_epoch, chance):
    """Whether a run diverged at its rate.

    Args:
        val_accuracy: its validation accuracy after every epoch.
        nonfinite_epoch: the first epoch its outputs were not finite, or
            None.
        chance: `chance_level` of the validation labels.

    Returns:
        True when its outputs stopped being finite, or its best validation
        accuracy is within `CHANCE_MARGIN` of chance.
    """
    if nonfinite_epoch is not None:
        return True
    return float(np.max(val_accuracy)) <= chance + CHANCE_MARGIN


def divergence_reasons(seeds):
    """The divergence guard: a reason naming the diverged seeds, if any.

    An algorithm whose chosen rate diverges on some seeds has no firm
    verdict: its mean mixes runs that learned with runs that did not, so
    its spread swamps any effect and its rate sits at the edge of
    stability. Every comparison with it becomes `inconclusive`, naming
    the seeds, rather than stepping the rate down: the rate stays the one
    validation chose, and the failure stays visible.
    """
    if not seeds:
        return []
    return [f"diverged at its rate on seed(s) {sorted(seeds)}"]


def verdict(low, high, reasons, detectable=float("nan")):
    """The verdict of a paired interval, only where the guards held.

    Args:
        low, high: the interval of the mean difference.
        reasons: `{algorithm: list of reasons}` of the two compared: why
            each one's guards failed (`Search.reasons()`; empty when they
            held, None when it was never searched).
        detectable: `minimum_detectable_difference` of the pairs: a "no
            detectable difference" whose detectable difference exceeds
            `UNINFORMATIVE` says so in its reason.

    Returns:
        `(verdict, reason)`: `"better"`, `"worse"` or `"no detectable
        difference"` with reason `""` (or why it is uninformative), or
        `"inconclusive"` with why.
    """
    found = []
    for name, failed in reasons.items():
        if failed is None:
            found.append(f"{name}: not searched")
        else:
            found += [f"{name}: {r}" for r in failed]
    if not np.isfinite(low) or not np.isfinite(high):
        found.append("fewer than 3 seeds")
    if found:
        return "inconclusive", "; ".join(dict.fromkeys(found))
    found = results.verdict(low, high)
    if found == "no detectable difference" and detectable > UNINFORMATIVE:
        return found, (
            f"uninformative: the seeds detect only differences of "
            f"{100 * detectable:.1f} pts or more"
        )
    return found, ""
