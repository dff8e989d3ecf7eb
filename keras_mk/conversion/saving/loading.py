"""Loading a model saved by `keras_mk.save_model` or `model.save`."""

import os
import tempfile

import keras

from keras_mk import _keras_private
from keras_mk.conversion import class_map
from keras_mk.conversion import clone
from keras_mk.conversion import copying
from keras_mk.conversion.saving import guards
from keras_mk.layers.config import MKConfig
from keras_mk.layers.walk import iter_layers


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
        configs = {
            item["path"]: MKConfig(**item["config"])
            for item in config["mk_layers"]
        }
        walked = list(iter_layers(model))
        if "training_state" in config:
            copying.restore_training_state(
                model, walked, config["training_state"]
            )
        plan = clone.plan_from(class_map.survey(model), configs)
        clone.convert_layers(model, plan)
        flags = config.get("variables_trainable", {})
        for variable in model.variables:
            variable.trainable = flags.get(variable.path, variable.trainable)
        return guards.guard_saves(model, walked)


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
    guards.guard_saves(model, list(iter_layers(model)))
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
