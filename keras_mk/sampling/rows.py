"""The probabilities of the table rows a lookup gathers (counter hash).

An embedding lookup needs only the rows its ids gather. The `p` of table
element `(r, c)` of one draw is a pure function of the seed state and the
element's flat index (`counter_hash`), so the rows' `p` is computed alone:
work proportional to tokens x dim x e, not to the vocabulary. The values
equal those of the whole table's draw, `sample_spacings(p_shape, e, state,
hashed=True)`, taken at the gathered rows.
"""

import functools

import keras
import numpy as np
from keras import ops

from keras_mk.sampling import counter_hash
from keras_mk.sampling import jax_backend
from keras_mk.sampling import mixing
from keras_mk.sampling import simplex
from keras_mk.sampling import tensorflow_backend
from keras_mk.sampling import torch_backend


def element_index(ids, p_shape):
    """The flat index in a draw of `p_shape` of each gathered element.

    Args:
        ids: int32 row ids, any shape.
        p_shape: `(rows, columns)` of the draw: the table's shape, or 1 on
            an axis along which one `p` is shared.

    Returns:
        An int32 tensor of shape `ids.shape + (columns,)` (or `(columns,)`
        when `rows` is 1: the same for every id).
    """
    rows, columns = p_shape
    index = ops.arange(columns, dtype="int32")
    if rows == 1:
        return index
    start = ops.multiply(ops.expand_dims(ids, -1), np.int32(columns))
    return ops.add(start, index)


def gathered_spacings(ids, p_shape, count, state):
    """Sorted uniforms of the rows `ids` of a hashed draw of `p_shape`.

    The same values as `sample_spacings(p_shape, count + 1, state,
    hashed=True)` taken at rows `ids` (uniform `j` of element `i` is the
    hash of `i + j * size`: `counter_hash.spacings_at`).

    Args:
        ids: int32 row ids (non-negative), any shape.
        p_shape: `(rows, columns)` of the draw (see `element_index`).
        count: the number of uniforms per element, `expansion - 1`.
        state: the seed state of the draw (two 32-bit words).

    Returns:
        A list of `count` float32 tensors, sorted elementwise.
    """
    size = int(np.prod(p_shape))
    if size * count > counter_hash.MAX_ELEMENTS:
        raise ValueError(
            "A hashed draw supports fewer than 2**31 elements. Received: "
            f"p_shape={tuple(p_shape)}, {count} uniforms per element"
        )
    if keras.backend.backend() == "tensorflow":
        # One XLA cluster: op by op, the hash is ~30 passes over the
        # gathered elements (TensorFlow runs the step without XLA).
        return list(_tensorflow_spacings(tuple(p_shape), count)(ids, state))
    if keras.backend.backend() == "torch":  # one compiled loop
        index = element_index(ids, p_shape)
        state = counter_hash.seed_state(state)
        return torch_backend.gathered_spacings(state, index, size, count)
    return _spacings(ids, p_shape, count, state)


def _spacings(ids, p_shape, count, state):
    size = int(np.prod(p_shape))
    index = element_index(ids, p_shape)
    if keras.backend.backend() == "jax":  # traced into the step
        return jax_backend.spacings_at(state, index, size, count)
    return counter_hash.spacings_at(state, index, size, count)


@functools.cache
def _tensorflow_spacings(p_shape, count):
    """`_spacings` of a draw of `p_shape` as one XLA cluster (TensorFlow)."""

    def spacings(ids, state):
        return tuple(_spacings(ids, p_shape, count, state))

    return tensorflow_backend.compiled(spacings)


def gathered_mix(copies, ids, p_shape, state):
    """The rows `ids` of the table mixed with the hashed draw of `state`.

    Forward: gather-then-mix (tokens x dim x e). The gradient of copy `k`
    is `p_k * upstream` at the gathered rows. On JAX, where XLA compiles
    the step and fuses the hash, it is one scatter of the upstream into
    the table times the whole table's `p_k` (hashed again); elsewhere
    (the gathered rows' hash is one XLA cluster on TensorFlow, one compiled
    loop on PyTorch), one scatter per copy of `p_k * upstream`
    (measured in `benchmarks/embedding_cost.py`: either way the backward
    and the optimizer's update touch every copy's whole table).

    Args:
        copies: the `e` tables, each `(rows, columns)`.
        ids: int32 row ids (non-negative), any shape.
        p_shape: the shape of the draw (see `element_index`).
        state: the seed state of the draw.

    Returns:
        The mixed rows, `ids.shape + (columns,)`, in the copies' dtype.
    """

    def mixed_rows(copies):
        rows = [ops.take(c, ids, axis=0) for c in copies]
        s = gathered_spacings(ids, p_shape, len(copies) - 1, state)
        # The whole table's formula (PyTorch's differs by an ulp), so the
        # rows equal the whole table's mix taken at them, exactly.
        return mixing.mix_with_spacings(
            rows, [ops.cast(x, rows[0].dtype) for x in s]
        )

    if keras.backend.backend() != "jax":
        return mixed_rows(copies)
    table_shape = tuple(copies[0].shape)
    flat = ops.reshape(ids, (-1, 1))

    @ops.custom_gradient
    def mix(*copies):
        def grad(*args, upstream=None):
            upstream = args[0] if upstream is None else upstream
            upstream = ops.reshape(upstream, (-1, table_shape[-1]))
            table = ops.scatter(flat, upstream, table_shape)
            p = mixing.sample_spacings(p_shape, len(copies), state, True)
            p = [ops.cast(x, table.dtype) for x in p]
            return tuple(ops.multiply(table, q) for q in simplex.gaps(p))

        return mixed_rows(copies), grad

    return mix(*copies)


class _GivenState:
    """Hands a given seed state to a mix that asks a generator for one."""

    def __init__(self, state):
        self.state = state

    def next(self):
        return self.state


def table_mix(copies, state, shape):
    """The whole table mixed with the hashed draw of a given seed state.

    `sampled_mix(copies, state, shape, hashed=True)`, through TensorFlow's
    and PyTorch's fused loops where they serve (`sampled_mix_for`): the
    reverse projection of a tied table mixes all of it with its lookup's state.
    """
    shape = tuple(shape)
    # JAX traces the plain mix into its compiled step.
    if keras.backend.backend() != "jax" and mixing.training_uses_hash(
        shape, len(copies)
    ):
        fused = mixing.sampled_mix_for(shape, len(copies))
        return fused(copies, _GivenState(state))
    return mixing.sampled_mix(copies, state, shape, hashed=True)
