"""MK layer semantics pinned against NumPy and plain Keras layers."""

import keras
import layer_specs
import numpy as np
import pytest
from keras import ops

from keras_mk import layers

RNG = np.random.default_rng(0)


def numpy(x):
    return ops.convert_to_numpy(x)


def build(layer, shape):
    layer.build(shape)
    return layer


def randomize_copies(layer, scale=0.5):
    """Distinct random copies of every simulated weight, so a wrong mix
    cannot pass by symmetry."""
    for name, copies in layer.weight_copies.items():
        if name != "bias":
            for copy in copies:
                value = RNG.normal(0, scale, tuple(copy.shape))
                copy.assign(value.astype("float32"))


# Every registered MK class with its spec and the Keras layer it extends
# (a class without a spec fails in each test that uses it).
CLASSES = layer_specs.MK_CLASSES
IDS = layer_specs.IDS


def pair(mk_cls):
    """The plain class, layer kwargs and input shape for `mk_cls`."""
    spec = layer_specs.spec(mk_cls)
    return layer_specs.plain_class(mk_cls), spec.kwargs, spec.input_shape


def plain_with_kernel(plain_cls, kwargs, shape, kernel, bias):
    return plain_with_weights(
        plain_cls, kwargs, shape, {"kernel": kernel, "bias": bias}
    )


def plain_with_weights(plain_cls, kwargs, shape, weights):
    """The plain layer with the given values of its weights (by name)."""
    plain = build(plain_cls(**kwargs), shape)
    for name, value in weights.items():
        if value is not None:
            getattr(plain, name).assign(value)
    return plain


def copies_of(layer):
    """`{weight name: stacked copies}` of every weight of an MK layer."""
    return {
        name: np.stack([numpy(v) for v in copies])
        for name, copies in layer.weight_copies.items()
    }


@pytest.mark.parametrize("mk_cls", CLASSES, ids=IDS)
def test_inference_equals_plain_layer_with_mean_kernel(mk_cls):
    plain_cls, kwargs, shape = pair(mk_cls)
    layer = build(mk_cls(**kwargs, expansion=3, seed=3), shape)
    randomize_copies(layer)
    means = {name: c.mean(axis=0) for name, c in copies_of(layer).items()}
    for name, mean in means.items():
        np.testing.assert_allclose(numpy(getattr(layer, name)), mean, atol=1e-7)
    plain = plain_with_weights(plain_cls, kwargs, shape, means)
    x = RNG.normal(size=shape).astype("float32")
    expected = numpy(plain(x))
    for training in (False, None):
        out = numpy(layer(x, training=training))
        assert np.max(np.abs(out - expected)) <= 1e-6
    # No training flag at all is inference too.
    assert np.max(np.abs(numpy(layer(x)) - expected)) <= 1e-6


@pytest.mark.parametrize("mk_cls", CLASSES, ids=IDS)
def test_training_output_equals_numpy_mix_of_sampled_p(mk_cls):
    plain_cls, kwargs, shape = pair(mk_cls)
    layer = build(mk_cls(**kwargs, expansion=3, seed=7), shape)
    randomize_copies(layer)
    x = RNG.normal(size=shape).astype("float32")
    state = numpy(layer.seed_generator.state)
    # One draw per simulated weight, in `mk_weights` order, as a call does.
    names = [spec[0] for spec in layer.mk_weights]
    p = {name: numpy(layer.sample_probabilities(name)) for name in names}
    # Replay the generator: the training call draws the same p.
    layer.seed_generator.state.assign(state)
    out = numpy(layer(x, training=True))
    copies = copies_of(layer)
    mixed = {n: (copies[n] * p[n]).sum(axis=0) for n in names}
    if "bias" in copies:
        mixed["bias"] = copies["bias"][0]
    expected = numpy(plain_with_weights(plain_cls, kwargs, shape, mixed)(x))
    np.testing.assert_allclose(out, expected, atol=1e-5)
    # And p really was random: the mix is not the mean.
    assert np.max(np.abs(out - numpy(layer(x, training=False)))) > 1e-3


def test_dense_fixed_p_matches_numpy_formula():
    layer = build(layers.MKDense(4, expansion=3, activation="tanh"), (3, 5))
    randomize_copies(layer)
    layer.bias.assign(RNG.normal(size=(4,)).astype("float32"))
    raw = RNG.exponential(size=(3, 5, 4))
    p = (raw / raw.sum(axis=0)).astype("float32")
    x = RNG.normal(size=(3, 5)).astype("float32")
    w = numpy(layer.expanded_kernel)
    expected = np.tanh(
        x @ (w[0] * p[0] + w[1] * p[1] + w[2] * p[2]) + numpy(layer.bias)
    )
    out = numpy(layer(x, training=True, fixed_probabilities=p))
    np.testing.assert_allclose(out, expected, atol=1e-6)
    # A fixed p is a training-time input only: inference uses the mean.
    mean_out = np.tanh(x @ w.mean(axis=0) + numpy(layer.bias))
    np.testing.assert_allclose(
        numpy(layer(x, training=False, fixed_probabilities=p)),
        mean_out,
        atol=1e-6,
    )


def test_expand_bias_mixes_bias_with_its_own_probabilities():
    layer = build(
        layers.MKDense(4, expansion=3, expand_bias=True, use_bias=True),
        (2, 5),
    )
    assert len(layer.bias_copies) == 3
    layer.set_expanded_kernel(np.zeros((3, 5, 4), "float32"))
    biases = RNG.normal(size=(3, 4)).astype("float32")
    layer.set_expanded_bias(biases)
    x = np.zeros((2, 5), "float32")
    np.testing.assert_allclose(numpy(layer(x))[0], biases.mean(0), atol=1e-6)
    out = numpy(layer(x, training=True))[0]
    lo, hi = biases.min(0), biases.max(0)
    assert np.all(out >= lo - 1e-6) and np.all(out <= hi + 1e-6)
    assert np.max(np.abs(out - biases.mean(0))) > 1e-4


@pytest.mark.parametrize("mk_cls", CLASSES, ids=IDS)
def test_expansion_one_is_exactly_the_plain_layer(mk_cls):
    plain_cls, kwargs, shape = pair(mk_cls)
    layer = build(mk_cls(**kwargs, expansion=1, seed=0), shape)
    plain = build(plain_cls(**kwargs), shape)
    for source, target in zip(layer.weights, plain.weights):
        target.assign(source)
    x = RNG.normal(size=shape).astype("float32")
    for training in (True, False):
        np.testing.assert_array_equal(
            numpy(layer(x, training=training)),
            numpy(plain(x, training=training)),
        )


def test_expansion_one_trains_exactly_like_plain_dense():
    x = RNG.normal(size=(32, 5)).astype("float32")
    y = RNG.normal(size=(32, 2)).astype("float32")

    def fit(first, second):
        model = keras.Sequential([keras.Input((5,)), first, second])
        return model

    mk = fit(
        layers.MKDense(8, activation="relu", expansion=1),
        layers.MKDense(2, expansion=1),
    )
    plain = fit(keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2))
    plain.set_weights(mk.get_weights())
    for model in (mk, plain):
        model.compile(keras.optimizers.SGD(0.1), "mse")
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(mk.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_copies_replicated_or_independent():
    init = keras.initializers.GlorotUniform(seed=5)
    rep = build(layers.MKDense(4, kernel_initializer=init), (1, 6))
    w = numpy(rep.expanded_kernel)
    assert np.array_equal(w[0], w[1]) and np.array_equal(w[0], w[2])
    for seed in (5, None):
        ind = build(
            layers.MKDense(
                4,
                kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
                copy_initialization="independent",
            ),
            (1, 6),
        )
        w = numpy(ind.expanded_kernel)
        assert not np.allclose(w[0], w[1]) and not np.allclose(w[1], w[2])
        limit = np.sqrt(6 / (6 + 4))
        assert np.all(np.abs(w) <= limit)


def test_expanded_kernel_round_trip_and_shape_errors():
    layer = build(layers.MKConv2D(3, 2, expansion=4), (1, 5, 5, 2))
    assert tuple(layer.expanded_kernel.shape) == (4, 2, 2, 2, 3)
    value = RNG.normal(size=(4, 2, 2, 2, 3)).astype("float32")
    layer.set_expanded_kernel(value)
    np.testing.assert_array_equal(numpy(layer.expanded_kernel), value)
    np.testing.assert_allclose(numpy(layer.kernel), value.mean(0), atol=1e-6)
    with pytest.raises(ValueError, match=r"\(4, 2, 2, 2, 3\)"):
        layer.set_expanded_kernel(value[:3])
    with pytest.raises(ValueError, match="expand_bias=False"):
        layer.set_expanded_bias(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="must be built"):
        _ = layers.MKDense(2).expanded_kernel
    with pytest.raises(ValueError, match="must be built"):
        layers.MKDense(2).sample_probabilities()
    assert not hasattr(layers.MKDense(2), "kernel")


def test_lemma_b2_uniform_probabilities_equal_plain_sgd_at_lr_over_e():
    """Lemma B.2: uniform p is plain training at learning rate lr / e."""
    e, lr = 3, 0.2
    x = RNG.normal(size=(16, 6)).astype("float32")
    y = RNG.normal(size=(16, 3)).astype("float32")
    plain = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(5, activation="tanh", use_bias=False),
            keras.layers.Dense(3, use_bias=False),
        ]
    )
    mk = keras.Sequential(
        [
            keras.Input((6,)),
            layers.MKDense(
                5,
                activation="tanh",
                use_bias=False,
                expansion=e,
                probabilities="uniform",
            ),
            layers.MKDense(
                3, use_bias=False, expansion=e, probabilities="uniform"
            ),
        ]
    )
    for mk_layer, plain_layer in zip(mk.layers, plain.layers):
        w = numpy(plain_layer.kernel)
        mk_layer.set_expanded_kernel(np.stack([w] * e))
    mk.compile(keras.optimizers.SGD(lr), "mse")
    plain.compile(keras.optimizers.SGD(lr / e), "mse")
    for model in (mk, plain):
        model.fit(x, y, batch_size=16, epochs=5, shuffle=False, verbose=0)
    for mk_layer, plain_layer in zip(mk.layers, plain.layers):
        np.testing.assert_allclose(
            numpy(mk_layer.kernel), numpy(plain_layer.kernel), atol=1e-5
        )


def test_lemma_b2_does_not_hold_for_random_probabilities():
    e, lr = 3, 0.2
    x = RNG.normal(size=(16, 6)).astype("float32")
    y = RNG.normal(size=(16, 3)).astype("float32")
    plain = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(3, use_bias=False)]
    )
    mk = keras.Sequential(
        [
            keras.Input((6,)),
            layers.MKDense(3, use_bias=False, expansion=e, seed=1),
        ]
    )
    w = numpy(plain.layers[0].kernel)
    # Distinct copies with the same mean: random p now matters.
    offsets = RNG.normal(size=(e,) + w.shape).astype("float32")
    offsets -= offsets.mean(0)
    mk.layers[0].set_expanded_kernel(w + offsets)
    mk.compile(keras.optimizers.SGD(lr), "mse")
    plain.compile(keras.optimizers.SGD(lr / e), "mse")
    for model in (mk, plain):
        model.fit(x, y, batch_size=16, epochs=5, shuffle=False, verbose=0)
    diff = numpy(mk.layers[0].kernel) - numpy(plain.layers[0].kernel)
    assert np.max(np.abs(diff)) > 1e-4


def test_mixed_precision_variables_float32_compute_float16():
    layer = layers.MKDense(4, dtype="mixed_float16", seed=0)
    x = RNG.normal(size=(3, 5)).astype("float16")
    out = layer(x, training=True)
    assert layer.compute_dtype == "float16"
    assert all(v.dtype == "float32" for v in layer.kernel_copies)
    assert keras.backend.standardize_dtype(out.dtype) == "float16"
    assert np.all(np.isfinite(numpy(out)))
    expected = x.astype("float32") @ numpy(layer.kernel) + numpy(layer.bias)
    np.testing.assert_allclose(
        numpy(layer(x)).astype("float32"), expected, atol=5e-3, rtol=5e-3
    )


def test_config_round_trip_keeps_mk_arguments():
    layer = layers.MKConv2D(
        4,
        3,
        expansion=5,
        probabilities="uniform",
        concentration=2.0,
        expand_bias=True,
        copy_initialization="independent",
        seed=11,
        padding="same",
    )
    config = layer.get_config()
    for key, value in {
        "expansion": 5,
        "probabilities": "uniform",
        "concentration": 2.0,
        "expand_bias": True,
        "copy_initialization": "independent",
        "seed": 11,
        "padding": "same",
    }.items():
        assert config[key] == value
    clone = layers.MKConv2D.from_config(config)
    assert clone.get_config() == config
    generator = keras.random.SeedGenerator(9)
    assert layers.MKDense(2, seed=generator).seed_generator is generator
    assert layers.MKDense(2, seed=generator).get_config()["seed"] == 9


def test_model_save_and_load_restores_copies_and_seed_state(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((5,)),
            layers.MKDense(6, activation="relu", seed=1),
            layers.MKDense(2, expand_bias=True, seed=2),
        ]
    )
    model.compile("adam", "mse")
    x = RNG.normal(size=(8, 5)).astype("float32")
    model.fit(x, np.ones((8, 2)), epochs=2, verbose=0)
    path = tmp_path / "mk.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    for a, b in zip(model.layers, loaded.layers):
        assert type(a) is type(b)
        np.testing.assert_array_equal(
            numpy(a.expanded_kernel), numpy(b.expanded_kernel)
        )
        np.testing.assert_array_equal(
            numpy(a.seed_generator.state), numpy(b.seed_generator.state)
        )
    # Same state, so the same next random draw.
    np.testing.assert_array_equal(
        numpy(model(x, training=True)), numpy(loaded(x, training=True))
    )
