"""Deployment: collapsed files load without keras_mk; LiteRT parity."""

import json
import os
import subprocess
import sys

import keras
import models
import numpy as np
import pytest

import keras_mk

# Runs in a new process on the same backend, with keras_mk made unimportable.
FRESH_SCRIPT = """
import json
import sys

sys.modules["keras_mk"] = None  # any `import keras_mk` now fails
import keras
import numpy as np
from ai_edge_litert.interpreter import Interpreter

keras_file, tflite_file, data_file = sys.argv[1:4]
data = np.load(data_file)
model = keras.saving.load_model(keras_file)
keras_diff = np.abs(keras.ops.convert_to_numpy(model(data["x"])) - data["y"])
interpreter = Interpreter(model_path=tflite_file)
interpreter.allocate_tensors()
inp = interpreter.get_input_details()[0]
out = interpreter.get_output_details()[0]
interpreter.set_tensor(inp["index"], data["x"])
interpreter.invoke()
litert_diff = np.abs(interpreter.get_tensor(out["index"]) - data["y"])
print(json.dumps({
    "class": type(model).__name__,
    "params": model.count_params(),
    "keras": float(keras_diff.max()),
    "litert": float(litert_diff.max()),
    "keras_mk_modules": sorted(
        name for name, module in sys.modules.items()
        if name.split(".")[0] == "keras_mk" and module is not None
    ),
}))
"""


def test_trained_mk_model_exports_and_loads_without_keras_mk(tmp_path):
    original = models.small_cnn()
    mk = keras_mk.clone_model(original, seed=0)
    mk.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    x = models.images(8, seed=1)
    mk.fit(x, np.ones((8, 3), "float32"), batch_size=4, verbose=0)
    expected = models.numpy(mk(x[:1]))

    tflite_file = str(tmp_path / "model.tflite")
    plain = keras_mk.export_litert(mk, tflite_file)  # collapse + export
    keras_file = str(tmp_path / "model.keras")
    plain.save(keras_file)
    original_file = str(tmp_path / "original.keras")
    original.save(original_file)
    np.savez(tmp_path / "data.npz", x=x[:1], y=expected)

    result = subprocess.run(
        [sys.executable, "-c", FRESH_SCRIPT, keras_file, tflite_file]
        + [str(tmp_path / "data.npz")],
        check=True,
        capture_output=True,
        text=True,
        env=dict(os.environ),
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["keras_mk_modules"] == []  # a fresh process, never
    assert report["class"] == "Functional"
    assert report["params"] == original.count_params()
    assert report["keras"] <= 1e-5
    assert report["litert"] <= 1e-4
    # The deployed file is the original model's size, not e times it.
    assert os.path.getsize(keras_file) <= os.path.getsize(original_file) + 2048


def test_export_without_tensorflow_names_the_extra(monkeypatch, tmp_path):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tensorflow" else find_spec(name, *a),
    )
    mk = keras_mk.clone_model(models.small_cnn(), seed=0)
    with pytest.raises(ImportError, match=r"keras-mk\[litert\]"):
        keras_mk.export_litert(mk, str(tmp_path / "model.tflite"))
