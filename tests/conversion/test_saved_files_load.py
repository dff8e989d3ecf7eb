"""`.keras` files written by an earlier keras_mk still load, exactly.

The fixtures were saved on JAX by the keras_mk whose conversion modules
were laid out differently (`keras_mk.conversion.saving` a module): the
record of a `keras_mk.save_model` file names its class by registered name,
so moving the code does not break files users already have.
"""

import json
import os
import zipfile

import keras
import numpy as np
import pytest

import keras_mk

HERE = os.path.join(os.path.dirname(__file__), "fixtures")


def _version(text):
    return tuple(int(part) for part in text.split(".")[:3])


def _written_by():
    path = os.path.join(HERE, "mk_sequential.keras")
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("metadata.json"))["keras_version"]


# Keras loads the files older Kerases wrote, not newer ones (3.15 writes
# initializer arguments 3.14 does not take): the lowest-versions suite
# cannot read these fixtures, whatever keras_mk does.
pytestmark = pytest.mark.skipif(
    _version(keras.__version__) < _version(_written_by()),
    reason=f"the fixtures were written by Keras {_written_by()}",
)


def _fixture(name):
    return os.path.join(HERE, name)


def test_save_model_file_loads_with_its_mk_layers_and_optimizer():
    model = keras_mk.load_model(_fixture("mk_attention.keras"))
    x = np.load(_fixture("mk_attention_inputs.npy"))
    expected = np.load(_fixture("mk_attention_outputs.npy"))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(x, training=False)),
        expected,
        rtol=1e-5,
        atol=1e-6,
    )
    paths = [
        path for path, _ in keras_mk.conversion.class_map.mk_layers_of(model)
    ]
    assert "attention/query" in paths and "head" in paths
    assert model.optimizer is not None and model.optimizer.iterations == 1


def test_model_save_file_loads_with_keras():
    model = keras_mk.load_model(_fixture("mk_sequential.keras"))
    x = np.load(_fixture("mk_attention_inputs.npy"))[:, 0]
    expected = np.load(_fixture("mk_sequential_outputs.npy"))
    assert [type(layer).__name__ for layer in model.layers] == [
        "MKDense",
        "MKDense",
    ]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(x, training=False)),
        expected,
        rtol=1e-5,
        atol=1e-6,
    )
