"""The conversion-coverage check: does a model convert exactly?

For one model (any Keras model, its weights as they are):

1. `keras_mk.clone_model` converts it (or refuses with an error);
2. the MK model's outputs equal the original's right after conversion, in
   inference and in training mode (relative error <= `TOLERANCE`; dropout
   rates are set to 0 first, as unseeded dropout draws differ between
   models);
3. one `fit` step runs (SGD on a zero target);
4. `keras_mk.collapse` equals MK inference (<= `TOLERANCE`);
5. the collapsed model saved as `.keras` loads in a fresh Python process
   that never imports keras_mk, with the same outputs.

`benchmarks/conversion_coverage.py` runs it on every `keras.applications`
model and KerasHub backbones (`docs/coverage.md`); the test suite on one
model per family (`FAMILIES`).
"""

import os
import pickle
import subprocess
import sys
import tempfile
import traceback

import keras
import numpy as np

import keras_mk
from keras_mk.conversion import class_map

TOLERANCE = 1e-5

# keras.applications: constructor -> smallest input side it accepts.
APPLICATIONS = {
    "ConvNeXtTiny": 32,
    "ConvNeXtSmall": 32,
    "ConvNeXtBase": 32,
    "ConvNeXtLarge": 32,
    "ConvNeXtXLarge": 32,
    "DenseNet121": 32,
    "DenseNet169": 32,
    "DenseNet201": 32,
    "EfficientNetB0": 32,
    "EfficientNetB1": 32,
    "EfficientNetB2": 32,
    "EfficientNetB3": 32,
    "EfficientNetB4": 32,
    "EfficientNetB5": 32,
    "EfficientNetB6": 32,
    "EfficientNetB7": 32,
    "EfficientNetV2B0": 32,
    "EfficientNetV2B1": 32,
    "EfficientNetV2B2": 32,
    "EfficientNetV2B3": 32,
    "EfficientNetV2S": 32,
    "EfficientNetV2M": 32,
    "EfficientNetV2L": 32,
    "InceptionResNetV2": 75,
    "InceptionV3": 75,
    "MobileNet": 32,
    "MobileNetV2": 32,
    "MobileNetV3Small": 32,
    "MobileNetV3Large": 32,
    "NASNetMobile": 32,
    "NASNetLarge": 32,
    "ResNet50": 32,
    "ResNet101": 32,
    "ResNet152": 32,
    "ResNet50V2": 32,
    "ResNet101V2": 32,
    "ResNet152V2": 32,
    "VGG16": 32,
    "VGG19": 32,
    "Xception": 71,
}

# One model per family: what the test suite runs (each on one backend).
FAMILIES = (
    "ConvNeXtTiny",
    "DenseNet121",
    "EfficientNetB0",
    "EfficientNetV2B0",
    "InceptionV3",
    "MobileNet",
    "MobileNetV2",
    "MobileNetV3Small",
    "NASNetMobile",
    "ResNet50",
    "ResNet50V2",
    "VGG16",
    "Xception",
)


def build_application(name):
    """The `keras.applications` model `name`: random weights, the smallest
    input it accepts (`APPLICATIONS`), 10 classes."""
    side = APPLICATIONS[name]
    return getattr(keras.applications, name)(
        weights=None, input_shape=(side, side, 3), classes=10
    )


def inputs_for(model, rng, batch=2):
    """Random inputs matching a model's input specs (ids for int inputs)."""

    def one(tensor):
        # `batch` examples; 8 steps along any other free axis (a sequence).
        shape = (batch,) + tuple(
            8 if d is None else d for d in tensor.shape[1:]
        )
        dtype = keras.backend.standardize_dtype(tensor.dtype)
        if "mask" in tensor.name:
            return np.ones(shape, "bool" if dtype == "bool" else dtype)
        if "segment" in tensor.name:  # two segments
            return np.zeros(shape, dtype)
        if "int" in dtype:
            return rng.integers(1, 16, shape).astype(dtype)
        return rng.normal(size=shape).astype(dtype)

    specs = model.inputs if hasattr(model, "inputs") else None
    if isinstance(model.input, dict):
        return {k: one(v) for k, v in model.input.items()}
    if isinstance(specs, list) and len(specs) > 1:
        return [one(t) for t in specs]
    return one(specs[0])


def _flat(outputs):
    if isinstance(outputs, dict):
        outputs = [outputs[k] for k in sorted(outputs)]
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    return [keras.ops.convert_to_numpy(o).astype("float64") for o in outputs]


def relative_error(a, b):
    """max |a - b| / max(max |b|, 1e-6) over every output."""
    worst = 0.0
    for x, y in zip(_flat(a), _flat(b)):
        scale = max(float(np.max(np.abs(y))), 1e-6)
        worst = max(worst, float(np.max(np.abs(x - y))) / scale)
    return worst


_LOAD_SCRIPT = """
import pickle
import sys
import numpy as np
import keras
model = keras.saving.load_model(sys.argv[1])
with open(sys.argv[2], "rb") as f:
    x = pickle.load(f)
y = model(x, training=False)
if isinstance(y, dict):
    y = [y[k] for k in sorted(y)]
ys = y if isinstance(y, (list, tuple)) else [y]
np.savez(sys.argv[3], *[keras.ops.convert_to_numpy(v) for v in ys])
assert "keras_mk" not in sys.modules
"""


def _fresh_process_outputs(plain, x, directory):
    """The collapsed model's outputs, loaded in a process without keras_mk."""
    path = os.path.join(directory, "collapsed.keras")
    plain.save(path)
    inputs, out = (os.path.join(directory, n) for n in ("x.pkl", "y.npz"))
    with open(inputs, "wb") as f:
        pickle.dump(x, f)
    done = subprocess.run(
        [sys.executable, "-c", _LOAD_SCRIPT, path, inputs, out],
        capture_output=True,
        text=True,
        cwd=directory,
    )
    if done.returncode:
        raise RuntimeError(
            "loading the collapsed model in a fresh process failed: "
            + done.stderr.strip().splitlines()[-1]
        )
    data = np.load(out)
    return [data[f"arr_{i}"] for i in range(len(data.files))]


def check_model(
    model, seed=0, fresh_process=True, jit_compile="auto", run_eagerly=False
):
    """Runs the five checks on one model; returns a result dict.

    Raises nothing: a refusal or a failure is recorded with its message.
    `jit_compile` and `run_eagerly` are passed to `compile` (False, or
    `run_eagerly=True`, skip a long XLA compile or graph trace for the
    single `fit` step).
    """
    rng = np.random.default_rng(seed)
    x = inputs_for(model, rng)
    result = {"params": int(model.count_params())}
    try:
        mk = keras_mk.clone_model(model, seed=seed)
    except (ValueError, TypeError) as e:
        result.update(status="refused", reason=str(e).splitlines()[0])
        return result
    result.update(_shares(mk))
    if result["matrix_share"] < 1.0:
        # Tables (embeddings) are opt-in: the share they would add.
        try:
            tables = keras_mk.clone_model(model, seed=seed, embeddings=True)
            shares = _shares(tables)
            del tables
        except (ValueError, TypeError) as e:
            shares = {"embeddings_refused": str(e).splitlines()[0]}
        result.update({f"{k}_embeddings": v for k, v in shares.items()})
    try:
        # Dropout without a seed draws differently in two models; with its
        # rate at 0 the training-mode outputs compare exactly (the MK
        # layers still draw `p`: replicated copies give the same kernel).
        rates = _switch_off_dropout(model) + _switch_off_dropout(mk)
        result["convert_error"] = max(
            relative_error(
                mk(x, training=training), model(x, training=training)
            )
            for training in (False, True)
        )
        for layer, rate in rates:
            layer.rate = rate
        y = mk(x, training=False)
        targets = [np.zeros_like(v) for v in _flat(y)]
        if isinstance(y, dict):
            targets = {k: np.zeros_like(_flat(y[k])[0]) for k in y}
        elif not isinstance(y, (list, tuple)):
            targets = targets[0]
        mk.compile(
            optimizer=keras.optimizers.SGD(1e-3),
            loss="mse",
            jit_compile=False if run_eagerly else jit_compile,
            run_eagerly=run_eagerly,
        )
        mk.fit(x, targets, epochs=1, verbose=0)
        plain = keras_mk.collapse(mk)
        result["collapse_error"] = relative_error(
            plain(x, training=False), mk(x, training=False)
        )
        if fresh_process:
            with tempfile.TemporaryDirectory() as directory:
                loaded = _fresh_process_outputs(plain, x, directory)
            result["reload_error"] = relative_error(
                loaded, plain(x, training=False)
            )
        worst = max(
            result["convert_error"],
            result["collapse_error"],
            result.get("reload_error", 0.0),
        )
        result["status"] = "pass" if worst <= TOLERANCE else "mismatch"
    except Exception as e:  # a crash is a result too
        result.update(
            status="crash",
            reason=f"{type(e).__name__}: {str(e).splitlines()[0][:200]}",
            traceback=traceback.format_exc()[-2000:],
        )
    return result


def _shares(mk):
    """`conversion_summary`'s two shares of a converted model."""
    summary = keras_mk.conversion_summary(mk)
    return {
        "simulated_share": summary.simulated_share,
        "matrix_share": summary.matrix_share,
    }


def _switch_off_dropout(model):
    """Sets every dropout rate to 0; returns `(layer, rate)` to restore."""
    rates = []
    for _, layer in class_map.iter_layers(model):
        if "Dropout" in type(layer).__name__ and hasattr(layer, "rate"):
            rates.append((layer, layer.rate))
            layer.rate = 0.0
    return rates
