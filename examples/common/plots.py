"""The protocol's plots: learning-rate selection, learning curves, seeds."""

import os

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from examples.common import results  # noqa: E402

# One color and marker per algorithm, the same in every figure.
STYLES = {
    "BASELINE": ("tab:blue", "o"),
    "BASELINE-LONG": ("tab:cyan", "v"),
    "MAJORITY KERNELS": ("tab:red", "s"),
    "ADV-MK": ("tab:orange", "D"),
    "SUBSET": ("tab:brown", "^"),
    "ENSEMBLE": ("tab:green", "P"),
    "DISTILLED": ("tab:purple", "X"),
    "LORA": ("tab:olive", "o"),
    "LORA-LONG": ("tab:pink", "v"),
    "LORA (rank e x r)": ("tab:gray", "^"),
    "MK-LORA": ("darkred", "s"),
}
# Each MK algorithm and the baseline the seeds plot puts it against.
PAIRS = (("MAJORITY KERNELS", "BASELINE"), ("MK-LORA", "LORA"))


def _style(name):
    return STYLES.get(name, ("tab:gray", "."))


def plot_learning_rate_selection(sweeps, path, title):
    """Validation and test accuracy against the learning rate.

    Args:
        sweeps: records with `algorithm`, `learning_rate`, `val_accuracy`,
            `test_accuracy` (mean over the selection seeds, at the best
            validation epoch) and `chosen`.
        path: the PNG file to write.
        title: the figure title.
    """
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    names = list(dict.fromkeys(r["algorithm"] for r in sweeps))
    for name in names:
        rows = sorted(
            (r for r in sweeps if r["algorithm"] == name),
            key=lambda r: r["learning_rate"],
        )
        color, marker = _style(name)
        rates = [r["learning_rate"] for r in rows]
        for axis, key in ((left, "val_accuracy"), (right, "test_accuracy")):
            values = [100 * r[key] for r in rows]
            axis.plot(rates, values, color=color, marker=marker, label=name)
            best = [
                (r["learning_rate"], 100 * r[key]) for r in rows if r["chosen"]
            ]
            axis.plot(*zip(*best), color=color, marker="*", markersize=16)
    for axis, label in ((left, "validation"), (right, "test")):
        axis.set(xscale="log", xlabel="learning rate")
        axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        axis.set_ylabel(f"{label} accuracy (%), seed mean")
        axis.grid(alpha=0.3)
    left.legend(fontsize=7)
    figure.suptitle(title)
    _save(figure, path)


def _mean_and_band(per_seed):
    values = 100 * np.asarray(per_seed, dtype="float64")
    bounds = [results.mean_ci(column) for column in values.T]
    mean = np.array([m for m, _ in bounds])
    half = np.nan_to_num(np.array([h for _, h in bounds]))
    return mean, half


def plot_learning_curves(runs, path, title):
    """Test and train accuracy per epoch at each algorithm's chosen rate.

    Args:
        runs: run records of one setting (`curves` per epoch).
        path: the PNG file to write.
        title: the figure title.
    """
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    names = list(dict.fromkeys(r["algorithm"] for r in runs))
    for name in names:
        group = [r for r in runs if r["algorithm"] == name]
        color, _ = _style(name)
        for axis, key in ((left, "test_accuracy"), (right, "train_accuracy")):
            mean, half = _mean_and_band([r["curves"][key] for r in group])
            epochs = np.arange(1, len(mean) + 1)
            axis.plot(epochs, mean, color=color, label=name, linewidth=1.2)
            axis.fill_between(
                epochs, mean - half, mean + half, color=color, alpha=0.15
            )
    left.set(xlabel="epoch", ylabel="test accuracy (%)")
    right.set(xlabel="epoch", ylabel="train accuracy (%, inference mode)")
    for axis in (left, right):
        axis.grid(alpha=0.3)
    left.legend(fontsize=7)
    figure.suptitle(title)
    _save(figure, path)


def plot_paired_seeds(runs, path):
    """MK against BASELINE (MK-LORA against LORA), one point per seed,
    per setting.

    Args:
        runs: run records of every setting.
        path: the PNG file to write.
    """
    settings = list(
        dict.fromkeys(
            (r["dataset"], r["topology"], r["optimizer"]) for r in runs
        )
    )
    figure, axes = plt.subplots(
        1, len(settings), figsize=(4 * len(settings), 4), squeeze=False
    )
    for axis, setting in zip(axes[0], settings):

        def accuracy(name, setting=setting):
            return {
                r["seed"]: 100 * r["test_accuracy"]
                for r in runs
                if (r["dataset"], r["topology"], r["optimizer"]) == setting
                and r["algorithm"] == name
            }

        name, versus = next(
            (pair for pair in PAIRS if accuracy(pair[0])), PAIRS[0]
        )
        mine, theirs = accuracy(name), accuracy(versus)
        seeds = sorted(set(mine) & set(theirs))
        x = [theirs[s] for s in seeds]
        y = [mine[s] for s in seeds]
        axis.scatter(x, y, color=_style(name)[0])
        for seed, a, b in zip(seeds, x, y):
            axis.annotate(str(seed), (a, b), fontsize=7)
        if x:
            low = min(x + y) - 0.5
            high = max(x + y) + 0.5
            axis.plot([low, high], [low, high], color="gray", linewidth=0.8)
        axis.set(
            xlabel=f"{versus} test accuracy (%)",
            ylabel=f"{name} test accuracy (%)",
            title=" ".join(setting),
        )
        axis.grid(alpha=0.3)
    _save(figure, path)


def _save(figure, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
