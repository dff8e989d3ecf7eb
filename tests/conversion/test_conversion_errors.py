"""Bad input gets a clear error, and nothing is modified."""

import json

import keras
import models
import numpy as np
import pytest

import keras_mk
from keras_mk.conversion import class_map


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"layers": 3}, TypeError, "`layers` must be None"),
        ({"layers": "(unclosed"}, ValueError, "not a valid regular"),
        ({"layers": "no_such_layer"}, ValueError, "Nothing to convert"),
        ({"layers": []}, ValueError, "empty list"),
        (
            {"layers": [keras.layers.LayerNormalization]},
            ValueError,
            "LayerNormalization has no Majority Kernels counterpart",
        ),
        (
            {"layers": [keras_mk.MKDense]},
            ValueError,
            "MKDense has no Majority Kernels counterpart",
        ),
        ({"layers": ["head"]}, TypeError, "must hold layer classes"),
        # The MK arguments are validated before anything is read or copied
        # (by MKConfig: every argument's table is test_mk_arguments.py's).
        ({"expansion": 0}, ValueError, "`expansion` must be an integer"),
        ({"copy_initialization": "independent"}, ValueError, "replicates"),
        ({"kernel_size": 3}, ValueError, "Unknown MK layer arguments"),
    ],
)
def test_bad_arguments_raise_and_leave_the_model_alone(kwargs, error, message):
    model = models.mlp()
    config = json.dumps(model.get_config(), sort_keys=True)
    before = models.weights_snapshot(model)
    with pytest.raises(error, match=message):
        keras_mk.clone_model(model, **kwargs)
    models.assert_same_weights(model, before)
    assert json.dumps(model.get_config(), sort_keys=True) == config
    assert not class_map.mk_layers_of(model)


@pytest.mark.parametrize(
    "function",
    [
        keras_mk.clone_model,
        keras_mk.collapse,
        keras_mk.conversion_summary,
        lambda m: keras_mk.save_model(m, "x.keras"),
        lambda m: keras_mk.export_litert(m, "x.tflite"),
    ],
)
def test_non_keras_objects_and_unbuilt_models(function):
    with pytest.raises(TypeError, match="expects a `keras.Model`"):
        function(object())
    with pytest.raises(TypeError, match="expects a `keras.Model`"):
        function(keras.layers.Dense(2))
    unbuilt = keras.Sequential([keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="is not built"):
        function(unbuilt)
    assert not unbuilt.built


def test_nothing_to_convert():
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.LayerNormalization()]
    )
    with pytest.raises(ValueError, match="Nothing to convert.*Convertible"):
        keras_mk.clone_model(model)


def test_subclasses_of_supported_layers_are_not_converted():
    class MyDense(keras.layers.Dense):
        pass

    model = keras.Sequential([keras.Input((4,)), MyDense(2)])
    with pytest.raises(ValueError, match="Nothing to convert"):
        keras_mk.clone_model(model)


def test_converting_an_mk_model_again_is_an_error():
    mk = keras_mk.clone_model(models.mlp())
    before = models.weights_snapshot(mk)
    with pytest.raises(ValueError, match="already has 2 MK layers"):
        keras_mk.clone_model(mk)
    models.assert_same_weights(mk, before)


def test_a_float8_layer_is_refused_naming_it():
    # Keras gives no LoRA on float8: MK would have nothing to train.
    model = models.mlp()
    model.quantize("float8")
    before = models.weights_snapshot(model)
    with pytest.raises(ValueError, match="'hidden' is quantized .float8."):
        keras_mk.clone_model(model)
    models.assert_same_weights(model, before)


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_a_quantized_layer_without_lora_converts_and_says_it_simulates_nothing(
    mode, tmp_path
):
    model = models.mlp()
    model.quantize(mode)
    x = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
    with pytest.warns(UserWarning, match="'mlp' are quantized without LoRA"):
        mk = keras_mk.clone_model(model)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(mk(x)), keras.ops.convert_to_numpy(model(x))
    )
    for name in ("hidden", "head"):
        assert "kernel" not in mk.get_layer(name).weight_copies
    # Saved and loaded exactly; collapsed to the quantized Keras layers.
    keras_mk.save_model(mk, tmp_path / "mk.keras")
    restored = keras_mk.load_model(tmp_path / "mk.keras")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(restored(x)),
        keras.ops.convert_to_numpy(mk(x)),
    )
    small = keras_mk.collapse(mk)
    assert small.get_layer("hidden").quantization_mode == mode
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(small(x)),
        keras.ops.convert_to_numpy(model(x)),
    )


def test_save_and_export_paths_are_checked():
    model = models.mlp()
    with pytest.raises(ValueError, match="must end in `.keras`"):
        keras_mk.save_model(model, "model.h5")
    with pytest.raises(ValueError, match="end in `.tflite`"):
        keras_mk.export_litert(model, "model.keras")
    x = np.ones((1, 6), "float32")
    assert models.numpy(model(x)).shape == (1, 3)
