"""MK embedding tables: gather-then-mix, the tied reverse, the contract."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_mk import layers
from keras_mk import sampling

V, D = 12, 5


def numpy(x):
    return ops.convert_to_numpy(x)


def ids(shape=(3, 4), seed=0):
    return np.random.default_rng(seed).integers(0, V, shape).astype("int32")


def table_layer(cls=layers.MKEmbedding, **kwargs):
    layer = cls(V, D, **{"expansion": 3, "seed": 1, **kwargs})
    layer.build()
    rng = np.random.default_rng(2)
    copies = layer.weight_copies["embeddings"]
    for copy in copies:
        copy.assign(rng.normal(size=(V, D)).astype("float32"))
    return layer


def whole_table_mix(layer, state, name="embeddings"):
    """The whole table mixed with the hashed draw of `state`."""
    copies = [v.value for v in layer.weight_copies[name]]
    return numpy(sampling.sampled_mix(copies, state, hashed=True))


@pytest.mark.parametrize("e", [2, 3, 4])
def test_gather_then_mix_equals_take_of_the_whole_table_mix(e):
    layer = table_layer(expansion=e)
    state = numpy(layer.seed_generator.state)
    x = ids()
    rows = numpy(layer(x, training=True))
    table = whole_table_mix(layer, state)
    np.testing.assert_array_equal(rows, np.take(table, x, axis=0))
    # The generator advanced: the next call draws another p.
    assert not np.array_equal(rows, numpy(layer(x, training=True)))


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="TensorFlow's XLA cluster"
)
def test_tensorflow_hashes_the_gathered_rows_in_one_cluster_traced_once():
    import tensorflow as tf

    from keras_mk.sampling import rows as sampled_rows

    layer = table_layer(expansion=3)
    state = numpy(layer.seed_generator.state)
    step = tf.function(lambda x: layer(x, training=True))
    x = ids()
    first = numpy(step(x))
    for _ in range(2):
        step(x)
    cluster = sampled_rows._tensorflow_spacings((V, D), 2)
    assert cluster.experimental_get_tracing_count() == 1
    # The cluster's draw is the whole table's, taken at the rows.
    table = whole_table_mix(layer, state)
    np.testing.assert_array_equal(first, np.take(table, x, axis=0))


def test_gathered_p_is_dirichlet_one():
    e, vocab, dim = 3, 400, 64
    layer = layers.MKEmbedding(vocab, dim, expansion=e, seed=3)
    layer.build()
    value = np.zeros((e, vocab, dim), "float32")
    value[0] = 1.0
    layer.set_expanded_kernel(value)  # the mixed rows are p_0
    p0 = numpy(layer(np.arange(vocab)[None], training=True))[0]
    mean, var = 1.0 / e, (e - 1) / (e**2 * (e + 1))
    assert p0.min() >= 0.0 and p0.max() <= 1.0
    assert abs(p0.mean() - mean) < 5 * np.sqrt(var / p0.size)
    fourth = np.mean((p0 - mean) ** 4)
    assert abs(p0.var() - var) < 5 * np.sqrt((fourth - var**2) / p0.size)


def test_sample_probabilities_replays_the_next_lookup():
    layer = table_layer()
    state = numpy(layer.seed_generator.state)
    p = numpy(layer.sample_probabilities())
    layer.seed_generator.state.assign(state)
    x = ids()
    copies = numpy(layer.expanded_kernel)
    expected = np.einsum("kvd,kvd->vd", p, copies)[x]
    np.testing.assert_allclose(
        numpy(layer(x, training=True)), expected, atol=1e-6
    )


def test_gradient_of_each_copy_is_p_times_upstream_at_the_rows():
    layer = table_layer()
    x = ids((2, 3))
    state = numpy(layer.seed_generator.state)
    p = numpy(layer.sample_probabilities())
    layer.seed_generator.state.assign(state)
    upstream = np.random.default_rng(4).normal(size=(2, 3, D))
    model_grads = _copy_gradients(layer, x, upstream.astype("float32"))
    for k, grad in enumerate(model_grads):
        expected = np.zeros((V, D))
        np.add.at(expected, x, upstream * p[k][x])
        np.testing.assert_allclose(grad, expected, atol=1e-5)


def _copy_gradients(layer, x, upstream):
    copies = layer.weight_copies["embeddings"]
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x, training=True) * upstream)
        grads = tape.gradient(loss, [c.value for c in copies])
        return [numpy(tf.convert_to_tensor(g)) for g in grads]
    if backend == "torch":
        y = layer(x, training=True)
        loss = (y * ops.convert_to_tensor(upstream)).sum()
        loss.backward()
        return [numpy(c.value.grad) for c in copies]
    import jax

    def loss(values):
        for copy, value in zip(copies, values):
            copy._value = value  # traced values, as Keras's JAX trainer
        return (layer(x, training=True) * upstream).sum()

    values = [c.value for c in copies]
    try:
        grads = jax.grad(loss)(values)
    finally:
        for copy, value in zip(copies, values):
            copy._value = value
    return [numpy(g) for g in grads]


def test_inference_is_the_mean_table_and_expansion_one_is_keras():
    layer = table_layer()
    x = ids()
    mean = numpy(layer.expanded_kernel).mean(axis=0)
    np.testing.assert_allclose(numpy(layer(x)), mean[x], atol=1e-6)
    plain = keras.layers.Embedding(V, D, embeddings_initializer="he_normal")
    one = layers.MKEmbedding(
        V, D, embeddings_initializer="he_normal", expansion=1
    )
    plain.build()
    one.build()
    one.weight_copies["embeddings"][0].assign(plain.embeddings)
    for training in (False, True):
        np.testing.assert_array_equal(
            numpy(one(x, training=training)), numpy(plain(x))
        )
    assert one.seed_generator is None


def test_fixed_probabilities_of_the_table_shape_and_per_unit():
    layer = table_layer()
    x = ids()
    copies = numpy(layer.expanded_kernel)
    rng = np.random.default_rng(5)
    for shape in ((3, V, D), (3, 1, D), (3, V, 1)):
        p = rng.dirichlet(np.ones(3), size=shape[1:]).astype("float32")
        p = np.moveaxis(p, -1, 0)
        expected = np.einsum(
            "kvd,kvd->vd", np.broadcast_to(p, copies.shape), copies
        )
        got = numpy(layer(x, training=True, fixed_probabilities=p))
        np.testing.assert_allclose(got, expected[x], atol=1e-6)
    with pytest.raises(ValueError, match="must have shape"):
        layer(x, training=True, fixed_probabilities=np.ones((3, V)) / 3)


def test_regularizer_and_concentration_mix_the_whole_table():
    reg = table_layer(embeddings_regularizer="l2")
    reg(ids(), training=True)
    assert len(reg.losses) == 1
    conc = table_layer(concentration=2.0)
    y = numpy(conc(ids(), training=True))
    assert y.shape == (3, 4, D) and np.all(np.isfinite(y))


def _fit_losses(model, x, y, epochs=4):
    model.compile(keras.optimizers.Adam(0.05), "mse")
    history = model.fit(x, y, epochs=epochs, batch_size=8, verbose=0)
    return history.history["loss"]


@pytest.mark.parametrize("policy", [None, "mixed_float16", "mixed_bfloat16"])
def test_fit_decreases_the_loss(policy):
    previous = keras.config.dtype_policy()
    if policy:
        keras.config.set_dtype_policy(policy)
    try:
        model = keras.Sequential(
            [
                keras.Input((4,), dtype="int32"),
                layers.MKEmbedding(V, D, expansion=3, seed=0),
                keras.layers.Flatten(),
                keras.layers.Dense(1, dtype="float32"),
            ]
        )
        x = ids((32, 4), seed=6)
        y = (x.sum(axis=1, keepdims=True) / (4 * V)).astype("float32")
        losses = _fit_losses(model, x, y)
    finally:
        keras.config.set_dtype_policy(previous)
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    table = model.layers[0]
    assert table.weight_copies["embeddings"][0].dtype == "float32"


def test_config_round_trip_and_masking():
    layer = layers.MKEmbedding(V, D, mask_zero=True, expansion=4, seed=7)
    clone = layers.MKEmbedding.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert clone.expansion == 4 and clone.mask_zero
    mask = clone.compute_mask(np.array([[0, 1]]))
    np.testing.assert_array_equal(numpy(mask), [[False, True]])


# -- ReversibleEmbedding ----------------------------------------------------


def reversible(**kwargs):
    return table_layer(layers.MKReversibleEmbedding, **kwargs)


def test_reverse_uses_the_table_whose_rows_the_lookup_mixed():
    layer = reversible()
    state = numpy(layer.seed_generator.state)
    x = ids()
    rows = numpy(layer(x, training=True))
    hidden = np.random.default_rng(8).normal(size=(3, 4, D))
    logits = numpy(layer(hidden.astype("float32"), reverse=True, training=True))
    table = whole_table_mix(layer, state)
    np.testing.assert_array_equal(rows, table[x])
    np.testing.assert_allclose(logits, hidden @ table.T, rtol=1e-5, atol=1e-5)
    # The next step draws another table, and pairs again.
    state = numpy(layer.seed_generator.state)
    rows_next = numpy(layer(x, training=True))
    table_next = whole_table_mix(layer, state)
    np.testing.assert_array_equal(rows_next, table_next[x])
    assert not np.array_equal(rows, rows_next)


def test_reverse_alone_draws_a_fresh_table_each_call():
    layer = reversible()
    hidden = np.random.default_rng(9).normal(size=(2, D)).astype("float32")
    first = numpy(layer(hidden, reverse=True, training=True))
    second = numpy(layer(hidden, reverse=True, training=True))
    assert not np.allclose(first, second)
    mean = numpy(layer.expanded_kernel).mean(axis=0)
    np.testing.assert_allclose(
        numpy(layer(hidden, reverse=True)), hidden @ mean.T, atol=1e-5
    )


def test_untied_reverse_kernel_is_simulated_with_its_own_p():
    layer = reversible(tie_weights=False)
    assert sorted(layer.weight_copies) == ["embeddings", "reverse_embeddings"]
    assert len(layer.trainable_weights) == 6
    hidden = np.random.default_rng(10).normal(size=(2, D)).astype("float32")
    state = numpy(layer.seed_generator.state)
    logits = numpy(layer(hidden, reverse=True, training=True))
    kernel = whole_table_mix(layer, state + [0, 1], "reverse_embeddings")
    np.testing.assert_allclose(logits, hidden @ kernel, rtol=1e-5, atol=1e-5)
    p = {"reverse_embeddings": np.full((3, D, V), 1 / 3, "float32")}
    copies = layer.weight_copies["reverse_embeddings"]
    mean = np.mean([numpy(c.value) for c in copies], axis=0)
    np.testing.assert_allclose(
        numpy(
            layer(hidden, reverse=True, training=True, fixed_probabilities=p)
        ),
        hidden @ mean,
        atol=1e-5,
    )
    config = layer.get_config()
    assert not layers.MKReversibleEmbedding.from_config(config).tie_weights


def test_reversible_fit_decreases_the_loss():
    inputs = keras.Input((4,), dtype="int32")
    table = layers.MKReversibleEmbedding(V, D, expansion=3, seed=0)
    logits = table(table(inputs), reverse=True)
    model = keras.Model(inputs, logits)
    model.compile(
        keras.optimizers.Adam(0.05),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x = ids((32, 4), seed=11)
    history = model.fit(x, x, epochs=4, batch_size=8, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]


@pytest.mark.parametrize("expansion", [1, 3])
@pytest.mark.parametrize(
    "cls", [layers.MKEmbedding, layers.MKReversibleEmbedding]
)
def test_weights_argument_sets_every_copy_as_keras_sets_the_table(
    cls, expansion
):
    # Keras's `Embedding(weights=...)` (found by Keras's own tests: the MK
    # table was built before its MK arguments were set, and crashed).
    table = np.arange(12, dtype="float32").reshape(3, 4)
    for weights in (table, [table]):
        layer = cls(3, 4, weights=weights, expansion=expansion)
        np.testing.assert_array_equal(
            ops.convert_to_numpy(layer.embeddings), table
        )
        for copy in layer.weight_copies["embeddings"]:
            np.testing.assert_array_equal(ops.convert_to_numpy(copy), table)
        out = layer(np.array([[2, 0]]), training=True)
        np.testing.assert_allclose(ops.convert_to_numpy(out)[0], table[[2, 0]])
