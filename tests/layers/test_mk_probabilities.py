"""The probabilities `p`: distribution, freshness, reproducibility, NaN."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_mk import layers
from keras_mk import sampling


def numpy(x):
    return ops.convert_to_numpy(x)


def observed_p0(layer, n):
    """p of copy 0 per kernel element, read through a training call.

    Copy 0 is all ones and the others zeros, so the mixed kernel *is* p_0;
    an identity input reads it out row by row.
    """
    shape = tuple(layer.expanded_kernel.shape)
    value = np.zeros(shape, "float32")
    value[0] = 1.0
    layer.set_expanded_kernel(value)
    return numpy(layer(np.eye(n, dtype="float32"), training=True))


def dirichlet_marginal(e, concentration):
    mean = 1.0 / e
    var = (e - 1) / (e**2 * (e * concentration + 1))
    return mean, var


@pytest.mark.parametrize("e", [2, 3, 4, 5, 7])
def test_p_is_dirichlet_one_through_the_layer(e):
    n = m = 160
    layer = layers.MKDense(m, expansion=e, use_bias=False, seed=e)
    layer.build((None, n))
    p0 = observed_p0(layer, n)
    assert p0.min() >= 0.0 and p0.max() <= 1.0
    mean, var = dirichlet_marginal(e, 1.0)
    count = p0.size
    # Five standard errors of the sample mean and of the sample variance.
    assert abs(p0.mean() - mean) < 5 * np.sqrt(var / count)
    fourth = np.mean((p0 - mean) ** 4)
    assert abs(p0.var() - var) < 5 * np.sqrt((fourth - var**2) / count)
    # Every p_k of one draw (the seed state replayed), read through the
    # layer with copy k set to ones: each >= 0, and they sum to one.
    state = numpy(layer.seed_generator.state)
    p = []
    for k in range(e):
        layer.seed_generator.state.assign(state)
        value = np.zeros((e, n, m), "float32")
        value[k] = 1.0
        layer.set_expanded_kernel(value)
        p.append(numpy(layer(np.eye(n, dtype="float32"), training=True)))
    p = np.stack(p)
    assert p.min() >= 0.0
    np.testing.assert_allclose(p.sum(axis=0), 1.0, atol=1e-6)
    assert p.std(axis=0).mean() > 0.05  # and they are not all 1/e


def replayed_dense(n, units, e, seed):
    """An `n x units` MKDense whose next draw is replayed, then observed.

    Returns:
        `(layer, state, p, p0)`: the seed state before the draw, `p` from
        `sample_probabilities` and `p0` read through a training call of the
        same state (asserted equal to `p[0]`).
    """
    layer = layers.MKDense(units, expansion=e, use_bias=False, seed=seed)
    layer.build((None, n))
    state = numpy(layer.seed_generator.state)
    p = numpy(layer.sample_probabilities())
    layer.seed_generator.state.assign(state)
    p0 = observed_p0(layer, n)
    np.testing.assert_allclose(p0, p[0], atol=1e-6)
    return layer, state, p, p0


def test_large_kernel_p_is_dirichlet_one_and_replayed_by_sample_probabilities():
    # 512 x 512: the draw and the mix fused in XLA clusters on
    # TensorFlow; the values are the hash's, as for any other kernel.
    n, e = 512, 3
    layer, state, p, p0 = replayed_dense(n, n, e, seed=1)
    mean, var = dirichlet_marginal(e, 1.0)
    assert p0.min() >= 0.0
    assert abs(p0.mean() - mean) < 5 * np.sqrt(var / p0.size)
    assert abs(p0.var() / var - 1.0) < 0.02
    np.testing.assert_allclose(p.sum(axis=0), 1.0, atol=1e-6)
    # Neighbouring elements (and blocks) are not correlated.
    flat = p0.ravel()
    assert abs(np.corrcoef(flat[:-1], flat[1:])[0, 1]) < 0.01


def hashed_p(state, shape, e):
    """The counter hash's `p ~ Dirichlet(1)` of one seed state, in NumPy.

    `counter_hash` restated in uint32 arithmetic (int32 wraps alike): the
    reference every backend's draw must equal, bit for bit.
    """
    m1, m2, golden = (
        np.uint32(c) for c in (0x85EBCA6B, 0xC2B2AE35, 0x9E3779B9)
    )

    def fmix(x):
        x = x ^ (x >> np.uint32(16))
        x = x * m1
        x = x ^ (x >> np.uint32(13))
        x = x * m2
        return x ^ (x >> np.uint32(16))

    with np.errstate(over="ignore"):
        s0, s1 = np.asarray(state).astype(np.int64).astype(np.uint32)
        k0 = fmix(np.array([s0 * golden + s1], np.uint32))[0]
        k1 = fmix(np.array([k0 ^ s0], np.uint32))[0]
        size = int(np.prod(shape))
        index = np.arange((e - 1) * size, dtype=np.uint32)
        bits = fmix(fmix(index ^ k0) + k1)
    u = (bits >> np.uint32(9)).astype(np.float32) * np.float32(2**-23)
    u = (u + np.float32(2**-24)).reshape((e - 1,) + tuple(shape))
    s = np.sort(u, axis=0)
    gaps = [s[0]] + [s[j] - s[j - 1] for j in range(1, e - 1)]
    return np.stack(gaps + [np.float32(1.0) - s[-1]])


@pytest.mark.parametrize(
    "n, units, e", [(8, 5, 3), (40, 30, 4), (255, 256, 3), (256, 256, 3)]
)
def test_every_backend_draws_the_same_p_from_one_seed(n, units, e):
    # Small kernels, kernels just below TensorFlow's fusion threshold and at
    # it: one seed state gives one `p` on TensorFlow, JAX and PyTorch, the
    # counter hash's (so a run's draws do not depend on its backend).
    layer, state, p, p0 = replayed_dense(n, units, e, seed=5)
    expected = hashed_p(state, (n, units), e)
    np.testing.assert_array_equal(p, expected)
    # The training call drew it too (`replayed_dense` compares `p0`).
    np.testing.assert_allclose(p0, expected[0], atol=1e-6)


@pytest.mark.parametrize("units", [255, 256])
def test_p_on_both_sides_of_tensorflows_fusion_threshold_is_replayed(units):
    # 256 x 255 kernels hash their spacings in a bucket cluster and mix with
    # plain ops on TensorFlow, 256 x 256 ones hash and mix inside fused XLA
    # clusters (FUSE_MIN_ELEMENTS = 2**16); elsewhere both are one path.
    # Either way the draw is Dirichlet(1) and `sample_probabilities`
    # replays it.
    e = 3
    _, _, p, p0 = replayed_dense(256, units, e, seed=2)
    mean, var = dirichlet_marginal(e, 1.0)
    assert abs(p0.mean() - mean) < 5 * np.sqrt(var / p0.size)
    assert abs(p0.var() / var - 1.0) < 0.03
    np.testing.assert_allclose(p.sum(axis=0), 1.0, atol=1e-6)


def test_kernels_share_clusters_and_keep_their_own_draws():
    # 512 x 256 and 256 x 512 (one size, two shapes) and 384 x 256 (another
    # size). On TensorFlow every kernel shares the fused XLA clusters,
    # traced once whatever its size (XLA compiles them per size); each
    # layer's draw is still its own shape's, replayed by
    # `sample_probabilities`.
    e = 3
    drawn = [
        replayed_dense(512, 256, e, seed=4),
        replayed_dense(256, 512, e, seed=4),
        replayed_dense(384, 256, e, seed=4),
    ]
    for _, _, p, p0 in drawn:
        mean, var = dirichlet_marginal(e, 1.0)
        assert abs(p0.mean() - mean) < 5 * np.sqrt(var / p0.size)
        np.testing.assert_allclose(p.sum(axis=0), 1.0, atol=1e-6)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        from keras_mk.sampling import tensorflow_backend

        assert sampling.sampled_mix_for((512, 256), e) is not (
            sampling.sampled_mix_for((256, 512), e)
        )
        for layer, _, _, _ in drawn:
            n = layer.kernel_copies[0].shape[0]
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(layer(tf.ones((2, n)), training=True))
            grads = tape.gradient(loss, layer.kernel_copies)
            assert all(g is not None for g in grads)
        forward, backward = tensorflow_backend.fused_clusters(
            e, tf.float32, tf.int64
        )
        assert forward.experimental_get_tracing_count() == 1
        assert backward.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("e", [2, 3, 6])
def test_sample_probabilities_on_the_simplex(e):
    layer = layers.MKConv2D(4, 3, expansion=e, seed=0)
    layer.build((None, 8, 8, 3))
    p = numpy(layer.sample_probabilities())
    assert p.shape == (e, 3, 3, 3, 4)
    assert p.min() >= 0.0
    np.testing.assert_allclose(p.sum(axis=0), 1.0, atol=1e-6)


@pytest.mark.parametrize("concentration", [0.5, 2.0, 8.0])
def test_concentration_sets_the_dirichlet_variance(concentration):
    e, n = 3, 120
    layer = layers.MKDense(
        n, expansion=e, use_bias=False, concentration=concentration, seed=4
    )
    layer.build((None, n))
    p0 = observed_p0(layer, n)
    mean, var = dirichlet_marginal(e, concentration)
    assert p0.min() >= 0.0
    assert abs(p0.mean() - mean) < 5 * np.sqrt(var / p0.size)
    assert abs(p0.var() / var - 1.0) < 0.08
    p = numpy(layer.sample_probabilities())
    np.testing.assert_allclose(p.sum(axis=0), 1.0, atol=1e-5)


def test_larger_concentration_means_less_noise():
    variances = []
    for concentration in (1.0, 4.0, 16.0):
        layer = layers.MKDense(
            100, expansion=3, use_bias=False, concentration=concentration
        )
        layer.build((None, 100))
        variances.append(observed_p0(layer, 100).var())
    assert variances[0] > variances[1] > variances[2]


def test_uniform_probabilities_are_always_the_mean():
    layer = layers.MKDense(5, expansion=4, probabilities="uniform", seed=0)
    layer.build((None, 6))
    p0 = observed_p0(layer, 6)
    np.testing.assert_allclose(p0, 0.25, atol=1e-7)
    p = numpy(layer.sample_probabilities())
    np.testing.assert_allclose(p, 0.25)


def test_same_seed_same_sequence_other_seed_other_sequence():
    def sequence(seed):
        layer = layers.MKDense(8, expansion=3, seed=seed)
        layer.build((None, 8))
        layer.set_expanded_kernel(
            np.random.default_rng(0).normal(size=(3, 8, 8)).astype("float32")
        )
        x = np.eye(8, dtype="float32")
        return [numpy(layer(x, training=True)) for _ in range(3)]

    a, b, c = sequence(42), sequence(42), sequence(43)
    for step_a, step_b in zip(a, b):
        np.testing.assert_array_equal(step_a, step_b)
    assert not np.allclose(a[0], a[1])
    assert not np.allclose(a[0], c[0])


def test_layers_of_one_kernel_shape_share_the_mix_function_not_the_draws():
    """One compiled mix per kernel shape (a transformer compiles it once);
    each layer still draws from its own seed, whatever the call order."""
    assert sampling.sampled_mix_for((8, 8), 3) is sampling.sampled_mix_for(
        (8, 8), 3
    )
    kernel = np.random.default_rng(0).normal(size=(3, 8, 8)).astype("float32")
    x = np.eye(8, dtype="float32")

    def layer(seed):
        layer = layers.MKDense(8, expansion=3, seed=seed)
        layer.build((None, 8))
        layer.set_expanded_kernel(kernel)
        return layer

    alone = layer(42)
    expected = [numpy(alone(x, training=True)) for _ in range(3)]
    a, b = layer(42), layer(43)
    interleaved = []
    for _ in range(3):
        interleaved.append(numpy(a(x, training=True)))
        other = numpy(b(x, training=True))
        assert not np.allclose(other, interleaved[-1])
    for step, want in zip(interleaved, expected):
        np.testing.assert_array_equal(step, want)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_fresh_p_on_every_step_of_fit(jit_compile):
    """Each compiled train step draws new p (the learning rate is 0)."""
    n = 6
    layer = layers.MKDense(n, expansion=3, use_bias=False, seed=3)
    model = keras.Sequential([keras.Input((n,)), layer])
    value = np.zeros((3, n, n), "float32")
    value[0] = 1.0
    layer.set_expanded_kernel(value)
    model.compile(
        keras.optimizers.SGD(learning_rate=0.0), "mse", jit_compile=jit_compile
    )
    x = np.eye(n, dtype="float32")
    y = np.zeros((n, n), "float32")
    # One batch per epoch, so every epoch's loss is one step's loss.
    history = model.fit(x, y, batch_size=n, epochs=6, verbose=0)
    losses = history.history["loss"]
    assert len(set(np.round(losses, 7))) == len(losses)
    # Mean of p0**2 for Dirichlet(1), e = 3: var + mean**2 = 1/6.
    assert all(0.03 < loss < 0.5 for loss in losses)
    np.testing.assert_array_equal(numpy(layer.expanded_kernel), value)


def test_sampler_never_produces_nan_when_uniform_returns_exact_zero(
    monkeypatch,
):
    """`keras.random.uniform` returns exactly 0.0 about once in 10 million
    draws: the spacings sampler has no log and no division, so 0 is safe."""
    copies = [ops.ones((4,)) * k for k in (1.0, 2.0, 3.0)]
    for value in (0.0, 1.0 - 2**-24):
        monkeypatch.setattr(
            keras.random,
            "uniform",
            lambda shape, seed=None, value=value, **kw: ops.full(shape, value),
        )
        s = sampling.sample_spacings((4,), 3, seed=None)
        p = numpy(sampling.spacings_to_probabilities(s))
        mixed = numpy(sampling.mix_with_spacings(copies, s))
        assert np.all(np.isfinite(p)) and np.all(np.isfinite(mixed))
        np.testing.assert_allclose(p.sum(0), 1.0, atol=1e-6)
    monkeypatch.setattr(
        keras.random,
        "gamma",
        lambda shape, alpha, seed=None, **kw: ops.zeros(shape),
    )
    p = numpy(sampling.sample_dirichlet((4,), 3, 0.01, seed=None))
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(0), 1.0, atol=1e-6)


@pytest.mark.slow
def test_thousands_of_training_calls_on_a_large_kernel_stay_finite():
    """200 calls on 2.25 million kernel elements, 900 million uniforms: a
    log-based sampler would hit `-log(0) = inf`, then NaN, about a hundred
    times (`keras.random.uniform` returns 0.0 once in 8-16 million)."""
    n = 1500
    calls = 200
    layer = layers.MKDense(n, expansion=3, use_bias=False, seed=0)
    layer.build((None, n))
    x = np.ones((1, n), "float32") / n

    def step(x):
        return ops.all(ops.isfinite(layer(x, training=True)))

    if keras.backend.backend() == "jax":
        import jax

        state = layer.seed_generator.state

        @jax.jit
        def jitted(kernels, seed_state, x):
            values = [(v, k) for v, k in zip(layer.kernel_copies, kernels)]
            values.append((state, seed_state))
            with keras.StatelessScope(state_mapping=values) as scope:
                ok = step(x)
            return ok, scope.get_current_value(state)

        kernels = [v.value for v in layer.kernel_copies]
        seed_state = state.value
        finite = []
        for _ in range(calls):
            ok, seed_state = jitted(kernels, seed_state, x)
            finite.append(ok)
        assert all(bool(ok) for ok in finite)
    else:
        assert all(bool(numpy(step(x))) for _ in range(calls))


@pytest.mark.parametrize("e", [2, 3, 5, 6, 7])
def test_mean_of_equal_copies_is_the_copy_exactly(e):
    # A model converted with copies of its weights must give the original's
    # output bit for bit; `(W + W + W) * (1 / 3)` is not W in float32.
    rng = np.random.default_rng(e)
    scale = 10.0 ** rng.integers(-8, 8, size=(64, 64))
    w = (rng.normal(size=(64, 64)) * scale).astype("float32")
    np.testing.assert_array_equal(numpy(sampling.exact_mean([w] * e)), w)
    copies = [rng.normal(size=(64, 64)).astype("float32") for _ in range(e)]
    np.testing.assert_allclose(
        numpy(sampling.mean(copies)),
        np.mean(copies, axis=0),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 300, 200)])
def test_unhashed_uniforms_are_kerass_draws_exactly(shape):
    # TensorFlow draws with one raw op in place of
    # `tf.random.stateless_uniform`'s ten, PyTorch calls `torch.rand` with
    # Keras's generator (skipping `(1 - 0) * u + 0`): the same values and
    # seed states as `keras.random.uniform`, eagerly and, on TensorFlow,
    # inside a traced function.
    def draw(seed):
        return sampling.uniforms(shape, seed, hashed=False)

    draws = [draw]
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        draws.append(tf.function(draw))
    ours = keras.random.SeedGenerator(7)
    kerass = keras.random.SeedGenerator(7)
    for uniforms in draws:
        for _ in range(2):
            u = uniforms(ours)
            np.testing.assert_array_equal(
                numpy(u), numpy(keras.random.uniform(shape, seed=kerass))
            )
            assert keras.backend.standardize_dtype(u.dtype) == "float32"
            assert tuple(u.shape) == shape
            np.testing.assert_array_equal(
                numpy(ours.state), numpy(kerass.state)
            )
    if keras.backend.backend() == "tensorflow":
        graph = draws[1].get_concrete_function(ours).graph
        kinds = [op.type for op in graph.get_operations()]
        # The raw op, not Keras's key-and-counter chain.
        assert kinds.count("StatelessRandomUniform") == 1
        assert "StatelessRandomGetKeyCounter" not in kinds
