"""Running a model with chosen MK probabilities `p`, layer by layer.

ADV-MK needs the loss as a function of every layer's `p`, and the sharpness
diagnostic needs MK layers mixing while the rest of the model runs in
inference mode. Both are the same mechanism: while the scope is open, each
listed MK layer is called with `training=True` and a `p` chosen by the caller,
whatever the model passes down.
"""

import contextlib

from keras_mk.layers.mk_layer import MKLayer


@contextlib.contextmanager
def probabilities_scope(assignments):
    """Calls the given MK layers with chosen kernel probabilities.

    While the scope is open, every call of a listed layer runs in training
    mode (mixing its copies) with the `p` assigned to it, whatever `training`
    the surrounding model passes. Other layers are untouched, so
    `model(x, training=False)` inside the scope evaluates `L(theta_p)` with
    dropout and batch normalization in inference mode.

    Args:
        assignments: a dict or a list of `(layer, p)` pairs. `p` is a tensor
            of shape `(expansion,) + kernel_shape` (checked as the layer's
            `fixed_probabilities` is: a wrong shape, or a NumPy array off
            the simplex, raises a `ValueError`), a callable `p(layer)`
            evaluated at call time (inside traced train steps, so it may draw
            from the layer's seed generator), or None to let the layer draw
            its own random `p`.

    Example:

    >>> layer = keras_mk.layers.MKDense(2, expansion=3)
    >>> x = np.ones((1, 4))
    >>> y_mean = layer(x)
    >>> p = np.full((3, 4, 2), 1 / 3)
    >>> with probabilities_scope({layer: p}):
    ...     y_p = layer(x)
    """
    if isinstance(assignments, dict):
        assignments = list(assignments.items())
    for layer, p in assignments:
        if not isinstance(layer, MKLayer):
            raise ValueError(
                "`probabilities_scope` expects MK layers. "
                f"Received: layer={layer!r}"
            )
        if not callable(p) and p is not None:
            # Checked once here, as `layer(x, fixed_probabilities=p)`
            # would check it: the layers read it in `mixed_weights`.
            layer._check_probability_arguments(p)
    previous = [(layer, layer._forced) for layer, _ in assignments]
    try:
        for layer, p in assignments:
            # None: the layer draws its own `p`, in training mode.
            layer.__dict__["_forced"] = p if p is not None else _own_draw
        yield
    finally:
        for layer, value in reversed(previous):
            layer.__dict__["_forced"] = value


def _own_draw(layer):
    return None
