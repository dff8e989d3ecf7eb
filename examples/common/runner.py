"""The experiment runner: the paper's Table 5 protocol (Appendix G), guarded.

For one dataset, topology and optimizer:

1. each swept algorithm (BASELINE, BASELINE-LONG, MK, ADV-MK, SUBSET,
   DISTILLED) is trained with the selection seeds (`0..k-1`, k = 3 by
   default) at every learning rate of the grid (`base * 1.5**i`; base
   0.001 for Adam, 0.025 for SGD);
2. its rate is the one of best validation accuracy averaged over those
   seeds; `guards.search` extends the grid while that rate is at an end
   of it, and the budget while the median best epoch is in its last 10%
   (`examples/common/guards.py`); seeds `k..n-1` then train at the chosen
   rate and budget;
3. ENSEMBLE averages `e` BASELINE runs at BASELINE's rate and budget (its
   own seed's BASELINE and `e - 1` more); DISTILLED learns from the
   ensemble of its seed;
4. every run is read at the epoch of its best validation accuracy: that
   epoch's test accuracy, and train accuracy for the train-test gap.

`summarize` then gives the seeds' mean and 95% CI, and `paired_comparisons`
pairs MK with every other algorithm (and with the better of BASELINE and
BASELINE-LONG: the headline) seed by seed: bootstrap CI of the mean
difference, the smallest difference the seeds could detect, and a verdict
only where both algorithms' guards held.
"""

import dataclasses

import numpy as np

from examples.common import algorithms
from examples.common import guards
from examples.common import names
from examples.common import results

BASE_LEARNING_RATES = {"adam": 0.001, "sgd": 0.025}
# BASELINE-LONG first: BASELINE's runs are read from its runs (`READ_FROM`).
SWEPT = (
    algorithms.BASELINE_LONG,
    algorithms.BASELINE,
    algorithms.MAJORITY,
    algorithms.ADV_MAJORITY,
    algorithms.SUBSET,
    algorithms.LORA_LONG,
    algorithms.LORA,
    algorithms.LORA_WIDE,
    algorithms.MK_LORA,
) + tuple(algorithms.SHARED_P)

# An algorithm whose runs are the first epochs of another's (same model,
# rate and seed, a longer budget): read from it instead of trained.
READ_FROM = {
    algorithms.BASELINE: algorithms.BASELINE_LONG,
    algorithms.LORA: algorithms.LORA_LONG,
}
# Each MK algorithm's headline: against the best (on validation) of these.
HEADLINES = {
    algorithms.MAJORITY: (algorithms.BASELINE, algorithms.BASELINE_LONG),
    algorithms.MK_LORA: (
        algorithms.LORA, algorithms.LORA_LONG, algorithms.LORA_WIDE,
    ),
}  # fmt: skip


def learning_rates(optimizer, exponents):
    """The paper's grid: `base * 1.5**i` for each `i` of `exponents`."""
    base = BASE_LEARNING_RATES[optimizer]
    return [base * 1.5**i for i in exponents]


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
    selection_seeds: int = 3
    guarded: bool = True
    store: object = None
    start: object = None


def record(run, setting, epochs, found):
    """The JSON record of a run, read at its best validation epoch.

    `found` is the `guards.Search` that chose the run's rate and budget.
    """
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
        "inference_params": run.inference_params,
        "curves": run.curves,
        "search": found.as_dict(),
        "diverged": guards.diverged(
            run.curves["val_accuracy"],
            run.extra.get("nonfinite_epoch"),
            guards.chance_level(setting.data.y_val),
        ),
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
        self.searches = {}

    def train(
        self, algorithm, rate, seed, epochs, teacher=None, needs_model=False
    ):
        """Trains (once) `algorithm` at `rate` with `seed` for `epochs`.

        A run of `READ_FROM[algorithm]` at the same rate and seed and at
        least `epochs` is read up to `epochs` instead, unless
        `needs_model` (its model after `epochs` is needed: ENSEMBLE).
        """
        key = (algorithm, rate, seed, epochs)
        known = self.trained.get(key)
        has_model = known is not None and known.deployed is not None
        if known is not None and (has_model or not needs_model):
            return known
        longer = self._longer(READ_FROM.get(algorithm), rate, seed, epochs)
        stored = self._stored(key, teacher)
        if longer is not None and not needs_model:
            self.trained[key] = longer.truncated(algorithm, epochs)
        elif stored is not None and not needs_model:
            self.trained[key] = stored
        else:
            s = self.setting
            self.progress.set_postfix_str(
                f"{s.data.name} {s.topology} {s.optimizer} {algorithm} "
                f"lr={rate:.3g} seed={seed} epochs={epochs}"
            )
            self.trained[key] = algorithms.train(
                algorithm,
                s.data,
                s.hidden_units,
                rate,
                seed,
                s.budget,
                teacher=teacher,
                epochs=epochs,
                start=s.start,
            )
            self._store(key, teacher)
            self.progress.update()
        return self.trained[key]

    def _store_key(self, key, teacher):
        """The run's key in `setting.store`; None when not stored (no
        store, or a DISTILLED run: its teacher is not stored)."""
        s = self.setting
        if s.store is None or teacher is not None:
            return None
        algorithm, rate, seed, epochs = key
        return (
            f"{s.data.name}|{s.topology}|{s.optimizer}|"
            f"e{s.budget.expansion}|{algorithm}|{rate:.6g}|{seed}|{epochs}"
        )

    def _stored(self, key, teacher):
        """The run of `key` kept by an earlier, interrupted invocation."""
        name = self._store_key(key, teacher)
        record = name and self.setting.store.get(name)
        return algorithms.Run.from_record(record) if record else None

    def _store(self, key, teacher):
        name = self._store_key(key, teacher)
        if name:
            self.setting.store.add(name, self.trained[key].as_record())

    def _longer(self, algorithm, rate, seed, epochs):
        """A trained run of `algorithm` at `rate`, `seed`, >= `epochs`."""
        for (name, r, s, e), run in self.trained.items():
            if (name, r, s) == (algorithm, rate, seed) and e >= epochs:
                return run
        return None

    def rate(self, exponent):
        """The grid's learning rate `base * 1.5**exponent`."""
        return learning_rates(self.setting.optimizer, [exponent])[0]

    def search_then_seeds(self, algorithm, teachers=None):
        """Steps 1-2 for `algorithm`; returns its runs at the chosen rate."""
        s = self.setting
        teachers = teachers or {}
        selection = range(min(s.selection_seeds, s.seeds))

        def evaluate(exponent, epochs):
            runs = [
                self.train(
                    algorithm, self.rate(exponent), seed, epochs,
                    teachers.get(seed),
                )
                for seed in selection
            ]  # fmt: skip
            return [(run.at_best("val"), run.best_epoch + 1) for run in runs]

        def confirm(exponent, epochs):
            # Every seed's run at the chosen point: the final runs (cached).
            runs = [
                self.train(
                    algorithm, self.rate(exponent), seed, epochs,
                    teachers.get(seed),
                )
                for seed in range(s.seeds)
            ]  # fmt: skip
            return [run.best_epoch + 1 for run in runs]

        found = guards.search(
            evaluate,
            s.exponents,
            s.budget.epochs_for(algorithm),
            s.guarded,
            guards.mk_rate_factor(
                algorithm in algorithms.MK_ALGORITHMS,
                s.optimizer,
                s.budget.expansion,
            ),
            confirm=confirm,
        )
        self.searches[algorithm] = found
        chosen = self.rate(found.exponent)
        self.chosen[algorithm] = chosen
        for exponent in found.grid:
            rate = self.rate(exponent)
            sweep = [
                self.train(algorithm, rate, seed, found.epochs)
                for seed in selection
            ]
            self.sweeps.append(
                {
                    **_identity(s, algorithm),
                    "learning_rate": rate,
                    "exponent": exponent,
                    "epochs": found.epochs,
                    "seeds": len(sweep),
                    "val_accuracy": found.validation[exponent],
                    "test_accuracy": float(
                        np.mean([run.at_best("test") for run in sweep])
                    ),
                    "chosen": exponent == found.exponent,
                }
            )
        self._forget(algorithm, chosen, found.epochs)
        return [
            self.train(
                algorithm, chosen, seed, found.epochs, teachers.get(seed)
            )
            for seed in range(s.seeds)
        ]

    def _forget(self, algorithm, rate, epochs):
        """Frees the models and probabilities of runs no longer needed."""
        for key, run in self.trained.items():
            if key[0] == algorithm and key[1:2] + key[3:] != (rate, epochs):
                run.deployed = run.probabilities = None

    def ensembles(self):
        """ENSEMBLE per seed at BASELINE's rate and budget (step 3)."""
        s = self.setting
        rate = self.chosen[algorithms.BASELINE]
        epochs = self.searches[algorithms.BASELINE].epochs
        self.chosen[algorithms.ENSEMBLE] = rate
        self.searches[algorithms.ENSEMBLE] = self.searches[algorithms.BASELINE]
        found = {}
        for seed in range(s.seeds):
            members = [
                self.train(
                    algorithms.BASELINE,
                    rate,
                    names.member_seed(seed, k),
                    epochs,
                    needs_model=True,
                )
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
                final[algorithm] = self.search_then_seeds(algorithm)
        if {algorithms.ENSEMBLE, algorithms.DISTILLED} & wanted:
            ensembles = self.ensembles()
            final[algorithms.ENSEMBLE] = list(ensembles.values())
            if algorithms.DISTILLED in wanted:
                teachers = {
                    seed: algorithms.teacher_of(run)
                    for seed, run in ensembles.items()
                }
                final[algorithms.DISTILLED] = self.search_then_seeds(
                    algorithms.DISTILLED, teachers
                )
        for algorithm in algorithms.ALGORITHMS:
            if algorithm in wanted:
                found = self.searches[algorithm]
                self.runs += [
                    record(r, s, found.epochs, found) for r in final[algorithm]
                ]
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
                search=group[0]["search"],
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


def _best_of(by_algorithm, candidates):
    """The one of `candidates` with the higher mean validation accuracy
    (validation, not test: the choice must not peek at test); None when
    none was run."""
    candidates = [name for name in candidates if name in by_algorithm]
    if not candidates:
        return None
    return max(
        candidates,
        key=lambda n: np.mean([r["val_accuracy"] for r in by_algorithm[n]]),
    )


def _paired(key, reference, mine, algorithm, group, versus=None):
    theirs = {r["seed"]: r["test_accuracy"] for r in group}
    seeds = sorted(set(mine) & set(theirs))
    differences = [mine[s] - theirs[s] for s in seeds]
    low, high = results.bootstrap_ci(differences)
    detectable = guards.minimum_detectable_difference(differences)
    verdict, reason = guards.verdict(
        low,
        high,
        {
            reference: mine.reasons,
            algorithm: _Accuracies(group).reasons,
        },
        detectable,
    )
    return {
        **dict(zip(SETTING_KEYS, key)),
        "algorithm": reference,
        "versus": versus or algorithm,
        "headline": versus is not None,
        "seeds": len(seeds),
        "difference_mean": float(np.mean(differences)),
        "difference_low": low,
        "difference_high": high,
        "minimum_detectable": detectable,
        "verdict": verdict,
        "reason": reason,
        "differences": differences,
    }


class _Accuracies(dict):
    """`{seed: test_accuracy}` of one algorithm, with its search."""

    def __init__(self, group):
        super().__init__((r["seed"], r["test_accuracy"]) for r in group)
        self.search = group[0]["search"]
        #: Why its guards failed: the search's, then the budget guard
        #: over every seed (the search saw the selection seeds only).
        searched = self.search.get("reasons")
        self.reasons = None
        if searched is not None:
            self.reasons = list(searched) + guards.budget_reasons(
                [r["best_epoch"] for r in group], group[0]["epochs"]
            )
            self.reasons += guards.divergence_reasons(
                [r["seed"] for r in group if r.get("diverged")]
            )


def paired_comparisons(runs, references=tuple(HEADLINES)):
    """Each MK algorithm of `references` minus every other, seed by seed.

    The first row of each setting and MK algorithm is its headline: MK
    against the better (on validation) of BASELINE and BASELINE-LONG,
    MK-LORA against the best of the three LoRA baselines (`HEADLINES`).

    Returns:
        One dict per (setting, MK algorithm, other algorithm): the mean
        difference of test accuracy, its 95% bootstrap CI, the minimum
        detectable difference (`guards.minimum_detectable_difference`),
        the verdict for the MK algorithm ("better", "worse", "no
        detectable difference", or "inconclusive" where a guard failed,
        with the `reason`) and the per-seed differences.
    """
    rows = []
    for key, by_algorithm in _groups(runs).items():
        for reference in references:
            if reference not in by_algorithm:
                continue
            mine = _Accuracies(by_algorithm[reference])
            best = _best_of(by_algorithm, HEADLINES[reference])
            if best is not None:
                what = "better" if len(HEADLINES[reference]) == 2 else "best"
                rows.append(
                    _paired(
                        key,
                        reference,
                        mine,
                        best,
                        by_algorithm[best],
                        versus=f"{what} baseline ({best})",
                    )
                )
            for algorithm, group in by_algorithm.items():
                if algorithm != reference:
                    rows.append(_paired(key, reference, mine, algorithm, group))
    return rows
