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

A layer that builds its sublayers in `__init__` (a KerasHub backbone,
`MultiHeadAttention`) serializes only its own arguments, so a model's
config may not describe all of its MK layers. Such MK layers are marked
(`undescribed.mark_undescribed`); `model.save` on a model from `keras_mk`
writes through `save_model` instead (`guard_saves`), and any other
whole-model save of a marked layer is refused before its variables are
written.
"""

import json
import os
import tempfile

import keras

from keras_mk import _keras_private
from keras_mk.conversion import atomic
from keras_mk.conversion import collapsing
from keras_mk.conversion import converting
from keras_mk.conversion import model_checks
from keras_mk.conversion import registry
from keras_mk.conversion import undescribed
from keras_mk.layers.config import MKConfig


def _is_local_file(filepath):
    return not isinstance(filepath, str) or "://" not in filepath


def _atomic_save(write, filepath, overwrite):
    """Runs `write(path)` through `atomic.atomic_write` for a local file.

    Returns False (nothing written) when `filepath` exists, `overwrite` is
    false and the user declines Keras's prompt.
    """
    filepath = os.fspath(filepath)
    if os.path.exists(filepath) and not overwrite:
        if not _keras_private.ask_to_overwrite(filepath):
            return False
    with atomic.atomic_write(filepath) as temporary:
        write(temporary)
    return True


def guard_saves(model, config=None):
    """Makes the saves of an MK model atomic, and routes them where needed.

    `model.save` and `model.save_weights` (and so `ModelCheckpoint` and
    `BackupAndRestore`, which call them) write through
    `atomic.atomic_write`: a save that fails leaves the previous file as it
    was. For a model whose config does not describe all of its MK layers,
    `model.save(path.keras)` writes what `keras_mk.save_model` writes and
    `save_to_preset` is refused before anything is written. Remote paths
    (`gs://...`) and sharded weights are written by Keras, in place.

    Args:
        model: a model.
        config: the serialized config it was built from, if known (saves
            serializing it again, see `mark_undescribed`).

    Returns:
        `model`, with these methods set on the instance.
    """
    if not registry.mk_layers_of(model):
        return model
    routed = undescribed.mark_undescribed(model, config) > 0

    def save(filepath, overwrite=True, zipped=None, **kwargs):
        if routed:
            if zipped is False or kwargs:
                raise ValueError(
                    f"Model '{model.name}' has MK layers that its config "
                    "does not describe: it can be saved only as a `.keras` "
                    "archive, with `keras_mk.save_model`. Received: "
                    f"zipped={zipped}, {sorted(kwargs)}"
                )
            return save_model(model, filepath, overwrite=overwrite)
        if zipped is False or not _is_local_file(filepath):
            return keras.Model.save(
                model, filepath, overwrite=overwrite, zipped=zipped, **kwargs
            )
        _atomic_save(
            lambda path: keras.Model.save(
                model, path, overwrite=True, zipped=zipped, **kwargs
            ),
            filepath,
            overwrite,
        )

    def save_weights(filepath, overwrite=True, **kwargs):
        if kwargs.get("max_shard_size") or not _is_local_file(filepath):
            return keras.Model.save_weights(
                model, filepath, overwrite=overwrite, **kwargs
            )
        _atomic_save(
            lambda path: keras.Model.save_weights(
                model, path, overwrite=True, **kwargs
            ),
            filepath,
            overwrite,
        )

    def save_to_preset(preset_dir, *args, **kwargs):
        raise ValueError(
            f"`save_to_preset` cannot record the MK layers of model "
            f"'{model.name}': `from_preset` would rebuild them plain. Save "
            "the training state with `keras_mk.save_model(model, "
            "'model.keras')`; for a preset of the deployable model, "
            "`keras_mk.collapse(model).save_to_preset(preset_dir)`. "
            f"Received: preset_dir={preset_dir!r}"
        )

    _keras_private.set_instance_method(model, "save", save)
    _keras_private.set_instance_method(model, "save_weights", save_weights)
    if routed and hasattr(model, "save_to_preset"):
        _keras_private.set_instance_method(
            model, "save_to_preset", save_to_preset
        )
    return model


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
        converting.convert_layers(model, plan)
        return guard_saves(model)


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

    The save is atomic: the file is written next to `filepath` and renamed
    over it once complete, so a save that fails or is killed part-way
    leaves the previous file as it was (see `keras_mk.conversion.atomic`).
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
    # Everything that can fail before a byte is written.
    data = (
        _to_json(_serialized(model)) if registry.mk_layers_of(model) else None
    )

    def write(path):
        with undescribed.full_save_allowed():
            keras.Model.save(model, path, overwrite=True)
        if data is not None:
            _keras_private.replace_archive_config(path, data)

    _atomic_save(write, filepath, overwrite)


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
    guard_saves(model)
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
