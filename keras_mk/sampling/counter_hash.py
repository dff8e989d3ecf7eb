"""Uniform random numbers hashed from the element index (counter-based).

`hash(i) = fmix32(fmix32(i ^ k0) + k1)`, two rounds of MurmurHash3's 32-bit
finaliser keyed by the seed state: a pure function of (seed state, element
index), so a draw is reproducible, a part of it can be computed alone (the
rows an embedding lookup gathers, one XLA cluster's slice of a kernel), and
every device of a sharded kernel hashes the global indices of its shard.
On JAX it replaces `jax.random`, whose default threefry generator costs
~10x more on CPU; on TensorFlow it fuses into the XLA clusters of the mix.
"""

import numbers

import numpy as np
from keras import ops

from keras_mk.sampling import simplex

# MurmurHash3's 32-bit finaliser constants (and the golden ratio), as int32:
# int32 arithmetic wraps on every backend, uint32 is not supported by all.
# The one source of the hash's constants: `torch_backend`'s restatement of
# the hash in PyTorch operators reads them here.
MIX_1 = np.int32(np.uint32(0x85EBCA6B).view(np.int32))
MIX_2 = np.int32(np.uint32(0xC2B2AE35).view(np.int32))
GOLDEN = np.int32(np.uint32(0x9E3779B9).view(np.int32))
MAX_ELEMENTS = 2**31 - 1


def _shift_right_logical(x, bits):
    return ops.bitwise_and(
        ops.right_shift(x, bits), np.int32((1 << (32 - bits)) - 1)
    )


def _fmix32(x):
    """MurmurHash3's finaliser: a bijection of int32 with full avalanche."""
    x = ops.bitwise_xor(x, _shift_right_logical(x, 16))
    x = ops.multiply(x, MIX_1)
    x = ops.bitwise_xor(x, _shift_right_logical(x, 13))
    x = ops.multiply(x, MIX_2)
    return ops.bitwise_xor(x, _shift_right_logical(x, 16))


def seed_state(seed):
    """The two int32 words of a seed: consumes a `SeedGenerator` step.

    `seed`: a `SeedGenerator` (or an object with its `next()`, as
    `rows`' given state), an int, or a seed-state tensor.
    """
    if hasattr(seed, "next"):  # a `SeedGenerator`, or one like it
        state = seed.next()
    elif isinstance(seed, numbers.Integral):
        state = np.array([seed & 0xFFFFFFFF, 0], "uint32").view("int32")
    else:
        state = seed
    return ops.cast(state, "int32")


def hash_keys(seed):
    """The two keys `(k0, k1)` of one draw, from a seed (see `seed_state`)."""
    state = seed_state(seed)
    k0 = _fmix32(ops.add(ops.multiply(state[0], GOLDEN), state[1]))
    k1 = _fmix32(ops.bitwise_xor(k0, state[0]))
    return k0, k1


def hash_to_uniform(index, k0, k1):
    """Uniform(0, 1) float32 values of the int32 element indices `index`."""
    bits = _fmix32(ops.add(_fmix32(ops.bitwise_xor(index, k0)), k1))
    # 23 bits: `(h + 0.5) / 2**23` is exact in float32 for every h, so the
    # largest value is 1 - 2**-24, never 1.0 (24 bits would round to 1.0).
    top = ops.cast(_shift_right_logical(bits, 9), "float32")
    return ops.add(ops.multiply(top, np.float32(2**-23)), np.float32(2**-24))


def spacings_at(state, index, size, count):
    """Sorted uniforms of the elements `index` of a hashed draw of `size`.

    Uniform `j` of element `i` is the hash of `i + j * size`, so these are
    `sample_spacings((size,), count + 1, state, hashed=True)` taken at the
    int32 flat indices `index`: a part of a draw computed alone (one
    bucket or kernel's XLA cluster, the rows an embedding lookup gathers).
    `torch_backend.spacings_at` restates it in PyTorch operators.

    Args:
        state: a seed (see `seed_state`).
        index: int32 flat element indices, any shape.
        size: the draw's elements, an int or an int32 scalar tensor.
        count: the uniforms per element, `expansion - 1`.

    Returns:
        A list of `count` float32 tensors shaped as `index`, sorted
        element-wise.
    """
    k0, k1 = hash_keys(state)
    u = []
    for j in range(count):
        offset = j * size
        if isinstance(offset, (int, np.integer)):
            offset = np.int32(offset)
        u.append(hash_to_uniform(ops.add(index, offset), k0, k1))
    return simplex.sort_elementwise(u)


def hashed_uniforms(shape, seed):
    """Uniform(0, 1) float32 values hashed from the element index.

    `hash(i) = fmix32(fmix32(i ^ k0) + k1)` with keys `k0, k1` hashed from
    the seed state; the top 23 bits give `(h + 0.5) / 2**23`, exact in
    float32, so the values are never exactly 0 or 1. Within one draw the
    map from index to bits is a bijection; draws of successive seed states
    are decorrelated by the keys.

    Args:
        shape: the output shape (fewer than 2**31 elements).
        seed: a `keras.random.SeedGenerator` (advanced by one step), an int,
            or a seed-state tensor of two 32-bit words.

    Returns:
        A float32 tensor of `shape`.
    """
    size = int(np.prod(shape))
    if size > MAX_ELEMENTS:
        raise ValueError(
            f"hashed_uniforms supports fewer than 2**31 elements. "
            f"Received: shape={shape}"
        )
    k0, k1 = hash_keys(seed)
    index = ops.reshape(ops.arange(size, dtype="int32"), tuple(shape))
    return hash_to_uniform(index, k0, k1)
