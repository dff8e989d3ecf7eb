"""Converting separable convolutions and recurrent layers, and back.

A recurrent layer and its cell convert together (the layer runs one draw
per sequence, the cell holds the weights) and collapse together.
"""

import keras
import models
import numpy as np
import pytest

import keras_mk
from keras_mk.conversion import class_map

mk_layers = class_map.mk_layers_of

BACKEND = keras.backend.backend()


def text_classifier(unroll=False):
    """Embedding -> LSTM -> Dense, tiny, from config."""
    return keras.Sequential(
        [
            keras.Input((6,), dtype="int32"),
            keras.layers.Embedding(20, 8),
            keras.layers.LSTM(8, unroll=unroll, name="lstm"),
            keras.layers.Dense(2),
        ],
        name="text_classifier",
    )


def sequence_model():
    """Functional: SeparableConv1D, GRU, SimpleRNN, SeparableConv2D."""
    inputs = keras.Input((6, 3))
    x = keras.layers.SeparableConv1D(4, 3, padding="same")(inputs)
    x = keras.layers.GRU(4, return_sequences=True)(x)
    x = keras.layers.SimpleRNN(4, return_sequences=True)(x)
    x = keras.layers.Reshape((6, 4, 1))(x)
    x = keras.layers.SeparableConv2D(2, 3, padding="same")(x)
    outputs = keras.layers.Dense(2)(keras.layers.Flatten()(x))
    return keras.Model(inputs, outputs, name="sequence_model")


def tokens(batch=8, seed=0):
    return np.random.default_rng(seed).integers(0, 20, (batch, 6))


def series(batch=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, 6, 3)).astype("float32")


def conv_lstm_model():
    """Functional: ConvLSTM2D over a short clip, pooled, a Dense head."""
    inputs = keras.Input((4, 6, 6, 3))
    x = keras.layers.ConvLSTM2D(4, 3, padding="same", name="conv_lstm")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x), name="clips")


def clips(batch=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, 4, 6, 6, 3)).astype("float32")


def targets(batch=8, seed=1):
    return np.random.default_rng(seed).normal(size=(batch, 2)).astype("f4")


CASES = [
    (text_classifier, tokens),
    (sequence_model, series),
    (conv_lstm_model, clips),
]
IDS = ["lstm", "separable_gru_simple_rnn", "conv_lstm"]


@pytest.mark.parametrize("builder, data", CASES, ids=IDS)
def test_conversion_keeps_outputs_and_collapse_undoes_it(builder, data):
    model = builder()
    x = data()
    # Two copies: their mean is exactly the replicated weight.
    mk = keras_mk.clone_model(model, expansion=2, seed=0)
    np.testing.assert_array_equal(models.numpy(mk(x)), models.numpy(model(x)))
    np.testing.assert_allclose(
        models.numpy(mk(x, training=True)),
        models.numpy(model(x)),
        rtol=1e-5,
        atol=1e-6,
    )
    assert class_map.left_plain(mk, kernels_only=True) == []
    mk.compile(keras.optimizers.Adam(0.01), "mse")
    mk.fit(x, targets(), batch_size=4, verbose=0)

    small = keras_mk.collapse(mk)
    np.testing.assert_array_equal(models.numpy(small(x)), models.numpy(mk(x)))
    assert small.count_params() == model.count_params()
    assert [type(layer) for layer in small.layers] == [
        type(layer) for layer in model.layers
    ]
    for layer in small.layers:
        cell = getattr(layer, "cell", None)
        assert cell is None or not class_map.is_mk_layer(cell)


@pytest.mark.parametrize(
    "layers",
    [[keras.layers.LSTM], [keras.layers.LSTMCell], "lstm$", "lstm_cell"],
    ids=["layer-class", "cell-class", "layer-path", "cell-path"],
)
def test_a_recurrent_layer_and_its_cell_convert_together(layers):
    mk = keras_mk.clone_model(text_classifier(), layers=layers, seed=0)
    lstm = mk.layers[1]
    assert type(lstm) is keras_mk.layers.MKLSTM
    assert type(lstm.cell) is keras_mk.layers.MKLSTMCell
    assert [p for p, _ in class_map.mk_layers_of(mk)] == ["lstm/lstm_cell"]


def test_clone_function_converts_the_cell_with_its_layer():
    model = text_classifier()
    mk = keras.models.clone_model(
        model, clone_function=keras_mk.clone_function(expansion=2, seed=0)
    )
    assert type(mk.layers[1]) is keras_mk.layers.MKLSTM
    assert type(mk.layers[1].cell) is keras_mk.layers.MKLSTMCell
    x = tokens()
    np.testing.assert_array_equal(models.numpy(mk(x)), models.numpy(model(x)))


@pytest.mark.parametrize("builder, data", CASES, ids=IDS)
def test_save_load_and_resume_equal_uninterrupted_training(
    builder, data, tmp_path
):
    original = builder()
    x, y = data(12), targets(12)

    def fresh():
        mk = keras_mk.clone_model(original, expansion=2, seed=0)
        mk.compile(keras.optimizers.Adam(0.01), "mse")
        return mk

    interrupted = fresh()
    interrupted.fit(x[:8], y[:8], batch_size=4, shuffle=False, verbose=0)
    path = str(tmp_path / "mk.keras")
    keras_mk.save_model(interrupted, path)
    resumed = keras_mk.load_model(path)
    np.testing.assert_array_equal(
        models.numpy(resumed(x)), models.numpy(interrupted(x))
    )
    resumed.fit(x[8:], y[8:], batch_size=4, shuffle=False, verbose=0)

    uninterrupted = fresh()
    uninterrupted.fit(x, y, batch_size=4, shuffle=False, verbose=0)
    assert [type(layer) for layer in resumed.layers] == [
        type(layer) for layer in uninterrupted.layers
    ]

    # Every variable but the cells' dropout generators (Keras saves none).
    def state(model):
        seeds = [layer.seed_generator.state for _, layer in mk_layers(model)]
        return model.trainable_variables + seeds + model.optimizer.variables

    for a, b in zip(state(uninterrupted), state(resumed), strict=True):
        np.testing.assert_array_equal(models.numpy(a), models.numpy(b))

    # `model.save` and Keras's own loader round-trip too.
    keras_path = str(tmp_path / "keras.keras")
    uninterrupted.save(keras_path)
    loaded = keras.saving.load_model(keras_path)
    np.testing.assert_array_equal(
        models.numpy(loaded(x)), models.numpy(uninterrupted(x))
    )


def assert_litert_runs_as(path, model, sample):
    """The `.tflite` file at `path` computes `model(sample)` (to 1e-4)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    interpreter.set_tensor(inp["index"], sample.astype(inp["dtype"]))
    interpreter.invoke()
    np.testing.assert_allclose(
        interpreter.get_tensor(out["index"]),
        models.numpy(model(sample)),
        atol=1e-4,
    )


@pytest.mark.skipif(BACKEND != "tensorflow", reason="one backend: TensorFlow")
def test_lstm_text_classifier_trains_collapses_and_exports(tmp_path):
    pytest.importorskip("ai_edge_litert")
    # Unrolled: a plain Keras LSTM's loop needs LiteRT's Flex delegate
    # (TensorList ops), with or without keras_mk.
    mk = keras_mk.clone_model(text_classifier(unroll=True), seed=0)
    mk.compile(
        keras.optimizers.Adam(0.01),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x = tokens(16)
    mk.fit(x, x[:, 0] % 2, batch_size=8, epochs=1, verbose=0)
    path = str(tmp_path / "model.tflite")
    plain = keras_mk.export_litert(mk, path)
    assert type(plain.layers[1]) is keras.layers.LSTM
    assert_litert_runs_as(path, mk, x[:1].astype("int32"))


@pytest.mark.skipif(BACKEND != "tensorflow", reason="one backend: TensorFlow")
def test_tables_and_separable_convs_collapse_and_export_to_litert(tmp_path):
    # The new kinds in one deployable model: an MK embedding table (selected
    # with `embeddings=True`), a separable conv over its sequence and a
    # tied reversible table as the output projection; LiteRT runs the
    # collapsed model as the trained MK model computes.
    pytest.importorskip("ai_edge_litert")
    inputs = keras.Input((6,), dtype="int32")
    table = keras.layers.ReversibleEmbedding(20, 8, name="table")
    x = keras.layers.Embedding(20, 8, name="lookup")(inputs)
    x = keras.layers.SeparableConv1D(8, 3, padding="same", name="sep")(x)
    x = keras.layers.Add()([x, table(inputs)])
    logits = table(x, reverse=True)
    model = keras.Model(inputs, logits)
    mk = keras_mk.clone_model(model, embeddings=True, seed=0)
    kinds = {type(layer).__name__ for layer in mk.layers}
    assert {
        "MKEmbedding",
        "MKReversibleEmbedding",
        "MKSeparableConv1D",
    } <= kinds
    mk.compile(
        keras.optimizers.Adam(0.01),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x = tokens(16)
    mk.fit(x, x, batch_size=8, epochs=1, verbose=0)
    path = str(tmp_path / "model.tflite")
    plain = keras_mk.export_litert(mk, path)
    assert plain.count_params() == model.count_params()
    assert_litert_runs_as(path, mk, x[:1].astype("int32"))
