"""Separable convolutions and recurrent layers with several simulated weights.

A separable conv simulates its depthwise and pointwise kernels, a recurrent
cell its kernel and recurrent kernel, each with its own copies and `p`; a
recurrent layer draws `p` once per call, for every time step.
"""

import keras
import numpy as np
import pytest
from absl.testing import parameterized

from keras_mk import _keras_private
from keras_mk import layers

TestCase = _keras_private.layer_test_case()
RECURRENT = [layers.MKSimpleRNN, layers.MKLSTM, layers.MKGRU]
PLAIN = {
    layers.MKSimpleRNN: keras.layers.SimpleRNN,
    layers.MKLSTM: keras.layers.LSTM,
    layers.MKGRU: keras.layers.GRU,
    layers.MKSeparableConv1D: keras.layers.SeparableConv1D,
}


def numpy(x):
    return keras.ops.convert_to_numpy(x)


def sequences(batch=2, steps=5, features=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, steps, features)).astype("float32")


def make(cls, **kwargs):
    if "Separable" in cls.__name__:
        return cls(4, 3, padding="same", **kwargs)
    return cls(4, **kwargs)


def simulated(layer):
    """The MK layer holding the copies: a recurrent layer's cell."""
    return getattr(layer, "cell", layer)


def spread_copies(layer, seed=0):
    """Distinct copies, so that the mix depends on `p`."""
    rng = np.random.default_rng(seed)
    for copies in simulated(layer).weight_copies.values():
        for copy in copies:
            copy.assign(rng.normal(size=copy.shape).astype("float32") * 0.3)


class MKSeparableRecurrentKerasTest(TestCase):
    @parameterized.named_parameters(
        ("separable_conv1d", layers.MKSeparableConv1D, (2, 8, 3), (2, 6, 4)),
        ("separable_conv2d", layers.MKSeparableConv2D, (2, 6, 6, 3), None),
        ("simple_rnn", layers.MKSimpleRNN, (2, 5, 3), (2, 4)),
        ("lstm", layers.MKLSTM, (2, 5, 3), (2, 4)),
        ("gru", layers.MKGRU, (2, 5, 3), (2, 4)),
    )
    def test_run_layer_test(self, cls, in_shape, out_shape):
        separable = "Separable" in cls.__name__
        kwargs = {"filters": 4, "kernel_size": 3} if separable else {}
        self.run_layer_test(
            cls,
            init_kwargs={
                **kwargs,
                **({} if separable else {"units": 4}),
                "expansion": 3,
                "seed": 1,
            },
            input_shape=in_shape,
            call_kwargs={"training": True},
            expected_output_shape=out_shape or (2, 4, 4, 4),
            # Two weights of three copies each, and one bias.
            expected_num_trainable_weights=7,
            expected_num_non_trainable_weights=0,
            # A recurrent cell keeps the Keras cell's dropout generator.
            expected_num_seed_generators=1 if separable else 2,
            expected_num_losses=0,
            supports_masking=None if separable else True,
        )


@pytest.mark.parametrize("cls", RECURRENT, ids=lambda c: c.__name__)
def test_one_draw_per_call_shared_by_every_time_step(cls):
    x = sequences(steps=5)
    layer = make(cls, expansion=3, seed=0, return_sequences=True)
    layer.build(x.shape)
    spread_copies(layer)
    twin = cls.from_config(layer.get_config())
    twin.build(x.shape)
    twin.set_weights(layer.get_weights())

    state = layer.cell.seed_generator.state
    before = numpy(state.value).copy()
    y = numpy(layer(x, training=True))
    # One step of the generator per simulated weight, not per time step.
    assert int(numpy(state.value)[1] - before[1]) == 2

    # The same draw, read inside the scope: unroll by hand with one kernel.
    with twin.cell.mixed_weights(training=True):
        weights = {
            n: numpy(getattr(twin.cell, n)) for n in twin.cell.weight_copies
        }
        inside = numpy(twin(x, training=True))
    np.testing.assert_array_equal(inside, y)
    plain = PLAIN[cls](4, return_sequences=True)
    plain.build(x.shape)
    plain.cell.kernel.assign(weights["kernel"])
    plain.cell.recurrent_kernel.assign(weights["recurrent_kernel"])
    plain.cell.bias.assign(weights["bias"])
    np.testing.assert_allclose(numpy(plain(x)), y, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "cls", RECURRENT + [layers.MKSeparableConv1D], ids=lambda c: c.__name__
)
def test_expansion_one_equals_the_keras_layer(cls):
    x = sequences()
    mk = make(cls, expansion=1)
    plain = make(PLAIN[cls])
    mk.build(x.shape)
    plain.build(x.shape)
    plain.set_weights(mk.get_weights())
    expected = numpy(plain(x, training=True))
    np.testing.assert_array_equal(numpy(mk(x, training=True)), expected)


@pytest.mark.parametrize("cls", RECURRENT, ids=lambda c: c.__name__)
def test_dropout_masks_are_the_keras_layers_at_expansion_one(cls):
    # Keras's dropout and recurrent dropout (found by Keras's own tests,
    # tests/layers/test_keras_own_layer_tests.py: the MK cell crashed).
    x = sequences()
    dropout = {"dropout": 0.5, "recurrent_dropout": 0.5, "seed": 3}
    mk = make(cls, expansion=1, **dropout)
    plain = make(PLAIN[cls], **dropout)
    mk.build(x.shape)
    plain.build(x.shape)
    plain.set_weights(mk.get_weights())
    expected = numpy(plain(x, training=True))
    np.testing.assert_allclose(numpy(mk(x, training=True)), expected, atol=1e-6)
    assert not np.allclose(expected, numpy(plain(x, training=False)))


@pytest.mark.parametrize(
    "cls", RECURRENT + [layers.MKSeparableConv1D], ids=lambda c: c.__name__
)
def test_uniform_fixed_probabilities_in_training_equal_inference(cls):
    x = sequences()
    layer = make(cls, expansion=3, seed=0)
    layer.build(x.shape)
    spread_copies(layer)
    assert_uniform_p_is_inference(layer, x)


def assert_uniform_p_is_inference(layer, x):
    """`p = 1/e` fixed for every kernel: training computes inference."""
    p = {
        name: np.full((3,) + tuple(copies[0].shape), 1 / 3, "float32")
        for name, copies in simulated(layer).weight_copies.items()
        if name != "bias"
    }
    np.testing.assert_allclose(
        numpy(layer(x, training=True, fixed_probabilities=p)),
        numpy(layer(x, training=False)),
        rtol=1e-5,
        atol=1e-6,
    )


def test_each_weight_has_its_own_output_unit_axes():
    layer = layers.MKSeparableConv2D(6, 3, depth_multiplier=2)
    layer.build((None, 8, 8, 4))
    assert layer.unit_shape((3, 3, 4, 2), "depthwise_kernel") == (1, 1, 4, 2)
    assert layer.unit_shape((1, 1, 8, 6), "pointwise_kernel") == (1, 1, 1, 6)
    cell = layers.MKLSTM(4).cell
    assert cell.unit_shape((3, 16), "recurrent_kernel") == (1, 16)


@pytest.mark.parametrize("sharing", ["unit", "layer"])
@pytest.mark.parametrize(
    "cls", [layers.MKLSTM, layers.MKSeparableConv1D], ids=lambda c: c.__name__
)
def test_probability_sharing_draws_one_p_per_unit_or_layer(cls, sharing):
    x = sequences()
    layer = make(cls, expansion=3, seed=0, probability_sharing=sharing)
    layer.build(x.shape)
    mk = simulated(layer)
    for name, copies in mk.weight_copies.items():
        shape = tuple(copies[0].shape)
        p_shape = mk._p_shape(shape, name)
        expected = (
            (1,) * len(shape)
            if sharing == "layer"
            else mk.unit_shape(shape, name)
            if name != "bias"
            else shape
        )
        assert p_shape == expected
    assert np.all(np.isfinite(numpy(layer(x, training=True))))


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_trains(policy):
    keras.config.set_dtype_policy(policy)
    model = keras.Sequential(
        [
            keras.Input((6, 3)),
            layers.MKSeparableConv1D(4, 3, padding="same", seed=0),
            layers.MKGRU(4, return_sequences=True, seed=1),
            layers.MKLSTM(4, seed=2),
            keras.layers.Dense(2, dtype="float32"),
        ]
    )
    model.compile(keras.optimizers.Adam(0.01), "mse")
    x = sequences(8, 6)
    history = model.fit(x, np.zeros((8, 2)), batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    assert model.layers[2].cell.kernel_copies[0].dtype == "float32"


# ConvLSTM: the same cell mechanism on convolution kernels (Keras's
# `ConvLSTMCell`), one more layer with several simulated kernels.
CONV_LSTM = {
    layers.MKConvLSTM1D: (keras.layers.ConvLSTM1D, (2, 4, 6, 3)),
    layers.MKConvLSTM2D: (keras.layers.ConvLSTM2D, (2, 4, 6, 6, 3)),
    layers.MKConvLSTM3D: (keras.layers.ConvLSTM3D, (2, 3, 4, 4, 4, 2)),
}


def videos(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


@pytest.mark.parametrize("dropout", [0.0, 0.5], ids=["plain", "dropout"])
@pytest.mark.parametrize("cls", list(CONV_LSTM), ids=lambda c: c.__name__)
def test_conv_lstm_at_expansion_one_is_the_keras_layer(cls, dropout):
    plain_cls, shape = CONV_LSTM[cls]
    x = videos(shape)
    args = dict(padding="same", dropout=dropout, recurrent_dropout=dropout)
    mk = cls(4, 3, expansion=1, seed=3, **args)
    plain = plain_cls(4, 3, seed=3, **args)
    mk.build(x.shape)
    plain.build(x.shape)
    plain.set_weights(mk.get_weights())
    np.testing.assert_allclose(
        numpy(mk(x, training=True)),
        numpy(plain(x, training=True)),
        atol=1e-6,
    )


def test_conv_lstm_draws_once_per_call_and_round_trips_its_config():
    x = videos(CONV_LSTM[layers.MKConvLSTM2D][1])
    layer = layers.MKConvLSTM2D(4, 3, padding="same", expansion=3, seed=0)
    layer.build(x.shape)
    spread_copies(layer)
    assert sorted(layer.cell.weight_copies) == [
        "bias",
        "kernel",
        "recurrent_kernel",
    ]
    state = layer.cell.seed_generator.state
    before = numpy(state.value).copy()
    layer(x, training=True)
    # One step of the generator per simulated weight, not per time step.
    assert int(numpy(state.value)[1] - before[1]) == 2
    twin = layers.MKConvLSTM2D.from_config(layer.get_config())
    assert twin.cell.rank == 2 and twin.cell.expansion == 3
    twin.build(x.shape)
    twin.set_weights(layer.get_weights())
    np.testing.assert_array_equal(numpy(twin(x)), numpy(layer(x)))
    assert_uniform_p_is_inference(layer, x)
