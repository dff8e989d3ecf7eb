"""Saving deployed models as `.keras` and LiteRT `.tflite`, and checking them.

`keras_mk.export_litert` writes the `.tflite` file on any backend (on JAX
and PyTorch through a TensorFlow-backend subprocess); the file is then run
in the LiteRT interpreter on sample inputs and compared with the Keras
model's outputs on the training backend.
"""

import os

import numpy as np

import keras_mk


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


def save_and_export(models, directory):
    """Saves each model as `.keras` and `.tflite`, and checks the LiteRT file.

    Args:
        models: dict `name -> (model, sample_inputs)`; `model` is a plain
            (collapsed) Keras model outputting one tensor.
        directory: where `<name>.keras` and `<name>.tflite` are written.

    Returns:
        A list of dicts, one per model: file paths, the `.tflite` size and
        the largest absolute difference between the LiteRT interpreter's
        outputs and the Keras model's on the sample inputs.
    """
    os.makedirs(directory, exist_ok=True)
    records = []
    for name, (model, inputs) in models.items():
        keras_path = os.path.join(directory, f"{name}.keras")
        tflite_path = os.path.join(directory, f"{name}.tflite")
        model.save(keras_path)
        keras_mk.export_litert(model, tflite_path)
        expected = np.asarray(model.predict_on_batch(inputs))
        outputs = run_tflite(tflite_path, inputs)
        records.append(
            {
                "keras": keras_path,
                "tflite": tflite_path,
                "tflite_bytes": os.path.getsize(tflite_path),
                "max_abs_diff_vs_keras": float(
                    np.max(np.abs(outputs - expected))
                ),
            }
        )
    return records
