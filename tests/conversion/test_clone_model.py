"""`keras_mk.clone_model`: same outputs, originals untouched, layers reached."""

import json

import keras
import models
import numpy as np
import pytest

import keras_mk
from keras_mk import fresh_copy
from keras_mk.conversion import class_map


def mk_paths(model):
    return [path for path, _ in class_map.mk_layers_of(model)]


def assert_converted_equal(original, inputs, expected_layers, **kwargs):
    """Converts, then checks outputs, layer count and that nothing changed."""
    config = json.dumps(original.get_config(), sort_keys=True, default=str)
    reference = models.numpy(original(inputs))
    before = models.weights_snapshot(original)
    mk = keras_mk.clone_model(original, **kwargs)
    # The original's weights and config are unchanged, byte for byte.
    models.assert_same_weights(original, before)
    after = json.dumps(original.get_config(), sort_keys=True, default=str)
    assert after == config
    assert not class_map.mk_layers_of(original)
    assert type(mk) is type(original)
    assert len(mk_paths(mk)) == expected_layers
    inference = models.numpy(mk(inputs))
    # The mean of e equal replicas is W exactly, for every e (3 included:
    # `(W + W + W) * (1 / 3)` is not W in float32).
    np.testing.assert_array_equal(inference, reference)
    # Training mixes replicas with spacings: W + sum_j s_j (W - W) == W.
    # Both models start from the same seed states (Dropout included).
    np.testing.assert_array_equal(
        models.numpy(mk(inputs, training=True)),
        models.numpy(original(inputs, training=True)),
    )
    return mk


def test_sequential_and_dropout_in_training_mode():
    model = models.mlp()
    x = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
    mk = assert_converted_equal(model, x, 2, expansion=2, seed=7)
    layers = [layer for _, layer in class_map.mk_layers_of(mk)]
    assert [type(layer).__name__ for layer in layers] == ["MKDense"] * 2
    assert [layer.seed for layer in layers] == [7, 8]
    assert all(layer.expansion == 2 for layer in layers)
    for layer in layers:
        copies = [models.numpy(c.value) for c in layer.kernel_copies]
        np.testing.assert_array_equal(copies[0], copies[1])


@pytest.mark.parametrize("expansion", [2, 3])
def test_weights_laid_out_transposed_convert_exactly(expansion):
    # On PyTorch, Keras's `orthogonal` initializer leaves a weight transposed
    # in memory, and a matmul rounds differently on the other layout: the
    # copies (and so their mean) must keep the original's layout.
    orthogonal = keras.initializers.Orthogonal(seed=1)
    inputs = keras.Input((5, 3))
    h = keras.layers.Conv1D(4, 2, kernel_initializer=orthogonal)(inputs)
    h = keras.layers.LSTM(
        6, return_sequences=True, kernel_initializer=orthogonal
    )(h)
    h = keras.layers.SimpleRNN(6, recurrent_initializer=orthogonal)(h)
    outputs = keras.layers.Dense(3, kernel_initializer=orthogonal)(h)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).normal(size=(8, 5, 3)).astype("float32")
    assert_converted_equal(model, x, 4, expansion=expansion, seed=0)


def test_nested_functional_shared_layers_and_attention():
    model = models.nested_functional()
    x = np.random.default_rng(1).normal(size=(2, 8, 4)).astype("float32")
    # inner, shared (once), 4 MHA EinsumDense, conv, depthwise, einsum.
    mk = assert_converted_equal(model, x, 9)
    assert "mha/query" in mk_paths(mk)
    classes = {type(layer).__name__ for _, layer in class_map.mk_layers_of(mk)}
    assert classes == {
        "MKDense",
        "MKEinsumDense",
        "MKConv1D",
        "MKDepthwiseConv1D",
    }


def test_subclassed_model_with_layers_made_in_init():
    class Tower(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.conv = keras.layers.Conv2D(3, 3, name="conv")
            self.pool = keras.layers.GlobalAveragePooling2D()
            self.head = keras.layers.Dense(2, name="head")

        def call(self, x):
            return self.head(self.pool(self.conv(x)))

    model = Tower()
    x = models.images()
    model(x)
    mk = keras_mk.clone_model(model, seed=0)
    assert sorted(mk_paths(mk)) == ["conv", "head"]
    np.testing.assert_allclose(
        models.numpy(mk(x)), models.numpy(model(x)), rtol=1e-6, atol=1e-6
    )


def test_t5_backbone_from_local_preset_reaches_all_36_dense_layers(t5, mk_t5):
    assert type(t5).__name__ == "T5Backbone"  # loaded with from_preset
    assert type(mk_t5).__name__ == "T5Backbone"
    paths = mk_paths(mk_t5)
    assert len(paths) == 36
    assert "transformer_decoder_layer_1/cross_attention/key_projector" in paths
    assert not class_map.mk_layers_of(t5)
    x = models.t5_inputs()
    ref, out = t5(x), mk_t5(x)
    train = mk_t5(x, training=True)
    for key in ref:
        np.testing.assert_allclose(
            models.numpy(out[key]), models.numpy(ref[key]), atol=2e-6
        )
        np.testing.assert_array_equal(
            models.numpy(train[key]), models.numpy(ref[key])
        )


def test_t5_backbone_original_is_untouched_byte_for_byte(t5):
    config = json.dumps(t5.get_config(), sort_keys=True, default=str)
    before = models.weights_snapshot(t5)
    mk = keras_mk.clone_model(t5, seed=3)
    mk(models.t5_inputs(), training=True)  # and training the copy
    models.assert_same_weights(t5, before)
    assert json.dumps(t5.get_config(), sort_keys=True, default=str) == config
    assert not class_map.mk_layers_of(t5)


@pytest.mark.parametrize(
    "builder, count",
    [
        # A KerasHub task wrapping a ResNetBackbone: 6 convs and the head.
        (models.resnet_classifier, 7),
        # KerasCV, from config with block_type="block", 2 blocks per stack.
        (models.resnet_v2_backbone, 15),
        # ResNetV2 the maintained way, KerasHub's pre-activation blocks.
        (models.resnet_v2_hub_backbone, 10),
    ],
)
def test_resnets_convert_and_collapse(builder, count):
    model = builder()
    x = models.images()
    mk = assert_converted_equal(model, x, count, expansion=2, seed=0)
    rng = np.random.default_rng(0)
    for _, layer in class_map.mk_layers_of(mk):
        shape = tuple(layer.expanded_kernel.shape)
        layer.set_expanded_kernel(rng.normal(0, 0.2, shape).astype("float32"))
    plain = keras_mk.collapse(mk)
    assert type(plain) is type(model)
    assert not class_map.mk_layers_of(plain)
    assert json.dumps(plain.get_config(), sort_keys=True, default=str) == (
        json.dumps(model.get_config(), sort_keys=True, default=str)
    )
    np.testing.assert_allclose(
        models.numpy(plain(x)), models.numpy(mk(x)), rtol=0, atol=1e-5
    )


def test_selection_by_class_regex_and_callable():
    model = models.nested_functional()
    by_class = keras_mk.clone_model(model, layers=[keras.layers.EinsumDense])
    assert sorted(mk_paths(by_class)) == [
        "einsum",
        "mha/attention_output",
        "mha/key",
        "mha/query",
        "mha/value",
    ]
    by_regex = keras_mk.clone_model(model, layers=r"mha/(query|value)$")
    assert sorted(mk_paths(by_regex)) == ["mha/query", "mha/value"]
    by_callable = keras_mk.clone_model(
        model, layers=lambda layer: layer.name.startswith("s")
    )
    assert mk_paths(by_callable) == ["shared"]


def test_layer_kwargs_reach_every_layer():
    model = models.mlp()
    mk = keras_mk.clone_model(
        model,
        layers=keras.layers.Dense,  # a single class works like a list
        expansion=4,
        probabilities="uniform",
        concentration=2.0,
        expand_bias=True,
    )
    for _, layer in class_map.mk_layers_of(mk):
        assert layer.expansion == 4
        assert layer.probabilities == "uniform"
        assert layer.concentration == 2.0
        assert len(layer.bias_copies) == 4
        assert layer.seed is None


def test_fit_trains_the_copies_apart_and_leaves_original():
    model = models.small_cnn()
    before = models.weights_snapshot(model)
    mk = keras_mk.clone_model(model, seed=0)
    mk.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x, y = models.images(8), np.ones((8, 3), "float32")
    mk.fit(x, y, batch_size=4, epochs=1, verbose=0)
    models.assert_same_weights(model, before)
    for _, layer in class_map.mk_layers_of(mk):
        copies = models.numpy(layer.expanded_kernel)
        # Different p per copy: different gradients, so the copies diverge.
        assert not np.array_equal(copies[0], copies[1])
        assert np.all(np.isfinite(copies))


def test_clone_function_with_keras_clone_model():
    model = models.nested_functional()
    x = np.random.default_rng(2).normal(size=(2, 8, 4)).astype("float32")
    mk = keras.models.clone_model(
        model,
        clone_function=keras_mk.clone_function(expansion=2, seed=1),
        recursive=True,
    )
    # Top-level layers, the nested Sequential's, and the four projections
    # that MultiHeadAttention builds itself.
    assert (
        sorted(type(layer).__name__ for _, layer in mk_paths_layers(mk))
        == [
            "MKConv1D",
            "MKDense",
            "MKDense",
            "MKDepthwiseConv1D",
        ]
        + ["MKEinsumDense"] * 5
    )
    np.testing.assert_array_equal(models.numpy(mk(x)), models.numpy(model(x)))


def test_plain_save_of_layers_a_config_cannot_describe_is_refused(tmp_path):
    mk = keras.models.clone_model(
        models.nested_functional(), clone_function=keras_mk.clone_function
    )
    with pytest.raises(ValueError, match="keras_mk.save_model"):
        mk.save(str(tmp_path / "m.keras"))
    path = str(tmp_path / "ok.keras")
    keras_mk.save_model(mk, path)
    x = np.ones((2, 8, 4), "float32")
    np.testing.assert_array_equal(
        models.numpy(keras_mk.load_model(path)(x)), models.numpy(mk(x))
    )


def mk_paths_layers(model):
    return class_map.mk_layers_of(model)


def test_clone_model_serializes_the_model_once(monkeypatch):
    """The config the copy is built from also tells which MK layers it
    describes: `clone_model` does not serialize the copy again, and a
    model whose config describes every layer still saves with
    `model.save`, while one with undescribed MK layers is routed."""
    calls = []
    serialize = keras.saving.serialize_keras_object

    def counting(obj, *args, **kwargs):
        calls.append(type(obj).__name__)
        return serialize(obj, *args, **kwargs)

    monkeypatch.setattr(keras.saving, "serialize_keras_object", counting)
    mk = keras_mk.clone_model(models.nested_functional(), expansion=2)
    assert len(calls) == 1, calls
    undescribed = {
        path
        for path, layer in class_map.mk_layers_of(mk)
        if "save_own_variables" in layer.__dict__
    }
    # The attention's projections are built in its `__init__`: not in the
    # config. Every other MK layer is.
    assert undescribed == {
        f"mha/{name}" for name in ("query", "key", "value", "attention_output")
    }


def _three_dense():
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(5)(inputs)
    outputs = keras.layers.Dense(3)(keras.layers.Dense(4)(hidden))
    return keras.Model(inputs, outputs)


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="JAX's buffers")
def test_converted_weights_own_their_buffers():
    # JAX's `fit` donates a model's buffers, which would delete a weight
    # of the other model sharing one.
    original = _three_dense()
    mk = keras_mk.clone_model(original, expansion=3, seed=0)

    pointers = [
        v.value.unsafe_buffer_pointer() for v in original.weights + mk.weights
    ]
    assert len(set(pointers)) == len(pointers)
    mk.compile(optimizer="sgd", loss="mse")
    x = np.ones((4, 6), "float32")
    mk.fit(x, np.zeros((4, 3), "float32"), verbose=0)
    original(x)  # its buffers were not donated with the MK model's


@pytest.mark.skipif(
    keras.backend.backend() != "jax" or not fresh_copy.jax_copies_at_runtime(),
    reason="JAX's `device_put(may_alias=False)`",
)
def test_conversion_on_jax_compiles_nothing():
    # `keras.ops.copy` on JAX compiled an XLA program per weight shape
    # (71 of them, ~1 s, for EfficientNetB0); the copies are now runtime
    # copies.
    import jax

    original = _three_dense()
    compiled = []

    def listen(name, *args, **kwargs):
        if name == "/jax/core/compile/backend_compile_duration":
            compiled.append(name)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        keras_mk.clone_model(original, expansion=3, seed=0)
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)

    assert compiled == []
