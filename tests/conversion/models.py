"""Small models for the conversion tests, built from config (no downloads).

With the checks the tests share on them: same variables, same outputs.
"""

import functools

import hub_tasks
import keras
import numpy as np
import pytest

from keras_mk import testing

# The tiny transformers of `hub_tasks`, with other sizes (T5 takes no
# `max_sequence_length`).
T5_CONFIG = {
    k: v for k, v in hub_tasks.TRANSFORMER.items() if k != "max_sequence_length"
} | dict(num_layers=2, hidden_dim=16, intermediate_dim=32, key_value_dim=8)
T5_CONFIG["vocabulary_size"] = 50
BERT_CONFIG = dict(
    hub_tasks.TRANSFORMER, vocabulary_size=30, max_sequence_length=8
)


def bert_backbone():
    import keras_hub

    return keras_hub.models.BertBackbone(**BERT_CONFIG)


def t5_backbone():
    import keras_hub

    return keras_hub.models.T5Backbone(**T5_CONFIG)


@functools.cache
def _input_specs(builder):
    """`builder()`, built once: what its inputs are."""
    return builder()


def bert_inputs(batch=4, seed=0):
    """Random token ids, one segment, no padding (`inputs_for`)."""
    rng = np.random.default_rng(seed)
    return testing.inputs_for(_input_specs(bert_backbone), rng, batch)


def t5_inputs(batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return testing.inputs_for(_input_specs(t5_backbone), rng, batch)


def resnet_backbone(pre_activation=False):
    """A KerasHub ResNet; ResNetV2 the maintained way with `pre_activation`
    (then two blocks per stack)."""
    import keras_hub

    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 16],
        stackwise_num_blocks=[2, 2] if pre_activation else [1, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
        use_pre_activation=pre_activation,
        image_shape=(16, 16, 3),
    )


def resnet_v2_hub_backbone():
    """ResNetV2 the maintained way: KerasHub with pre-activation blocks."""
    return resnet_backbone(pre_activation=True)


def resnet_classifier():
    import keras_hub

    return keras_hub.models.ResNetImageClassifier(
        backbone=resnet_backbone(), num_classes=3
    )


def resnet_v2_backbone():
    # KerasCV is deprecated and optional (the `keras-cv` extra).
    keras_cv = pytest.importorskip("keras_cv")

    return keras_cv.models.ResNetV2Backbone(
        stackwise_filters=[8, 16],
        stackwise_blocks=[2, 2],
        stackwise_strides=[1, 2],
        block_type="block",
        input_shape=(16, 16, 3),
        include_rescaling=False,
    )


def images(batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(batch, 16, 16, 3)).astype("float32")


def mlp(dropout=True):
    """A Sequential model with Dense layers and a (seeded) Dropout."""
    return keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8, activation="relu", name="hidden"),
            keras.layers.Dropout(0.5 if dropout else 0.0, seed=3),
            keras.layers.Dense(3, name="head"),
        ],
        name="mlp",
    )


def nested_functional(attention=True):
    """Functional model: a nested Sequential, a shared Dense, MHA, convs."""
    inputs = keras.Input((8, 4), name="tokens")
    block = keras.Sequential(
        [keras.Input((8, 4)), keras.layers.Dense(4, name="inner")],
        name="block",
    )
    shared = keras.layers.Dense(4, name="shared")
    x = block(inputs)
    x = shared(x)
    x = shared(x)
    if attention:
        x = keras.layers.MultiHeadAttention(2, 4, name="mha")(x, x)
    x = keras.layers.Conv1D(4, 3, padding="same", name="conv")(x)
    x = keras.layers.DepthwiseConv1D(3, padding="same", name="depthwise")(x)
    x = keras.layers.EinsumDense("abc,cd->abd", (8, 2), name="einsum")(x)
    return keras.Model(inputs, x, name="nested")


def small_cnn():
    """A Functional CNN: Conv2D, DepthwiseConv2D, BatchNorm, Dense."""
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3)(x)
    return keras.Model(inputs, outputs, name="small_cnn")


def numpy(x):
    return keras.ops.convert_to_numpy(x)


def weights_snapshot(model):
    return [np.array(numpy(v.value), copy=True) for v in model.variables]


def assert_same_variables(a, b):
    """Two models (or optimizers) hold the same variables, exactly."""
    assert len(a.variables) == len(b.variables)
    for x, y in zip(a.variables, b.variables):
        assert tuple(x.shape) == tuple(y.shape)
        np.testing.assert_array_equal(numpy(x.value), numpy(y.value))


def outputs(model, x, training):
    y = model(x, training=training)
    if isinstance(y, dict):
        return {k: numpy(v) for k, v in y.items()}
    return numpy(y)


def assert_same_outputs(a, b, x):
    """Two models compute the same outputs, in inference and training."""
    for training in (False, True):
        np.testing.assert_equal(
            outputs(a, x, training), outputs(b, x, training)
        )


def assert_same_weights(model, snapshot):
    current = weights_snapshot(model)
    assert len(current) == len(snapshot)
    for a, b in zip(current, snapshot):
        np.testing.assert_array_equal(a, b)
