"""Collapsing a Majority Kernels model back to a plain Keras model.

The deployed model is the original architecture with each MK layer replaced
by its plain Keras layer holding the mean of the kernel copies: the MK
model's inference function, at the original size and cost.
"""

import keras
import numpy as np

from keras_mk import _keras_private
from keras_mk import sampling
from keras_mk.conversion import class_map
from keras_mk.conversion import copying
from keras_mk.layers.config import MKConfig
from keras_mk.layers.walk import iter_layers


def plain_config(config):
    """A serialized config with every MK layer replaced by its Keras layer.

    Works on any nesting (Sequential, Functional, subclassed configs that
    serialize their sublayers). MK arguments are dropped, so the result is
    the config the layer had before conversion.
    """
    if isinstance(config, list):
        return [plain_config(c) for c in config]
    if not isinstance(config, dict):
        return config
    plain = class_map.plain_class_named(config.get("registered_name"))
    result = {k: plain_config(v) for k, v in config.items()}
    if plain is not None and isinstance(config.get("config"), dict):
        keras_layer = plain.__module__.startswith("keras.")
        # A KerasHub layer deserializes by its registered name.
        result["module"] = "keras.layers" if keras_layer else plain.__module__
        result["class_name"] = plain.__name__
        result["registered_name"] = (
            None if keras_layer else keras.saving.get_registered_name(plain)
        )
        result["config"] = {
            k: v
            for k, v in result["config"].items()
            if k not in MKConfig.names()
        }
    return result


def _check_finite(model):
    for path, layer in class_map.mk_layers_of(model):
        for what in layer.weight_copies:
            value = getattr(layer, what)  # the mean of the copies
            if not np.all(np.isfinite(keras.ops.convert_to_numpy(value))):
                raise ValueError(
                    f"Cannot collapse model '{model.name}': the mean {what} "
                    f"of layer '{path}' has non-finite values (NaN or inf). "
                    "Training diverged; restore a checkpoint."
                )


def collapse(model):
    """Returns the plain Keras model an MK model deploys as.

    A new model of the same class and architecture as before conversion:
    every MK layer becomes its plain Keras layer (same class, name and
    config as the layer had before `keras_mk.clone_model`) holding the mean
    of the kernel copies (and of the bias copies). Its outputs equal the MK
    model's inference outputs. Other variables are copied; the MK model is
    not modified. A model without MK layers gives an equivalent copy. The
    result is not compiled and needs keras_mk neither to run nor to load.

    Args:
        model: a built `keras.Model`, usually from `keras_mk.clone_model`.

    Returns:
        A new plain `keras.Model` of the same class.

    Raises:
        TypeError: if `model` is not a `keras.Model`.
        ValueError: if the model is not built or a mean kernel or bias is
            not finite.

    Example:

    >>> small = keras_mk.collapse(mk_model)
    >>> small.save("model.keras")  # loads without keras_mk
    """
    class_map.check_model(model, "collapse")
    _check_finite(model)
    copy = copying.copy_structure(
        model, list(iter_layers(model)), plain_config
    ).model
    # A model whose class creates MK layers itself (`MKDense(...)` in a
    # subclassed model's `__init__`) rebuilds them: make them plain here.
    for _, layer in class_map.mk_layers_of(copy):
        to_plain_layer(layer)
    for _, layer in class_map.iter_layers(copy):
        if class_map.carried_cell(layer) is not None:  # an MK recurrent layer
            plain = class_map.plain_class_for(layer)
            if plain is not None:
                _keras_private.swap_class(layer, plain, {})
                _keras_private.rewrap_quantize(layer)
    _assign_variables(model, copy)
    return copy


def to_plain_layer(layer):
    """Turns an MK layer into its plain Keras layer, in place.

    Copy 0 of each weight becomes that weight; the other copies and the seed
    state are dropped. The caller assigns the mean afterwards.
    """
    weights, dropped = layer._plain_state()
    _keras_private.untrack(layer, dropped)
    _keras_private.swap_class(layer, class_map.plain_class_for(layer), weights)
    _keras_private.rewrap_quantize(layer)


def _assign_variables(model, copy):
    """Copies `model`'s variables into `copy`, the kernels as their mean.

    Without its extra copies and its seed state an MK layer has the
    variables of its plain layer, in the same order, so the two variable
    lists pair up one to one.
    """
    extra, means = set(), {}
    for _, layer in class_map.mk_layers_of(model):
        for copies in layer.weight_copies.values():
            if copies:
                extra.update(id(v) for v in copies[1:])
                means[id(copies[0])] = sampling.exact_mean(
                    [v.value for v in copies]
                )
        if layer.seed_generator is not None:
            extra.add(id(layer.seed_generator.state))
    sources = [v for v in model.variables if id(v) not in extra]
    copying.assign_pairwise(
        sources,
        copy.variables,
        f"Cannot collapse model '{model.name}': the plain model rebuilt "
        "from its config has different variables. Does every custom "
        "layer of the model implement `get_config()`?",
        values=means,
    )
