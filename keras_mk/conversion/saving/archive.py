"""`keras_mk.save_model`: a `.keras` archive of any MK model.

`model.save()` stores a model's config and weights. For Sequential and
Functional models the config lists the MK layers, so `keras.saving.load_model`
rebuilds them. A subclassed parent (a KerasHub backbone) rebuilds its
sublayers in `__init__` as plain layers, whose variables do not match the
saved MK ones. `save_model` therefore writes an ordinary `.keras` archive
whose `config.json` describes the plain architecture plus the conversion
record (which layer paths, with which MK arguments). Loading
(`saving.loading`) rebuilds the architecture, re-converts those layers,
then Keras loads the weights (all copies, seed states and the optimizer
state) as usual.
"""

import contextlib
import json
import os
import threading

import keras

from keras_mk import _keras_private
from keras_mk.conversion import class_map
from keras_mk.conversion import collapsing
from keras_mk.conversion import copying
from keras_mk.conversion.saving import atomic
from keras_mk.layers.walk import iter_layers

#: The registered name of the record `save_model` writes (`loading`).
RECORD_NAME = "keras_mk>ConvertedModel"


_FULL_SAVE = threading.local()


@contextlib.contextmanager
def full_save_allowed():
    """Marks a full-model save written by `save_model`."""
    previous = getattr(_FULL_SAVE, "allowed", False)
    _FULL_SAVE.allowed = True
    try:
        yield
    finally:
        _FULL_SAVE.allowed = previous


def writing_full_save():
    """Whether the save running now was started by `save_model`."""
    return getattr(_FULL_SAVE, "allowed", False)


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
        for path, layer in class_map.mk_layers_of(model)
    ]
    config = {
        "module": "keras_mk.conversion.saving.loading",
        "class_name": "ConvertedModel",
        "registered_name": RECORD_NAME,
        "config": {
            "architecture": architecture,
            "mk_layers": mk_layers,
            "training_state": copying.training_state(model, iter_layers(model)),
            "variables_trainable": {
                v.path: v.trainable for v in model.variables
            },
        },
    }
    compile_config = model.get_compile_config()
    if compile_config is not None:
        config["compile_config"] = keras.saving.serialize_keras_object(
            compile_config
        )
    return config


def save_model(model, filepath, overwrite=True):
    """Saves any MK model (or plain model) to a `.keras` file.

    The save is atomic: the file is written next to `filepath` and renamed
    over it once complete, so a save that fails or is killed part-way
    leaves the previous file as it was (see
    `keras_mk.conversion.saving.atomic`).
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
    class_map.check_model(model, "save_model")
    filepath = os.fspath(filepath)
    if not filepath.endswith(".keras"):
        raise ValueError(
            "`keras_mk.save_model` writes a `.keras` archive; the path must "
            f"end in `.keras`. Received: filepath={filepath}"
        )
    # Everything that can fail before a byte is written.
    data = (
        _to_json(_serialized(model)) if class_map.mk_layers_of(model) else None
    )

    def write(path):
        with full_save_allowed():
            keras.Model.save(model, path, overwrite=True)
        if data is not None:
            _keras_private.replace_archive_config(path, data)

    atomic.atomic_save(write, filepath, overwrite)


def _to_json(config):
    return json.dumps(config, default=_json_default)


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"Not JSON serializable: {value!r}")
