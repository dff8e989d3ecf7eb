"""The save guards of a converted model.

`guard_saves` sets `save` and `save_weights` on a model that has MK
layers, so that `model.save` and `model.save_weights` (and with them
`ModelCheckpoint` and `BackupAndRestore`) write atomically: a save that
fails or is killed part-way leaves the previous file as it was.

A layer that builds its sublayers in `__init__` (a KerasHub backbone,
`MultiHeadAttention`) serializes only its own arguments, so a model's
config may not describe all of its MK layers. `mark_undescribed` finds
them. `model.save(path.keras)` on such a model writes what
`keras_mk.save_model` writes, its `save_to_preset` is refused, and any
other whole-model save of a marked layer (a parent model built around it)
is refused before its variables are written.
"""

import collections
import functools

import keras

from keras_mk import _keras_private
from keras_mk.conversion import class_map
from keras_mk.conversion.saving import archive
from keras_mk.conversion.saving import atomic
from keras_mk.layers import MKLayer

_MK_PREFIX = "keras_mk>MK"


def guard_saves(model, walked, config=None):
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
        walked: its `(path, layer)` pairs (`iter_layers`).
        config: the serialized config it was built from, if known (saves
            serializing it again, see `mark_undescribed`).

    Returns:
        `model`, with these methods set on the instance.
    """
    marked = mark_undescribed(model, walked, config)
    if marked is None:
        return model  # no MK layers
    bind = _keras_private.set_instance_method
    bind(model, "save", functools.partial(_save, model, marked > 0))
    bind(model, "save_weights", functools.partial(_save_weights, model))
    if marked and hasattr(model, "save_to_preset"):
        bind(model, "save_to_preset", functools.partial(_no_preset, model))
    return model


def _save(model, routed, filepath, overwrite=True, zipped=None, **kwargs):
    """`model.save` of a guarded model (see `guard_saves`)."""
    if routed:
        if zipped is False or kwargs:
            raise ValueError(
                f"Model '{model.name}' has MK layers that its config "
                "does not describe: it can be saved only as a `.keras` "
                "archive, with `keras_mk.save_model`. Received: "
                f"zipped={zipped}, {sorted(kwargs)}"
            )
        return archive.save_model(model, filepath, overwrite=overwrite)
    if zipped is False or not atomic.is_local_file(filepath):
        return keras.Model.save(
            model, filepath, overwrite=overwrite, zipped=zipped, **kwargs
        )
    atomic.atomic_save(
        lambda path: keras.Model.save(
            model, path, overwrite=True, zipped=zipped, **kwargs
        ),
        filepath,
        overwrite,
    )


def _save_weights(model, filepath, overwrite=True, **kwargs):
    """`model.save_weights` of a guarded model (see `guard_saves`)."""
    if kwargs.get("max_shard_size") or not atomic.is_local_file(filepath):
        return keras.Model.save_weights(
            model, filepath, overwrite=overwrite, **kwargs
        )
    atomic.atomic_save(
        lambda path: keras.Model.save_weights(
            model, path, overwrite=True, **kwargs
        ),
        filepath,
        overwrite,
    )


def _no_preset(model, preset_dir, *args, **kwargs):
    """`save_to_preset` of a model with undescribed MK layers: refused."""
    raise ValueError(
        f"`save_to_preset` cannot record the MK layers of model "
        f"'{model.name}': `from_preset` would rebuild them plain. Save "
        "the training state with `keras_mk.save_model(model, "
        "'model.keras')`; for a preset of the deployable model, "
        "`keras_mk.collapse(model).save_to_preset(preset_dir)`. "
        f"Received: preset_dir={preset_dir!r}"
    )


def _described_names(config):
    """Counts the names of the configs of MK layers and of convertible
    Keras layers (which can become MK layers) in a serialized config."""
    convertible = class_map.serialized_names()

    def describes(item):
        name = item.get("registered_name")
        if isinstance(name, str):
            return name.startswith(_MK_PREFIX) or name in convertible
        return item.get("class_name") in convertible and str(
            item.get("module", "")
        ).startswith("keras.")

    names = collections.Counter()
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            inner = item.get("config")
            if describes(item) and isinstance(inner, dict):
                names[inner.get("name")] += 1
            stack.extend(item.values())
    return names


def mark_undescribed(root, walked, config=None):
    """Marks the MK layers of `root` that its config does not describe.

    Args:
        root: a model or layer.
        walked: its `(path, layer)` pairs (`iter_layers`).
        config: the serialized config `root` was built from (before or
            after its conversion); serialized here when None.

    Returns:
        The number of marked layers; None when `root` has no MK layers.
    """
    walked = [layer for _, layer in walked]
    layers = [layer for layer in walked if isinstance(layer, MKLayer)]
    if not layers:
        return None
    if config is None:
        config = keras.saving.serialize_keras_object(root)
    described = _described_names(config)
    # Every layer an MK or convertible Keras layer config could describe.
    convertible = tuple(class_map.class_map().mk)
    present = collections.Counter(
        layer.name
        for layer in walked
        if isinstance(layer, MKLayer) or type(layer) in convertible
    )
    marked = 0
    for layer in layers:
        # Names repeat in KerasHub models: when fewer configs than layers
        # carry a name, every layer of that name is marked.
        needs = described[layer.name] < present[layer.name]
        if needs or "save_own_variables" in layer.__dict__:
            _refuse_config_saves(layer)
            marked += 1
    return marked


def _refuse_config_saves(layer):
    """Makes a whole-model save of `layer` other than `save_model` raise.

    The layer's `save_own_variables` is wrapped on the instance (once):
    weights-only saves pass, a `.keras` file written by another route
    (`model.save` of a parent built around the layer) is refused before
    its variables are written.
    """
    if "save_own_variables" in layer.__dict__:
        return
    save_variables = layer.save_own_variables

    def save_own_variables(store):
        if (
            not archive.writing_full_save()
            and _keras_private.in_config_writing_save()
        ):
            raise ValueError(
                f"MK layer '{layer.name}' lives inside a layer whose config "
                "does not describe it (a KerasHub backbone, "
                "`MultiHeadAttention`, ...): a `.keras` file written by "
                "`model.save` would not load. Save the model with "
                "`keras_mk.save_model(model, path)` (load it with "
                "`keras_mk.load_model`), or deploy "
                "`keras_mk.collapse(model)`. Weights-only files "
                "(`save_weights`, `ModelCheckpoint(save_weights_only=True)`, "
                "`BackupAndRestore`) work as they are."
            )
        save_variables(store)

    _keras_private.set_instance_method(
        layer, "save_own_variables", save_own_variables
    )
