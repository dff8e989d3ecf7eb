"""`keras_mk.collapse`: the plain model equals the MK model's inference."""

import json

import keras
import models
import numpy as np
import pytest

import keras_mk
from keras_mk.conversion import class_map


def perturb_copies(model, seed=0):
    """Gives every copy its own values, as training would."""
    rng = np.random.default_rng(seed)
    for _, layer in class_map.mk_layers_of(model):
        shape = tuple(layer.expanded_kernel.shape)
        layer.set_expanded_kernel(rng.normal(0, 0.3, shape).astype("float32"))
        if layer.expand_bias and layer.bias_copies:
            shape = tuple(layer.expanded_bias.shape)
            value = rng.normal(0, 0.1, shape).astype("float32")
            layer.set_expanded_bias(value)


def config_json(model):
    return json.dumps(model.get_config(), sort_keys=True, default=str)


def test_collapse_equals_inference_and_restores_config():
    model = models.nested_functional()
    # Expanded biases: the collapsed bias is their mean too.
    mk = keras_mk.clone_model(model, expand_bias=True, seed=0)
    perturb_copies(mk)
    mk_before = models.weights_snapshot(mk)
    x = np.random.default_rng(3).normal(size=(2, 8, 4)).astype("float32")
    plain = keras_mk.collapse(mk)
    models.assert_same_weights(mk, mk_before)
    assert type(plain) is type(model)
    assert not class_map.mk_layers_of(plain)
    assert config_json(plain) == config_json(model)
    assert plain.count_params() == model.count_params()
    np.testing.assert_allclose(
        models.numpy(plain(x)), models.numpy(mk(x)), rtol=0, atol=1e-5
    )
    # The collapsed kernel is exactly the mean of the copies.
    for path, layer in class_map.mk_layers_of(mk):
        target = dict(class_map.iter_layers(plain))[path]
        assert type(target) is class_map.plain_class_for(layer)
        np.testing.assert_array_equal(
            models.numpy(target.kernel), models.numpy(layer.kernel)
        )


def test_collapse_t5_backbone(t5, mk_t5):
    layers = [layer for _, layer in class_map.mk_layers_of(mk_t5)]
    saved = [models.numpy(layer.expanded_kernel) for layer in layers]
    perturb_copies(mk_t5)
    try:
        plain = keras_mk.collapse(mk_t5)
        assert type(plain).__name__ == "T5Backbone"
        assert config_json(plain) == config_json(t5)
        assert plain.count_params() == t5.count_params()
        x = models.t5_inputs()
        expected, out = mk_t5(x), plain(x)
        for key in expected:
            np.testing.assert_allclose(
                models.numpy(out[key]), models.numpy(expected[key]), atol=1e-5
            )
    finally:
        for layer, value in zip(layers, saved):
            layer.set_expanded_kernel(value)


def test_collapse_without_mk_layers_is_an_equivalent_copy():
    model = models.mlp()
    plain = keras_mk.collapse(model)
    assert plain is not model
    assert config_json(plain) == config_json(model)
    x = np.ones((2, 6), "float32")
    np.testing.assert_array_equal(
        models.numpy(plain(x)), models.numpy(model(x))
    )


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_collapse_rejects_non_finite_mean_kernel(bad):
    mk = keras_mk.clone_model(models.mlp())
    layer = class_map.mk_layers_of(mk)[1][1]
    value = models.numpy(layer.expanded_kernel).copy()
    value[2, 0, 0] = bad
    layer.set_expanded_kernel(value)
    with pytest.raises(ValueError, match="'head' has non-finite values"):
        keras_mk.collapse(mk)


def test_collapsed_model_is_plain_keras_after_fit():
    model = models.small_cnn()
    mk = keras_mk.clone_model(model, seed=0)
    mk.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    x, y = models.images(8), np.zeros((8, 3), "float32")
    mk.fit(x, y, batch_size=4, verbose=0)
    plain = keras_mk.collapse(mk)
    np.testing.assert_allclose(
        models.numpy(plain(x)), models.numpy(mk(x)), atol=1e-5
    )
    summary = keras_mk.conversion_summary(mk)
    assert summary.inference_params == plain.count_params()
