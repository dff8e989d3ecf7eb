"""The experiment runner: the paper's Table 5 protocol (Appendix G).

For one dataset, topology and optimizer:

1. each swept algorithm (BASELINE, BASELINE-LONG, MK, ADV-MK, SUBSET,
   DISTILLED) is trained with seed 0 at every learning rate of the grid
   (`base * 1.5**i`; base 0.001 for Adam, 0.025 for SGD);
2. its learning rate is the one of best validation accuracy
   (`select_learning_rate`), and seeds `1..n-1` are trained at it;
3. ENSEMBLE averages `e` BASELINE runs at BASELINE's rate (its own seed's
   BASELINE and `e - 1` more); DISTILLED learns from the ensemble of its
   seed;
4. every run is read at the epoch of its best validation accuracy: that
   epoch's test accuracy, and train accuracy for the train-test gap.

`compare` then summarises the seeds (mean and 95% CI), and pairs MK with
every other algorithm seed by seed (bootstrap CI of the mean difference and
a verdict).
"""

import dataclasses

import numpy as np

from examples.common import algorithms
from examples.common import results

BASE_LEARNING_RATES = {"adam": 0.001, "sgd": 0.025}
SWEPT = (
    algorithms.BASELINE,
    algorithms.BASELINE_LONG,
    algorithms.MAJORITY,
    algorithms.ADV_MAJORITY,
    algorithms.SUBSET,
) + tuple(algorithms.SHARED_P)


def learning_rates(optimizer, exponents):
    """The paper's grid: `base * 1.5**i` for each `i` of `exponents`."""
    base = BASE_LEARNING_RATES[optimizer]
    return [base * 1.5**i for i in exponents]


def select_learning_rate(rates, val_accuracies):
    """The rate of best validation accuracy (the smallest index on ties)."""
    if len(rates) != len(val_accuracies) or not rates:
        raise ValueError(
            "`rates` and `val_accuracies` must be non-empty and of equal "
            f"length. Received: {len(rates)} and {len(val_accuracies)}"
        )
    return rates[int(np.argmax(val_accuracies))]


@dataclasses.dataclass
class Setting:
    """One dataset, topology and optimizer of the protocol."""

    data: object
    topology: str
    hidden_units: tuple
    optimizer: str
    algorithms: tuple
    exponents: tuple
    seeds: int
    budget: algorithms.Budget


def record(run, setting, epochs):
    """The JSON record of a run, read at its best validation epoch."""
    test = run.at_best("test")
    train = run.at_best("train")
    return {
        "dataset": setting.data.name,
        "topology": setting.topology,
        "optimizer": setting.optimizer,
        "algorithm": run.algorithm,
        "seed": run.seed,
        "learning_rate": run.learning_rate,
        "epochs": epochs,
        "best_epoch": run.best_epoch + 1,
        "val_accuracy": run.at_best("val"),
        "test_accuracy": test,
        "train_accuracy": train,
        "final_test_accuracy": run.curves["test_accuracy"][-1],
        "seconds": run.seconds,
        "training_params": run.training_params,
        "inference_params": run.deployed.count_params(),
        "curves": run.curves,
        **run.extra,
    }


class Protocol:
    """Runs one `Setting`; `runs` and `sweeps` hold the JSON records.

    Args:
        setting: a `Setting`.
        progress: a `tqdm` bar advanced once per trained model.
    """

    def __init__(self, setting, progress):
        self.setting = setting
        self.progress = progress
        self.trained = {}
        self.runs = []
        self.sweeps = []
        self.chosen = {}

    def train(self, algorithm, rate, seed, teacher=None):
        """Trains (once) `algorithm` at `rate` with `seed`."""
        key = (algorithm, rate, seed)
        if key not in self.trained:
            s = self.setting
            self.progress.set_postfix_str(
                f"{s.data.name} {s.topology} {s.optimizer} {algorithm} "
                f"lr={rate:.3g} seed={seed}"
            )
            self.trained[key] = algorithms.train(
                algorithm,
                s.data,
                s.hidden_units,
                rate,
                seed,
                s.budget,
                teacher=teacher,
            )
            self.progress.update()
        return self.trained[key]

    def sweep_then_seeds(self, algorithm, teachers=None):
        """Steps 1-2 for `algorithm`; returns its runs at the chosen rate."""
        s = self.setting
        rates = learning_rates(s.optimizer, s.exponents)
        teachers = teachers or {}
        sweep = [
            self.train(algorithm, rate, 0, teachers.get(0)) for rate in rates
        ]
        chosen = select_learning_rate(
            rates, [run.at_best("val") for run in sweep]
        )
        self.chosen[algorithm] = chosen
        for run in sweep:
            self.sweeps.append(
                {
                    **_identity(s, algorithm),
                    "learning_rate": run.learning_rate,
                    "val_accuracy": run.at_best("val"),
                    "test_accuracy": run.at_best("test"),
                    "chosen": run.learning_rate == chosen,
                }
            )
        return [
            self.train(algorithm, chosen, seed, teachers.get(seed))
            for seed in range(s.seeds)
        ]

    def ensembles(self):
        """ENSEMBLE per seed at BASELINE's rate (step 3)."""
        s = self.setting
        rate = self.chosen[algorithms.BASELINE]
        self.chosen[algorithms.ENSEMBLE] = rate
        found = {}
        for seed in range(s.seeds):
            members = [
                self.train(algorithms.BASELINE, rate, seed + 7919 * k)
                for k in range(s.budget.expansion)
            ]
            found[seed] = algorithms.ensemble(members, s.data, s.budget)
        return found

    def run(self):
        """Runs the setting; returns `(runs, sweeps, mk_run_of_seed_0)`."""
        s = self.setting
        wanted = set(s.algorithms)
        final = {}
        for algorithm in SWEPT:
            needed = algorithm == algorithms.BASELINE and (
                {algorithms.ENSEMBLE, algorithms.DISTILLED} & wanted
            )
            if algorithm in wanted or needed:
                final[algorithm] = self.sweep_then_seeds(algorithm)
        if {algorithms.ENSEMBLE, algorithms.DISTILLED} & wanted:
            ensembles = self.ensembles()
            final[algorithms.ENSEMBLE] = list(ensembles.values())
            if algorithms.DISTILLED in wanted:
                teachers = {
                    seed: algorithms.teacher_of(run)
                    for seed, run in ensembles.items()
                }
                final[algorithms.DISTILLED] = self.sweep_then_seeds(
                    algorithms.DISTILLED, teachers
                )
        for algorithm in algorithms.ALGORITHMS:
            if algorithm in wanted:
                epochs = s.budget.epochs_for(algorithm)
                self.runs += [record(r, s, epochs) for r in final[algorithm]]
        mk = final.get(algorithms.MAJORITY)
        return self.runs, self.sweeps, mk[0] if mk else None


def _identity(setting, algorithm):
    return {
        "dataset": setting.data.name,
        "topology": setting.topology,
        "optimizer": setting.optimizer,
        "algorithm": algorithm,
    }


SETTING_KEYS = ("dataset", "topology", "optimizer")


def _groups(runs):
    groups = {}
    for run in runs:
        key = tuple(run[k] for k in SETTING_KEYS)
        groups.setdefault(key, {}).setdefault(run["algorithm"], []).append(run)
    return groups


def summarize(runs):
    """One row per (setting, algorithm): chosen rate, mean and 95% CI."""
    rows = []
    for key, by_algorithm in _groups(runs).items():
        for algorithm, group in by_algorithm.items():
            test, test_ci = results.mean_ci([r["test_accuracy"] for r in group])
            gap, gap_ci = results.mean_ci(
                [r["train_accuracy"] - r["test_accuracy"] for r in group]
            )
            row = dict(zip(SETTING_KEYS, key))
            row.update(
                algorithm=algorithm,
                seeds=len(group),
                learning_rate=group[0]["learning_rate"],
                epochs=group[0]["epochs"],
                best_epoch_median=float(
                    np.median([r["best_epoch"] for r in group])
                ),
                test_accuracy_mean=test,
                test_accuracy_ci=test_ci,
                gap_mean=gap,
                gap_ci=gap_ci,
                inference_params=group[0]["inference_params"],
                training_params=group[0]["training_params"],
                seconds_per_run=float(np.mean([r["seconds"] for r in group])),
            )
            if "mean_abs_deviation" in group[0]:
                row["p_deviation"] = float(
                    np.mean([r["mean_abs_deviation"] for r in group])
                )
                row["p_mixing_u"] = float(np.mean([r["mean_u"] for r in group]))
            rows.append(row)
    return rows


def paired_comparisons(runs, reference=algorithms.MAJORITY):
    """`reference` minus every other algorithm, seed by seed.

    Returns:
        One dict per (setting, other algorithm): the mean difference of
        test accuracy, its 95% bootstrap CI, the verdict for `reference`
        ("better", "worse", "no detectable difference") and the
        per-seed differences.
    """
    rows = []
    for key, by_algorithm in _groups(runs).items():
        if reference not in by_algorithm:
            continue
        mine = {r["seed"]: r["test_accuracy"] for r in by_algorithm[reference]}
        for algorithm, group in by_algorithm.items():
            if algorithm == reference:
                continue
            theirs = {r["seed"]: r["test_accuracy"] for r in group}
            seeds = sorted(set(mine) & set(theirs))
            differences = [mine[s] - theirs[s] for s in seeds]
            low, high = results.bootstrap_ci(differences)
            rows.append(
                {
                    **dict(zip(SETTING_KEYS, key)),
                    "algorithm": reference,
                    "versus": algorithm,
                    "seeds": len(seeds),
                    "difference_mean": float(np.mean(differences)),
                    "difference_low": low,
                    "difference_high": high,
                    "verdict": results.verdict(low, high),
                    "differences": differences,
                }
            )
    return rows
