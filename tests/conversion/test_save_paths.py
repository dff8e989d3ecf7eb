"""Every way a Keras user saves an MK model round-trips.

`model.save`, `ModelCheckpoint` (full and weights only), `BackupAndRestore`
and KerasHub `save_to_preset`, on a KerasHub backbone whose MK layers its
config cannot describe: each file loads back exactly through
`keras_mk.load_model` (or `load_weights` into the same conversion).
"""

import os

import keras
import models
import numpy as np
import pytest

import keras_mk
from keras_mk.conversion import class_map

keras_hub = pytest.importorskip("keras_hub")


@pytest.fixture()
def mk_bert():
    mk = keras_mk.clone_model(models.bert_backbone(), seed=0)
    mk(models.bert_inputs(), training=True)  # move the seed states
    return mk


def test_model_save_of_a_converted_backbone_loads_exactly(mk_bert, tmp_path):
    path = str(tmp_path / "m.keras")
    mk_bert.save(path)
    restored = keras_mk.load_model(path)
    assert type(restored) is type(mk_bert)
    assert len(class_map.mk_layers_of(restored)) == len(
        class_map.mk_layers_of(mk_bert)
    )
    models.assert_same_variables(mk_bert, restored)
    models.assert_same_outputs(mk_bert, restored, models.bert_inputs())


def test_save_to_preset_refuses_before_writing(mk_bert, tmp_path):
    directory = tmp_path / "preset"
    with pytest.raises(ValueError, match="keras_mk.save_model"):
        mk_bert.save_to_preset(str(directory))
    assert not directory.exists()
    # The deployable model saves as a preset that names no keras_mk class
    # (loading a collapsed file without keras_mk, in a fresh process, is
    # `test_trained_mk_model_exports_and_loads_without_keras_mk`).
    keras_mk.collapse(mk_bert).save_to_preset(str(directory))
    for config in directory.glob("*.json"):
        assert "keras_mk" not in config.read_text(), config.name
    plain = keras_hub.models.Backbone.from_preset(str(directory))
    assert not class_map.mk_layers_of(plain)


def test_task_built_around_an_mk_backbone_refuses_a_plain_save(
    mk_bert, tmp_path
):
    task = keras_hub.models.BertTextClassifier(
        mk_bert, num_classes=2, preprocessor=None
    )
    with pytest.raises(ValueError, match="keras_mk.save_model"):
        task.save(str(tmp_path / "task.keras"))
    path = str(tmp_path / "task_mk.keras")
    keras_mk.save_model(task, path)
    restored = keras_mk.load_model(path)
    x = models.bert_inputs()
    np.testing.assert_array_equal(
        models.numpy(restored(x)), models.numpy(task(x))
    )


def test_weights_only_files_load_into_the_same_conversion(mk_bert, tmp_path):
    path = str(tmp_path / "w.weights.h5")
    mk_bert.save_weights(path)
    fresh = keras_mk.clone_model(models.bert_backbone(), seed=0)
    fresh.load_weights(path)
    models.assert_same_variables(mk_bert, fresh)


@pytest.fixture(scope="module")
def task():
    backbone = models.bert_backbone()
    return keras_hub.models.BertTextClassifier(
        backbone, num_classes=2, preprocessor=None, dropout=0.0
    )


def converted(task):
    mk = keras_mk.clone_model(task, seed=0)
    mk.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return mk


def data(n=16):
    x = models.bert_inputs(n, seed=3)
    y = np.random.default_rng(4).integers(0, 2, n)
    return x, y


def part(x, lo, hi):
    return {k: v[lo:hi] for k, v in x.items()}


@pytest.mark.parametrize("weights_only", [False, True])
def test_task_checkpoint_mid_training_resumes_like_uninterrupted(
    task, weights_only, tmp_path
):
    x, y = data()
    suffix = ".weights.h5" if weights_only else ".keras"
    path = str(tmp_path / f"ckpt{suffix}")
    interrupted = converted(task)
    callback = keras.callbacks.ModelCheckpoint(
        path, save_weights_only=weights_only
    )
    interrupted.fit(
        part(x, 0, 8), y[:8], batch_size=4, shuffle=False, verbose=0,
        callbacks=[callback],
    )  # fmt: skip
    if weights_only:
        resumed = converted(task)
        resumed.optimizer.build(resumed.trainable_variables)
        resumed.load_weights(path)
    else:
        resumed = keras_mk.load_model(path)
    assert int(resumed.optimizer.iterations.value) == 2
    resumed.fit(part(x, 8, 16), y[8:], batch_size=4, shuffle=False, verbose=0)

    uninterrupted = converted(task)
    uninterrupted.fit(x, y, batch_size=4, shuffle=False, verbose=0)
    models.assert_same_variables(uninterrupted, resumed)
    models.assert_same_variables(uninterrupted.optimizer, resumed.optimizer)


def test_backup_and_restore_resumes_like_uninterrupted(task, tmp_path):
    x, y = data()

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                raise RuntimeError("interrupted")

    backup = str(tmp_path / "backup")
    interrupted = converted(task)
    with pytest.raises(RuntimeError, match="interrupted"):
        interrupted.fit(
            x, y, batch_size=8, epochs=2, shuffle=False, verbose=0,
            callbacks=[keras.callbacks.BackupAndRestore(backup), Interrupt()],
        )  # fmt: skip
    assert os.listdir(backup)
    resumed = converted(task)
    resumed.fit(
        x, y, batch_size=8, epochs=2, shuffle=False, verbose=0,
        callbacks=[keras.callbacks.BackupAndRestore(backup)],
    )  # fmt: skip
    uninterrupted = converted(task)
    uninterrupted.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    models.assert_same_variables(uninterrupted, resumed)


def test_mk_weights_into_a_plain_model_fail_loudly(mk_bert, tmp_path):
    path = str(tmp_path / "mk.weights.h5")
    mk_bert.save_weights(path)
    plain = models.bert_backbone()
    with pytest.raises(ValueError, match="could not be loaded|expected"):
        plain.load_weights(path)


def test_plain_checkpoint_starts_an_mk_model_with_replicated_copies(
    t5, tmp_path
):
    path = str(tmp_path / "plain.weights.h5")
    t5.save_weights(path)
    other = models.t5_backbone()  # other initial weights
    mk = keras_mk.clone_model(other, seed=0)
    mk.load_weights(path)
    for _, layer in class_map.mk_layers_of(mk):
        first = models.numpy(layer.kernel_copies[0])
        for copy in layer.kernel_copies[1:]:
            np.testing.assert_array_equal(models.numpy(copy), first)
    x = models.t5_inputs()
    want, got = t5(x), mk(x, training=True)
    for key in want:
        np.testing.assert_allclose(
            models.numpy(got[key]), models.numpy(want[key]), atol=1e-5
        )
