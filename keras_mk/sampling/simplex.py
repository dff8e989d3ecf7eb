"""The maths of MK's probabilities on the simplex, backend-agnostic.

Everything here is a few `keras.ops` on tensors with a leading copy axis (or
a list of per-copy tensors): the inference mean, a weighted sum, the
sorting network that turns uniforms into Dirichlet(1) spacings, the
telescoping mix, Gamma-based Dirichlet draws for other concentrations, and
ADV-MK's projection onto the simplex and mixing weight (Appendix D).
"""

import math

import keras
from keras import ops

PROBABILITIES = ("exponential", "uniform")


def mean(copies):
    """Plain mean of the copies (a chain of adds: faster than `ops.mean`);
    differentiable, `1 / e` to each copy (training with uniform `p`)."""
    if len(copies) == 1:
        return copies[0]
    total = copies[0]
    for copy in copies[1:]:
        total = ops.add(total, copy)
    return ops.multiply(total, 1.0 / len(copies))


def exact_mean(copies):
    """Mean of the copies, exact where they are equal (no gradient use).

    `(W_0 + ... + W_{e-1}) * (1 / e)` (a chain of adds: faster than
    `ops.mean`), except where every copy equals `W_0`, which is returned
    bit for bit: right after conversion the model computes the original's
    output exactly, where `(W + W + W) * (1 / 3)` is off by an ulp on some
    elements (which deep models amplify). No multiply feeds an add, so XLA
    cannot fuse one into a differently rounded FMA: the same bits eagerly
    (`keras_mk.collapse`) and compiled (`predict`). For inference and
    collapse only: its gradient reaches `W_0` alone where the copies are
    equal; training uses `mean`.
    """
    if len(copies) == 1:
        return copies[0]
    first = ops.convert_to_tensor(copies[0])
    average = mean([first] + list(copies[1:]))
    # `first` leads every op, so on PyTorch the result takes its memory
    # layout (a matmul rounds differently on another one).
    equal = ops.equal(first, copies[1])
    for copy in copies[2:]:
        equal = ops.logical_and(equal, ops.equal(first, copy))
    return ops.where(equal, first, average)


def weighted_sum(copies, p):
    """`sum_k copies[k] * p[k]` for `p` with a leading copy axis."""
    total = ops.multiply(copies[0], p[0])
    for k in range(1, len(copies)):
        total = ops.add(total, ops.multiply(copies[k], p[k]))
    return total


def sort_elementwise(u):
    """The tensors of the list `u`, sorted elementwise, ascending (a list).

    Min/max networks for the usual small `e` (1 or 3 compare-exchanges for
    2 or 3 values): XLA's CPU sort is slow for many tiny sorts.
    """
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


def gaps(s):
    """The `len(s) + 1` gaps between 0, the sorted `s` and 1."""
    result = [s[0]]
    for j in range(1, len(s)):
        result.append(ops.subtract(s[j], s[j - 1]))
    result.append(ops.subtract(1.0, s[-1]))
    return result


def spacings_to_probabilities(s):
    """The gaps `p` (leading copy axis) between sorted uniforms `s`."""
    return ops.stack(gaps(s), axis=0)


def telescoping_mix(copies, s):
    """`sum_k p_k copies[k]`, `p` the gaps of `s`, as a telescoping sum:

    `W_{e-1} + sum_j s_j (W_j - W_{j+1})`.
    """
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


def project_to_simplex(v):
    """Euclidean projection onto the probability simplex over axis 0.

    For every element the vector `v[:, ...]` is mapped to the closest point
    `p` with `p >= 0` and `sum(p) = 1` (the sort-based algorithm of Duchi et
    al., 2008, vectorised over all elements).

    Args:
        v: a float tensor of shape `(e,) + shape`.

    Returns:
        A tensor of the same shape and dtype, on the simplex along axis 0.
    """
    v = ops.convert_to_tensor(v)
    e = v.shape[0]
    u = ops.stack(sort_elementwise([v[k] for k in range(e)])[::-1])
    css = ops.subtract(ops.cumsum(u, axis=0), 1.0)
    k = ops.reshape(
        ops.arange(1, e + 1, dtype=v.dtype), (e,) + (1,) * (len(v.shape) - 1)
    )
    # The condition holds on a prefix 1..rho of the sorted entries (always
    # for k = 1), so rho is the count of true entries.
    positive = ops.greater(ops.subtract(u, ops.divide(css, k)), 0.0)
    rho = ops.sum(ops.cast(positive, v.dtype), axis=0, keepdims=True)
    theta = ops.sum(
        ops.where(ops.equal(k, rho), ops.divide(css, k), 0.0),
        axis=0,
        keepdims=True,
    )
    return ops.maximum(ops.subtract(v, theta), 0.0)


def adversarial_mixing_weight(p):
    """`u = KL(p || uniform) / log e` per element, in `[0, 1]` (Alg. D.2).

    Args:
        p: probabilities of shape `(e,) + shape`, on the simplex over axis 0.

    Returns:
        A tensor of shape `shape`: 0 where `p` is uniform, 1 where `p` is a
        vertex of the simplex (one copy takes all the weight).
    """
    p = ops.convert_to_tensor(p)
    e = p.shape[0]
    # 0 * log(0) = 0: the clamp only guards the logarithm.
    log_ep = ops.log(ops.maximum(ops.multiply(p, float(e)), 1e-30))
    kl = ops.sum(ops.multiply(p, log_ep), axis=0)
    return ops.clip(ops.divide(kl, math.log(e)), 0.0, 1.0)
