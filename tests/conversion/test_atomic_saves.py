"""A save that fails or is killed part-way leaves the previous file (#23).

Keras writes a model file in place: a failure part-way destroys the
previous checkpoint. Every save of a converted model goes through
`keras_mk.conversion.saving.atomic`. The tests inject a failure at every
write of
each save path (every zip member, every MK layer's variables) and check
that the previous file is byte-identical; one kills a saving process at
random moments and checks that the path always loads.
"""

import errno
import glob
import json
import os
import subprocess
import sys
import zipfile

import keras
import models
import numpy as np
import pytest

import keras_mk
from keras_mk.layers import MKLayer

BACKEND = keras.backend.backend()


def functional():
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2)(hidden))


def with_attention():
    """MK layers its config cannot describe (`MultiHeadAttention`)."""
    inputs = keras.Input((3, 4))
    x = keras.layers.MultiHeadAttention(2, 4)(inputs, inputs)
    return keras.Model(inputs, keras.layers.Dense(2)(x))


class DiskFull:
    """Raises `OSError(ENOSPC)` at the `fail_at`-th write (0-based).

    Writes are zip members (`ZipFile.writestr`, `ZipFile.open(..., "w")`)
    and MK layers' variables (`MKLayer.save_own_variables`).
    """

    def __init__(self, monkeypatch, fail_at):
        self.fail_at, self.count = fail_at, 0
        writestr, open_ = zipfile.ZipFile.writestr, zipfile.ZipFile.open
        save_own = MKLayer.save_own_variables

        def counted(function):
            def wrapper(*args, **kwargs):
                self.tick()
                return function(*args, **kwargs)

            return wrapper

        def open_counted(archive, name, mode="r", **kwargs):
            if mode == "w":
                self.tick()
            return open_(archive, name, mode, **kwargs)

        monkeypatch.setattr(zipfile.ZipFile, "writestr", counted(writestr))
        monkeypatch.setattr(zipfile.ZipFile, "open", open_counted)
        monkeypatch.setattr(MKLayer, "save_own_variables", counted(save_own))

    def tick(self):
        self.count += 1
        if self.count - 1 == self.fail_at:
            raise OSError(errno.ENOSPC, "No space left on device (injected)")


SAVES = {
    "keras_mk.save_model": (
        functional,
        "m.keras",
        lambda mk, path: keras_mk.save_model(mk, path),
    ),
    "model.save": (functional, "m.keras", lambda mk, path: mk.save(path)),
    "model.save, undescribed MK layers": (
        with_attention,
        "m.keras",
        lambda mk, path: mk.save(path),
    ),
    "model.save_weights": (
        functional,
        "m.weights.h5",
        lambda mk, path: mk.save_weights(path),
    ),
}


def _train_step(mk):
    x = np.random.default_rng(0).normal(size=(4,) + mk.input_shape[1:])
    y = np.ones((4,) + mk.output_shape[1:], "float32")
    mk.fit(x.astype("float32"), y, batch_size=4, verbose=0)


@pytest.mark.parametrize("what", sorted(SAVES))
def test_a_save_failing_at_any_write_keeps_the_previous_file(
    what, tmp_path, monkeypatch
):
    build, name, save = SAVES[what]
    mk = keras_mk.clone_model(build(), seed=0)
    mk.compile(optimizer="adam", loss="mse")
    path = str(tmp_path / name)
    save(mk, path)
    previous = open(path, "rb").read()
    _train_step(mk)  # the next checkpoint differs from the previous one

    fail_at, failures = 0, 0
    while True:
        with monkeypatch.context() as patch:
            disk = DiskFull(patch, fail_at)
            try:
                save(mk, path)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
                failures += 1
            else:
                break
        assert open(path, "rb").read() == previous, f"write {fail_at}"
        assert os.listdir(tmp_path) == [name], os.listdir(tmp_path)
        fail_at += 1
    assert failures == disk.count >= 2  # every write was tried
    assert open(path, "rb").read() != previous  # the save that succeeded
    assert os.listdir(tmp_path) == [name]


def test_a_failing_save_does_not_create_the_file(tmp_path, monkeypatch):
    mk = keras_mk.clone_model(functional(), seed=0)
    with monkeypatch.context() as patch:
        DiskFull(patch, 1)
        with pytest.raises(OSError):
            mk.save(str(tmp_path / "m.keras"))
    assert os.listdir(tmp_path) == []


def test_model_checkpoint_failure_keeps_the_last_checkpoint(
    tmp_path, monkeypatch
):
    mk = keras_mk.clone_model(functional(), seed=0)
    mk.compile(optimizer="adam", loss="mse")
    path = str(tmp_path / "ckpt.keras")
    checkpoint = keras.callbacks.ModelCheckpoint(path)
    x = np.ones((4, 4), "float32")
    mk.fit(x, x[:, :2], verbose=0, callbacks=[checkpoint])
    previous, expected = open(path, "rb").read(), models.numpy(mk(x))
    with monkeypatch.context() as patch:
        DiskFull(patch, 2)
        with pytest.raises(OSError):
            mk.fit(x, x[:, :2], verbose=0, callbacks=[checkpoint])
    assert open(path, "rb").read() == previous
    restored = keras_mk.load_model(path)
    np.testing.assert_array_equal(models.numpy(restored(x)), expected)


def test_loaded_mk_model_saves_atomically_too(tmp_path, monkeypatch):
    mk = keras_mk.clone_model(functional(), seed=0)
    path = str(tmp_path / "m.keras")
    mk.save(path)
    restored = keras_mk.load_model(path)
    previous = open(path, "rb").read()
    with monkeypatch.context() as patch:
        DiskFull(patch, 0)
        with pytest.raises(OSError):
            restored.save(path)
    assert open(path, "rb").read() == previous


KILL_SCRIPT = """
import json, os, random, signal, sys, time
import keras, numpy as np
import keras_mk
path, trials = sys.argv[1], int(sys.argv[2])
inputs = keras.Input((4,))
outputs = keras.layers.Dense(2)(keras.layers.Dense(64)(inputs))
mk = keras_mk.clone_model(keras.Model(inputs, outputs), expansion=3, seed=0)
mk.save(path)
start = time.perf_counter()
mk.save(path)
one = time.perf_counter() - start
rng, broken = random.Random(0), []
for trial in range(trials):
    pid = os.fork()
    if pid == 0:  # save again and again until killed
        while True:
            mk.save(path)
    time.sleep(rng.uniform(0.0, 3 * one))
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    try:
        keras_mk.load_model(path)
    except Exception as e:
        broken.append(f"trial {trial}: {e!r}"[:300])
print(json.dumps({"broken": broken, "one_save_s": one}))
"""


@pytest.mark.skipif(BACKEND != "torch", reason="one backend: PyTorch, forks")
def test_a_save_killed_at_random_moments_leaves_a_file_that_loads(tmp_path):
    path = str(tmp_path / "m.keras")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, path, "24"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["broken"] == []
    # What a kill leaves behind is a hidden folder no checkpoint glob sees.
    assert glob.glob(str(tmp_path / "*.keras")) == [path]
    for leftover in set(os.listdir(tmp_path)) - {"m.keras"}:
        assert leftover.startswith(".") and leftover.endswith("-partial")


def test_declined_overwrite_keeps_the_file(tmp_path, monkeypatch):
    import builtins

    mk = keras_mk.clone_model(functional(), seed=0)
    path = str(tmp_path / "m.keras")
    keras_mk.save_model(mk, path)
    previous = open(path, "rb").read()
    other = keras_mk.clone_model(functional(), seed=1)
    monkeypatch.setattr(builtins, "input", lambda *a: "n")
    keras_mk.save_model(other, path, overwrite=False)
    other.save(path, overwrite=False)
    assert open(path, "rb").read() == previous
