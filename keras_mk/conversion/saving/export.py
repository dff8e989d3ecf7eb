"""Exporting an MK model for deployment (LiteRT / TFLite)."""

import importlib.util
import os
import subprocess
import sys
import tempfile

import keras

from keras_mk.conversion import class_map
from keras_mk.conversion import collapsing
from keras_mk.conversion.saving import atomic

# Run in a TensorFlow-backend process: LiteRT export needs TensorFlow.
_EXPORT_SCRIPT = """
import sys
import keras
model = keras.saving.load_model(sys.argv[1])
model.export(sys.argv[2], format="litert", verbose=False)
"""


def export_litert(model, filepath, input_signature=None):
    """Collapses an MK model and exports it as a LiteRT (`.tflite`) file.

    The exported model is `keras_mk.collapse(model)`: the original
    architecture and size. On the TensorFlow backend it is exported with
    `model.export(filepath, format="litert")`. On JAX and PyTorch the
    collapsed model is saved to a temporary `.keras` file and exported by a
    Python subprocess running the TensorFlow backend, so a model trained on
    any backend can be shipped. The conversion needs TensorFlow:
    `pip install "keras-mk[litert]"` installs it with the LiteRT
    interpreter (`ai_edge_litert.interpreter.Interpreter`) to run the file.
    The file is written atomically: an export that fails leaves a previous
    file at `filepath` as it was.

    Args:
        model: a built `keras.Model`, with or without MK layers.
        filepath: the output path, ending in `.tflite`.
        input_signature: optional input signature, as for `model.export`.
            Only supported on the TensorFlow backend.

    Returns:
        The collapsed plain model that was exported.

    Raises:
        ImportError: if TensorFlow is not installed.
        TypeError: if `model` is not a `keras.Model`.
        ValueError: if the model is not built, a mean kernel is not
            finite, `filepath` does not end in `.tflite`, or
            `input_signature` is given outside the TensorFlow backend.
        RuntimeError: if the export subprocess fails.

    Example:

    >>> keras_mk.export_litert(mk_model, "model.tflite")
    """
    if importlib.util.find_spec("tensorflow") is None:
        raise ImportError(
            "`keras_mk.export_litert` converts with TensorFlow, which is "
            "not installed. Install the LiteRT extra: "
            'pip install "keras-mk[litert]"'
        )
    class_map.check_model(model, "export_litert")
    filepath = os.fspath(filepath)
    if not filepath.endswith(".tflite"):
        raise ValueError(
            f"LiteRT files end in `.tflite`. Received: filepath={filepath}"
        )
    if keras.backend.backend() != "tensorflow" and input_signature:
        raise ValueError(
            "`input_signature` is only supported on the TensorFlow backend; "
            f"the current backend is {keras.backend.backend()}."
        )
    plain = collapsing.collapse(model)
    with atomic.atomic_write(filepath) as temporary:
        _export(plain, temporary, input_signature)
    return plain


def _export(plain, filepath, input_signature):
    if keras.backend.backend() == "tensorflow":
        plain.export(
            filepath,
            format="litert",
            input_signature=input_signature,
            verbose=False,
        )
        return
    with tempfile.TemporaryDirectory() as directory:
        keras_file = os.path.join(directory, "collapsed.keras")
        plain.save(keras_file)
        env = dict(os.environ, KERAS_BACKEND="tensorflow")
        result = subprocess.run(
            [sys.executable, "-c", _EXPORT_SCRIPT, keras_file, filepath],
            env=env,
            capture_output=True,
            text=True,
        )
    if result.returncode != 0:
        raise RuntimeError(
            "LiteRT export in a TensorFlow-backend subprocess failed:\n"
            + result.stderr[-3000:]
        )
