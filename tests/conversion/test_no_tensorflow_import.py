"""On JAX and PyTorch, keras_mk never imports TensorFlow (a ~10 s start-up).

Keras's serializer imports TensorFlow whenever it is installed; keras_mk's
conversion, saving and loading must not trigger that on other backends.
"""

import json
import os
import subprocess
import sys

import keras
import pytest

# Runs in a fresh process, so no earlier test has imported TensorFlow.
SCRIPT = """
import json
import os
import sys

import keras
import numpy as np

import keras_mk

steps = {}
model = keras.Sequential(
    [keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(3)]
)
mk_model = keras_mk.clone_model(model, expansion=3, seed=0)
steps["clone_model"] = "tensorflow" in sys.modules
clone = keras.models.clone_model(
    model, clone_function=keras_mk.clone_function
)
steps["clone_function"] = "tensorflow" in sys.modules
mk_model.compile("adam", "mse")
mk_model.fit(np.ones((8, 4)), np.ones((8, 3)), epochs=1, verbose=0)
steps["fit"] = "tensorflow" in sys.modules
keras_mk.collapse(mk_model)
steps["collapse"] = "tensorflow" in sys.modules
path = os.path.join(sys.argv[1], "mk.keras")
keras_mk.save_model(mk_model, path)
steps["save_model"] = "tensorflow" in sys.modules
keras_mk.load_model(path)
steps["load_model"] = "tensorflow" in sys.modules
print(json.dumps(steps))
"""


@pytest.mark.skipif(
    keras.backend.backend() == "tensorflow",
    reason="TensorFlow is the backend",
)
def test_convert_fit_save_load_never_import_tensorflow(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
        env=dict(os.environ, KERAS_BACKEND=keras.backend.backend()),
    )
    steps = json.loads(result.stdout.strip().splitlines()[-1])
    assert steps == dict.fromkeys(steps, False), steps
