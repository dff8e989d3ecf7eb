"""`keras_mk.conversion_summary`: what was converted, what it costs."""

import models

import keras_mk


def test_summary_counts_training_and_inference_parameters():
    model = models.mlp()  # Dense 6->8 (56 params), Dense 8->3 (27 params)
    mk = keras_mk.clone_model(model, expansion=3)
    summary = keras_mk.conversion_summary(mk)
    assert [layer.path for layer in summary.layers] == ["hidden", "head"]
    assert [layer.training_params for layer in summary.layers] == [
        3 * 48 + 8,
        3 * 24 + 3,
    ]
    assert [layer.inference_params for layer in summary.layers] == [56, 27]
    assert summary.inference_params == model.count_params() == 83
    assert summary.training_params == mk.count_params() == 83 + 2 * 72
    text = str(summary)
    assert "hidden" in text and "MKDense" in text
    assert "Training params:  227" in text
    assert "Inference params: 83" in text


def test_summary_with_expanded_bias_and_no_mk_layers():
    mk = keras_mk.clone_model(models.mlp(), expansion=2, expand_bias=True)
    summary = keras_mk.conversion_summary(mk)
    assert summary.training_params == 2 * 83
    assert summary.inference_params == 83
    plain = keras_mk.conversion_summary(models.mlp())
    assert plain.layers == ()
    assert "MK layers: 0" in str(plain)
