"""The runner's learning-rate selection and statistics, on known cases."""

import numpy as np
import pytest

from examples.common import guards
from examples.common import results
from examples.common import runner

HELD = guards.Search(
    grid=[0, 1, 2],
    start_grid=[0, 1, 2],
    exponent=1,
    epochs=10,
    start_epochs=10,
    validation={},
    best_epochs=[5],
).as_dict()


def test_learning_rate_grid_is_the_papers():
    np.testing.assert_allclose(
        runner.learning_rates("adam", [-4, 0, 5]),
        [0.001 / 1.5**4, 0.001, 0.001 * 1.5**5],
    )
    np.testing.assert_allclose(runner.learning_rates("sgd", [0]), [0.025])


def test_mean_ci_is_the_student_t_interval():
    mean, half = results.mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0
    # t(0.975, df=2) = 4.3027; standard error 1 / sqrt(3).
    assert half == pytest.approx(4.302653 / np.sqrt(3), rel=1e-5)
    mean, half = results.mean_ci([0.7])
    assert mean == 0.7 and np.isnan(half)
    assert results.format_ci(0.7, half) == "70.00 (1 seed)"


def test_bootstrap_ci_on_known_cases():
    # Identical differences: the interval is that point.
    assert results.bootstrap_ci([0.02] * 5) == (0.02, 0.02)
    # Many draws of N(1, 1): the percentile interval of the mean is close
    # to the normal one, mean +/- 1.96 / sqrt(n).
    differences = np.random.default_rng(0).normal(1.0, 1.0, size=400)
    low, high = results.bootstrap_ci(differences)
    center = differences.mean()
    half = 1.96 * differences.std(ddof=1) / np.sqrt(400)
    assert low == pytest.approx(center - half, abs=0.02)
    assert high == pytest.approx(center + half, abs=0.02)
    # Reproducible: the resampling is seeded.
    assert results.bootstrap_ci(differences) == (low, high)
    assert np.isnan(results.bootstrap_ci([0.1, 0.2])[0])


def test_verdicts():
    assert results.verdict(0.001, 0.02) == "better"
    assert results.verdict(-0.02, -0.001) == "worse"
    assert results.verdict(-0.01, 0.02) == "no detectable difference"
    assert results.verdict(float("nan"), float("nan")) == "too few seeds"
    symmetric = [-0.02, 0.02, -0.01, 0.01, 0.0]
    low, high = results.bootstrap_ci(symmetric)
    assert results.verdict(low, high) == "no detectable difference"


def _record(
    algorithm, seed, test, train=0.9, val=0.5, search=HELD, best_epoch=5
):
    return {
        "dataset": "d",
        "topology": "A1",
        "optimizer": "adam",
        "algorithm": algorithm,
        "seed": seed,
        "learning_rate": 0.001,
        "epochs": 10,
        "best_epoch": best_epoch,
        "val_accuracy": val,
        "test_accuracy": test,
        "train_accuracy": train,
        "search": search,
        "inference_params": 10,
        "training_params": 30,
        "seconds": 1.0,
    }


def test_paired_comparisons_pair_seeds_and_give_verdicts():
    runs = [_record("BASELINE", s, 0.50 + 0.01 * s) for s in range(5)]
    runs += [_record("MAJORITY KERNELS", s, 0.53 + 0.01 * s) for s in range(5)]
    runs += [_record("ENSEMBLE", s, 0.60 - 0.01 * s) for s in range(5)]
    rows = {r["versus"]: r for r in runner.paired_comparisons(runs)}
    assert rows["BASELINE"]["differences"] == pytest.approx([0.03] * 5)
    assert rows["BASELINE"]["verdict"] == "better"
    assert rows["BASELINE"]["minimum_detectable"] == pytest.approx(0.0)
    assert rows["ENSEMBLE"]["verdict"] == "worse"
    headline = runner.paired_comparisons(runs)[0]
    assert headline["headline"]
    assert headline["versus"] == "better baseline (BASELINE)"
    summary = {r["algorithm"]: r for r in runner.summarize(runs)}
    assert summary["BASELINE"]["test_accuracy_mean"] == pytest.approx(0.52)
    assert summary["BASELINE"]["gap_mean"] == pytest.approx(0.9 - 0.52)


def test_headline_is_against_the_better_baseline_on_validation():
    runs = [_record("BASELINE", s, 0.60, val=0.50) for s in range(3)]
    runs += [_record("BASELINE-LONG", s, 0.55, val=0.52) for s in range(3)]
    runs += [_record("MAJORITY KERNELS", s, 0.56 + 0.001 * s) for s in range(3)]
    headline = runner.paired_comparisons(runs)[0]
    # BASELINE-LONG validates better, even though BASELINE tests better.
    assert headline["versus"] == "better baseline (BASELINE-LONG)"
    assert headline["verdict"] == "better"


def test_a_failed_guard_makes_the_comparison_inconclusive():
    failed = dict(HELD, reasons=["validation accuracy still rising at 4x"])
    runs = [_record("BASELINE", s, 0.50, search=failed) for s in range(5)]
    runs += [_record("MAJORITY KERNELS", s, 0.60) for s in range(5)]
    for row in runner.paired_comparisons(runs):
        assert row["verdict"] == "inconclusive"
        assert row["reason"] == (
            "BASELINE: validation accuracy still rising at 4x"
        )


def test_a_kept_run_reads_back_and_truncates():
    from examples.common import algorithms

    curves = {"val_accuracy": [0.1, 0.3, 0.2], "test_accuracy": [0.1, 0.2, 0.3]}
    run = algorithms.Run(
        algorithm="BASELINE-LONG",
        seed=1,
        learning_rate=0.01,
        curves=curves,
        deployed=None,
        training_params=10,
        seconds=3.0,
        inference_params=10,
    )
    back = algorithms.Run.from_record(dict(run.as_record(), key="k"))
    assert back.curves == curves and back.inference_params == 10
    assert back.best_epoch == 1 and back.at_best("test") == 0.2
    short = run.truncated("BASELINE", 1)
    assert short.algorithm == "BASELINE" and short.seconds == 1.0
    assert short.curves["val_accuracy"] == [0.1]
    assert short.extra == {"read_from": "BASELINE-LONG"}


def test_a_diverged_mk_run_deploys_the_plain_model():
    import keras_mk
    from examples.common import algorithms
    from examples.common.models import build_mlp

    plain = build_mlp((4,), 3, (5,))
    mk_model = keras_mk.clone_model(plain, expansion=2)
    assert algorithms._collapsed(mk_model, plain) is not plain
    mk_model.weights[0].assign(np.full(mk_model.weights[0].shape, np.nan))
    assert algorithms._collapsed(mk_model, plain) is plain


def test_every_seeds_budget_is_checked_not_only_the_selection_seeds():
    """The selection seeds peaked early (their guard held), but the median
    of all seeds' best epochs is in the last tenth of the budget: the
    comparison is inconclusive, and says why."""
    late = [10, 10, 10, 3, 2]  # selection seeds first: median 10 of 10
    runs = [_record("BASELINE", s, 0.50) for s in range(5)]
    runs += [
        _record("MAJORITY KERNELS", s, 0.60, best_epoch=late[s])
        for s in range(5)
    ]
    rows = runner.paired_comparisons(runs)
    for row in rows:
        assert row["verdict"] == "inconclusive"
        assert "MAJORITY KERNELS" in row["reason"]
        assert "median best epoch 10 of 10 over all 5 seeds" in row["reason"]
    early = [
        _record("MAJORITY KERNELS", s, 0.60, best_epoch=9) for s in range(5)
    ]
    rows = runner.paired_comparisons(runs[:5] + early)
    assert {row["verdict"] for row in rows} == {"better"}


def _diverged(record, diverged=True):
    return dict(record, diverged=diverged)


def test_a_seed_diverged_at_an_algorithms_rate_leaves_no_firm_verdict():
    # MK wins every seed by 3 points, except that BASELINE diverged on
    # seed 2 (chance accuracy): without the guard, a firm "better".
    baseline = [_record("BASELINE", s, 0.50 + 0.01 * s) for s in range(6)]
    baseline[2] = _diverged(dict(baseline[2], test_accuracy=0.1))
    mk = [_record("MAJORITY KERNELS", s, 0.53 + 0.01 * s) for s in range(6)]
    rows = runner.paired_comparisons(baseline + mk)
    for row in rows:
        assert row["verdict"] == "inconclusive"
        assert "BASELINE: diverged at its rate on seed(s) [2]" in row["reason"]
    # The same seeds without the diverged flag: a firm verdict.
    healthy = [dict(r, diverged=False) for r in baseline]
    assert runner.paired_comparisons(healthy + mk)[0]["verdict"] == "better"


def test_mk_diverging_makes_its_comparisons_inconclusive():
    baseline = [_record("BASELINE", s, 0.50 + 0.01 * s) for s in range(6)]
    mk = [_record("MAJORITY KERNELS", s, 0.53 + 0.01 * s) for s in range(6)]
    mk[0] = _diverged(mk[0])
    mk[4] = _diverged(mk[4])
    (row,) = runner.paired_comparisons(baseline + mk)[1:]
    assert row["verdict"] == "inconclusive"
    assert (
        "MAJORITY KERNELS: diverged at its rate on seed(s) [0, 4]"
        in (row["reason"])
    )


def test_diverged_means_not_finite_or_never_above_chance():
    assert guards.diverged([0.1, 0.12, 0.11], None, chance=0.1)
    assert guards.diverged([0.5, 0.6], nonfinite_epoch=2, chance=0.1)
    assert not guards.diverged([0.1, 0.4, 0.1], None, chance=0.1)
    assert guards.chance_level([0, 0, 1, 2]) == 0.5


def test_a_no_difference_verdict_says_when_it_is_uninformative():
    # Paired differences of +-20 points: nothing under ~25 is detectable.
    baseline = [_record("BASELINE", s, 0.5) for s in range(6)]
    mk = [
        _record("MAJORITY KERNELS", s, 0.5 + (0.2 if s % 2 else -0.2))
        for s in range(6)
    ]
    row = runner.paired_comparisons(baseline + mk)[0]
    assert row["verdict"] == "no detectable difference"
    assert row["reason"].startswith("uninformative: the seeds detect only")
    # Tight differences: a plain verdict.
    mk = [
        _record("MAJORITY KERNELS", s, 0.5 + (0.002 if s % 2 else -0.002))
        for s in range(6)
    ]
    row = runner.paired_comparisons(baseline + mk)[0]
    assert (row["verdict"], row["reason"]) == ("no detectable difference", "")


def test_mk_lora_headline_is_the_best_of_the_three_lora_baselines():
    runs = []
    for name, val, test in (
        ("LORA", 0.40, 0.40),
        ("LORA-LONG", 0.42, 0.41),
        ("LORA (rank e x r)", 0.45, 0.43),
        ("MK-LORA", 0.44, 0.45),
    ):
        runs += [_record(name, s, test + 0.001 * s, val=val) for s in range(5)]
    rows = runner.paired_comparisons(runs)
    assert rows[0]["algorithm"] == "MK-LORA"
    assert rows[0]["versus"] == "best baseline (LORA (rank e x r))"
    assert rows[0]["headline"]
    assert {r["versus"] for r in rows[1:]} == {
        "LORA", "LORA-LONG", "LORA (rank e x r)",
    }  # fmt: skip
