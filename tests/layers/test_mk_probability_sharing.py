"""`probability_sharing`: one `p` per element (the paper), unit or layer."""

import keras
import layer_specs
import numpy as np
import pytest
from keras import ops

import keras_mk
from keras_mk import layers


def numpy(x):
    return ops.convert_to_numpy(x)


CLASSES = layer_specs.MK_CLASSES
IDS = layer_specs.IDS


def built(cls, sharing, **kwargs):
    spec = layer_specs.spec(cls)
    layer = cls(
        **spec.kwargs,
        expansion=3,
        probability_sharing=sharing,
        seed=3,
        **kwargs,
    )
    layer.build(spec.input_shape)
    return layer


def spread(p, axes):
    """Max over the other axes of the range (max - min) of p along `axes`."""
    return float(np.max(np.max(p, axis=axes) - np.min(p, axis=axes)))


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
@pytest.mark.parametrize("sharing", ["element", "unit", "layer"])
def test_p_is_shared_along_exactly_the_documented_axes(cls, sharing):
    layer = built(cls, sharing)
    p = numpy(layer.sample_probabilities())
    kernel_shape = tuple(layer.kernel_copies[0].shape)
    assert p.shape == (3,) + kernel_shape
    assert p.min() >= 0.0
    np.testing.assert_allclose(p.sum(axis=0), 1.0, atol=1e-6)
    units = layer_specs.spec(cls).units
    others = tuple(i + 1 for i in range(len(kernel_shape)) if i not in units)
    unit_axes = tuple(i + 1 for i in units)
    if sharing == "element":
        assert spread(p, others) > 0.1 and spread(p, unit_axes) > 0.1
    elif sharing == "unit":
        assert spread(p, others) == 0.0  # one p per output unit
        assert spread(p, unit_axes) > 0.1
    else:
        assert spread(p, tuple(range(1, p.ndim))) == 0.0  # one p per layer
        assert p[:, (0,) * len(kernel_shape)].std() > 0.0


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
@pytest.mark.parametrize("sharing", ["unit", "layer"])
def test_training_output_uses_the_shared_p(cls, sharing):
    layer = built(cls, sharing)
    rng = np.random.default_rng(0)
    shape = tuple(layer.expanded_kernel.shape)
    copies = rng.normal(size=shape).astype("float32")
    layer.set_expanded_kernel(copies)
    x = rng.normal(size=layer_specs.spec(cls).input_shape).astype("float32")
    state = numpy(layer.seed_generator.state)
    p = numpy(layer.sample_probabilities())
    layer.seed_generator.state.assign(state)
    # The same layer with copies set to the NumPy mix, all equal, and p
    # uniform: its inference output is the plain layer with that kernel.
    # The biases are zeros in both.
    reference = built(cls, "element")
    mixed = (copies * p).sum(axis=0)
    reference.set_expanded_kernel(np.stack([mixed] * 3))
    # A layer's other weights (a separable conv's pointwise kernel): equal
    # copies, whose mix is the same for any p, the same in both layers.
    for name, own in list(layer.weight_copies.items())[1:]:
        if name != "bias":
            for a, b in zip(own, reference.weight_copies[name]):
                b.assign(own[0].value)
                a.assign(own[0].value)
    out = numpy(layer(x, training=True))
    np.testing.assert_allclose(
        out, numpy(reference(x, training=False)), atol=1e-5
    )


def test_expanded_bias_shares_p_per_unit_and_per_layer():
    for sharing, distinct in (("unit", 6), ("layer", 1)):
        layer = layers.MKDense(
            6,
            expansion=3,
            probability_sharing=sharing,
            expand_bias=True,
            seed=3,
        )
        layer.build((2, 5))
        layer.set_expanded_kernel(np.zeros((3, 5, 6), "float32"))
        bias = np.zeros((3, 6), "float32")
        bias[0] = 1.0  # the output is then p_0 of the bias
        layer.set_expanded_bias(bias)
        out = numpy(layer(np.zeros((1, 5), "float32"), training=True))[0]
        assert len(np.unique(out)) == distinct


def test_config_round_trip_and_conversion_keep_the_sharing():
    layer = layers.MKDense(4, probability_sharing="unit")
    assert layer.get_config()["probability_sharing"] == "unit"
    restored = layers.MKDense.from_config(layer.get_config())
    assert restored.probability_sharing == "unit"
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    mk = keras_mk.clone_model(model, probability_sharing="layer", seed=0)
    assert mk.layers[0].probability_sharing == "layer"
    plain = keras_mk.collapse(mk)
    assert "probability_sharing" not in plain.layers[0].get_config()


def test_fit_with_unit_sharing_trains_and_separates_the_copies():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            layers.MKDense(16, activation="relu", probability_sharing="unit"),
            layers.MKDense(2, probability_sharing="unit"),
        ]
    )
    model.compile(
        keras.optimizers.Adam(0.02),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = model.fit(x, y, epochs=5, batch_size=16, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    diversity = keras_mk.diagnostics.copy_diversity(model)
    assert min(diversity.values()) > 0.0
