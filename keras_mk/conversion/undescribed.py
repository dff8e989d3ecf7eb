"""Which MK layers a model's config describes, and refusing the saves
that would lose the others.

A layer that builds its sublayers in `__init__` (a KerasHub backbone,
`MultiHeadAttention`) serializes only its own arguments, so a model's
config may not describe all of its MK layers. `mark_undescribed` finds
them; a whole-model save of one that `saving.save_model` did not write
is refused before its variables are written.
"""

import collections
import contextlib
import threading

import keras

from keras_mk import _keras_private
from keras_mk.conversion import registry

_MK_PREFIX = "keras_mk>MK"


def _described_names(config):
    """Counts the names of the configs of MK layers and of convertible
    Keras layers (which can become MK layers) in a serialized config."""
    convertible = registry.serialized_names()

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


def mark_undescribed(root, config=None):
    """Marks the MK layers of `root` that its config does not describe.

    Args:
        root: a model or layer.
        config: the serialized config `root` was built from (before or
            after its conversion); serialized here when None.

    Returns:
        The number of marked layers.
    """
    walked = list(registry.iter_layers(root))
    layers = [layer for _, layer in walked if registry.is_mk_layer(layer)]
    if not layers:
        return 0
    if config is None:
        config = keras.saving.serialize_keras_object(root)
    described = _described_names(config)
    # Every layer an MK or convertible Keras layer config could describe.
    present = collections.Counter(
        layer.name
        for _, layer in walked
        if registry.is_mk_layer(layer) or registry.mk_class_for(layer)
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
            not getattr(_FULL_SAVE, "allowed", False)
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
