"""A tensor's values in a buffer of their own."""

import functools
import inspect

import keras
from keras import ops


@functools.cache
def jax_copies_at_runtime():
    """Whether this JAX's `device_put` can force a copy (`may_alias`)."""
    import jax

    return "may_alias" in inspect.signature(jax.device_put).parameters


def fresh_copy(x):
    """A copy of tensor `x` in a new buffer: its values and memory layout.

    Two JAX variables may not share one buffer (Keras's `fit` donates a
    model's buffers), and a copy keeps PyTorch's strides. On JAX,
    `jax.device_put(x, may_alias=False)`: a runtime copy, where
    `keras.ops.copy` compiles an XLA program per shape (71 of them,
    ~1 s, to convert EfficientNetB0). A JAX without `may_alias` (0.4.30,
    the lowest supported) copies with `keras.ops.copy`.

    Args:
        x: a tensor of the current backend.

    Returns:
        A tensor equal to `x`, sharing no memory with it.
    """
    if keras.backend.backend() == "jax" and jax_copies_at_runtime():
        import jax

        return jax.device_put(x, may_alias=False)
    return ops.copy(x)
