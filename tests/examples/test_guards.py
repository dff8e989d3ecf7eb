"""The guards on synthetic validation surfaces: no training, pure NumPy."""

import numpy as np
import pytest

from examples.common import guards


class Surface:
    """A synthetic validation surface: accuracy per (exponent, epoch).

    Accuracy peaks at exponent `optimum` (a parabola in the exponent) and
    rises with the epochs until `plateau`, then stays flat; every seed
    sees the same curve plus a small per-seed offset.
    """

    def __init__(self, optimum, plateau, seeds=3):
        self.optimum = optimum
        self.plateau = plateau
        self.seeds = seeds
        self.calls = []

    def __call__(self, exponent, epochs):
        self.calls.append((exponent, epochs))
        height = 0.9 - 0.01 * (exponent - self.optimum) ** 2
        best_epoch = min(epochs, self.plateau)
        reached = height * best_epoch / self.plateau
        return [(reached + 1e-4 * s, best_epoch) for s in range(self.seeds)]


def test_interior_maximum_and_early_peak_extend_nothing():
    surface = Surface(optimum=1, plateau=20)
    found = guards.search(surface, [-3, -1, 1, 3, 5], epochs=40)
    assert found.passed and found.reasons() == []
    assert found.exponent == 1
    assert found.grid == [-3, -1, 1, 3, 5] and found.epochs == 40
    assert found.describe() == "held"


def test_maximum_at_the_grid_top_extends_the_grid_until_interior():
    surface = Surface(optimum=7, plateau=20)
    found = guards.search(surface, [-3, -1, 1, 3, 5], epochs=40)
    assert found.passed
    assert found.exponent == 7
    # 7 and 9 added one by one (the grid's own step, 1.5**2); 9 is clearly
    # lower: 7 is interior.
    assert found.grid == [-3, -1, 1, 3, 5, 7, 9]
    assert found.extra_points == {"low": 0, "high": 2}
    assert found.describe() == "held (+2 high)"
    # On the paper's grid (step 1, ratio 1.5): 6, 7 and 8.
    found = guards.search(Surface(7, 20), range(-4, 6), epochs=40)
    assert found.grid == list(range(-4, 9)) and found.exponent == 7


def test_maximum_at_the_grid_bottom_extends_the_low_side():
    found = guards.search(Surface(optimum=-5, plateau=5), [-3, -1, 1], 40)
    assert found.passed and found.exponent == -5
    assert found.extra_points == {"low": 2, "high": 0}


def test_a_noisy_plateau_does_not_stop_the_grid():
    # Flat within the seeds' noise from 2 to 7, then a better mode at 11:
    # the end of a plateau is not "clearly lower", so the grid goes on.
    levels = {1: 0.55, 3: 0.60, 5: 0.60, 7: 0.60, 9: 0.65, 11: 0.655}

    def evaluate(exponent, epochs):
        level = levels.get(exponent, 0.58)
        return [(level + d, 10) for d in (-0.01, 0.0, 0.01)]

    found = guards.search(evaluate, [1, 3, 5], epochs=40)
    assert found.passed and found.exponent == 11
    assert found.grid == [1, 3, 5, 7, 9, 11, 13]


def test_clearly_lower_weighs_the_drop_against_the_seeds_noise():
    assert guards.clearly_lower([0.60, 0.61, 0.62], [0.55, 0.56, 0.57])
    assert not guards.clearly_lower([0.60, 0.61, 0.62], [0.59, 0.61, 0.60])
    assert not guards.clearly_lower([0.6, 0.7, 0.5], [0.55, 0.45, 0.65])


def test_a_maximum_beyond_the_cap_fails_the_grid_guard():
    found = guards.search(Surface(optimum=20, plateau=20), [0, 2], 40)
    assert not found.passed
    assert found.edge == "high"
    assert max(found.grid) == 2 + 2 * guards.MAX_EXTRA_POINTS
    assert "grid's high end" in found.reasons()[0]


def test_a_curve_still_rising_at_the_end_extends_the_budget():
    # Peaks at epoch 70: 40 epochs is not enough, 80 is.
    surface = Surface(optimum=1, plateau=70)
    found = guards.search(surface, [-3, -1, 1, 3, 5], epochs=40)
    assert found.passed and found.epochs == 80
    assert found.describe() == "held (budget 2x)"
    # At the longer budget only the choice and its neighbours are rerun.
    assert {i for i, e in surface.calls if e == 80} == {-1, 1, 3}
    assert found.grid == [-1, 1, 3]


def test_the_budget_guard_checks_every_seed_when_asked():
    """The 3 selection seeds peak at epoch 30 of 40, the other seeds at the
    end: with `confirm` the budget grows, without it it does not."""
    surface = Surface(optimum=1, plateau=30)
    late = []

    def confirm(exponent, epochs):
        late.append((exponent, epochs))
        return [30, 30, 30] + [min(epochs, 70)] * 7

    found = guards.search(surface, [-1, 1, 3], 40, confirm=confirm)
    assert found.epochs == 80 and found.passed
    assert late == [(1, 40), (1, 80)]
    assert len(found.best_epochs) == 10
    assert guards.search(surface, [-1, 1, 3], 40).epochs == 40


def test_a_curve_rising_past_the_cap_fails_the_budget_guard():
    found = guards.search(Surface(optimum=1, plateau=1000), [0, 1, 2], 40)
    assert not found.passed and found.rising
    assert found.epochs == 40 * guards.MAX_BUDGET_FACTOR
    assert "still rising at 4x the budget" in found.reasons()[0]


def test_still_rising_is_the_median_in_the_last_tenth():
    assert guards.still_rising([37, 40, 39], 40)
    assert not guards.still_rising([36, 40, 20], 40)


def test_choice_is_the_argmax_of_the_seed_mean_smallest_on_ties():
    assert guards.choose({-1: 0.5, 0: 0.7, 1: 0.6}) == 0
    assert guards.choose({-1: 0.7, 0: 0.7, 1: 0.6}) == -1


def test_seed_averaging_outvotes_one_lucky_seed():
    def evaluate(exponent, epochs):
        # Seed 0 alone prefers exponent 2; the mean of 3 seeds exponent 1.
        table = {0: [0.5, 0.5, 0.5], 1: [0.6, 0.7, 0.7], 2: [0.65, 0.4, 0.4]}
        return [(v, 10) for v in table.get(exponent, [0.1, 0.1, 0.1])]

    found = guards.search(evaluate, [0, 1, 2], epochs=40)
    assert found.exponent == 1


def test_smoke_searches_never_extend_and_are_unchecked():
    surface = Surface(optimum=20, plateau=1000)
    found = guards.search(surface, [0, 2], epochs=2, guarded=False)
    assert found.grid == [0, 2] and found.epochs == 2
    assert not found.passed and found.reasons() == ["guards off (--smoke)"]
    assert set(surface.calls) == {(0, 2), (2, 2)}


@pytest.mark.parametrize(
    "low, high", [(0.01, 0.02), (-0.02, -0.01), (-0.01, 0.01)]
)
def test_a_failed_guard_is_inconclusive_never_a_verdict(low, high):
    failed = guards.search(Surface(optimum=20, plateau=20), [0, 2], 40)
    held = guards.search(Surface(optimum=1, plateau=20), [0, 1, 2], 40)
    verdict, reason = guards.verdict(
        low, high, {"MK": held.reasons(), "BASELINE": failed.reasons()}
    )
    assert verdict == "inconclusive"
    assert reason.startswith("BASELINE: best rate at the grid's high end")
    verdict, reason = guards.verdict(
        low, high, {"MK": held.reasons(), "BASELINE": held.reasons()}
    )
    assert verdict in ("better", "worse", "no detectable difference")
    assert reason == ""
    verdict, _ = guards.verdict(low, high, {"MK": [], "ENSEMBLE": None})
    assert verdict == "inconclusive"
    verdict, reason = guards.verdict(np.nan, np.nan, {"MK": []})
    assert (verdict, reason) == ("inconclusive", "fewer than 3 seeds")


def test_minimum_detectable_difference_is_2_8_standard_errors():
    differences = [0.01, 0.03, 0.02, 0.00, 0.04]
    expected = 2.8 * np.std(differences, ddof=1) / np.sqrt(5)
    assert guards.minimum_detectable_difference(differences) == (
        pytest.approx(expected)
    )
    assert np.isnan(guards.minimum_detectable_difference([0.1]))


def test_mk_under_sgd_may_go_e_times_higher():
    assert guards.mk_rate_factor(True, "sgd", 3) == 3
    assert guards.mk_rate_factor(True, "adam", 3) == 1
    assert guards.mk_rate_factor(False, "sgd", 3) == 1
    surface = Surface(optimum=30, plateau=20)
    plain = guards.search(surface, [1, 3, 5], epochs=40)
    mk = guards.search(surface, [1, 3, 5], epochs=40, rate_factor=3)
    # Rates at least 3x higher: on the grid of step 2 that is two more
    # points (1.5**4 = 5.1x; one more point, 1.5**2 = 2.25x, falls short).
    assert max(plain.grid) == 13 and max(mk.grid) == 17
    assert mk.edge == "high"


def test_mk_best_at_3x_the_baselines_cap_is_interior():
    # MK's curve is the baseline's moved e = 3 times higher in rate (Lemma
    # B.2): a baseline best at the top of its capped grid (13) puts MK's
    # best near 13 + log(3) / log(1.5) = 15.7. On the grid of step 2 the
    # search must reach 17 to see that 15 is interior.
    surface = Surface(optimum=15.7, plateau=20)
    mk = guards.search(surface, [1, 3, 5], epochs=40, rate_factor=3)
    assert mk.exponent == 15 and mk.passed, mk.reasons()
