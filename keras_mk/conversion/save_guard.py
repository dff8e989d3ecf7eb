"""Which MK layers a model's config describes, and guarding `model.save`.

`model.save` writes a model's config and weights. A Sequential or
Functional config lists its MK layers, so the file loads back as is. A
layer that builds its sublayers in `__init__` (a KerasHub backbone,
`MultiHeadAttention`) serializes only its own arguments: its MK sublayers
would come back plain and the file would not load. Such MK layers are
marked; `model.save` on a model from `keras_mk` writes through
`keras_mk.save_model` instead, and any other whole-model save of a marked
layer is refused by the layer itself (see `MKLayer.save_own_variables`).
"""

import collections

import keras

from keras_mk import _keras_private
from keras_mk.conversion import registry
from keras_mk.layers import mk_layer

_MK_PREFIX = "keras_mk>MK"


def _described_names(config):
    """Counts the layer names of MK layer configs in a serialized config."""
    names = collections.Counter()
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            name = item.get("registered_name")
            inner = item.get("config")
            if isinstance(name, str) and name.startswith(_MK_PREFIX):
                if isinstance(inner, dict):
                    names[inner.get("name")] += 1
            stack.extend(item.values())
    return names


def mark_undescribed(root):
    """Marks the MK layers of `root` that its config does not describe.

    Returns:
        The number of marked layers.
    """
    layers = [layer for _, layer in registry.mk_layers_of(root)]
    if not layers:
        return 0
    described = _described_names(keras.saving.serialize_keras_object(root))
    present = collections.Counter(layer.name for layer in layers)
    marked = 0
    for layer in layers:
        # Names repeat in KerasHub models: when fewer configs than layers
        # carry a name, every layer of that name is marked.
        needs = described[layer.name] < present[layer.name]
        if needs or mk_layer.needs_save_model(layer):
            mk_layer.mark_needs_save_model(layer)
            marked += 1
    return marked


def needs_save_model(model):
    return any(
        mk_layer.needs_save_model(layer)
        for _, layer in registry.mk_layers_of(model)
    )


def guard_saves(model):
    """Routes `model.save` through `keras_mk.save_model` where needed.

    For a model whose config does not describe all of its MK layers:
    `model.save(path.keras)` (and `ModelCheckpoint`, which calls it) writes
    what `keras_mk.save_model` writes; `save_to_preset` is refused before
    anything is written.
    """
    if not mark_undescribed(model):
        return model

    def save(filepath, overwrite=True, zipped=None, **kwargs):
        from keras_mk.conversion import saving

        if zipped is False or kwargs:
            raise ValueError(
                f"Model '{model.name}' has MK layers that its config does "
                "not describe: it can be saved only as a `.keras` archive, "
                "with `keras_mk.save_model`. Received: "
                f"zipped={zipped}, {sorted(kwargs)}"
            )
        saving.save_model(model, filepath, overwrite=overwrite)

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
    if hasattr(model, "save_to_preset"):
        _keras_private.set_instance_method(
            model, "save_to_preset", save_to_preset
        )
    return model
