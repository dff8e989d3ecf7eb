"""Distributing MK models with `keras.distribution`.

An MK layer keeps its kernel variable (`.../kernel`, copy 0) and adds
`expansion - 1` variables of the same shape next to it
(`.../kernel_copy_1`, ...; `.../bias_copy_k` with `expand_bias=True`). A
`keras.distribution.LayoutMap` written for the plain model matches variable
paths with `re.fullmatch`, so a rule such as `".*dense.*kernel"` lays out
copy 0 but silently leaves the other copies replicated, while a loose rule
such as `".*kernel.*"` catches them by accident. `mk_layout_map` rewrites a
plain layout map so that every copy gets exactly the layout of its kernel.

Probabilities across devices: the `p` of a training step is a function of
the layer's `SeedGenerator` state and of the element's position in the whole
kernel only. With `keras.distribution.DataParallel` and `ModelParallel` on
JAX, and with `tf.distribute.MirroredStrategy` on TensorFlow, every replica
therefore uses the same `p` in a step (replicas share `p`), and a run on N
devices matches a run on one device with the same global batch.
"""

import re
import warnings

import keras

__all__ = ["copy_source_path", "mk_layout_map"]

_COPY_SUFFIX = r"_copy_[1-9][0-9]*"
# Paths of MK copy variables: they end in `<name>_copy_<k>`.
_COPY_PATH = re.compile(r".*" + _COPY_SUFFIX)


def mk_layout_map(layout_map, model=None):
    """Derives the layout map of an MK model from a plain model's one.

    Every rule `pattern -> layout` of `layout_map` becomes two rules: the
    pattern restricted to paths that are not MK copies, and the pattern
    followed by `_copy_<k>` for the copies, with the same layout. So
    `.../kernel_copy_k` is laid out exactly like `.../kernel` (same shape,
    same sharding), no copy is matched by two rules, and a rule that matched
    a plain kernel still matches it (the kernel keeps its path).

    Args:
        layout_map: a `keras.distribution.LayoutMap` for the plain model,
            for example from a KerasHub `Backbone.get_layout_map(mesh)`.
        model: optional built MK model. If given, every variable is looked
            up: an error is raised if a copy is laid out unlike its kernel,
            and a warning lists the rules that match no variable.

    Returns:
        A new `keras.distribution.LayoutMap` on the same device mesh.

    Raises:
        ValueError: if `model` has a copy whose layout differs from its
            kernel's, or a variable matched by more than one rule.

    Example:

    >>> devices = keras.distribution.list_devices()
    >>> mesh = keras.distribution.DeviceMesh(
    ...     (1, len(devices)), ["batch", "model"], devices
    ... )
    >>> plain_map = keras_hub.models.GemmaBackbone.get_layout_map(mesh)
    >>> layout_map = keras_mk.mk_layout_map(plain_map)
    >>> distribution = keras.distribution.ModelParallel(
    ...     layout_map=layout_map, batch_dim_name="batch"
    ... )
    >>> with distribution.scope():
    ...     mk_model = keras_mk.clone_model(plain_model, expansion=3)
    """
    if not isinstance(layout_map, keras.distribution.LayoutMap):
        raise TypeError(
            "`layout_map` must be a keras.distribution.LayoutMap. "
            f"Received: layout_map={layout_map!r}"
        )
    derived = keras.distribution.LayoutMap(layout_map.device_mesh)
    for pattern in layout_map:
        layout = layout_map[pattern]
        derived[f"(?!{_COPY_PATH.pattern}$)(?:{pattern})"] = layout
        derived[f"(?:{pattern}){_COPY_SUFFIX}"] = layout
    if model is not None:
        _check(layout_map, derived, model)
    return derived


def copy_source_path(path):
    """The path of the kernel (or bias) an MK copy variable copies, or None.

    `"dense/kernel_copy_2"` gives `"dense/kernel"`; a path that is not an MK
    copy gives None.
    """
    match = re.fullmatch(r"(.*)" + _COPY_SUFFIX, path)
    return None if match is None else match.group(1)


def _axes(layout):
    return None if layout is None else tuple(layout.axes)


def _check(plain_map, derived, model):
    variables = {v.path: v for v in model.variables}
    for path in variables:
        source = copy_source_path(path)
        if source is None or source not in variables:
            continue
        if _axes(derived[path]) != _axes(derived[source]):
            raise ValueError(
                f"Copy '{path}' is laid out as {_axes(derived[path])} but "
                f"its kernel '{source}' as {_axes(derived[source])}."
            )
    unmatched = [
        pattern
        for pattern in plain_map
        if not any(re.fullmatch(pattern, path) for path in variables)
    ]
    if unmatched:
        warnings.warn(
            f"Layout rules matching no variable of model '{model.name}': "
            f"{unmatched}. Check the variable paths (`model.variables`).",
            stacklevel=3,
        )
