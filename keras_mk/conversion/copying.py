"""Copying a model: its config, its variables, and what neither records.

Conversion and collapse build a new model from the original's config, then
assign its variables. Some layers keep state in neither: Keras saves it as
*assets* (`save_assets(dir)` / `load_assets(dir)`), e.g. a KerasHub tokenizer's
vocabulary, byte-pair merges or SentencePiece proto, or an adapted
`StringLookup`'s vocabulary. The copy gets them the way a `.keras` file
does: each such layer writes its assets and its copy reads them.

A KerasHub task's preprocessor (tokenizer, packers, image or audio
converter) has no weights to convert, and its config does not record all
of it either (some preprocessors drop their sequence lengths). The copy of
a task therefore uses the original's preprocessor object, as layers shared
between models are used in Keras.
"""

import contextlib
import copy as copy_module
import dataclasses
import tempfile

import keras

from keras_mk import _keras_private
from keras_mk.fresh_copy import fresh_copy
from keras_mk.layers.walk import iter_layers


@dataclasses.dataclass(frozen=True)
class Copied:
    """A copy of a model.

    Attributes:
        model: the new, built, uncompiled model.
        config: the serialized config it was built from (None for a
            Sequential model that repeats a layer, copied layer by layer).
        layers: its `(path, layer)` pairs, in walk order (`iter_layers`).
    """

    model: keras.Model
    config: dict
    layers: list


def copy_model(model, walked, what, shared=frozenset()):
    """A new model from `model`'s config, holding copies of its variables.

    Args:
        model: a built `keras.Model`.
        walked: its `(path, layer)` pairs (`iter_layers`).
        what: what the copy is for (`"convert"`), for error messages.
        shared: ids of variables of `model` that the copy holds as they
            are, never copied (a LoRA model's frozen base). With any, the
            copy is built without allocating its variables, each one
            allocated as it is given its value: peak memory is the
            original plus what the copy does not share.

    Returns:
        A `Copied`, its model's variables assigned from `model`'s.
    """
    copied = copy_structure(model, walked, unallocated=bool(shared))
    owners = [copied.model] + [layer for _, layer in copied.layers]
    sources, targets = model.variables, copied.model.variables
    check_pairs(
        sources,
        targets,
        f"Could not {what} model '{model.name}': its copy rebuilt from "
        "`get_config()` has different variables. Does every custom "
        "layer of the model implement `get_config()`?",
    )
    for source, target in zip(sources, targets):
        if id(source) in shared:
            for layer in owners:
                if _keras_private.holds_variable(layer, target):
                    _keras_private.replace_variable(layer, target, source)
        else:
            assign(target, source)
    return copied


def copy_structure(model, walked, config_transform=None, unallocated=False):
    """A new model from `model`'s config, its variables as initialised.

    What the config and the variables do not record is kept too: a
    KerasHub task's preprocessor (`share_preprocessor`), layers' assets
    (`copy_assets`).

    Args:
        model: a built `keras.Model`.
        walked: its `(path, layer)` pairs (`iter_layers`).
        config_transform: optional function applied to the serialized
            config before the copy is deserialized.
        unallocated: build the copy's variables without values (each
            gets one from `assign`, or is replaced).

    Returns:
        A `Copied`.
    """
    classes = _own_classes([model] + [layer for _, layer in walked])
    config = None
    if _repeats_a_layer(model):
        copy = _copy_sequential(model, config_transform, classes)
    else:
        with _keras_private.object_sharing_scope():
            config = keras.saving.serialize_keras_object(model)
        config.pop("compile_config", None)
        config = without_preprocessor(model, config)
        if config_transform is not None:
            config = config_transform(config)
        allocation = (
            _keras_private.unallocated_variables()
            if unallocated
            else contextlib.nullcontext()
        )
        with allocation, _keras_private.object_sharing_scope():
            # Deserializing consumes parts of the config: build from a copy.
            copy = keras.saving.deserialize_keras_object(
                copy_module.deepcopy(config), custom_objects=classes
            )
    if not copy.built:
        raise ValueError(
            f"Model '{model.name}' could not be rebuilt from its config "
            "(no build config). Build it with `model.build(input_shape)` "
            "or call it on data first."
        )
    share_preprocessor(model, copy)
    copied = Copied(copy, config, list(iter_layers(copy)))
    restore_training_state(copy, copied.layers, training_state(model, walked))
    copy_assets(model, copy, walked, copied.layers)
    return copied


def training_state(model, walked):
    """What a model's config does not record of how it trains.

    Each layer's `trainable` flag (a subclassed model's layers, a KerasHub
    backbone frozen by its `enable_lora`), each LoRA layer's rank and
    `lora_alpha` (`Dense`, `EinsumDense` and `Embedding` rebuild from
    their config with `lora_alpha` equal to the rank; a KerasHub
    backbone's layers do not rebuild with LoRA at all), and a KerasHub
    backbone's LoRA record (`save_lora_weights` reads it).

    Args:
        model: a built model.
        walked: its `(path, layer)` pairs (`iter_layers`).

    Returns:
        A JSON-able dict, for `restore_training_state`: the model, then
        its layers in walk order (the same for two models built from one
        config), by position: auto-named layers (`softmax_3`) take other
        names, so other paths, in a copy.
    """
    state = {"trainable": [], "lora": {}, "hub_lora": {}}
    for i, layer in enumerate([model] + [layer for _, layer in walked]):
        state["trainable"].append(bool(layer.trainable))
        if getattr(layer, "lora_enabled", False):
            state["lora"][str(i)] = [layer.lora_rank, layer.lora_alpha]
        record = _keras_private.hub_lora_state(layer)
        if record:
            state["hub_lora"][str(i)] = record
    return state


def restore_training_state(model, walked, state):
    """Gives a model rebuilt from a config the state `training_state` read.

    Each layer's own flag is set (not its nested layers' or variables'),
    then LoRA is enabled where it was (freezing the kernels). The
    variables' own flags follow with their values (`assign_pairwise`).
    """
    layers = [model] + [layer for _, layer in walked]
    for layer, trainable in zip(layers, state["trainable"]):
        _keras_private.set_own_trainable(layer, trainable)
    for i, (rank, alpha) in state["lora"].items():
        layer = layers[int(i)]
        if not layer.lora_enabled:
            layer.enable_lora(rank, lora_alpha=alpha)
        layer.lora_alpha = alpha
    for i, record in state["hub_lora"].items():
        _keras_private.set_hub_lora_state(layers[int(i)], record)


def _repeats_a_layer(model):
    if type(model) is not keras.Sequential:
        return False
    return len({id(layer) for layer in model.layers}) < len(model.layers)


def _copy_sequential(model, config_transform, classes):
    """A Sequential that uses one layer twice: a config cannot say so."""
    copies = {}
    for layer in model.layers:
        if id(layer) not in copies:
            config = keras.saving.serialize_keras_object(layer)
            if config_transform is not None:
                config = config_transform(config)
            copies[id(layer)] = keras.saving.deserialize_keras_object(
                config, custom_objects=classes
            )
    (inputs,) = model.inputs
    spec = keras.Input(
        batch_shape=inputs.shape, dtype=inputs.dtype, name=inputs.name
    )
    return keras.Sequential(
        [spec] + [copies[id(layer)] for layer in model.layers],
        name=model.name,
        trainable=model.trainable,
    )


def _own_classes(objects):
    """The user's classes of a model's `objects` that are not registered,
    by name.

    A subclassed model defined in a notebook resolves, as in
    `keras.models.clone_model`. Keras's own classes and operations resolve
    by module and are left out: an op (`x + 3.0` is `ops.Add`) and a layer
    (`layers.Add`) can share a class name.
    """
    classes = {}
    for obj in objects:
        cls = type(obj)
        if cls.__module__.split(".")[0] in ("keras", "keras_mk"):
            continue
        name = keras.saving.get_registered_name(cls)
        if keras.saving.get_registered_object(name) is None:
            classes[name] = cls
    return classes


def variable_signature(variables):
    """What two variable lists must share to pair up: order and shapes.

    Not names: a weight created without a name gets an auto-generated one
    (`variable_3`) that differs between a model and its copy.
    """
    return [(tuple(v.shape), str(v.dtype)) for v in variables]


def assign_pairwise(sources, targets, error, values=None):
    """Assigns each source variable to its target, in order, with its
    `trainable` flag.

    Args:
        sources: the variables to read.
        targets: the variables to write, the same shapes in the same order.
        error: the message of the `ValueError` raised when they do not
            pair up (nothing is assigned then).
        values: optional dict `id(source) -> value` overriding what is
            assigned for some sources.
    """
    check_pairs(sources, targets, error)
    values = values or {}
    for s, t in zip(sources, targets):
        assign(t, s, values.get(id(s)))


def check_pairs(sources, targets, error):
    """Raises `ValueError(error)` unless the variables pair up."""
    if variable_signature(sources) != variable_signature(targets):
        raise ValueError(error)


def assign(target, source, value=None):
    """Gives `target` a copy of `source`'s value (or of `value`) and its
    `trainable` flag; allocates it if it was built unallocated."""
    # A real copy: JAX's `fit` donates the buffers of a model's
    # variables, which would delete the other model's values.
    value = fresh_copy(source.value if value is None else value)
    if _keras_private.is_unallocated(target):
        _keras_private.initialize_with(target, value)
    else:
        target.assign(value)
    target.trainable = source.trainable


def _keeps_assets(obj):
    # What Keras's own saving asks (`saving_lib._save_state`).
    return hasattr(obj, "save_assets") and hasattr(obj, "load_assets")


def _with_assets(model, walked):
    """`(path, object)` for `model` and its layers that keep assets."""
    found = [("", model)] + list(walked)
    return [(p, obj) for p, obj in found if _keeps_assets(obj)]


def copy_assets(source, target, source_walk, target_walk):
    """Copies the assets of `source`'s layers into `target`'s, by path.

    Args:
        source: a built layer or model.
        target: its copy, rebuilt from `source`'s config (same layer
            paths).
        source_walk: `source`'s `(path, layer)` pairs (`iter_layers`).
        target_walk: `target`'s.

    Raises:
        ValueError: when a layer cannot save its assets (e.g. a tokenizer
            without a vocabulary), or `target` has no layer at its path.
            The message names the layer.
    """
    targets = dict(_with_assets(target, target_walk))
    for path, layer in _with_assets(source, source_walk):
        where = f"layer '{path}'" if path else f"model '{source.name}'"
        copy = targets.get(path)
        if copy is layer:
            continue  # shared (a task's preprocessor)
        if copy is None:
            raise ValueError(
                f"Cannot copy the assets of {where} "
                f"({type(layer).__name__}): its copy rebuilt from the "
                "config has no layer there."
            )
        with tempfile.TemporaryDirectory() as directory:
            try:
                layer.save_assets(directory)
            except Exception as e:
                raise ValueError(
                    f"Cannot copy {where} ({type(layer).__name__}): it "
                    "keeps state as assets (a vocabulary, merges, a "
                    f"proto...) that it could not write: {e!r}. Set them "
                    "(e.g. its vocabulary) before converting."
                ) from e
            copy.load_assets(directory)


def _preprocessor(model):
    preprocessor = getattr(model, "preprocessor", None)
    return preprocessor if isinstance(preprocessor, keras.Layer) else None


def without_preprocessor(model, config):
    """`model`'s serialized config, less the preprocessor it will share.

    Args:
        model: the model being copied.
        config: its serialized config (`serialize_keras_object`).

    Returns:
        The config, with `preprocessor: None` for a KerasHub task (so that
        the copy does not build a preprocessor of its own).
    """
    inner = config.get("config")
    if _preprocessor(model) is not None and isinstance(inner, dict):
        if "preprocessor" in inner:
            config = dict(config, config=dict(inner, preprocessor=None))
    return config


def share_preprocessor(source, target):
    """Gives `target`, a copy of `source` from its config, `source`'s
    preprocessor (a KerasHub task's), which the config does not record."""
    preprocessor = _preprocessor(source)
    if preprocessor is not None and _preprocessor(target) is None:
        target.preprocessor = preprocessor
