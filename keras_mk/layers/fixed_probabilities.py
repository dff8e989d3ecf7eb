"""Checks of the `fixed_probabilities` an MK layer is called with.

A layer with one simulated weight takes one `p`; a layer with several takes
a dict `{weight name: p}`. Each `p` has shape `(expansion,) + weight_shape`,
or 1 on axes after the first (shared along them). A host array (NumPy, a
list) must also be on the simplex; a backend tensor is not checked, on
purpose (see `MKLayer.call`).
"""

import numpy as np


def per_weight(layer, p):
    """`p` as a dict `{weight name: p}` (empty for None)."""
    if p is None:
        return {}
    names = [spec[0] for spec in layer.mk_weights]
    if not isinstance(p, dict):
        return {names[0]: p}
    unknown = sorted(set(p) - set(names))
    if unknown:
        raise ValueError(
            f"`fixed_probabilities` of MK layer '{layer.name}' names "
            f"weights it does not simulate: {unknown}. Its weights: "
            f"{names}. Received: fixed_probabilities keys {sorted(p)}"
        )
    return dict(p)


def check(layer, p, check_shape=True):
    """Every check that costs nothing per step (shapes, host values)."""
    for name, value in per_weight(layer, p).items():
        if check_shape:
            check_shape_of(layer, name, value)
        if isinstance(value, (np.ndarray, list, tuple)):
            check_values(layer, value)


def check_shape_of(layer, name, p):
    """Refuses a `p` whose shape does not fit weight `name`."""
    weight_shape = tuple(layer.weight_copies[name][0].shape)
    expected = (layer.expansion,) + weight_shape
    shape = tuple(getattr(p, "shape", None) or np.shape(p))
    fits = (
        len(shape) == len(expected)
        and shape[0] == layer.expansion
        and all(d in (1, k, None) for d, k in zip(shape[1:], weight_shape))
    )
    if not fits:
        per_unit = (layer.expansion,) + layer.unit_shape(weight_shape, name)
        what = "kernel_shape" if name == layer.mk_weights[0][0] else name
        raise ValueError(
            f"`fixed_probabilities` of MK layer '{layer.name}' must have "
            f"shape {expected} (`(expansion,) + {what}`), or 1 "
            f"on axes after the first, e.g. {per_unit} for one `p` per "
            f"output unit. Received: fixed_probabilities.shape={shape}"
        )


def check_values(layer, p):
    """Refuses a host `p` off the simplex."""
    values = np.asarray(p, dtype="float64")
    if not np.all(np.isfinite(values)):
        raise ValueError(
            f"`fixed_probabilities` of MK layer '{layer.name}' has "
            "values that are not finite (NaN or inf). Received: "
            f"fixed_probabilities with {np.sum(~np.isfinite(values))} "
            "such values"
        )
    sums = values.sum(axis=0)
    if np.any(values < 0) or not np.allclose(sums, 1.0, atol=1e-5):
        raise ValueError(
            f"`fixed_probabilities` of MK layer '{layer.name}' must be "
            "non-negative and sum to 1 over its first axis (the "
            "copies). Received: min value "
            f"{values.min():.3g}, sums from {sums.min():.6g} to "
            f"{sums.max():.6g}"
        )
