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
"""

import keras
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


def _sorted_uniforms(shape, count, seed):
    """`count` iid Uniform(0, 1) tensors of `shape`, sorted elementwise."""
    u = keras.random.uniform((count,) + tuple(shape), seed=seed)
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
    s = ops.sort(u, axis=0)
    return [s[j] for j in range(count)]


def sample_spacings(shape, expansion, seed):
    """Sorted uniforms whose spacings are a Dirichlet(1) draw (float32)."""
    return _sorted_uniforms(shape, expansion - 1, seed)


def spacings_to_probabilities(s):
    """The gaps `p` (leading copy axis) between sorted uniforms `s`."""
    gaps = [s[0]]
    for j in range(1, len(s)):
        gaps.append(ops.subtract(s[j], s[j - 1]))
    gaps.append(ops.subtract(1.0, s[-1]))
    return ops.stack(gaps, axis=0)


def mix_with_spacings(copies, s):
    """`sum_k p_k copies[k]` where `p` are the gaps of sorted uniforms `s`."""
    e = len(copies)
    total = copies[e - 1]
    for j in range(e - 1):
        diff = ops.subtract(copies[j], copies[j + 1])
        total = ops.add(total, ops.multiply(s[j], diff))
    return total


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
