"""Sampling the MK probabilities `p` and mixing kernel copies with them.

The paper (Eq. 2.2) draws, for every kernel element, `e` iid Exponential(1)
numbers and normalises them over the copy axis: a Dirichlet(1, ..., 1) draw.
We sample that distribution exactly but cheaply, by *uniform spacings*: the
gaps between `e - 1` sorted Uniform(0, 1) draws (with 0 and 1 added at the
ends) are Dirichlet(1) distributed. That needs `e - 1` random numbers per
element instead of `e`, no logarithm (so no `-log(0) = inf` and no NaN when
the generator returns exactly 0.0) and no division. The mix telescopes:

    sum_k p_k W_k = W_{e-1} + sum_j s_j (W_j - W_{j+1}),  s sorted ascending.

Other concentrations use normalised Gamma draws (exact but slower).

Speed (measured in `docs/performance.md`):

- On JAX the uniforms come from a counter-based hash of the element index
  (two rounds of the MurmurHash3 32-bit finaliser, keyed by the layer's
  `SeedGenerator` state), not from `jax.random`: its default threefry
  generator costs ~10x more on CPU and dominated the MK step. The hash is a
  pure function of (seed state, element index), so it is reproducible, and
  it gives the same values whatever the sharding of the kernel (every device
  hashes the global indices of its shard). No global JAX flag is changed.
- On TensorFlow the hash, the spacings, the mix and its gradient run as XLA
  clusters inside the (non-XLA) train step: fused into one loop, where
  unfused each op would be a pass over the kernel; the backward pass
  recomputes the uniforms from the seed state instead of keeping them, and
  a large kernel is cut into one cluster per core (`sampled_mix_for`).
- PyTorch uses its own generator for small draws (the hash does not pay off
  without fusion); a large draw on the CPU comes from NumPy's PCG64 in
  parallel blocks (`_parallel_uniforms`): faster per core than PyTorch's
  mt19937, and on every core.
- The mix has a hand-written gradient (`d/dW_k = p_k * upstream`): fewer
  full-kernel passes than differentiating the telescoping formula
  (`ops.custom_gradient` on TensorFlow and JAX, an autograd Function with
  in-place accumulation on PyTorch).
"""

import functools
import numbers

import keras
import numpy as np
from keras import ops

PROBABILITIES = ("exponential", "uniform")


def mean(copies):
    """Plain mean of the copies (a chain of adds: faster than `ops.mean`)."""
    if len(copies) == 1:
        return copies[0]
    total = copies[0]
    for copy in copies[1:]:
        total = ops.add(total, copy)
    return ops.multiply(total, 1.0 / len(copies))


def weighted_sum(copies, p):
    """`sum_k copies[k] * p[k]` for `p` with a leading copy axis."""
    total = ops.multiply(copies[0], p[0])
    for k in range(1, len(copies)):
        total = ops.add(total, ops.multiply(copies[k], p[k]))
    return total


# MurmurHash3's 32-bit finaliser constants (and the golden ratio), as int32:
# int32 arithmetic wraps on every backend, uint32 is not supported by all.
_M1 = np.int32(np.uint32(0x85EBCA6B).view(np.int32))
_M2 = np.int32(np.uint32(0xC2B2AE35).view(np.int32))
_GOLDEN = np.int32(np.uint32(0x9E3779B9).view(np.int32))
_HASH_MAX_ELEMENTS = 2**31 - 1


def _shift_right_logical(x, bits):
    return ops.bitwise_and(
        ops.right_shift(x, bits), np.int32((1 << (32 - bits)) - 1)
    )


def _fmix32(x):
    """MurmurHash3's finaliser: a bijection of int32 with full avalanche."""
    x = ops.bitwise_xor(x, _shift_right_logical(x, 16))
    x = ops.multiply(x, _M1)
    x = ops.bitwise_xor(x, _shift_right_logical(x, 13))
    x = ops.multiply(x, _M2)
    return ops.bitwise_xor(x, _shift_right_logical(x, 16))


def _seed_state(seed):
    """The two int32 words of a seed: consumes a `SeedGenerator` step."""
    if isinstance(seed, keras.random.SeedGenerator):
        state = seed.next()
    elif isinstance(seed, numbers.Integral):
        state = np.array([seed & 0xFFFFFFFF, 0], "uint32").view("int32")
    else:
        state = seed
    return ops.cast(state, "int32")


def _hash_keys(seed):
    state = _seed_state(seed)
    k0 = _fmix32(ops.add(ops.multiply(state[0], _GOLDEN), state[1]))
    k1 = _fmix32(ops.bitwise_xor(k0, state[0]))
    return k0, k1


def _hash_to_uniform(index, k0, k1):
    bits = _fmix32(ops.add(_fmix32(ops.bitwise_xor(index, k0)), k1))
    # 23 bits: `(h + 0.5) / 2**23` is exact in float32 for every h, so the
    # largest value is 1 - 2**-24, never 1.0 (24 bits would round to 1.0).
    top = ops.cast(_shift_right_logical(bits, 9), "float32")
    return ops.add(ops.multiply(top, np.float32(2**-23)), np.float32(2**-24))


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
    if size > _HASH_MAX_ELEMENTS:
        raise ValueError(
            f"hashed_uniforms supports fewer than 2**31 elements. "
            f"Received: shape={shape}"
        )
    k0, k1 = _hash_keys(seed)
    index = ops.reshape(ops.arange(size, dtype="int32"), tuple(shape))
    return _hash_to_uniform(index, k0, k1)


def _uses_hash(shape, seed):
    return (
        keras.backend.backend() == "jax"
        and seed is not None
        and int(np.prod(shape)) <= _HASH_MAX_ELEMENTS
    )


def training_uses_hash(shape, expansion):
    """Whether a training call draws its uniforms from the counter hash.

    True on JAX, and on TensorFlow where the draw runs inside the XLA
    cluster of `sampled_mix_for` (see there); False on PyTorch.
    """
    size = int(np.prod(shape)) * (expansion - 1)
    return (
        keras.backend.backend() in ("jax", "tensorflow")
        and size <= _HASH_MAX_ELEMENTS
    )


def uniforms(shape, seed, hashed=None):
    """Uniform(0, 1) float32 draws: the fastest exact source per backend.

    `hashed=None` picks the counter hash on JAX and the backend generator
    elsewhere; `True` forces the hash (inside an XLA cluster, where it
    fuses), `False` the backend generator. On PyTorch a large draw on the
    CPU comes from NumPy's PCG64 in parallel blocks (`_parallel_uniforms`).
    """
    if hashed is None:
        hashed = _uses_hash(shape, seed)
    if hashed:
        return hashed_uniforms(shape, seed)
    if _uses_parallel_numpy(shape, seed):
        return _parallel_uniforms(shape, seed)
    return keras.random.uniform(shape, seed=seed)


# PyTorch on the CPU: `torch.rand` is one mt19937 stream, on one core. A
# draw of at least `_BLOCK` elements is cut into blocks of `_BLOCK`, each
# from its own PCG64 generator seeded by (seed state, block index), filled
# by a thread pool (NumPy releases the GIL while it fills): ~1.5x faster
# per core than mt19937, and on every core. The values depend only on the
# seed state and the shape, never on the number of threads.
_BLOCK = 1 << 18
_POOL = []


def _uses_parallel_numpy(shape, seed):
    if keras.backend.backend() != "torch" or seed is None:
        return False
    if int(np.prod(shape)) < _BLOCK:
        return False
    import torch

    if torch.compiler.is_compiling():  # traced by `jit_compile=True`
        return False
    state = seed.state.value if hasattr(seed, "state") else seed
    return not hasattr(state, "device") or state.device.type == "cpu"


def _available_cores():
    """The CPU cores this process may run on (at most 8 are used)."""
    import os

    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def _thread_pool():
    if not _POOL:
        import concurrent.futures

        _POOL.append(concurrent.futures.ThreadPoolExecutor(_available_cores()))
    return _POOL[0]


def _parallel_uniforms(shape, seed):
    """Uniform[0, 1) float32 of `shape` (a torch tensor on the CPU)."""
    import torch

    words = ops.convert_to_numpy(_seed_state(seed)).astype(np.int64)
    key = [int(w) & 0xFFFFFFFF for w in words]
    size = int(np.prod(shape))
    out = np.empty(size, dtype=np.float32)

    def fill(start):
        block = np.random.SeedSequence(key + [start // _BLOCK])
        generator = np.random.Generator(np.random.PCG64(block))
        generator.random(out=out[start : start + _BLOCK], dtype=np.float32)

    list(_thread_pool().map(fill, range(0, size, _BLOCK)))
    return torch.from_numpy(out).reshape(tuple(shape))


def _sort_elementwise(u):
    """The tensors of the list `u`, sorted elementwise (a list again)."""
    count = len(u)
    if count == 1:
        return [u[0]]
    if count == 2:
        return [ops.minimum(u[0], u[1]), ops.maximum(u[0], u[1])]
    if count == 3:
        a, b, c = u[0], u[1], u[2]
        lo_ab, hi_ab = ops.minimum(a, b), ops.maximum(a, b)
        return [
            ops.minimum(lo_ab, c),
            ops.maximum(lo_ab, ops.minimum(hi_ab, c)),
            ops.maximum(hi_ab, c),
        ]
    s = ops.sort(ops.stack(u), axis=0)
    return [s[j] for j in range(count)]


def _sorted_uniforms(shape, count, seed, hashed=None):
    """`count` iid Uniform(0, 1) tensors of `shape`, sorted elementwise."""
    u = uniforms((count,) + tuple(shape), seed, hashed)
    return _sort_elementwise([u[j] for j in range(count)])


def sample_spacings(shape, expansion, seed, hashed=None):
    """Sorted uniforms whose spacings are a Dirichlet(1) draw (float32)."""
    return _sorted_uniforms(shape, expansion - 1, seed, hashed)


def _gaps(s):
    gaps = [s[0]]
    for j in range(1, len(s)):
        gaps.append(ops.subtract(s[j], s[j - 1]))
    gaps.append(ops.subtract(1.0, s[-1]))
    return gaps


def spacings_to_probabilities(s):
    """The gaps `p` (leading copy axis) between sorted uniforms `s`."""
    return ops.stack(_gaps(s), axis=0)


def _telescoping_mix(copies, s):
    e = len(copies)
    total = copies[e - 1]
    for j in range(e - 1):
        diff = ops.subtract(copies[j], copies[j + 1])
        total = ops.add(total, ops.multiply(s[j], diff))
    return total


def mix_with_spacings(copies, s):
    """`sum_k p_k copies[k]` where `p` are the gaps of sorted uniforms `s`.

    `p` is not differentiated (it is random, not a parameter); the gradient
    is hand-written, `p_k * upstream` for copy `k`: fewer kernel-sized
    passes than differentiating the telescoping formula.
    """
    if len(copies) == 1:
        return copies[0]
    s = [ops.stop_gradient(x) for x in s]
    if keras.backend.backend() == "torch":
        return _torch_mix(copies, s)

    @ops.custom_gradient
    def mix(*copies):
        def grad(*args, upstream=None):
            upstream = args[0] if upstream is None else upstream
            return tuple(ops.multiply(upstream, p) for p in _gaps(s))

        return _telescoping_mix(copies, s), grad

    return mix(*copies)


_TORCH_MIX = []


def _torch_mix(copies, s):
    """PyTorch (no `ops.custom_gradient`): an autograd Function."""
    if not _TORCH_MIX:  # defined once: a training call is on the hot path
        import torch

        class Mix(torch.autograd.Function):
            @staticmethod
            def forward(ctx, s, *copies):
                ctx.s = s
                # The telescoping form, starting with one `lerp` (exact at
                # both ends): exactly W when every copy is W.
                out = torch.lerp(copies[-1], copies[-2], s[-1])
                for j in range(len(copies) - 2):
                    out.addcmul_(torch.sub(copies[j], copies[j + 1]), s[j])
                return out

            @staticmethod
            def backward(ctx, upstream):
                # `p_k * upstream` from the products `t_j = s_j * upstream`:
                # `t_0`, `t_j - t_{j-1}`, `upstream - t_{e-2}`; fewer passes
                # over the kernel than forming the gaps first. A conv's
                # upstream is a permuted view (Keras transposes the kernel
                # to PyTorch's layout): made contiguous once, like the
                # copies, so the passes below stream memory in order.
                upstream = upstream.contiguous()
                t = [torch.mul(upstream, s_j) for s_j in ctx.s]
                grads = [t[0]]
                grads += [torch.sub(t[j], t[j - 1]) for j in range(1, len(t))]
                grads.append(torch.sub(upstream, t[-1]))
                return (None, *grads)

        _TORCH_MIX.append(Mix)
    return _TORCH_MIX[0].apply(list(s), *copies)


def sampled_mix(copies, seed_generator, shape=None, hashed=None):
    """The training kernel `sum_k p_k copies[k]`, `p ~ Dirichlet(1)` fresh.

    Draws the spacings (float32) for `p` of `shape` (default: the copies'
    shape; a shape with 1s shares one `p` along those axes, broadcast),
    casts them to the copies' dtype (the compute dtype) and mixes. Consumes
    one step of `seed_generator` (or uses a seed-state tensor). `hashed` is
    passed to `uniforms`.
    """
    shape = tuple(copies[0].shape) if shape is None else tuple(shape)
    s = sample_spacings(shape, len(copies), seed_generator, hashed)
    s = [ops.cast(x, copies[0].dtype) for x in s]
    return mix_with_spacings(copies, s)


@functools.cache
def sampled_mix_for(shape, expansion):
    """The fastest `sampled_mix` drawing `p` of `shape` on this backend.

    TensorFlow on CPU runs Keras's train step without XLA, so the draw, the
    spacings and the mix would each be a pass over the kernel. There the
    counter hash, the spacings, the mix and its gradient are compiled by
    XLA (nested `tf.function(jit_compile=True)`, see
    `_tensorflow_fused_mix`) and fuse into one loop per part of the
    kernel; the rest of the model runs as before. On JAX an eager
    call (outside any trace) runs the same function as one `jax.jit`: one
    compilation per kernel shape instead of ~30 op-by-op ones; inside a
    trace (the train step) it is traced as part of the step.
    PyTorch uses `sampled_mix` as is.

    One function per `(shape, expansion)`, shared by every layer (it holds
    no state): a model whose layers repeat a kernel shape (a transformer's
    blocks) compiles it once.

    Returns:
        A function `(copies, seed_generator) -> mixed kernel`.
    """
    backend = keras.backend.backend()
    if backend not in ("tensorflow", "jax") or not training_uses_hash(
        shape, expansion
    ):
        return lambda copies, seed_generator: sampled_mix(
            copies, seed_generator, shape
        )
    if backend == "jax":
        import jax

        @jax.jit
        def jitted(state, *copies):
            return sampled_mix(list(copies), state, shape, hashed=True)

        def eager_or_traced(copies, seed_generator):
            if isinstance(copies[0], jax.core.Tracer):  # inside a trace
                return sampled_mix(copies, seed_generator, shape)
            return jitted(seed_generator.next(), *copies)

        return eager_or_traced
    return _tensorflow_fused_mix(shape, expansion)


# A kernel of at least this many elements is split into one XLA cluster per
# core: TensorFlow runs independent clusters concurrently, while one
# cluster runs on one thread (XLA:CPU does not parallelise element-wise
# loops; TensorFlow's own kernels use every core).
_SPLIT_MIN_ELEMENTS = 1 << 17


def _tensorflow_parts(size):
    parts = _available_cores() if size >= _SPLIT_MIN_ELEMENTS else 1
    bounds = np.linspace(0, size, parts + 1).astype(int)
    return list(zip(bounds[:-1], bounds[1:]))


def _chunk_spacings(state, size, start, stop, count):
    """Sorted uniforms of elements `[start, stop)` of a draw of `size`.

    The same values as `sample_spacings((size,), count + 1, state,
    hashed=True)[j][start:stop]`: the hash of the global element index.
    """
    k0, k1 = _hash_keys(state)
    index = ops.arange(start, stop, dtype="int32")
    u = [
        _hash_to_uniform(ops.add(index, np.int32(j * size)), k0, k1)
        for j in range(count)
    ]
    return _sort_elementwise(u)


def _tensorflow_fused_mix(shape, expansion):
    """TensorFlow: the draw, the mix and its gradient as XLA clusters.

    The kernel is flattened and cut into contiguous parts (one per core
    for a large kernel); each part is one XLA cluster that hashes its
    elements' uniforms, sorts them and mixes (forward) or multiplies the
    upstream gradient by `p_k` (backward), recomputing the uniforms from
    the seed state instead of keeping them between the passes. The values
    are those of `sampled_mix(copies, state, shape, hashed=True)`.
    """
    import tensorflow as tf

    size = int(np.prod(shape))
    count = expansion - 1
    parts = _tensorflow_parts(size)

    def compiled(function):
        return tf.function(
            function, jit_compile=True, autograph=False, reduce_retracing=True
        )

    def forward_part(start, stop):
        def forward(state, *flat):
            s = _chunk_spacings(state, size, start, stop, count)
            s = [ops.cast(x, flat[0].dtype) for x in s]
            chunk = [c[start:stop] for c in flat]
            return _telescoping_mix(chunk, s)

        return compiled(forward)

    def backward_part(start, stop):
        def backward(state, upstream):
            s = _chunk_spacings(state, size, start, stop, count)
            s = [ops.cast(x, upstream.dtype) for x in s]
            return tuple(
                ops.multiply(upstream[start:stop], p) for p in _gaps(s)
            )

        return compiled(backward)

    forwards = [forward_part(a, b) for a, b in parts]
    backwards = [backward_part(a, b) for a, b in parts]

    @tf.custom_gradient
    def mix(state, *copies):
        flat = [tf.reshape(c, (size,)) for c in copies]
        out = [f(state, *flat) for f in forwards]
        out = out[0] if len(out) == 1 else tf.concat(out, 0)

        def grad(upstream):
            upstream = tf.reshape(upstream, (size,))
            pieces = [b(state, upstream) for b in backwards]
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


def sample_dirichlet(shape, expansion, concentration, seed):
    """Dirichlet(concentration) over a leading copy axis, in float32.

    Normalised Gamma draws. A Gamma draw may underflow to 0 for small
    concentrations; it is clamped to the smallest normal float so that the
    normalisation never divides 0 by 0.
    """
    g = keras.random.gamma(
        (expansion,) + tuple(shape), alpha=concentration, seed=seed
    )
    g = ops.maximum(g, 1.1754944e-38)
    return ops.divide(g, ops.sum(g, axis=0, keepdims=True))
