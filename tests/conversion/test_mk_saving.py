"""Saving and loading MK models: round trips, checkpoints, resuming."""

import os
import subprocess
import sys

import keras
import models
import numpy as np
import pytest

import keras_mk
from keras_mk.conversion import class_map

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def seed_states(model):
    return [
        models.numpy(layer.seed_generator.state.value)
        for _, layer in class_map.mk_layers_of(model)
    ]


def assert_same_state(a, b):
    assert type(a) is type(b)
    assert [p for p, _ in class_map.mk_layers_of(a)] == [
        p for p, _ in class_map.mk_layers_of(b)
    ]
    models.assert_same_variables(a, b)
    for x, y in zip(seed_states(a), seed_states(b)):
        np.testing.assert_array_equal(x, y)


# Keras does not save a Dropout's seed state, so no Dropout here.
@pytest.mark.parametrize(
    "builder",
    [
        lambda: models.mlp(dropout=False),
        lambda: models.nested_functional(attention=False),
    ],
    ids=["sequential", "functional"],
)
def test_plain_keras_load_of_sequential_and_functional(builder, tmp_path):
    mk = keras_mk.clone_model(builder(), seed=0)
    x = np.ones((2,) + tuple(mk.input_shape[1:]), "float32")
    mk(x, training=True)  # move the seed generators off their start
    path = str(tmp_path / "mk.keras")
    mk.save(path)
    restored = keras.saving.load_model(path)
    assert_same_state(mk, restored)
    models.assert_same_outputs(mk, restored, x)


def test_model_save_of_mk_layers_inside_attention_round_trips(tmp_path):
    mk = keras_mk.clone_model(models.nested_functional(), seed=0)
    x = np.ones((2, 8, 4), "float32")
    mk(x, training=True)
    path = str(tmp_path / "mk.keras")
    # MultiHeadAttention rebuilds plain EinsumDense layers in `__init__`:
    # `model.save` writes what `keras_mk.save_model` writes.
    mk.save(path)
    assert_same_state(mk, keras.saving.load_model(path))
    restored = keras_mk.load_model(path)
    assert_same_state(mk, restored)
    models.assert_same_outputs(mk, restored, x)


def test_t5_backbone_round_trip_keeps_class_weights_and_seeds(mk_t5, tmp_path):
    x = models.t5_inputs()
    mk_t5(x, training=True)
    path = str(tmp_path / "mk_t5.keras")
    keras_mk.save_model(mk_t5, path)
    restored = keras_mk.load_model(path)
    assert type(restored).__name__ == "T5Backbone"
    assert len(class_map.mk_layers_of(restored)) == 36
    assert_same_state(mk_t5, restored)
    models.assert_same_outputs(mk_t5, restored, x)


@pytest.mark.parametrize(
    "builder",
    [
        models.resnet_backbone,
        models.resnet_classifier,
        models.resnet_v2_backbone,
    ],
    ids=[
        "keras_hub_resnet",
        "keras_hub_resnet_classifier",
        "keras_cv_resnet_v2",
    ],
)
def test_resnet_round_trip_keeps_class_weights_and_seeds(builder, tmp_path):
    mk = keras_mk.clone_model(builder(), seed=0)
    x = models.images()
    mk(x, training=True)
    path = str(tmp_path / "mk_resnet.keras")
    keras_mk.save_model(mk, path)
    restored = keras_mk.load_model(path)
    assert class_map.mk_layers_of(restored)
    assert_same_state(mk, restored)
    models.assert_same_outputs(mk, restored, x)


def test_weights_only_checkpoint_restores_into_a_fresh_conversion(
    t5, mk_t5, tmp_path
):
    mk_t5(models.t5_inputs(), training=True)
    path = str(tmp_path / "ckpt.weights.h5")
    mk_t5.save_weights(path)
    fresh = keras_mk.clone_model(t5, seed=0)
    fresh.load_weights(path)
    assert_same_state(mk_t5, fresh)


def test_model_checkpoint_callback_weights_only(tmp_path):
    original = models.small_cnn()
    mk = keras_mk.clone_model(original, seed=0)
    mk.compile(optimizer="adam", loss="mse")
    path = str(tmp_path / "epoch.weights.h5")
    callback = keras.callbacks.ModelCheckpoint(path, save_weights_only=True)
    x, y = models.images(8), np.ones((8, 3), "float32")
    mk.fit(x, y, batch_size=4, callbacks=[callback], verbose=0)
    fresh = keras_mk.clone_model(original, seed=0)
    fresh.load_weights(path)
    assert_same_state(mk, fresh)


RESUME_SCRIPT = """
import sys
import numpy as np
import keras_mk
model = keras_mk.load_model(sys.argv[1])
data = np.load(sys.argv[2])
model.fit(data["x"], data["y"], batch_size=4, shuffle=False, verbose=0)
keras_mk.save_model(model, sys.argv[3])
"""


def test_resume_in_a_fresh_process_equals_uninterrupted_training(tmp_path):
    original = models.small_cnn()
    x = models.images(20, seed=5)
    y = np.random.default_rng(6).normal(size=(20, 3)).astype("float32")

    def fresh():
        mk = keras_mk.clone_model(original, seed=0)
        mk.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
        return mk

    # N = 3 steps here, M = 2 steps in a new Python process.
    interrupted = fresh()
    interrupted.fit(x[:12], y[:12], batch_size=4, shuffle=False, verbose=0)
    first, last = str(tmp_path / "n.keras"), str(tmp_path / "n_m.keras")
    keras_mk.save_model(interrupted, first)
    np.savez(tmp_path / "rest.npz", x=x[12:], y=y[12:])
    subprocess.run(
        [sys.executable, "-c", RESUME_SCRIPT, first, tmp_path / "rest.npz"]
        + [last],
        check=True,
        cwd=ROOT,
        env=dict(os.environ),
    )
    resumed = keras_mk.load_model(last)

    uninterrupted = fresh()
    uninterrupted.fit(x, y, batch_size=4, shuffle=False, verbose=0)
    assert int(resumed.optimizer.iterations.value) == 5
    assert_same_state(uninterrupted, resumed)
    models.assert_same_variables(uninterrupted.optimizer, resumed.optimizer)
