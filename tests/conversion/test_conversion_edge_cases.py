"""Conversion on models outside the happy path: nothing silent.

Each test reproduces a way a user's model broke conversion (a crash, a
refusal for the wrong reason, or a silently different model) and asserts
the behaviour a user of `keras.models.clone_model` expects.
"""

import keras
import models
import numpy as np
import pytest

import keras_mk
from keras_mk.conversion import class_map


def _x(model, batch=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch,) + tuple(model.input_shape[1:])).astype(
        "float32"
    )


def assert_converted_equal(original, mk, x, atol=1e-5):
    want = models.numpy(original(x, training=False))
    for training in (False, True):
        got = models.numpy(mk(x, training=training))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=atol)


def assert_clone_function_converts_two_exactly(original):
    mk = keras.models.clone_model(
        original, clone_function=keras_mk.clone_function(expansion=2)
    )
    assert len(class_map.mk_layers_of(mk)) == 2
    assert_converted_equal(original, mk, _x(original))


def ops_and_add_layer_model():
    """`x + 3.0` (an op) beside `layers.Add` (a layer named like the op)."""
    inputs = keras.Input((8,))
    h = keras.layers.Dense(8, name="d1")(inputs)
    shifted = h + 3.0
    h = keras.layers.Add(name="sum")([h, shifted])
    h = keras.ops.relu(h) * 0.5
    outputs = keras.layers.Dense(4, name="d2")(h)
    return keras.Model(inputs, outputs, name="ops_model")


def test_functional_with_ops_named_like_layers_converts_exactly():
    original = ops_and_add_layer_model()
    mk = keras_mk.clone_model(original, seed=0)
    assert len(class_map.mk_layers_of(mk)) == 2
    assert_converted_equal(original, mk, _x(original))
    plain = keras_mk.collapse(mk)
    np.testing.assert_array_equal(
        models.numpy(plain(_x(original))), models.numpy(mk(_x(original)))
    )


def test_clone_function_with_ops_on_keras_tensors():
    original = ops_and_add_layer_model()
    assert_clone_function_converts_two_exactly(original)


def test_clone_function_passed_uncalled_uses_the_default_expansion():
    original = models.mlp(dropout=False)
    mk = keras.models.clone_model(
        original, clone_function=keras_mk.clone_function
    )
    layers = class_map.mk_layers_of(mk)
    assert [layer.expansion for _, layer in layers] == [3, 3]
    assert_converted_equal(original, mk, _x(original))
    # Keras hands it the ops on Keras tensors too (`x + 3.0`).
    original = ops_and_add_layer_model()
    mk = keras.models.clone_model(
        original, clone_function=keras_mk.clone_function
    )
    assert len(class_map.mk_layers_of(mk)) == 2
    assert_converted_equal(original, mk, _x(original))


@keras.saving.register_keras_serializable(package="keras_mk_tests")
class UnnamedScale(keras.layers.Layer):
    """Like ConvNeXt's LayerScale: `add_weight` without a name."""

    def build(self, input_shape):
        self.gamma = self.add_weight(
            shape=(input_shape[-1],), initializer="random_normal"
        )

    def call(self, x):
        return x * self.gamma


def test_variables_matched_by_structure_not_auto_generated_names():
    inputs = keras.Input((6,))
    h = keras.layers.Dense(6)(inputs)
    outputs = UnnamedScale()(h)
    original = keras.Model(inputs, outputs)
    mk = keras_mk.clone_model(original, seed=0)
    assert_converted_equal(original, mk, _x(original))
    plain = keras_mk.collapse(mk)
    np.testing.assert_array_equal(
        models.numpy(plain(_x(original))), models.numpy(mk(_x(original)))
    )


def test_copy_with_other_variable_shapes_is_refused():
    class Odd(keras.layers.Layer):
        width = 3

        def build(self, input_shape):
            self.w = self.add_weight(shape=(self.width,))

        def call(self, x):
            return x

    # Its config cannot record `width`: the copy is built with another shape.
    odd = Odd()
    odd.width = 5
    inputs = keras.Input((3,))
    outputs = odd(keras.layers.Dense(3)(inputs))
    with pytest.raises(ValueError, match="different variables"):
        keras_mk.clone_model(keras.Model(inputs, outputs))


def shared_dense_sequential():
    shared = keras.layers.Dense(5, activation="tanh", name="shared")
    return keras.Sequential(
        [keras.Input((5,)), shared, shared, keras.layers.Dense(2)],
        name="shared_seq",
    )


def shared_dense_functional():
    shared = keras.layers.Dense(5, activation="tanh", name="shared")
    inputs = keras.Input((5,))
    outputs = keras.layers.Dense(2)(shared(shared(inputs)))
    return keras.Model(inputs, outputs, name="shared_fn")


@pytest.mark.parametrize(
    "builder",
    [shared_dense_sequential, shared_dense_functional],
    ids=["sequential", "functional"],
)
def test_shared_layer_stays_shared_with_one_set_of_copies(builder):
    original = builder()
    x = _x(original)
    mk = keras_mk.clone_model(original, seed=0)
    assert_converted_equal(original, mk, x)
    converted = class_map.mk_layers_of(mk)
    shared = [layer for _, layer in converted if layer.name == "shared"]
    assert len(shared) == 1
    # One set of copies: 3 kernel copies + bias for `shared`, and the head.
    assert len(mk.trainable_variables) == 2 * (3 + 1)
    # Training moves one set of copies and both uses see it.
    mk.compile(keras.optimizers.SGD(0.1), "mse")
    mk.fit(x, np.ones((3, 2), "float32"), verbose=0)
    plain = keras_mk.collapse(mk)
    np.testing.assert_allclose(
        models.numpy(plain(x)), models.numpy(mk(x)), rtol=1e-6, atol=1e-6
    )
    assert len(plain.weights) == len(original.weights) == 4


def test_clone_function_keeps_shared_layers_shared():
    original = shared_dense_functional()
    assert_clone_function_converts_two_exactly(original)


class MKDirectModel(keras.Model):
    """The README's "use the layers directly" route."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras_mk.layers.MKDense(8, activation="relu", seed=1)
        self.head = keras_mk.layers.MKDense(2, seed=2)

    def call(self, x, training=None):
        return self.head(self.hidden(x, training=training), training=training)


def test_collapse_of_a_subclassed_model_made_of_mk_layers(tmp_path):
    mk = MKDirectModel()
    x = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
    mk(x)
    mk.compile("adam", "mse")
    mk.fit(x, np.ones((4, 2), "float32"), epochs=2, verbose=0)
    plain = keras_mk.collapse(mk)
    assert not class_map.mk_layers_of(plain)
    assert len(plain.weights) == 4
    np.testing.assert_array_equal(
        models.numpy(plain(x)), models.numpy(mk(x, training=False))
    )
    # Its weights file is a plain one; an MK model starts from it exactly.
    path = str(tmp_path / "plain.weights.h5")
    plain.save_weights(path)
    restarted = MKDirectModel()
    restarted(x)
    restarted.load_weights(path)
    np.testing.assert_allclose(
        models.numpy(restarted(x)), models.numpy(plain(x)), atol=1e-6
    )


def test_quantize_of_an_mk_model_raises_and_changes_nothing():
    original = models.mlp(dropout=False)
    mk = keras_mk.clone_model(original, seed=0)
    before = models.weights_snapshot(mk)
    with pytest.raises(ValueError, match="collapse"):
        mk.quantize("int8")
    models.assert_same_weights(mk, before)
    with pytest.raises(ValueError, match="collapse"):
        class_map.mk_layers_of(mk)[0][1].quantize("int8")


def test_collapse_then_quantize_int8_saves_and_reloads(tmp_path):
    original = models.mlp(dropout=False)
    mk = keras_mk.clone_model(original, seed=0)
    plain = keras_mk.collapse(mk)
    x = _x(original, batch=8)
    want = models.numpy(plain(x))
    plain.quantize("int8")
    got = models.numpy(plain(x))
    assert plain.layers[0].quantization_mode == "int8"
    # int8 weights: close to, not equal to, the float outputs.
    np.testing.assert_allclose(got, want, atol=0.05 * np.abs(want).max())
    path = str(tmp_path / "int8.keras")
    plain.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_array_equal(models.numpy(restored(x)), got)


def time_distributed_model():
    inputs = keras.Input((4, 6))
    h = keras.layers.TimeDistributed(keras.layers.Dense(5), name="td")(inputs)
    outputs = keras.layers.Dense(2, name="head")(h)
    return keras.Model(inputs, outputs, name="td_model")


@pytest.mark.parametrize("route", ["clone_model", "clone_function"])
def test_layers_inside_time_distributed_are_converted(route):
    original = time_distributed_model()
    if route == "clone_model":
        mk = keras_mk.clone_model(original, seed=0)
    else:
        mk = keras.models.clone_model(
            original, clone_function=keras_mk.clone_function
        )
    paths = [p for p, _ in class_map.mk_layers_of(mk)]
    assert len(paths) == 2, paths
    assert_converted_equal(original, mk, _x(original))


@keras.saving.register_keras_serializable(package="keras_mk_tests")
class KernelScale(keras.layers.Layer):
    """A layer holding a `kernel` that keras_mk has no MK version of."""

    def build(self, input_shape):
        self.kernel = self.add_weight(
            shape=(input_shape[-1],), initializer="ones", name="kernel"
        )

    def call(self, x):
        return x * self.kernel


def test_summary_lists_kernel_layers_left_plain_and_conversion_warns():
    inputs = keras.Input((6, 4))
    h = keras.layers.Bidirectional(keras.layers.LSTM(3), name="bi")(inputs)
    h = keras.layers.Dense(4, name="d")(h)
    # No MK version: a custom layer with a kernel.
    outputs = KernelScale(name="scale")(h)
    original = keras.Model(inputs, outputs)
    with pytest.warns(UserWarning, match="left plain"):
        mk = keras_mk.clone_model(original, seed=0)
    summary = keras_mk.conversion_summary(mk)
    plain = {p: reason for p, _, reason in summary.left_plain}
    assert plain.get("scale") == "no MK version of this layer", plain
    # The LSTMs inside `Bidirectional` are converted, with their cells.
    assert not any(p.startswith("bi/") for p in plain), plain
    mk_paths = [p for p, _ in class_map.mk_layers_of(mk)]
    assert sum(p.startswith("bi/") for p in mk_paths) == 2, mk_paths
    assert "left plain" in str(summary)
    assert_converted_equal(original, mk, _x(original))


@pytest.mark.parametrize(
    "layer",
    [
        keras.layers.Conv1DTranspose(3, 3, strides=2, name="t1"),
        keras.layers.Conv2DTranspose(3, 3, strides=2, name="t2"),
        keras.layers.Conv3DTranspose(2, 2, strides=2, name="t3"),
    ],
    ids=["1d", "2d", "3d"],
)
def test_conv_transpose_layers_convert_and_collapse(layer):
    rank = int(layer.name[-1])
    inputs = keras.Input((4,) * rank + (2,))
    original = keras.Model(inputs, layer(inputs))
    mk = keras_mk.clone_model(original, seed=0)
    assert len(class_map.mk_layers_of(mk)) == 1
    x = _x(original)
    assert_converted_equal(original, mk, x)
    mk.compile("sgd", "mse")
    mk.fit(x, np.ones_like(models.numpy(mk(x))), verbose=0)
    plain = keras_mk.collapse(mk)
    np.testing.assert_allclose(
        models.numpy(plain(x)), models.numpy(mk(x)), rtol=1e-6, atol=1e-6
    )


class ScaleFromAssets(keras.layers.Layer):
    """State kept as assets, as tokenizers and adapted lookups keep theirs:
    neither in its config nor in its variables."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.scale = None

    def call(self, x):
        return x * self.scale

    def compute_output_shape(self, input_shape):
        return input_shape

    def save_assets(self, directory):
        if self.scale is None:
            raise ValueError("no scale set")
        np.save(f"{directory}/scale.npy", self.scale)

    def load_assets(self, directory):
        self.scale = np.load(f"{directory}/scale.npy")


def _model_with_assets():
    scale = ScaleFromAssets(name="scale")
    scale.scale = np.arange(1, 5, dtype="float32")
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2)(scale(inputs))
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("route", ["clone_model", "clone_function"])
def test_layer_assets_survive_conversion_and_collapse(route):
    # A copy made from the config would lose them (a tokenizer's
    # vocabulary): the copy would compute something else, or fail.
    model = _model_with_assets()
    x = _x(model)
    with keras.saving.custom_object_scope({"ScaleFromAssets": ScaleFromAssets}):
        if route == "clone_model":
            mk = keras_mk.clone_model(model, seed=0)
        else:
            mk = keras.models.clone_model(
                model, clone_function=keras_mk.clone_function(seed=0)
            )
        small = keras_mk.collapse(mk)
    assert_converted_equal(model, mk, x)
    assert_converted_equal(model, small, x)
    assert mk.get_layer("scale") is not model.get_layer("scale")


def test_layer_that_cannot_write_its_assets_is_named():
    model = _model_with_assets()
    model.get_layer("scale").scale = None
    with pytest.raises(ValueError, match="layer 'scale' .ScaleFromAssets"):
        keras_mk.clone_model(model, seed=0)


@pytest.mark.parametrize(
    "layer, shape",
    [
        (
            lambda: keras.layers.DepthwiseConv2D(
                3, depthwise_regularizer=keras.regularizers.L2(0.1)
            ),
            (6, 6, 2),
        ),
        (
            lambda: keras.layers.Dense(
                3,
                kernel_regularizer=keras.regularizers.L2(0.1),
                bias_regularizer=keras.regularizers.L1(0.2),
                bias_initializer="ones",
            ),
            (4,),
        ),
        (
            lambda: keras.layers.Conv1DTranspose(
                2, 3, kernel_regularizer=keras.regularizers.L1(0.1)
            ),
            (5, 2),
        ),
    ],
    ids=["depthwise", "dense", "conv_transpose"],
)
@pytest.mark.parametrize("expand_bias", [False, True])
def test_every_regularizer_of_a_converted_layer_applies_once(
    layer, shape, expand_bias
):
    """The penalty of the converted model equals the plain model's: each
    regularizer of the Keras layer (depthwise, kernel, bias) applies once,
    to the weight a call uses, none is dropped and none counted `e`
    times."""
    inputs = keras.Input(shape)
    model = keras.Model(inputs, layer()(inputs))
    x = np.random.default_rng(0).normal(size=(2,) + shape)
    model(x)
    plain = sum(float(keras.ops.convert_to_numpy(v)) for v in model.losses)
    assert plain > 0
    mk = keras_mk.clone_model(model, expansion=3, expand_bias=expand_bias)
    mk(x, training=True)
    converted = [float(keras.ops.convert_to_numpy(v)) for v in mk.losses]
    np.testing.assert_allclose(sum(converted), plain, rtol=1e-5)
