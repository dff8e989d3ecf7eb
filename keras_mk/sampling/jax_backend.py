"""JAX: the counter hash in `jax.lax` operations, an eager draw-and-mix
compiled once per kernel shape, and a training draw's uniforms computed
once per step.

Inside a trace (the train step) the mix is traced as part of the step. An
eager call (outside any trace) runs the same function as one `jax.jit`: one
compilation per kernel shape instead of ~30 op-by-op ones.
"""

import math

import numpy as np

from keras_mk.sampling import counter_hash
from keras_mk.sampling import simplex

# Draws of at most this many elements are computed once a step
# (`computed_once`); a larger one is hashed again in each loop that reads
# it. Storing a draw costs a write and a read per use of 2 floats per
# element, every step (a 30k x 256 embedding table's step under Adam:
# 39-44 -> 57-76 ms), while its saving is one-off, ~30-40 ms of
# compilation a kernel, whatever its size.
COMPUTED_ONCE_MAX_ELEMENTS = 2**16


def _fmix32(x):
    """`counter_hash._fmix32` in `jax.lax` operations."""
    from jax import lax

    x = lax.bitwise_xor(x, lax.shift_right_logical(x, np.int32(16)))
    x = lax.mul(x, counter_hash.MIX_1)
    x = lax.bitwise_xor(x, lax.shift_right_logical(x, np.int32(13)))
    x = lax.mul(x, counter_hash.MIX_2)
    return lax.bitwise_xor(x, lax.shift_right_logical(x, np.int32(16)))


def _keys(state):
    """`counter_hash.hash_keys` in `jax.lax` operations."""
    from jax import lax

    state = counter_hash.seed_state(state)
    s0 = lax.index_in_dim(state, 0, keepdims=False)
    s1 = lax.index_in_dim(state, 1, keepdims=False)
    k0 = _fmix32(lax.add(lax.mul(s0, counter_hash.GOLDEN), s1))
    return k0, _fmix32(lax.bitwise_xor(k0, s0))


def _hash_to_uniform(index, k0, k1):
    """`counter_hash.hash_to_uniform` in `jax.lax` operations."""
    from jax import lax

    bits = _fmix32(lax.add(_fmix32(lax.bitwise_xor(index, k0)), k1))
    top = lax.convert_element_type(
        lax.shift_right_logical(bits, np.int32(9)), np.float32
    )
    return lax.add(lax.mul(top, np.float32(2**-23)), np.float32(2**-24))


def hashed_uniforms(shape, seed):
    """`counter_hash.hashed_uniforms` in `jax.lax` operations, bit for bit.

    Inside a trace, an operation through Keras or a JAX array's operators
    costs ~0.1 ms to trace (a `jax.lax` call ~0.01 ms) and the hash is ~50
    of them a kernel; these are the primitives themselves (a logical shift
    is one, not a shift and a mask: ~20 fewer lines in each hashing loop
    XLA compiles).
    """
    from jax import lax

    size = math.prod(shape)
    if size > counter_hash.MAX_ELEMENTS:  # the reference raises
        return counter_hash.hashed_uniforms(shape, seed)
    k0, k1 = _keys(seed)
    index = lax.reshape(lax.iota(np.int32, size), tuple(shape))
    return _hash_to_uniform(index, k0, k1)


def spacings_at(state, index, size, count):
    """`counter_hash.spacings_at` in `jax.lax` operations, bit for bit
    (`size`: an int)."""
    from jax import lax

    k0, k1 = _keys(state)
    index = lax.convert_element_type(index, np.int32)
    u = [
        _hash_to_uniform(lax.add(index, np.int32(j * size)), k0, k1)
        for j in range(count)
    ]
    return simplex.sort_elementwise(u)


def computed_once(u):
    """Uniforms `u` (leading axis: the draws), computed once by XLA.

    XLA's fusion pass copies a cheap element-wise computation, such as the
    counter hash, into every consumer whose inputs it would otherwise
    read: in a train step, a kernel's uniforms were hashed four times (the
    mix, and each copy's gradient fused into its optimizer update), each
    copy ~110 lines of the compiled program (~93 since the hash is
    `jax.lax` primitives). It does not copy an
    expensive operation, and a division by a tensor is one; dividing by
    a 1 that it cannot prove is 1 (`x > 0`, true of every uniform) makes
    the hash one loop whose output the others read. Exact: `x / 1 == x`.
    Draws of more than `COMPUTED_ONCE_MAX_ELEMENTS` elements are returned
    as they are (see there); measured in `docs/performance.md`.
    """
    from jax import lax

    if math.prod(u.shape[1:]) > COMPUTED_ONCE_MAX_ELEMENTS:
        return u
    zero = np.zeros((), u.dtype)
    return lax.div(u, lax.convert_element_type(lax.gt(u, zero), u.dtype))


def eager_jit_mix(shape, sampled_mix):
    """`(copies, seed_generator) -> mixed kernel` for a kernel of `shape`."""
    import jax

    @jax.jit
    def jitted(state, *copies):
        return sampled_mix(list(copies), state, shape, hashed=True)

    def eager_or_traced(copies, seed_generator):
        if isinstance(copies[0], jax.core.Tracer):  # inside a trace
            return sampled_mix(copies, seed_generator, shape)
        return jitted(seed_generator.next(), *copies)

    return eager_or_traced
