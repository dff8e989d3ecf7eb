"""Saving and loading MK models of any kind, KerasHub backbones included.

`model.save()` stores a model's config and weights. For Sequential and
Functional models the config lists the MK layers, so `keras.saving.load_model`
rebuilds them. A subclassed parent (a KerasHub backbone) rebuilds its
sublayers in `__init__` as plain layers, whose variables do not match the
saved MK ones. `keras_mk.save_model` therefore writes an ordinary `.keras`
archive whose `config.json` describes the plain architecture plus the
conversion record (which layer paths, with which MK arguments). Loading
rebuilds the architecture, re-converts those layers, then Keras loads the
weights (all copies, seed states and the optimizer state) as usual.
"""

import json
import os
import tempfile

import keras

from keras_mk import _keras_private
from keras_mk.conversion import clone
from keras_mk.conversion import collapsing
from keras_mk.conversion import model_checks
from keras_mk.conversion import registry
from keras_mk.conversion import save_guard
from keras_mk.layers import mk_layer
from keras_mk.layers.config import MKConfig


@keras.saving.register_keras_serializable(package="keras_mk")
class ConvertedModel:
    """The `config.json` entry of a file written by `keras_mk.save_model`.

    Not a model class: `from_config` returns the rebuilt MK model itself
    (a `T5Backbone` stays a `T5Backbone`).
    """

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        model = keras.saving.deserialize_keras_object(config["architecture"])
        plan = {
            item["path"]: MKConfig(**item["config"])
            for item in config["mk_layers"]
        }
        clone.convert_layers(model, plan)
        return save_guard.guard_saves(model)


def _serialized(model):
    """The `config.json` content for an MK model."""
    architecture = collapsing.plain_config(
        keras.saving.serialize_keras_object(model)
    )
    architecture.pop("compile_config", None)
    mk_layers = [
        {
            "path": path,
            "class_name": type(layer).__name__,
            "config": layer.mk_arguments(),
        }
        for path, layer in registry.mk_layers_of(model)
    ]
    config = {
        "module": ConvertedModel.__module__,
        "class_name": "ConvertedModel",
        "registered_name": "keras_mk>ConvertedModel",
        "config": {"architecture": architecture, "mk_layers": mk_layers},
    }
    compile_config = model.get_compile_config()
    if compile_config is not None:
        config["compile_config"] = keras.saving.serialize_keras_object(
            compile_config
        )
    return config


def save_model(model, filepath, overwrite=True):
    """Saves any MK model (or plain model) to a `.keras` file.

    The file holds the plain architecture, the list of converted layers with
    their MK arguments, and every variable: kernel and bias copies, seed
    generator states and, for a compiled model, the optimizer state. Load it
    with `keras_mk.load_model` (or `keras.saving.load_model` after
    `import keras_mk`). A model without MK layers is saved as `model.save`
    does.

    Args:
        model: a built `keras.Model`.
        filepath: a path ending in `.keras`.
        overwrite: whether to overwrite an existing file (else ask), as
            for `model.save`.

    Raises:
        TypeError: if `model` is not a `keras.Model`.
        ValueError: if the model is not built or `filepath` does not end in
            `.keras`.

    Example:

    >>> keras_mk.save_model(mk_backbone, "mk_t5.keras")
    >>> restored = keras_mk.load_model("mk_t5.keras")
    """
    model_checks.check_model(model, "save_model")
    filepath = os.fspath(filepath)
    if not filepath.endswith(".keras"):
        raise ValueError(
            "`keras_mk.save_model` writes a `.keras` archive; the path must "
            f"end in `.keras`. Received: filepath={filepath}"
        )
    with mk_layer.full_save_allowed():
        keras.Model.save(model, filepath, overwrite=overwrite)
    if registry.mk_layers_of(model):
        data = _to_json(_serialized(model))
        _keras_private.replace_archive_config(filepath, data)


def _to_json(config):
    return json.dumps(config, default=_json_default)


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"Not JSON serializable: {value!r}")


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Loads a model saved by `keras_mk.save_model` or `model.save`.

    A compiled model comes back compiled with its optimizer state, so
    training resumes exactly where it stopped. That includes models whose
    class overrides `compile` (KerasHub tasks), which
    `keras.saving.load_model` leaves uncompiled.

    Args:
        filepath: path to a `.keras` file.
        custom_objects: as for `keras.saving.load_model`.
        compile: whether to compile the model (and restore the optimizer
            state) as it was when saved.
        safe_mode: as for `keras.saving.load_model`.

    Returns:
        The model, of the class it was saved with, MK layers included.

    Example:

    >>> mk_model = keras_mk.load_model("mk_model.keras")
    """
    filepath = os.fspath(filepath)
    model = keras.saving.load_model(
        filepath,
        custom_objects=custom_objects,
        compile=False,
        safe_mode=safe_mode,
    )
    compile_config = _keras_private.read_archive_config(filepath).get(
        "compile_config"
    )
    if not compile or not compile_config:
        return model
    with keras.saving.custom_object_scope(custom_objects or {}):
        model.compile(**keras.saving.deserialize_keras_object(compile_config))
    model.optimizer.build(model.trainable_variables)
    # Every variable again, the optimizer's included.
    with tempfile.TemporaryDirectory() as directory:
        model.load_weights(
            _keras_private.extract_archive_weights(filepath, directory)
        )
    return model
