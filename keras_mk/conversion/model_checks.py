"""Checks shared by the conversion functions, so errors read the same."""

import keras

from keras_mk.conversion import registry


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

    Args:
        model: a built `keras.Model`.
        config_transform: optional function applied to the serialized
            config before the copy is deserialized.

    Returns:
        The new, built, uncompiled model.
    """
    config = keras.saving.serialize_keras_object(model)
    config.pop("compile_config", None)
    if config_transform is not None:
        config = config_transform(config)
    # The model's own classes resolve even when they are not registered
    # (a subclassed model defined in a notebook), as `clone_model` allows.
    classes = [model] + [layer for _, layer in registry.iter_layers(model)]
    custom_objects = {
        keras.saving.get_registered_name(type(obj)): type(obj)
        for obj in classes
    }
    copy = keras.saving.deserialize_keras_object(
        config, custom_objects=custom_objects
    )
    if not copy.built:
        raise ValueError(
            f"Model '{model.name}' could not be rebuilt from its config "
            "(no build config). Build it with `model.build(input_shape)` "
            "or call it on data first."
        )
    return copy


def copy_variables(source, target, what):
    """Assigns `source.variables` to `target.variables`, pairwise."""
    sources, targets = source.variables, target.variables
    shapes = [(v.name, tuple(v.shape)) for v in sources]
    if shapes != [(v.name, tuple(v.shape)) for v in targets]:
        raise ValueError(
            f"Could not {what} model '{source.name}': its copy rebuilt from "
            "`get_config()` has different variables. Does every custom "
            "layer of the model implement `get_config()`?"
        )
    for s, t in zip(sources, targets):
        # A real copy: JAX's `fit` donates the buffers of a model's
        # variables, which would delete the other model's values.
        t.assign(keras.ops.copy(s.value))
