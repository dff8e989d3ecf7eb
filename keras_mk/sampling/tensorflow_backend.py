"""TensorFlow: the draw, the mix and its gradient as XLA clusters.

Keras's train step runs without XLA on the CPU, so the draw, the spacings
and the mix would each be a pass over the kernel. Here, for a kernel of at
least `FUSE_MIN_ELEMENTS`, the counter hash, the spacings, the mix and its
gradient are compiled by XLA (nested `tf.function(jit_compile=True)`) and
fuse into one loop forward and one backward; the rest of the model runs as
before. A smaller kernel hashes its sorted uniforms in one cluster shared
by every size of a power-of-two bucket (`hashed_spacings`) and mixes with
plain ops. Every kernel draws the counter hash, as on JAX and PyTorch: the
same `p` on every backend for the same seed.
"""

import functools

import keras
import numpy as np
from keras import ops

from keras_mk.sampling import counter_hash
from keras_mk.sampling import simplex

# A kernel of fewer elements is not fused: its sorted uniforms come from
# one bucket cluster (`hashed_spacings`) and the mix is a few plain ops.
# Each fused kernel size costs two XLA compilations at the first step
# (the traces are shared by every size), and two cluster launches per
# step after; for the many small kernels of a mobile network
# (MobileNetV3Small: 41 of its 54 below 16k elements) that costs more
# than fusion saves. Measured
# (`benchmarks/first_step.py`, TensorFlow, CPU, before and after,
# interleaved):
# MK's first step on MobileNetV3Small 36.8 -> 20.4 s, EfficientNetB0
# 49.1 -> 36.1 s, ResNet50 and T5 unchanged within noise. The A3 MLP's
# 80k kernel and T5's 64k ones keep their fusion (with kernels below 2**17
# unfused, A3's step grew from 30 to 39 ms).
FUSE_MIN_ELEMENTS = 1 << 16
# The smallest bucket of `hashed_spacings`: a kernel of at most this many
# elements hashes this many (a few microseconds), so tiny kernels (a
# squeeze-excite block's) share one cluster.
MIN_BUCKET = 1 << 10


def generator_uniforms(shape, seed):
    """`keras.random.uniform(shape, seed=seed)`, float32, the same values.

    Keras's call is `tf.random.stateless_uniform`, which in graph mode is
    ten ops (key and counter, casts, `(1 - 0) * u + 0`); the raw
    `StatelessRandomUniform` op draws the same values as one. On a mobile
    network's ~70 unfused kernels that is ~500 ops fewer to trace at the
    first step and to run at every step. `seed`: a `SeedGenerator` (one
    step consumed, as Keras does); anything else goes to Keras's call.
    """
    import tensorflow as tf

    if not isinstance(seed, keras.random.SeedGenerator):
        return keras.random.uniform(shape, seed=seed)
    state = seed.next()
    if state.dtype != tf.int32:  # Keras's `_cast_seed`
        state = tf.cast(tf.math.floormod(state, tf.int32.max - 1), tf.int32)
    return tf.raw_ops.StatelessRandomUniform(
        shape=tuple(shape), seed=state, dtype=tf.float32
    )


def leading_spacings(state, size, length, count):
    """`counter_hash.spacings_at` the first `length` elements of a draw of
    `size` (each an int or an int32 scalar tensor)."""
    index = ops.arange(0, length, dtype="int32")
    return counter_hash.spacings_at(state, index, size, count)


def bucket(size):
    """The length `hashed_spacings` hashes for a kernel of `size` elements.

    Below `FUSE_MIN_ELEMENTS`, the next power of two (at least
    `MIN_BUCKET`): a few clusters serve the many sizes of a mobile
    network. Larger (a whole table's draw, outside training), `size`.
    """
    if size >= FUSE_MIN_ELEMENTS:
        return size
    return max(MIN_BUCKET, 1 << (size - 1).bit_length())


@functools.cache
def bucket_spacings(length, count):
    """The XLA cluster `(state, size) -> (count, length)` sorted uniforms
    of the first `length` elements of a draw of `size` (a runtime int32
    scalar), shared by every size its bucket covers: one compilation per
    bucket, not per kernel size."""

    def spacings(state, size):
        return ops.stack(leading_spacings(state, size, length, count))

    return compiled(spacings)


def hashed_spacings(shape, count, seed):
    """`sample_spacings(shape, count + 1, seed, hashed=True)`, the same
    values, from one XLA cluster (`bucket_spacings`).

    Unfused, the hash is ~25 element-wise ops per uniform; TensorFlow's own
    generator and the sort took 85 us for a 16k-element kernel (e = 3)
    where this cluster takes 33 us. `seed`: as `counter_hash.seed_state`
    (a generator is advanced one step).

    Returns:
        `count` float32 tensors of `shape`, sorted element-wise.
    """
    import tensorflow as tf

    size = int(np.prod(shape))
    state = counter_hash.seed_state(seed)
    s = bucket_spacings(bucket(size), count)(state, tf.constant(size, tf.int32))
    s = tf.reshape(s[:, :size], (count,) + tuple(shape))
    return tf.unstack(s, count)


def compiled(function, input_signature=None):
    """`function` as one XLA cluster (a `tf.function`, `jit_compile=True`)."""
    import tensorflow as tf

    return tf.function(
        function,
        input_signature=input_signature,
        jit_compile=True,
        autograph=False,
        reduce_retracing=True,
    )


@functools.cache
def fused_clusters(expansion, dtype, state_dtype):
    """The forward and backward XLA clusters of a flat kernel, any size.

    Traced once, for a flat kernel of any length: the hash indexes the
    flat kernel, so its shape does not matter, and the length is read
    inside the cluster, where XLA knows it. XLA compiles them once per
    kernel size at the first step (ResNet50: 9 sizes), but the Python
    trace is done once per model, not once per size (until 2026-12-02:
    each size its own pair, ~27 ms of tracing each).

    A kernel is not cut into parts, one per core (as until 2026-12-01):
    TensorFlow already runs independent clusters (the kernels') on all
    cores, and joining the parts was a pass over the kernel. Measured on
    2 cores, uncut was never slower, faster on ResNet50, the A3 MLP and
    large `Dense` kernels, and the first step shorter
    (`docs/performance.md`).

    Args:
        expansion: the number of copies.
        dtype: the copies' `tf.DType`.
        state_dtype: the seed state's `tf.DType`.

    Returns:
        `(forward, backward)`: `forward(state, *flat_copies)` returns the
        flat mixed kernel, `backward(state, flat_upstream)` each copy's
        flat gradient.
    """
    import tensorflow as tf

    count = expansion - 1
    state_spec = tf.TensorSpec((2,), state_dtype)
    flat_spec = tf.TensorSpec((None,), dtype)

    def spacings(state, flat):  # every element of `flat`'s draw
        size = tf.size(flat, out_type=tf.int32)
        s = leading_spacings(state, size, size, count)
        return [ops.cast(x, dtype) for x in s]

    def forward(state, *flat):
        return simplex.telescoping_mix(list(flat), spacings(state, flat[0]))

    def backward(state, upstream):
        s = spacings(state, upstream)
        return tuple(ops.multiply(upstream, p) for p in simplex.gaps(s))

    return (
        compiled(forward, [state_spec] + [flat_spec] * expansion),
        compiled(backward, [state_spec, flat_spec]),
    )


def fused_mix(shape, expansion, sampled_mix):
    """The draw, the mix and its gradient of a kernel of `shape`, fused.

    The kernel is flattened; one XLA cluster hashes its elements' uniforms,
    sorts them and mixes (forward), another multiplies the upstream
    gradient by `p_k` (backward), recomputing the uniforms from the seed
    state instead of keeping them between the passes. The values are
    those of `sampled_mix(copies, state, shape, hashed=True)`, which also
    serves a `p` broadcast along some axes of the copies. The clusters
    are shared by every kernel (`fused_clusters`).

    Returns:
        A function `(copies, seed_generator) -> mixed kernel`.
    """
    import tensorflow as tf

    size = int(np.prod(shape))

    @tf.custom_gradient
    def mix(state, *copies):
        forward, backward = fused_clusters(
            expansion, copies[0].dtype, state.dtype
        )
        out = forward(state, *[tf.reshape(c, (size,)) for c in copies])

        def grad(upstream):
            grads = backward(state, tf.reshape(upstream, (size,)))
            return (None, *[tf.reshape(g, shape) for g in grads])

        return tf.reshape(out, shape), grad

    @compiled
    def broadcast(state, *copies):  # `p` shared along some axes
        return sampled_mix(list(copies), state, shape, hashed=True)

    def fused(copies, seed_generator):
        if tuple(copies[0].shape) != tuple(shape):
            return broadcast(seed_generator.next(), *copies)
        return mix(seed_generator.next(), *copies)

    return fused
