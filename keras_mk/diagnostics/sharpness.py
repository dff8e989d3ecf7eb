"""Stochastic sharpness (Lemma B.1): how much random `p` costs on a batch."""

import keras
import numpy as np
from keras import ops

from keras_mk.layers.walk import mk_layers
from keras_mk.training.probability_scope import probabilities_scope


def stochastic_sharpness(model, x, y, loss, num_draws=8):
    """Estimates `Delta = |E_p L(theta_p) - L(theta_bar)|` on one batch.

    `L(theta_bar)` is the loss of the deployed model (every MK layer using
    the mean of its copies); `E_p L(theta_p)` is the mean over `num_draws`
    forward passes in which every MK layer mixes its copies with a fresh
    draw of its probabilities (as in training) while every other layer runs
    in inference mode (no dropout, moving statistics). `Delta` is the
    stochastic sharpness term of the PAC-Bayesian bound of Lemma B.1; it is
    exactly 0 for `probabilities="uniform"` or replicated copies.

    Draws consume the MK layers' seed generators, as training steps do.

    Args:
        model: a Keras model with MK layers.
        x: a batch of inputs.
        y: the targets.
        loss: a Keras loss (object, function or name) `loss(y, y_pred)`,
            reduced to a scalar.
        num_draws: integer >= 1, the number `K` of draws of `p`.
            Default 8.

    Returns:
        A dict with `"sharpness"` (`Delta`), `"expected_loss"` (the mean
        over draws), `"mean_kernel_loss"` (`L(theta_bar)`) and
        `"expected_loss_stderr"` (the standard error of the mean over
        draws, to judge whether `Delta` is resolved), all Python floats.

    Example:

    >>> stats = keras_mk.diagnostics.stochastic_sharpness(
    ...     mk_model, x[:256], y[:256], "mse"
    ... )
    >>> sorted(stats)
    ['expected_loss', 'expected_loss_stderr', 'mean_kernel_loss', 'sharpness']

    References:
        Mazzawi et al., "Majority Kernels", 2024, Appendix B, Lemma B.1.
    """
    if isinstance(num_draws, bool) or not isinstance(num_draws, int):
        raise ValueError(
            "`num_draws` must be an integer >= 1. "
            f"Received: num_draws={num_draws!r}"
        )
    if num_draws < 1:
        raise ValueError(
            "`num_draws` must be an integer >= 1. "
            f"Received: num_draws={num_draws!r}"
        )
    loss_fn = keras.losses.get(loss)

    def loss_value(y_pred):
        return float(ops.convert_to_numpy(ops.mean(loss_fn(y, y_pred))))

    base = loss_value(model(x, training=False))
    layers = mk_layers(model)
    draws = []
    for _ in range(num_draws):
        # `None`: each layer draws its own `p`, from its own distribution.
        with probabilities_scope([(layer, None) for layer in layers]):
            draws.append(loss_value(model(x, training=False)))
    draws = np.asarray(draws, dtype="float64")
    expected = float(np.mean(draws))
    stderr = float(np.std(draws, ddof=1) / np.sqrt(num_draws))
    return {
        "sharpness": abs(expected - base),
        "expected_loss": expected,
        "mean_kernel_loss": base,
        "expected_loss_stderr": stderr if num_draws > 1 else float("nan"),
    }
