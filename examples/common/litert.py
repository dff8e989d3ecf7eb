"""Saving deployed models as `.keras` and LiteRT `.tflite`, and checking them.

LiteRT conversion needs TensorFlow. On the TensorFlow backend the models are
exported in-process with `keras_mk.export_litert`; on JAX and PyTorch the
`.keras` files are exported by one subprocess running this module with
`KERAS_BACKEND=tensorflow` (one TensorFlow start-up for all files). Every
`.tflite` file is then run in the LiteRT interpreter on sample inputs and
compared with the Keras model's outputs on the training backend.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np


def run_tflite(path, inputs):
    """Runs a single-input, single-output `.tflite` model on `inputs`."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path)
    input_detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(input_detail["index"], inputs.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(
        input_detail["index"], inputs.astype(input_detail["dtype"])
    )
    interpreter.invoke()
    output_detail = interpreter.get_output_details()[0]
    return interpreter.get_tensor(output_detail["index"])


def weight_bytes(path):
    """Bytes of constant data (weights) stored in a `.tflite` file.

    Equal for two models of the same architecture and parameter count; the
    file sizes can differ slightly through names and other metadata.
    """
    from tensorflow.lite.python import schema_py_generated as schema

    with open(path, "rb") as f:
        model = schema.Model.GetRootAsModel(f.read(), 0)
    return sum(
        model.Buffers(i).DataLength() for i in range(model.BuffersLength())
    )


def _export_and_check(keras_path, tflite_path, inputs, expected):
    """In a TensorFlow-backend process: export one file and compare."""
    import keras

    import keras_mk

    model = keras.saving.load_model(keras_path)
    keras_mk.export_litert(model, tflite_path)
    outputs = run_tflite(tflite_path, inputs)
    return {
        "keras": keras_path,
        "tflite": tflite_path,
        "tflite_bytes": os.path.getsize(tflite_path),
        "max_abs_diff_vs_keras": float(np.max(np.abs(outputs - expected))),
    }


def save_and_export(models, directory, backend):
    """Saves each model as `.keras` and `.tflite`, and checks the LiteRT file.

    Args:
        models: dict `name -> (model, sample_inputs)`; `model` is a plain
            (collapsed) Keras model outputting one tensor.
        directory: where `<name>.keras` and `<name>.tflite` are written.
        backend: the current Keras backend.

    Returns:
        A list of dicts, one per model: file paths, the `.tflite` size and
        the largest absolute difference between the LiteRT interpreter's
        outputs and the Keras model's on the sample inputs.
    """
    os.makedirs(directory, exist_ok=True)
    jobs = []
    for name, (model, inputs) in models.items():
        keras_path = os.path.join(directory, f"{name}.keras")
        model.save(keras_path)
        expected = np.asarray(model.predict_on_batch(inputs))
        tflite_path = os.path.join(directory, f"{name}.tflite")
        jobs.append((keras_path, tflite_path, inputs, expected))
    if backend == "tensorflow":
        return [_export_and_check(*job) for job in jobs]
    with tempfile.TemporaryDirectory() as scratch:
        arrays = os.path.join(scratch, "arrays.npz")
        np.savez(
            arrays,
            **{f"inputs_{i}": job[2] for i, job in enumerate(jobs)},
            **{f"expected_{i}": job[3] for i, job in enumerate(jobs)},
        )
        command = [sys.executable, "-m", "examples.common.litert", arrays]
        for keras_path, tflite_path, _, _ in jobs:
            command += [keras_path, tflite_path]
        env = dict(os.environ, KERAS_BACKEND="tensorflow")
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        result = subprocess.run(
            command, env=env, capture_output=True, text=True
        )
    if result.returncode != 0:
        raise RuntimeError(
            "LiteRT export in a TensorFlow-backend subprocess failed:\n"
            + result.stderr[-3000:]
        )
    return json.loads(result.stdout.strip().splitlines()[-1])


def _worker(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("arrays", help="npz with inputs_i and expected_i")
    parser.add_argument("paths", nargs="+", help="keras1 tflite1 keras2 ...")
    args = parser.parse_args(argv)
    arrays = np.load(args.arrays)
    pairs = list(zip(args.paths[0::2], args.paths[1::2]))
    records = [
        _export_and_check(
            keras_path,
            tflite_path,
            arrays[f"inputs_{i}"],
            arrays[f"expected_{i}"],
        )
        for i, (keras_path, tflite_path) in enumerate(pairs)
    ]
    print(json.dumps(records))


if __name__ == "__main__":
    _worker(sys.argv[1:])
