"""Learning-curve plots in the style of the paper's Fig. G.10 and 4.2."""

import os

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _band(axis, epochs, per_seed, label, color, linestyle="-"):
    values = np.asarray(per_seed, dtype="float64")
    mean = values.mean(axis=0)
    std = values.std(axis=0)
    axis.plot(epochs, mean, label=label, color=color, linestyle=linestyle)
    axis.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.15)


def _epochs(curves):
    first = next(iter(curves.values()))
    return np.arange(1, len(first["test_accuracy"][0]) + 1)


def _colors(curves):
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {name: cycle[i % len(cycle)] for i, name in enumerate(curves)}


def plot_test_curves(curves, path, title):
    """Test accuracy and test loss per epoch, one line per algorithm.

    Like Fig. G.10 of the paper; the band is +/- one standard deviation
    over seeds.

    Args:
        curves: `{algorithm: {"test_accuracy": [[...epochs] per seed],
            "test_loss": [...]}}`.
        path: the PNG file to write.
        title: the figure title.
    """
    epochs = _epochs(curves)
    colors = _colors(curves)
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name, curve in curves.items():
        _band(left, epochs, curve["test_accuracy"], name, colors[name])
        _band(right, epochs, curve["test_loss"], name, colors[name])
    left.set(xlabel="epoch", ylabel="test accuracy")
    right.set(xlabel="epoch", ylabel="test loss (cross-entropy)")
    left.legend(fontsize=8)
    for axis in (left, right):
        axis.grid(alpha=0.3)
    figure.suptitle(title)
    _save(figure, path)


def plot_generalization_gap(curves, path, title):
    """Train and test accuracy, and their gap, per epoch (like Fig. 4.2).

    Args:
        curves: `{algorithm: {"train_accuracy": [...], "test_accuracy":
            [...]}}`, each a list over seeds of per-epoch values. Train
            accuracy is measured in inference mode on the training data.
        path: the PNG file to write.
        title: the figure title.
    """
    epochs = _epochs(curves)
    colors = _colors(curves)
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name, curve in curves.items():
        color = colors[name]
        _band(left, epochs, curve["train_accuracy"], None, color, "--")
        _band(left, epochs, curve["test_accuracy"], name, color)
        gap = np.asarray(curve["train_accuracy"]) - np.asarray(
            curve["test_accuracy"]
        )
        _band(right, epochs, gap, name, color)
    left.set(xlabel="epoch", ylabel="accuracy (dashed: train, solid: test)")
    right.set(xlabel="epoch", ylabel="train - test accuracy")
    left.legend(fontsize=8)
    for axis in (left, right):
        axis.grid(alpha=0.3)
    figure.suptitle(title)
    _save(figure, path)


def _save(figure, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
