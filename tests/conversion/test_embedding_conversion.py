"""Converting embedding tables: selection, shares, the contract, KerasHub."""

import keras
import models
import numpy as np
import pytest
import tiny_hub
from hub_tasks import TRANSFORMER

import keras_mk
from keras_mk.conversion import class_map
from keras_mk.layers.mk_embedding import MKReversibleTable

V, D, T = 20, 6, 5


def text_model():
    """Embedding (20 x 6 = 120) -> Flatten -> Dense (30 x 3 + 3 = 93)."""
    return keras.Sequential(
        [
            keras.Input((T,), dtype="int32"),
            keras.layers.Embedding(V, D, name="table"),
            keras.layers.Flatten(),
            keras.layers.Dense(3, name="head"),
        ],
        name="text",
    )


def tied_model():
    """A Functional language model whose output projection is its table."""
    inputs = keras.Input((T,), dtype="int32")
    table = keras.layers.ReversibleEmbedding(V, D, name="table")
    hidden = keras.layers.Dense(D, name="hidden")(table(inputs))
    return keras.Model(inputs, table(hidden, reverse=True), name="tied")


def token_ids(batch=8, seed=0):
    return np.random.default_rng(seed).integers(0, V, (batch, T))


def assert_converted_outputs(plain, mk, x):
    """Training and inference: exactly the plain model's (every copy mixes
    to the pretrained weight; the mean of `e` equal copies is that weight,
    as for every MK layer)."""
    np.testing.assert_equal(
        models.outputs(mk, x, True), models.outputs(plain, x, False)
    )
    got, want = models.outputs(mk, x, False), models.outputs(plain, x, False)
    if not isinstance(want, dict):
        got, want = {"": got}, {"": want}
    for key in want:
        np.testing.assert_array_equal(got[key], want[key])


def test_tables_are_left_plain_and_listed_unless_selected():
    model = text_model()
    mk = keras_mk.clone_model(model, seed=0)
    assert [p for p, _ in class_map.mk_layers_of(mk)] == ["head"]
    assert class_map.left_plain(mk) == [
        ("table", "Embedding", class_map.NOT_SELECTED)
    ]
    selected = keras_mk.clone_model(model, embeddings=True, seed=0)
    assert [p for p, _ in class_map.mk_layers_of(selected)] == ["table", "head"]
    assert class_map.left_plain(selected) == []
    named = keras_mk.clone_model(model, layers=[keras.layers.Embedding])
    assert [p for p, _ in class_map.mk_layers_of(named)] == ["table"]
    with pytest.raises(ValueError, match="embeddings"):
        keras_mk.clone_model(model, embeddings="yes")


def test_clone_function_selects_tables_the_same_way():
    model = text_model()
    for embeddings, expected in ((False, 1), (True, 2)):
        mk = keras.models.clone_model(
            model,
            clone_function=keras_mk.clone_function(embeddings=embeddings),
        )
        assert len(class_map.mk_layers_of(mk)) == expected


def test_summary_shares_computed_by_hand():
    model = text_model()
    plain = keras_mk.conversion_summary(keras_mk.clone_model(model))
    # Simulated: the Dense kernel (90) of 213 trainable parameters; of the
    # matrix-shaped ones (table 120, kernel 90) 90 of 210.
    assert plain.simulated_share == pytest.approx(90 / 213)
    assert plain.matrix_share == pytest.approx(90 / 210)
    kinds = {k.kind: k for k in plain.kinds}
    assert (
        kinds["Embedding"].simulated_params,
        kinds["Embedding"].trainable_params,
    ) == (0, 120)
    assert (
        kinds["Dense"].simulated_params,
        kinds["Dense"].trainable_params,
    ) == (90, 93)
    full = keras_mk.conversion_summary(
        keras_mk.clone_model(model, embeddings=True, expand_bias=True)
    )
    assert full.simulated_share == 1.0 and full.matrix_share == 1.0
    assert full.inference_params == 213
    assert full.training_params == 3 * 213
    assert "Simulated: 100.0% of trainable params" in str(full)


@pytest.mark.parametrize("builder", [text_model, tied_model])
def test_outputs_equal_after_conversion_and_collapse_is_exact(builder):
    model = builder()
    x = token_ids()
    mk = keras_mk.clone_model(model, embeddings=True, seed=0)
    assert_converted_outputs(model, mk, x)
    mk.compile(keras.optimizers.Adam(0.05), "mse")
    y = models.numpy(model(x)) * 0.0
    mk.fit(x, y, epochs=2, batch_size=4, verbose=0)
    small = keras_mk.collapse(mk)
    assert type(small.get_layer("table")) is type(model.get_layer("table"))
    np.testing.assert_array_equal(
        models.numpy(small(x)), models.numpy(mk(x, training=False))
    )


@pytest.mark.parametrize("route", ["model.save", "keras_mk.save_model"])
def test_save_load_and_resume_equal_uninterrupted(route, tmp_path):
    model = tied_model()
    x = token_ids(16, seed=1)
    y = models.numpy(model(x)) * 0.0 + 0.1

    def fresh():
        mk = keras_mk.clone_model(model, embeddings=True, seed=0)
        mk.compile(keras.optimizers.Adam(0.01), "mse")
        return mk

    interrupted = fresh()
    interrupted.fit(x[:8], y[:8], batch_size=4, shuffle=False, verbose=0)
    path = str(tmp_path / "m.keras")
    if route == "model.save":
        interrupted.save(path)
        resumed = keras.saving.load_model(path)
    else:
        keras_mk.save_model(interrupted, path)
        resumed = keras_mk.load_model(path)
    models.assert_same_variables(interrupted, resumed)
    resumed.fit(x[8:], y[8:], batch_size=4, shuffle=False, verbose=0)
    uninterrupted = fresh()
    uninterrupted.fit(x, y, batch_size=4, shuffle=False, verbose=0)
    models.assert_same_variables(uninterrupted, resumed)


# -- KerasHub ----------------------------------------------------------------


def _hub_models(keras_hub):
    bert = keras_hub.models.BertBackbone(vocabulary_size=50, **TRANSFORMER)
    gpt2 = keras_hub.models.GPT2Backbone(vocabulary_size=50, **TRANSFORMER)
    gemma = keras_hub.models.GemmaCausalLM(
        backbone=tiny_hub.gemma_backbone(keras_hub),
        preprocessor=None,
    )
    return {"bert": bert, "gpt2": gpt2, "gemma": gemma}


def _hub_inputs(name):
    rng = np.random.default_rng(3)
    x = {
        "token_ids": rng.integers(1, 50, (2, 8)),
        "padding_mask": np.ones((2, 8), bool),
    }
    if name == "bert":
        x["segment_ids"] = np.zeros((2, 8), "int32")
    return x


def test_keras_hub_models_simulate_their_tables():
    keras_hub = pytest.importorskip("keras_hub")
    for name, model in _hub_models(keras_hub).items():
        x = _hub_inputs(name)
        mk = keras_mk.clone_model(model, embeddings=True, seed=0)
        summary = keras_mk.conversion_summary(mk)
        print(
            name,
            f"{summary.simulated_share:.4f}",
            f"{summary.matrix_share:.4f}",
        )
        assert summary.matrix_share >= 0.99, (name, str(summary))
        kinds = {k.kind: k.share for k in summary.kinds}
        for kind in ("ReversibleEmbedding", "PositionEmbedding"):
            assert kinds.get(kind, 1.0) == 1.0, (name, kinds)
        assert_converted_outputs(model, mk, x)
        small = keras_mk.collapse(mk)
        np.testing.assert_equal(
            models.outputs(small, x, False), models.outputs(mk, x, False)
        )
        left = keras_mk.conversion_summary(keras_mk.clone_model(model))
        assert any(r == class_map.NOT_SELECTED for _, _, r in left.left_plain)


def test_gemma_lookup_and_tied_reverse_share_one_draw_per_step():
    keras_hub = pytest.importorskip("keras_hub")
    mk = keras_mk.clone_model(
        _hub_models(keras_hub)["gemma"], embeddings=True, seed=0
    )
    table = mk.backbone.token_embedding
    assert isinstance(table, MKReversibleTable)
    x = _hub_inputs("gemma")
    for step in range(1, 3):
        mk(x, training=True)
        # One even state per step: the lookup's, read again by the reverse.
        state = models.numpy(table.seed_generator.state.value)
        assert int(state[1]) == 2 * step


def test_keras_hub_backbone_with_tables_saves_and_loads(tmp_path):
    keras_hub = pytest.importorskip("keras_hub")
    mk = keras_mk.clone_model(
        _hub_models(keras_hub)["gpt2"], embeddings=True, seed=0
    )
    x = _hub_inputs("gpt2")
    mk(x, training=True)
    path = str(tmp_path / "gpt2.keras")
    keras_mk.save_model(mk, path)
    restored = keras_mk.load_model(path)
    assert [(p, type(la).__name__) for p, la in class_map.mk_layers_of(mk)] == [
        (p, type(la).__name__) for p, la in class_map.mk_layers_of(restored)
    ]
    models.assert_same_variables(mk, restored)
    models.assert_same_outputs(mk, restored, x)


def test_keras_hub_tables_in_a_functional_model_save_and_collapse(tmp_path):
    keras_hub = pytest.importorskip("keras_hub")
    inputs = keras.Input((T,), dtype="int32")
    table = keras_hub.layers.ReversibleEmbedding(V, D, name="table")
    hidden = table(inputs)
    position = keras_hub.layers.PositionEmbedding(T, name="position")
    hidden = hidden + position(hidden)
    model = keras.Model(inputs, table(hidden, reverse=True))
    x = token_ids()
    mk = keras_mk.clone_model(model, embeddings=True, seed=0)
    assert_converted_outputs(model, mk, x)
    mk(x, training=True)
    path = str(tmp_path / "hub.keras")
    mk.save(path)
    restored = keras.saving.load_model(path)
    models.assert_same_variables(mk, restored)
    small = keras_mk.collapse(restored)
    for name in ("table", "position"):
        assert type(small.get_layer(name)) is type(model.get_layer(name))
    np.testing.assert_array_equal(
        models.numpy(small(x)), models.numpy(mk(x, training=False))
    )
