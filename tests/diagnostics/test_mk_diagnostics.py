import keras
import numpy as np
import pytest

import keras_mk
from keras_mk.diagnostics import CopyDiversity
from keras_mk.diagnostics import copy_diversity
from keras_mk.diagnostics import stochastic_sharpness

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _data(n=128, d=8, classes=3):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, d)).astype("float32")
    y = (x[:, :classes] @ rng.normal(size=(classes, classes))).argmax(-1)
    return x, y


def _model(**kwargs):
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((8,)),
            keras_mk.layers.MKDense(16, activation="relu", seed=1, **kwargs),
            keras.layers.Dropout(0.5),
            keras_mk.layers.MKDense(3, seed=2, **kwargs),
        ]
    )


def test_sharpness_is_zero_for_uniform_probabilities():
    x, y = _data()
    model = _model(probabilities="uniform", copy_initialization="independent")
    stats = stochastic_sharpness(model, x, y, LOSS, num_draws=4)
    assert stats["sharpness"] == 0.0
    assert stats["expected_loss"] == stats["mean_kernel_loss"]


def test_sharpness_is_positive_for_random_probabilities():
    x, y = _data()
    # Independent copies and a small concentration: p far from uniform.
    model = _model(copy_initialization="independent", concentration=0.3)
    model.compile(keras.optimizers.Adam(0.02), LOSS)
    model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    base = float(keras.ops.convert_to_numpy(LOSS(y, model(x))))
    stats = stochastic_sharpness(model, x, y, LOSS, num_draws=128)
    # Dropout stays off: the mean-kernel loss is the inference loss.
    assert stats["mean_kernel_loss"] == pytest.approx(base, rel=1e-6)
    # Near a minimum, random kernels around the mean cost loss on average.
    assert stats["expected_loss"] > stats["mean_kernel_loss"]
    assert stats["sharpness"] > 3 * stats["expected_loss_stderr"] > 0
    with pytest.raises(ValueError, match="Received: num_draws=0"):
        stochastic_sharpness(model, x, y, LOSS, num_draws=0)


def test_diversity_starts_at_zero_and_grows_with_training():
    x, y = _data()
    model = _model()
    initial = copy_diversity(model)
    assert list(initial.values()) == [0.0, 0.0]
    assert list(initial) == [model.layers[0].name, model.layers[2].name]
    model.compile(keras.optimizers.Adam(0.02), LOSS)
    callback = CopyDiversity(per_layer=True)
    history = model.fit(
        x, y, epochs=3, batch_size=32, verbose=0, callbacks=[callback]
    )
    logged = history.history["copy_diversity"]
    assert len(logged) == 3
    assert callback.history["copy_diversity"][0] == 0.0
    assert 0.0 < logged[0] < logged[-1]
    per_layer = history.history[f"copy_diversity/{model.layers[0].name}"]
    assert per_layer[-1] > 0.0
    independent = _model(copy_initialization="independent")
    assert min(copy_diversity(independent).values()) > 0.5


def test_diversity_stays_zero_with_uniform_probabilities():
    # Lemma B.2: equal copies get equal updates and never separate.
    x, y = _data()
    model = _model(probabilities="uniform")
    model.compile(keras.optimizers.Adam(0.02), LOSS)
    history = model.fit(x, y, epochs=2, verbose=0, callbacks=[CopyDiversity()])
    assert history.history["copy_diversity"] == [0.0, 0.0]


def test_diversity_of_a_converted_model_keys_layers_by_unique_path():
    # KerasHub blocks reuse layer names ("query_projector" in every T5
    # layer): keyed by name, one block's value would overwrite another's.
    def block(name):
        return keras.Sequential(
            [keras.Input((8,)), keras.layers.Dense(8, name="proj")], name=name
        )

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    hidden = block("block_b")(block("block_a")(inputs))
    outputs = keras.layers.Dense(3, name="head")(hidden)
    mk = keras_mk.clone_model(keras.Model(inputs, outputs), seed=0)
    initial = copy_diversity(mk)
    assert initial == {"block_a/proj": 0.0, "block_b/proj": 0.0, "head": 0.0}
    x, y = _data()
    mk.compile(keras.optimizers.Adam(0.02), LOSS)
    mk.fit(x, y, epochs=2, batch_size=32, verbose=0)
    trained = copy_diversity(mk)
    assert set(trained) == set(initial)
    assert min(trained.values()) > 0.0
