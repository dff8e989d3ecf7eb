"""Conversion coverage: every `keras.applications` model and KerasHub models.

For each model (random weights, the smallest input it accepts) on the
current backend:

1. `keras_mk.clone_model` converts it (or refuses with an error);
2. the MK model's outputs equal the original's right after conversion, in
   inference and in training mode (relative error <= 1e-5; dropout rates
   are set to 0 first, as unseeded dropout draws differ between models);
3. one `fit` step runs (SGD, `jit_compile=False`: a single step does not
   pay for an XLA compilation);
4. `keras_mk.collapse` equals MK inference (<= 1e-5);
5. the collapsed model saved as `.keras` loads in a fresh Python process
   that never imports keras_mk, with the same outputs.

    KERAS_BACKEND=jax python -m benchmarks.conversion_coverage
    python -m benchmarks.conversion_coverage --update-docs  # after 3 runs

A run skips the models its backend's JSON file already holds (delete the
file to start over).

Each run writes `benchmarks/results/coverage_<backend>.json`;
`--update-docs` turns the three into the table in `docs/coverage.md`.
"""

import argparse
import gc
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np

from benchmarks import common
from benchmarks import hub_task_coverage

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

# One model per family: what the test suite runs on every backend.
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

_TEXT = dict(num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32)
_DECODER = dict(vocabulary_size=64, **_TEXT)
# KerasHub: name -> (class name, config). Built from config, random weights.
HUB = {
    "Bert": ("BertBackbone", dict(vocabulary_size=64, **_TEXT)),
    "DistilBert": ("DistilBertBackbone", dict(vocabulary_size=64, **_TEXT)),
    "Roberta": ("RobertaBackbone", dict(vocabulary_size=64, **_TEXT)),
    "GPT2": ("GPT2Backbone", dict(vocabulary_size=64, **_TEXT)),
    "Gemma": (
        "GemmaBackbone",
        dict(_DECODER, num_query_heads=2, num_key_value_heads=1, head_dim=8)
        | {"num_heads": None},
    ),
    "Llama": (
        "LlamaBackbone",
        dict(_DECODER, num_query_heads=2, num_key_value_heads=1)
        | {"num_heads": None},
    ),
    "Mistral": (
        "MistralBackbone",
        dict(_DECODER, num_query_heads=2, num_key_value_heads=1)
        | {"num_heads": None},
    ),
    "T5": (
        "T5Backbone",
        dict(vocabulary_size=64, key_value_dim=8, **_TEXT),
    ),
    "ViT": (
        "ViTBackbone",
        dict(
            image_shape=(16, 16, 3),
            patch_size=8,
            num_layers=1,
            num_heads=2,
            hidden_dim=16,
            mlp_dim=32,
        ),
    ),
    "ResNet": (
        "ResNetBackbone",
        dict(
            input_conv_filters=[8],
            input_conv_kernel_sizes=[3],
            stackwise_num_filters=[8, 16],
            stackwise_num_blocks=[1, 1],
            stackwise_num_strides=[1, 2],
            block_type="basic_block",
            image_shape=(16, 16, 3),
        ),
    ),
    "Whisper": (
        "WhisperBackbone",
        dict(
            vocabulary_size=64,
            num_layers=1,
            num_heads=2,
            hidden_dim=16,
            intermediate_dim=32,
            num_mels=8,
            max_encoder_sequence_length=16,
            max_decoder_sequence_length=8,
        ),
    ),
    "BertTextClassifier": ("BertTextClassifier", None),
}


def _clean(config):
    return {k: v for k, v in config.items() if v is not None}


def build_application(name):
    import keras

    side = APPLICATIONS[name]
    return getattr(keras.applications, name)(
        weights=None, input_shape=(side, side, 3), classes=10
    )


def build_hub(name):
    import keras_hub

    class_name, config = HUB[name]
    if name == "BertTextClassifier":
        backbone = keras_hub.models.BertBackbone(**HUB["Bert"][1])
        return keras_hub.models.BertTextClassifier(
            backbone, num_classes=2, preprocessor=None
        )
    return getattr(keras_hub.models, class_name)(**_clean(config))


def inputs_for(model, rng, batch=2):
    """Random inputs matching a model's input specs (ids for int inputs)."""
    import keras

    def one(tensor):
        shape = tuple(batch if d is None else d for d in tensor.shape)
        shape = tuple(8 if d is None else d for d in shape)
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
    import keras

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
    import keras

    import keras_mk

    rng = np.random.default_rng(seed)
    x = inputs_for(model, rng)
    result = {"params": int(model.count_params())}
    try:
        mk = keras_mk.clone_model(model, seed=seed)
    except (ValueError, TypeError) as e:
        result.update(status="refused", reason=str(e).splitlines()[0])
        return result
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


def _switch_off_dropout(model):
    """Sets every dropout rate to 0; returns `(layer, rate)` to restore."""
    from keras_mk.conversion import registry

    rates = []
    for _, layer in registry.iter_layers(model):
        if "Dropout" in type(layer).__name__ and hasattr(layer, "rate"):
            rates.append((layer, layer.rate))
            layer.rate = 0.0
    return rates


def run(names, output):
    import keras

    try:
        from tqdm import tqdm
    except ImportError:  # progress bars are optional
        tqdm = None
    results = {}
    if os.path.exists(output):
        with open(output) as f:
            results = json.load(f)["models"]
    # A rerun continues where a run stopped (one JSON entry per model).
    names = [n for n in names if n not in results]
    todo = names if tqdm is None else tqdm(names, desc="models")
    for name in todo:
        start = time.perf_counter()
        try:
            if name in APPLICATIONS:
                model = build_application(name)
            else:
                model = build_hub(name)
        except Exception as e:
            results[name] = {
                "status": "not built",
                "reason": f"{type(e).__name__}: {str(e).splitlines()[0]}",
            }
            continue
        results[name] = check_model(model, jit_compile=False)
        results[name]["seconds"] = round(time.perf_counter() - start, 1)
        del model
        keras.backend.clear_session()
        gc.collect()
        common.write_json(_document(results), output, indent=1)
        print(name, results[name].get("status"), flush=True)
    return results


def _document(results):
    import keras

    return {
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "models": results,
    }


def update_docs():
    """Writes `docs/coverage.md` from the per-backend JSON files."""
    tables = {
        backend: data["models"]
        for backend, data in common.read_results("coverage").items()
    }
    names = [n for n in list(APPLICATIONS) + list(HUB)]
    lines = [
        "# Conversion coverage",
        "",
        "Every `keras.applications` constructor (random weights, the "
        "smallest input it accepts, 10 classes) and KerasHub models built "
        "from small configs, converted with `keras_mk.clone_model` on each "
        "backend. **pass** means: the MK model's outputs equal the "
        "original's right after conversion (inference and training mode, "
        "dropout rates set to 0, "
        f"relative error <= {TOLERANCE:g}), one `fit` step runs "
        "(SGD, `jit_compile=False`), "
        "`keras_mk.collapse` equals MK inference, and the collapsed `.keras` "
        "file loads in a fresh process that never imports keras_mk with "
        "the same outputs. The worst relative error of the three "
        "comparisons is shown. Regenerate with "
        "`KERAS_BACKEND=<backend> python -m benchmarks.conversion_coverage` "
        "per backend, then `python -m benchmarks.conversion_coverage "
        "--update-docs`. The test suite (`tests/conversion/"
        "test_coverage_families.py`) runs one model per family, each "
        "family on one backend (most on PyTorch, where they cost least), "
        "so every CI run covers every family once. "
        "'not run' means the run on this 2-core machine did not reach the "
        "model in the time it had.",
        "",
        "| model | " + " | ".join(tables) + " |",
        "|---|" + "---|" * len(tables),
    ]
    notes = []
    for name in names:
        cells = []
        for backend in tables:
            r = tables[backend].get(name)
            if r is None:
                cells.append("not run")
                continue
            if r["status"] == "pass":
                worst = max(
                    r.get(k, 0.0)
                    for k in ("convert_error", "collapse_error", "reload_error")
                )
                cells.append(f"pass ({worst:.0e})")
            else:
                notes.append(f"- {name} ({backend}): {r.get('reason', '')}")
                cells.append(r["status"])
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if notes:
        lines += ["", "Reasons:", ""] + notes
    lines += [""] + hub_task_coverage.table_lines()
    with open(os.path.join(common.DOCS, "coverage.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models",
        nargs="*",
        default=None,
        help="names to check (default: all; 'families' for one per family)",
    )
    parser.add_argument("--update-docs", action="store_true")
    args = parser.parse_args(argv)
    if args.update_docs:
        update_docs()
        return
    import keras

    names = []
    for name in args.models or list(APPLICATIONS) + list(HUB):
        names += list(FAMILIES) if name == "families" else [name]
    output = common.result_path("coverage", keras.backend.backend())
    run(names, output)


if __name__ == "__main__":
    main()
