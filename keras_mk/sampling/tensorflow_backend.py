"""TensorFlow: the draw, the mix and its gradient as XLA clusters.

Keras's train step runs without XLA on the CPU, so the draw, the spacings
and the mix would each be a pass over the kernel. Here, for a kernel of at
least `FUSE_MIN_ELEMENTS`, the counter hash, the spacings, the mix and its
gradient are compiled by XLA (nested `tf.function(jit_compile=True)`) and
fuse into one loop per part of the kernel; the rest of the model runs as
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
from keras_mk.sampling.cores import available_cores

# A kernel of fewer elements is not fused: its sorted uniforms come from
# one bucket cluster (`hashed_spacings`) and the mix is a few plain ops.
# Each fused kernel size costs two XLA compilations and two traced
# functions at the first step, and two cluster launches per step after;
# for the many small kernels of a mobile network (MobileNetV3Small: 41 of
# its 54 below 16k elements) that costs more than fusion saves. Measured
# (`benchmarks/first_step.py`, TensorFlow, CPU, before and after
# interleaved, `benchmarks/results/first_step_tensorflow_interleaved.txt`):
# MK's first step on MobileNetV3Small 36.8 -> 20.4 s, EfficientNetB0
# 49.1 -> 36.1 s, ResNet50 and T5 unchanged within noise. The A3 MLP's
# 80k kernel and T5's 64k ones keep their fusion (with kernels below 2**17
# unfused, A3's step grew from 30 to 39 ms).
FUSE_MIN_ELEMENTS = 1 << 16
# The smallest bucket of `hashed_spacings`: a kernel of at most this many
# elements hashes this many (a few microseconds), so tiny kernels (a
# squeeze-excite block's) share one cluster.
MIN_BUCKET = 1 << 10
# A kernel of at least this many elements is split into one XLA cluster per
# core: TensorFlow runs independent clusters concurrently, while one
# cluster runs on one thread (XLA:CPU does not parallelise element-wise
# loops; TensorFlow's own kernels use every core).
SPLIT_MIN_ELEMENTS = 1 << 17


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


def parts(size):
    """`[(start, stop)]`: the flat kernel's parts, one per XLA cluster."""
    count = available_cores() if size >= SPLIT_MIN_ELEMENTS else 1
    bounds = np.linspace(0, size, count + 1).astype(int)
    return list(zip(bounds[:-1], bounds[1:]))


def chunk_spacings(state, size, start, length, count):
    """Sorted uniforms of elements `[start, start + length)` of a draw of
    `size` (`start` and `size` ints or int32 scalar tensors).

    The same values as `sample_spacings((size,), count + 1, state,
    hashed=True)[j][start:start + length]`: the hash of the global element
    index.
    """
    k0, k1 = counter_hash.hash_keys(state)
    index = ops.add(ops.arange(0, length, dtype="int32"), start)
    u = []
    for j in range(count):
        offset = j * size
        if isinstance(offset, (int, np.integer)):
            offset = np.int32(offset)
        u.append(counter_hash.hash_to_uniform(ops.add(index, offset), k0, k1))
    return simplex.sort_elementwise(u)


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
        return ops.stack(chunk_spacings(state, size, 0, length, count))

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


def compiled(function):
    """`function` as one XLA cluster (a `tf.function`, `jit_compile=True`)."""
    import tensorflow as tf

    return tf.function(
        function, jit_compile=True, autograph=False, reduce_retracing=True
    )


@functools.cache
def fused_parts(size, expansion):
    """The XLA clusters of a flat kernel of `size` elements.

    One forward and one backward cluster per part *length* (see `parts`:
    the parts of a kernel have one length, or two that differ by one
    element), the part's start a runtime argument. They depend on the
    kernel's size only, not its shape (the hash indexes the flat kernel),
    so kernels of one size share them: each is traced and compiled once
    per model (ResNet50: 14 fused kernel shapes, 9 sizes), and again only
    for another dtype.

    Returns:
        `(bounds, forwards, backwards)`: the parts' `(start, stop)`, and
        dicts `length -> cluster`: `forwards[length](state, start,
        *flat_copies)` returns that part of the flat mixed kernel,
        `backwards[length](state, start, flat_upstream)` that part of each
        copy's gradient.
    """
    import tensorflow as tf

    count = expansion - 1

    def forward_of(length):
        def forward(state, start, *flat):
            s = chunk_spacings(state, size, start, length, count)
            s = [ops.cast(x, flat[0].dtype) for x in s]
            chunk = [tf.slice(c, [start], [length]) for c in flat]
            return simplex.telescoping_mix(chunk, s)

        return compiled(forward)

    def backward_of(length):
        def backward(state, start, upstream):
            s = chunk_spacings(state, size, start, length, count)
            s = [ops.cast(x, upstream.dtype) for x in s]
            chunk = tf.slice(upstream, [start], [length])
            return tuple(ops.multiply(chunk, p) for p in simplex.gaps(s))

        return compiled(backward)

    bounds = [(int(a), int(b)) for a, b in parts(size)]
    lengths = sorted({b - a for a, b in bounds})
    forwards = {n: forward_of(n) for n in lengths}
    backwards = {n: backward_of(n) for n in lengths}
    return bounds, forwards, backwards


def fused_mix(shape, expansion, sampled_mix):
    """The draw, the mix and its gradient of a kernel of `shape`, fused.

    The kernel is flattened and cut into contiguous parts (one per core
    for a large kernel); each part is one XLA cluster that hashes its
    elements' uniforms, sorts them and mixes (forward) or multiplies the
    upstream gradient by `p_k` (backward), recomputing the uniforms from
    the seed state instead of keeping them between the passes. The values
    are those of `sampled_mix(copies, state, shape, hashed=True)`, which
    also serves a `p` broadcast along some axes of the copies. The
    clusters are shared by every kernel of the same size (`fused_parts`).

    Returns:
        A function `(copies, seed_generator) -> mixed kernel`.
    """
    import tensorflow as tf

    size = int(np.prod(shape))
    bounds, forwards, backwards = fused_parts(size, expansion)
    starts = [(a, b - a) for a, b in bounds]

    @tf.custom_gradient
    def mix(state, *copies):
        flat = [tf.reshape(c, (size,)) for c in copies]
        out = [
            forwards[n](state, tf.constant(a, tf.int32), *flat)
            for a, n in starts
        ]
        out = out[0] if len(out) == 1 else tf.concat(out, 0)

        def grad(upstream):
            upstream = tf.reshape(upstream, (size,))
            pieces = [
                backwards[n](state, tf.constant(a, tf.int32), upstream)
                for a, n in starts
            ]
            grads = [
                tf.reshape(
                    piece[0] if len(pieces) == 1 else tf.concat(piece, 0),
                    shape,
                )
                for piece in zip(*pieces)
            ]
            return (None, *grads)

        return tf.reshape(out, shape), grad

    @compiled
    def broadcast(state, *copies):  # `p` shared along some axes
        return sampled_mix(list(copies), state, shape, hashed=True)

    def fused(copies, seed_generator):
        if tuple(copies[0].shape) != tuple(shape):
            return broadcast(seed_generator.next(), *copies)
        return mix(seed_generator.next(), *copies)

    return fused
