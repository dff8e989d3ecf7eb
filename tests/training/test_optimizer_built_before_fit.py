"""Building the optimizer before `fit` (one trace on TensorFlow) changes
nothing MK computes: the draws, the steps and the weights are the same."""

import keras
import numpy as np
import pytest

import keras_mk


def _trained(build_optimizer, optimizer):
    keras.utils.set_random_seed(0)
    # 256 x 256 = 2**16 elements: TensorFlow fuses its draw and mix into
    # XLA clusters; the 256 x 3 kernel draws unfused.
    model = keras.Sequential(
        [
            keras.Input((256,)),
            keras.layers.Dense(256, activation="tanh"),
            keras.layers.Dense(3),
        ]
    )
    mk = keras_mk.clone_model(model, expansion=3, seed=5)
    mk.compile(
        optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    initial = [keras.ops.convert_to_numpy(v) for v in mk.trainable_variables]
    if build_optimizer:
        mk.optimizer.build(mk.trainable_variables)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 256)).astype("float32")
    y = rng.integers(0, 3, 32)
    mk.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    trained = [keras.ops.convert_to_numpy(v) for v in mk.trainable_variables]
    # The seed states and the optimizer's slots and step counter too.
    state = [keras.ops.convert_to_numpy(v) for v in mk.variables]
    state += [keras.ops.convert_to_numpy(v) for v in mk.optimizer.variables]
    return initial, trained, state


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_optimizer_built_before_fit_trains_exactly_the_same(optimizer):
    initial, trained, deferred = _trained(False, optimizer)
    _, _, built = _trained(True, optimizer)
    assert len(deferred) == len(built)
    for a, b in zip(deferred, built):
        np.testing.assert_array_equal(a, b)
    # Four steps moved every copy of every weight: the states compared are
    # trained ones.
    for before, after in zip(initial, trained):
        assert not np.array_equal(before, after)
