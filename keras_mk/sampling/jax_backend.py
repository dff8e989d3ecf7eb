"""JAX: an eager draw-and-mix compiled once per kernel shape.

Inside a trace (the train step) the mix is traced as part of the step. An
eager call (outside any trace) runs the same function as one `jax.jit`: one
compilation per kernel shape instead of ~30 op-by-op ones.
"""


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
