"""MK training under mixed precision and with every `jit_compile` mode."""

import keras
import numpy as np
import pytest

import keras_mk
from keras_mk import sampling
from keras_mk.sampling import simplex
from keras_mk.sampling import tensorflow_backend
from keras_mk.sampling import torch_backend

BACKEND = keras.backend.backend()


def small_mk_model():
    inputs = keras.Input((8, 8, 3))
    x = keras_mk.MKConv2D(4, 3, expansion=3, activation="relu", seed=1)(inputs)
    x = keras.layers.Flatten()(x)
    x = keras_mk.MKDense(16, expansion=3, activation="relu", seed=2)(x)
    x = keras_mk.MKDense(3, expansion=3, seed=3)(x)
    # The loss in float32, as the mixed precision guide recommends.
    outputs = keras.layers.Activation("linear", dtype="float32")(x)
    return keras.Model(inputs, outputs)


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 3, size=(16,))
    return x, y


def fit_losses(model, jit_compile="auto"):
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )
    x, y = data()
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    return history.history["loss"]


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_draws_p_and_mixes_in_float32_outputs_compute_dtype(
    policy, monkeypatch, request
):
    seen = {"sampled": set(), "mixed": set()}
    sort, telescope, torch_mix = (
        simplex.sort_elementwise,
        simplex.telescoping_mix,
        torch_backend.mix,
    )

    def spy_sort(u):
        s = sort(u)
        seen["sampled"].update(
            keras.backend.standardize_dtype(x.dtype) for x in s
        )
        return s

    def spy_mix(mix):
        def spy(copies, s):
            seen["mixed"].update(
                keras.backend.standardize_dtype(x.dtype)
                for x in list(copies) + list(s)
            )
            return mix(copies, s)

        return spy

    def spy_run(run):  # PyTorch's compiled draw-and-mix
        def spy(name, function, *args):
            out = run(name, function, *args)
            tensors = [x for x in args + tuple(out) if hasattr(x, "dtype")]
            kinds = {keras.backend.standardize_dtype(x.dtype) for x in tensors}
            key = "sampled" if name == "spacings" else "mixed"
            seen[key].update(kinds - {"int32", "int64"})
            return out

        return spy

    # Every backend's path sorts the uniforms and mixes through these. The
    # compiled draw-and-mix is shared per kernel shape and traced once: a
    # fresh one is traced (with the spies) here and dropped afterwards.
    # So is TensorFlow's cluster of a small kernel's spacings (per bucket).
    for cached in (
        sampling.sampled_mix_for,
        tensorflow_backend.bucket_spacings,
    ):
        cached.cache_clear()
        request.addfinalizer(cached.cache_clear)
    monkeypatch.setattr(simplex, "sort_elementwise", spy_sort)
    monkeypatch.setattr(simplex, "telescoping_mix", spy_mix(telescope))
    monkeypatch.setattr(torch_backend, "mix", spy_mix(torch_mix))
    monkeypatch.setattr(torch_backend, "_run", spy_run(torch_backend._run))
    keras.config.set_dtype_policy(policy)
    model = small_mk_model()
    losses = fit_losses(model)
    compute = policy.split("_")[1]
    assert np.all(np.isfinite(losses))
    # PyTorch hashes its uniforms inside the compiled loop, where no spy
    # sees them; its `p` is checked below (`sample_probabilities`).
    assert seen["sampled"] == (set() if BACKEND == "torch" else {"float32"})
    # Mixed in the variables' dtype, cast once afterwards.
    assert seen["mixed"] == {"float32"}
    layer = model.layers[1]
    assert layer.kernel_copies[0].dtype == "float32"
    p = layer.sample_probabilities()
    assert keras.backend.standardize_dtype(p.dtype) == "float32"
    y = layer(np.ones((1, 8, 8, 3)), training=True)
    assert keras.backend.standardize_dtype(y.dtype) == compute


@pytest.mark.parametrize("jit_compile", [True, "auto"])
def test_trains_with_jit_compile(jit_compile):
    model = small_mk_model()
    before = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    losses = fit_losses(model, jit_compile=jit_compile)
    assert np.all(np.isfinite(losses))
    after = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    # Every copy is trained (each gets its share p_k of the gradient).
    assert all(not np.allclose(a, b) for a, b in zip(before, after))


def test_hashed_uniforms_are_uniform_and_reproducible():
    """The JAX sampler (usable on every backend): moments, no 0 or 1."""
    seed = keras.random.SeedGenerator(7)
    u = keras.ops.convert_to_numpy(sampling.hashed_uniforms((200, 500), seed))
    v = keras.ops.convert_to_numpy(sampling.hashed_uniforms((200, 500), seed))
    again = keras.ops.convert_to_numpy(
        sampling.hashed_uniforms((200, 500), keras.random.SeedGenerator(7))
    )
    np.testing.assert_array_equal(u, again)
    assert u.dtype == np.float32 and 0.0 < u.min() and u.max() < 1.0
    n = u.size
    # Mean, variance and a KS distance: 5 sigma bounds for 100k draws.
    assert abs(u.mean() - 0.5) < 5 * np.sqrt(1 / 12 / n)
    assert abs(u.var() - 1 / 12) < 5 * np.sqrt(1 / 180 / n)
    ks = np.max(np.abs(np.sort(u.ravel()) - (np.arange(n) + 0.5) / n))
    assert ks < 1.95 / np.sqrt(n)
    # Neighbours and successive draws are uncorrelated.
    for a, b in ((u[:, :-1], u[:, 1:]), (u[:-1], u[1:]), (u, v)):
        r = np.corrcoef(a.ravel(), b.ravel())[0, 1]
        assert abs(r) < 5 / np.sqrt(a.size)
