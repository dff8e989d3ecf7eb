"""JAX's compiled train step: what XLA makes of MK's draws."""

import re

import keras
import numpy as np
import pytest

import keras_mk
from keras_mk.sampling import counter_hash
from keras_mk.sampling import jax_backend

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="JAX's compiled train step"
)


def compiled_train_step_hlo(model, x, y):
    """The optimised HLO of `model`'s train step, as `fit` compiles it."""
    import jax

    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    model.optimizer.build(model.trainable_variables)
    state = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in model.optimizer.variables],
        [v.value for v in model.metrics_variables],
    )
    lowered = jax.jit(model.train_step).lower(state, (x, y))
    return lowered.compile().as_text()


def hashing_loops(hlo):
    """The fused loops of the entry computation that hash element indices
    (an `iota` and the hash's second constant)."""
    computations = {}
    for text in re.split(r"\n(?=\S)", hlo):
        name = re.match(r"(%?[\w.\-]+) ", text)
        if name:
            computations[name.group(1)] = text
    constant = f"constant({int(counter_hash.MIX_2)})"
    entry = hlo[hlo.index("ENTRY") :]
    loops = []
    for called in re.findall(r"fusion\(.*calls=(%?[\w.\-]+)", entry):
        body = computations[called]
        if constant in body and " iota(" in body:
            loops.append(called)
    return loops


@pytest.mark.parametrize("stored", [True, False])
def test_train_step_hashes_small_kernels_uniforms_once(stored, monkeypatch):
    # Before 2026-12-02 XLA copied a kernel's hash into the mix and into
    # each copy's gradient (four loops a kernel, e = 3); it still does
    # for a draw above the threshold, which costs less than storing it.
    if not stored:
        monkeypatch.setattr(jax_backend, "COMPUTED_ONCE_MAX_ELEMENTS", 9)
    inputs = keras.Input((6,))
    hidden = keras_mk.MKDense(5, expansion=3, use_bias=False, seed=1)(inputs)
    hidden = keras.layers.Activation("tanh")(hidden)
    outputs = keras_mk.MKDense(2, expansion=3, use_bias=False, seed=2)(hidden)
    model = keras.Model(inputs, outputs)
    x = np.ones((4, 6), "float32")
    y = np.zeros((4, 2), "float32")

    loops = hashing_loops(compiled_train_step_hlo(model, x, y))

    assert len(loops) == (2 if stored else 8), loops


def test_training_draw_traces_as_primitives():
    # Before 2026-12-02 the hash was Keras operations, `jax.numpy`
    # functions each traced through its own `jax.jit` wrapper (~0.1 ms
    # apiece, ~50 a kernel), and a logical shift was a shift and a mask
    # (~20 more HLO lines a hashing loop). It is now `jax.lax` primitives.
    import jax

    from keras_mk.sampling import mixing

    def draw(state):
        return mixing.sample_spacings((4, 5), 3, state, hashed=True)

    jaxpr = jax.make_jaxpr(draw)(np.array([7, 9], "int32")).jaxpr
    names = [eqn.primitive.name for eqn in jaxpr.eqns]

    assert "and" not in names, names
    assert names.count("shift_right_logical") == 13, names
