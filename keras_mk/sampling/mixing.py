"""Drawing `p ~ Dirichlet(1)` and mixing kernel copies with it.

The paper (Eq. 2.2) draws, for every kernel element, `e` iid Exponential(1)
numbers and normalises them over the copy axis: a Dirichlet(1, ..., 1) draw.
We sample that distribution exactly but cheaply, by *uniform spacings*: the
gaps between `e - 1` sorted Uniform(0, 1) draws (with 0 and 1 added at the
ends) are Dirichlet(1) distributed. That needs `e - 1` random numbers per
element instead of `e`, no logarithm (so no `-log(0) = inf` and no NaN when
the generator returns exactly 0.0) and no division. The mix telescopes:

    sum_k p_k W_k = W_{e-1} + sum_j s_j (W_j - W_{j+1}),  s sorted ascending.

Other concentrations use normalised Gamma draws (`simplex.sample_dirichlet`:
exact but slower).

A training draw's uniforms are the counter hash (`counter_hash`) on every
backend, so one seed gives the same `p` everywhere, each backend computing
it the fastest way measured (`docs/performance.md`): traced into the step
on JAX as `jax.lax` primitives (`jax_backend`; a small kernel's hashed
once a step, `jax_backend.computed_once`), inside XLA clusters on TensorFlow
(`tensorflow_backend`), inside `torch.compile`d loops on PyTorch
(`torch_backend`; a forward pass's small kernels drawn together,
`torch_grouping`).
The mix has a hand-written gradient (`d/dW_k = p_k * upstream`): fewer
full-kernel passes than differentiating the telescoping formula.
"""

import functools

import keras
import numpy as np
from keras import ops

from keras_mk.sampling import counter_hash
from keras_mk.sampling import jax_backend
from keras_mk.sampling import simplex
from keras_mk.sampling import tensorflow_backend
from keras_mk.sampling import torch_backend
from keras_mk.sampling import torch_grouping


def _uses_hash(shape, seed):
    return (
        keras.backend.backend() in ("jax", "tensorflow")
        and seed is not None
        and int(np.prod(shape)) <= counter_hash.MAX_ELEMENTS
    )


def training_uses_hash(shape, expansion):
    """Whether a training call draws its uniforms from the counter hash.

    True on every backend for a draw of fewer than 2**31 numbers.
    """
    elements = int(np.prod(shape))
    return elements * (expansion - 1) <= counter_hash.MAX_ELEMENTS


def uniforms(shape, seed, hashed=None):
    """Uniform(0, 1) float32 draws: the fastest exact source per backend.

    `hashed=None` picks the counter hash on JAX and TensorFlow and the
    backend generator on PyTorch (whose training draws hash inside its
    compiled loops); `True` forces the hash, `False` the backend generator.
    """
    if hashed is None:
        hashed = _uses_hash(shape, seed)
    if hashed and keras.backend.backend() == "jax":
        return jax_backend.hashed_uniforms(shape, seed)
    if hashed:
        return counter_hash.hashed_uniforms(shape, seed)
    if keras.backend.backend() == "tensorflow":
        return tensorflow_backend.generator_uniforms(shape, seed)
    return keras.random.uniform(shape, seed=seed)


def sample_spacings(shape, expansion, seed, hashed=None):
    """Sorted uniforms whose spacings are a Dirichlet(1) draw (float32)."""
    if hashed is None:
        hashed = _uses_hash(shape, seed)
    if hashed and keras.backend.backend() == "tensorflow":
        # One XLA cluster, not ~25 ops per uniform: the same values.
        return tensorflow_backend.hashed_spacings(shape, expansion - 1, seed)
    u = uniforms((expansion - 1,) + tuple(shape), seed, hashed)
    if hashed and keras.backend.backend() == "jax":
        # A small draw hashed once a step, not for the mix and each gradient.
        u = jax_backend.computed_once(u)
    # One unstack, not e - 1 slices: fewer ops to trace (TensorFlow's
    # graph mode pays per op at the first step), the same values.
    return simplex.sort_elementwise(list(ops.unstack(u, expansion - 1)))


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
        return torch_backend.mix(copies, s)

    @ops.custom_gradient
    def mix(*copies):
        def grad(*args, upstream=None):
            upstream = args[0] if upstream is None else upstream
            return tuple(ops.multiply(upstream, p) for p in simplex.gaps(s))

        return simplex.telescoping_mix(copies, s), grad

    return mix(*copies)


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

    TensorFlow: fused XLA clusters (`tensorflow_backend.fused_mix`) for a
    kernel of at least `tensorflow_backend.FUSE_MIN_ELEMENTS`, the hashed
    spacings of one cluster and a plain mix below (`sampled_mix`); JAX:
    one `jax.jit` per shape for eager calls (`jax_backend.eager_jit_mix`);
    PyTorch: two `torch.compile`d loops shared by every kernel
    (`torch_backend.fused_mix`), the small kernels of a forward pass drawn
    together (`torch_grouping.grouped`). One function per `(shape, expansion)`,
    shared by every layer (it holds no state): a model whose layers repeat
    a kernel shape (a transformer's blocks) compiles it once.

    Returns:
        A function `(copies, seed_generator) -> mixed kernel`.
    """
    backend = keras.backend.backend()
    if training_uses_hash(shape, expansion):
        if backend == "jax":
            return jax_backend.eager_jit_mix(shape, sampled_mix)
        if backend == "torch":
            return torch_grouping.grouped(
                shape, expansion, torch_backend.fused_mix(shape, expansion)
            )
        if int(np.prod(shape)) >= tensorflow_backend.FUSE_MIN_ELEMENTS:
            return tensorflow_backend.fused_mix(shape, expansion, sampled_mix)
    return lambda copies, seed_generator: sampled_mix(
        copies, seed_generator, shape
    )
