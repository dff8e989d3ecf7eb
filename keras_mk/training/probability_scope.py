"""Running a model with chosen MK probabilities `p`, layer by layer.

ADV-MK needs the loss as a function of every layer's `p`, and the sharpness
diagnostic needs MK layers mixing while the rest of the model runs in
inference mode. Both are the same mechanism: while the scope is open, each
listed MK layer is called with `training=True` and a `p` chosen by the caller,
whatever the model passes down.
"""

import contextlib

from keras_mk import _keras_private
from keras_mk.layers.mk_layer import MKLayer


def mk_layers(model, include_unexpanded=False):
    """The MK layers of `model` (or `model` itself if it is one), in order.

    Args:
        model: a Keras layer or model.
        include_unexpanded: whether to include MK layers with `expansion=1`
            (they have no `p` to choose). Default False.

    Returns:
        A list of MK layers, each once, in depth-first order.
    """
    found = []
    seen = set()

    def visit(layer):
        if id(layer) in seen:
            return
        seen.add(id(layer))
        if isinstance(layer, MKLayer):
            if include_unexpanded or layer.expansion > 1:
                found.append(layer)
        for sublayer in _keras_private.sublayers(layer):
            visit(sublayer)

    visit(model)
    return found


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
    with contextlib.ExitStack() as stack:
        for layer, p in assignments:
            if not isinstance(layer, MKLayer):
                raise ValueError(
                    "`probabilities_scope` expects MK layers. "
                    f"Received: layer={layer!r}"
                )
            if not callable(p) and p is not None:
                # Checked once here, as `layer(x, fixed_probabilities=p)`
                # would check it: the scope calls `call` directly.
                layer._check_probability_arguments(p)
            forced = _forced_call(layer, layer.call, p)
            stack.enter_context(
                _keras_private.instance_method(layer, "call", forced)
            )
        yield


def _forced_call(layer, original, p):
    # Positional extras can only be `training` or `fixed_probabilities`:
    # both are decided here.
    def call(inputs, *unused_args, **unused_kwargs):
        value = p(layer) if callable(p) else p
        return original(inputs, training=True, fixed_probabilities=value)

    return call
