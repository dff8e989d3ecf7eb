"""Installs the built wheel as a user would and checks it without TensorFlow.

For each backend extra (`[jax]`, `[torch]`): a fresh venv, `pip install
"<wheel>[extra]" -c constraints.txt` (so torch is 2.13.0), then in that
venv: import, convert, fit, collapse, save and load, checking that
TensorFlow is neither installed nor imported, and that `export_litert`
fails at once with a message naming the `[litert]` extra.

    python scripts/wheel_check.py dist [--extras jax torch] [--root /tmp/x]
"""

import argparse
import glob
import os
import subprocess
import sys
import tempfile
import time

CHECK = r"""
import importlib.util
import os
import sys
import tempfile

import keras
import numpy as np

import keras_mk

assert importlib.util.find_spec("tensorflow") is None, "TensorFlow installed"
print("keras_mk", keras_mk.__version__, "from", keras_mk.__file__)
print("keras", keras.__version__, "backend", keras.backend.backend())
model = keras.Sequential(
    [keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
     keras.layers.Dense(3)]
)
mk_model = keras_mk.clone_model(model, expansion=3, seed=0)
print(keras_mk.conversion_summary(mk_model))
mk_model.compile("adam", keras.losses.SparseCategoricalCrossentropy(True))
x = np.random.rand(64, 8).astype("float32")
y = np.random.randint(0, 3, 64)
history = mk_model.fit(x, y, epochs=2, verbose=0)
print("fit: loss", [round(v, 4) for v in history.history["loss"]])
small = keras_mk.collapse(mk_model)
directory = tempfile.mkdtemp()
small.save(os.path.join(directory, "small.keras"))
keras_mk.save_model(mk_model, os.path.join(directory, "mk.keras"))
restored = keras.saving.load_model(os.path.join(directory, "small.keras"))
np.testing.assert_allclose(
    keras.ops.convert_to_numpy(restored(x)),
    keras.ops.convert_to_numpy(mk_model(x)),
    atol=1e-5,
)
keras_mk.load_model(os.path.join(directory, "mk.keras"))
print("collapse, save, load: ok;", small.count_params(), "params deployed")
assert "tensorflow" not in sys.modules
try:
    keras_mk.export_litert(mk_model, os.path.join(directory, "m.tflite"))
except ImportError as error:
    print("export_litert: ImportError:", error)
    assert "keras-mk[litert]" in str(error)
else:
    raise AssertionError("export_litert worked without TensorFlow")
print("OK")
"""


def run(command, **kwargs):
    shown = ["CHECK" if part == CHECK else part for part in command]
    print("$", " ".join(shown), flush=True)
    subprocess.run(command, check=True, **kwargs)


def check(wheel, extra, root, constraints):
    venv = os.path.join(root, f"venv-{extra}")
    start = time.perf_counter()
    run([sys.executable, "-m", "venv", "--clear", venv])
    python = os.path.join(venv, "bin", "python")
    run([python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    run(
        [python, "-m", "pip", "install", "--quiet", "--progress-bar", "off"]
        + ["-c", constraints, f"{wheel}[{extra}]"]
    )
    installed = subprocess.run(
        [python, "-m", "pip", "list"], capture_output=True, text=True
    ).stdout
    wanted = ("keras ", "keras-mk", "jax ", "jaxlib", "torch ", "tensorflow")
    for line in installed.splitlines():
        if line.lower().startswith(wanted):
            print("   ", line)
    # Run from the venv's folder: the source tree must not be importable.
    env = dict(os.environ, KERAS_BACKEND=extra, PYTHONPATH="")
    run([python, "-c", CHECK], cwd=venv, env=env)
    print(f"[{extra}] passed in {time.perf_counter() - start:.0f} s\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dist", help="folder holding the built wheel")
    parser.add_argument("--extras", nargs="+", default=["jax", "torch"])
    parser.add_argument("--root", default=None, help="where the venvs go")
    args = parser.parse_args()
    (wheel,) = glob.glob(os.path.join(args.dist, "keras_mk-*.whl"))
    wheel = os.path.abspath(wheel)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    constraints = os.path.join(here, "constraints.txt")
    root = args.root or tempfile.mkdtemp(prefix="keras_mk_wheel_")
    print("wheel", wheel)
    for extra in args.extras:
        check(wheel, extra, root, constraints)


if __name__ == "__main__":
    main()
