"""The main job's data order: a new permutation every epoch on every backend.

Keras's `fit(x, y, shuffle=True)` on arrays repeats one order every epoch on
TensorFlow after `keras.utils.set_random_seed`; the job's training must not.
"""

import types

import keras
import numpy as np
import pytest

from examples.common import algorithms
from examples.common import data_order


class Recorder(keras.Model):
    """Records the first input column of every batch it trains on."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(1)
        self.seen = []

    def call(self, x, training=False):
        if training:
            self.seen.append(keras.ops.convert_to_numpy(x)[:, 0].copy())
        return self.dense(x)


def epochs_seen(fit_argument, epochs=3, **kwargs):
    model = Recorder()
    model.compile("sgd", "mse", run_eagerly=True)
    # Built (and its build-time calls made) before it records.
    model.build((None, 1))
    model.seen.clear()
    keras.utils.set_random_seed(0)
    model.fit(fit_argument, epochs=epochs, verbose=0, **kwargs)
    per_epoch = len(model.seen) // epochs
    return [
        np.concatenate(model.seen[k * per_epoch : (k + 1) * per_epoch])
        for k in range(epochs)
    ]


def test_every_epoch_a_new_permutation_reproducible_by_seed():
    x = np.arange(12, dtype="float32")[:, None]
    y = np.zeros(12, "float32")
    first = epochs_seen(data_order.EpochShuffled(x, y, 5, seed=3))
    for order in first:
        assert sorted(order) == list(range(12))
    assert len({tuple(order) for order in first}) == 3
    again = epochs_seen(data_order.EpochShuffled(x, y, 5, seed=3))
    np.testing.assert_array_equal(np.stack(first), np.stack(again))
    other = epochs_seen(data_order.EpochShuffled(x, y, 5, seed=4))
    assert not np.array_equal(np.stack(first), np.stack(other))


def test_structures_keep_rows_together_and_mismatched_rows_are_refused():
    x = {"a": np.arange(6)[:, None], "b": np.arange(6)[:, None] * 10}
    batch_x, batch_y = data_order.EpochShuffled(x, np.arange(6), 4, seed=0)[0]
    np.testing.assert_array_equal(batch_x["b"], batch_x["a"] * 10)
    np.testing.assert_array_equal(batch_x["a"][:, 0], batch_y)
    with pytest.raises(ValueError, match=r"row counts \[5, 6\]"):
        data_order.EpochShuffled(x, np.arange(5), 4, seed=0)


def test_the_main_job_trains_on_a_new_order_every_epoch(monkeypatch):
    seen = []
    original_fit = keras.Model.fit

    def spy(model, data=None, *args, **kwargs):
        seen.append(data)
        return original_fit(model, data, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", spy)
    rng = np.random.default_rng(0)
    data = types.SimpleNamespace(
        input_shape=(4,),
        num_classes=2,
        x_train=rng.normal(size=(20, 4)).astype("float32"),
        y_train=rng.integers(0, 2, 20),
        x_val=rng.normal(size=(8, 4)).astype("float32"),
        y_val=rng.integers(0, 2, 8),
        x_test=rng.normal(size=(8, 4)).astype("float32"),
        y_test=rng.integers(0, 2, 8),
    )
    budget = algorithms.Budget(epochs=2, batch_size=8, train_eval_samples=8)
    algorithms.train(algorithms.BASELINE, data, (4,), 0.01, 0, budget)
    assert isinstance(seen[0], data_order.EpochShuffled)
