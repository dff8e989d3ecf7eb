"""JAX: an eager draw-and-mix compiled once per kernel shape, and a
training draw's uniforms computed once per step.

Inside a trace (the train step) the mix is traced as part of the step. An
eager call (outside any trace) runs the same function as one `jax.jit`: one
compilation per kernel shape instead of ~30 op-by-op ones.
"""

import math

from keras import ops

# Draws of at most this many elements are computed once a step
# (`computed_once`); a larger one is hashed again in each loop that reads
# it. Storing a draw costs a write and a read per use of 2 floats per
# element, every step (a 30k x 256 embedding table's step under Adam:
# 39-44 -> 57-76 ms), while its saving is one-off, ~30-40 ms of
# compilation a kernel, whatever its size.
COMPUTED_ONCE_MAX_ELEMENTS = 2**16


def computed_once(u):
    """Uniforms `u` (leading axis: the draws), computed once by XLA.

    XLA's fusion pass copies a cheap element-wise computation, such as the
    counter hash, into every consumer whose inputs it would otherwise
    read: in a train step, a kernel's uniforms were hashed four times (the
    mix, and each copy's gradient fused into its optimizer update), each
    copy ~110 lines of the compiled program. It does not copy an
    expensive operation, and a division by a tensor is one; dividing by
    a 1 that it cannot prove is 1 (`x > 0`, true of every uniform) makes
    the hash one loop whose output the others read. Exact: `x / 1 == x`.
    Draws of more than `COMPUTED_ONCE_MAX_ELEMENTS` elements are returned
    as they are (see there); measured in `docs/performance.md`.
    """
    if math.prod(u.shape[1:]) > COMPUTED_ONCE_MAX_ELEMENTS:
        return u
    return ops.divide(u, ops.cast(ops.greater(u, 0), u.dtype))


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
