"""Checks shared by the conversion functions, so errors read the same."""

import copy as copy_module

import keras

from keras_mk import _keras_private
from keras_mk.conversion import assets
from keras_mk.conversion import registry
from keras_mk.fresh_copy import fresh_copy


def check_model(model, function):
    """Raises unless `model` is a built `keras.Model`."""
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`keras_mk.{function}` expects a `keras.Model`. "
            f"Received: model={model!r} of type {type(model).__name__}"
        )
    if not model.built:
        raise ValueError(
            f"`keras_mk.{function}` needs a built model, so that every "
            f"kernel exists. Model '{model.name}' is not built: call it on "
            "a batch of data or call `model.build(input_shape)` first."
        )


def copy_model(model, config_transform=None):
    """A new model from `model`'s config, holding copies of its variables.

    See `copy_model_and_config`, which also returns the config.
    """
    return copy_model_and_config(model, config_transform)[0]


def copy_model_and_config(model, config_transform=None):
    """A new model from `model`'s config, and that config.

    What the config and the variables do not record is kept too (see
    `assets`): a KerasHub task's preprocessor, layers' assets.

    Args:
        model: a built `keras.Model`.
        config_transform: optional function applied to the serialized
            config before the copy is deserialized.

    Returns:
        `(copy, config)`: the new, built, uncompiled model and the
        serialized config it was built from (None for a Sequential model
        that repeats a layer, copied layer by layer).
    """
    if _repeats_a_layer(model):
        copy = _copy_sequential(model, config_transform)
        assets.keep_unrecorded_state(model, copy)
        return copy, None
    with _keras_private.object_sharing_scope():
        config = keras.saving.serialize_keras_object(model)
    config.pop("compile_config", None)
    config = assets.without_preprocessor(model, config)
    if config_transform is not None:
        config = config_transform(config)
    with _keras_private.object_sharing_scope():
        # Deserializing consumes parts of the config: build from a copy.
        copy = keras.saving.deserialize_keras_object(
            copy_module.deepcopy(config), custom_objects=_own_classes(model)
        )
    if not copy.built:
        raise ValueError(
            f"Model '{model.name}' could not be rebuilt from its config "
            "(no build config). Build it with `model.build(input_shape)` "
            "or call it on data first."
        )
    assets.keep_unrecorded_state(model, copy)
    return copy, config


def _repeats_a_layer(model):
    if type(model) is not keras.Sequential:
        return False
    return len({id(layer) for layer in model.layers}) < len(model.layers)


def _copy_sequential(model, config_transform):
    """A Sequential that uses one layer twice: a config cannot say so."""
    copies = {}
    for layer in model.layers:
        if id(layer) not in copies:
            config = keras.saving.serialize_keras_object(layer)
            if config_transform is not None:
                config = config_transform(config)
            copies[id(layer)] = keras.saving.deserialize_keras_object(
                config, custom_objects=_own_classes(model)
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


def _own_classes(model):
    """The user's classes of `model` that are not registered, by name.

    A subclassed model defined in a notebook resolves, as in
    `keras.models.clone_model`. Keras's own classes and operations resolve
    by module and are left out: an op (`x + 3.0` is `ops.Add`) and a layer
    (`layers.Add`) can share a class name.
    """
    classes = {}
    for obj in [model] + [layer for _, layer in registry.iter_layers(model)]:
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
    """Assigns each source variable to its target, in order.

    Args:
        sources: the variables to read.
        targets: the variables to write, the same shapes in the same order.
        error: the message of the `ValueError` raised when they do not
            pair up (nothing is assigned then).
        values: optional dict `id(source) -> value` overriding what is
            assigned for some sources.
    """
    if variable_signature(sources) != variable_signature(targets):
        raise ValueError(error)
    values = values or {}
    for s, t in zip(sources, targets):
        # A real copy: JAX's `fit` donates the buffers of a model's
        # variables, which would delete the other model's values.
        t.assign(fresh_copy(values.get(id(s), s.value)))


def copy_variables(source, target, what):
    """Assigns `source.variables` to `target.variables`, pairwise."""
    assign_pairwise(
        source.variables,
        target.variables,
        f"Could not {what} model '{source.name}': its copy rebuilt from "
        "`get_config()` has different variables. Does every custom "
        "layer of the model implement `get_config()`?",
    )
