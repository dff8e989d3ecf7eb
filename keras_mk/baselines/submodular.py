"""Greedy submodular selection of neurons (Appendix F, Eq. F.9).

The maths of SUBSET-BASELINE (`subset.SubsetDense`): the utilities and the
edge weights of the `t`-nearest-neighbour similarity graph of the candidate
neurons, and the greedy maximisation of

    f(S) = alpha * sum_{i in S} u(i) - beta * sum_{{i, j} in S, E} s(i, j).
"""

import functools

import keras
from keras import ops


def submodular_graph(rows, neighbours=10):
    """Utilities and edge weights of Eq. F.9 for the candidate `rows`.

    Args:
        rows: float tensor of shape `(N, d)`, one candidate neuron per row.
        neighbours: the `t` of the `t`-nearest-neighbour graph.

    Returns:
        `(utility, weights)`: `utility[i] = ||rows[i]|| + c` of shape `(N,)`
        and the symmetric `(N, N)` matrix `weights[i, j] = s(i, j)` on the
        edges of the graph, 0 elsewhere. Negative similarities are clipped
        at 0 so that the objective stays monotone submodular and the greedy
        guarantee holds (nearest neighbours rarely have negative cosines).
    """
    rows = ops.convert_to_tensor(rows)
    n = rows.shape[0]
    norms = ops.sqrt(ops.sum(ops.square(rows), axis=1))
    unit = ops.divide(rows, ops.maximum(norms, 1e-12)[:, None])
    similarity = ops.matmul(unit, ops.transpose(unit))
    eye = ops.eye(n, dtype=similarity.dtype)
    t = min(neighbours, n - 1)
    if t > 0:
        masked = ops.where(ops.equal(eye, 1.0), -3.0, similarity)
        # Row i's t nearest: at least its t-th largest similarity, found
        # by t row maxima (XLA's CPU `top_k` on an `(N, N)` matrix costs
        # more than the rest of the selection).
        remaining = masked
        for _ in range(t - 1):
            top = ops.max(remaining, axis=1, keepdims=True)
            remaining = ops.where(
                ops.greater_equal(remaining, top), -3.0, remaining
            )
        kth = ops.max(remaining, axis=1, keepdims=True)
        directed = ops.cast(ops.greater_equal(masked, kth), rows.dtype)
        adjacency = ops.maximum(directed, ops.transpose(directed))
    else:
        adjacency = ops.zeros_like(similarity)
    weights = ops.multiply(adjacency, ops.relu(similarity))
    c = ops.max(ops.sum(weights, axis=1))
    return ops.add(norms, c), weights


def greedy_subset(rows, size, neighbours=10, alpha=1.0, beta=1.0):
    """Greedy maximisation of Eq. F.9: `size` of the candidate rows.

    Starting from the empty set, repeatedly adds the candidate with the
    largest marginal gain `alpha * u(i) - beta * sum_{j in S} w(i, j)`
    (the lowest index on ties). With `alpha >= beta` the objective is
    monotone submodular and the result is within `1 - 1/e` of the optimum
    (Nemhauser et al., 1978).

    Args:
        rows: float tensor of shape `(N, d)`.
        size: the number `m` of rows to select, `1 <= m <= N`.
        neighbours: `t` of the `t`-nearest-neighbour graph. Default 10.
        alpha: weight of the utility term. Default 1.
        beta: weight of the similarity term. Default 1.

    Returns:
        int32 tensor of shape `(size,)`: the selected indices, ascending.

    References:
        Mazzawi et al., "Majority Kernels", 2024, Appendix F, Eq. F.9.
    """
    arguments = (int(size), int(neighbours), float(alpha), float(beta))
    return _compiled_greedy()(rows, *arguments)


@functools.cache
def _compiled_greedy():
    """`_greedy` as one compiled program (XLA) on JAX and TensorFlow.

    The selection is `size` rounds of a few small ops: dispatched one by
    one (eagerly, or in TensorFlow's non-XLA train step) they cost far
    more than the arithmetic. Inside a JAX trace the jitted function is
    inlined; inside a TensorFlow graph it is one XLA cluster.
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.jit(_greedy, static_argnums=(1, 2, 3, 4))
    if backend == "tensorflow":
        import tensorflow as tf

        compiled = {}

        def greedy(rows, *arguments):
            if arguments not in compiled:
                # Static shapes: the selection's loop sizes come from them.
                compiled[arguments] = tf.function(
                    lambda r: _greedy(r, *arguments),
                    jit_compile=True,
                    autograph=False,
                )
            return compiled[arguments](rows)

        return greedy
    return _greedy


def _greedy(rows, size, neighbours, alpha, beta):
    rows = ops.stop_gradient(ops.convert_to_tensor(rows))
    n = rows.shape[0]
    utility, weights = submodular_graph(rows, neighbours)
    gains = ops.multiply(alpha, utility)
    taken = ops.zeros((n,), dtype=rows.dtype)
    big = ops.cast(3.4e38, rows.dtype)

    def step(_, state):
        gains, taken = state
        i = ops.argmax(ops.where(ops.greater(taken, 0.0), -big, gains))
        chosen = ops.one_hot(i, n, dtype=rows.dtype)
        column = ops.take(weights, i, axis=1)
        gains = ops.subtract(gains, ops.multiply(beta, column))
        return gains, ops.add(taken, chosen)

    _, taken = ops.fori_loop(0, size, step, (gains, taken))
    # The `size` taken candidates, lowest index first.
    order = ops.multiply(taken, ops.cast(ops.arange(n, 0, -1), rows.dtype))
    _, indices = ops.top_k(order, k=size)
    return ops.cast(indices, "int32")
