"""Where an MK layer must behave exactly like its Keras layer.

Regularizers, mixed precision, a deterministic layer's state, and plain
weight files: an MK layer is a drop-in superset of the Keras layer.
"""

import keras
import numpy as np
import pytest

import keras_mk
from keras_mk import sampling


def numpy(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize(
    "kwargs",
    [dict(expansion=1), dict(expansion=1, probabilities="uniform")],
    ids=["e1", "e1-uniform"],
)
def test_deterministic_layer_has_exactly_the_plain_variables(kwargs):
    mk = keras_mk.layers.MKDense(4, **kwargs)
    plain = keras.layers.Dense(4)
    mk.build((None, 3))
    plain.build((None, 3))
    assert [tuple(v.shape) for v in mk.variables] == [
        tuple(v.shape) for v in plain.variables
    ]
    assert not mk.non_trainable_variables


def test_uniform_probabilities_own_no_random_state():
    mk = keras_mk.layers.MKDense(4, expansion=3, probabilities="uniform")
    mk.build((None, 3))
    assert len(mk.variables) == 3 + 1  # three kernel copies and the bias


def regularized_dense(expansion, **kwargs):
    layer_class = keras_mk.layers.MKDense if expansion else keras.layers.Dense
    extra = dict(expansion=expansion, **kwargs) if expansion else {}
    return layer_class(
        3,
        kernel_regularizer=keras.regularizers.L2(0.5),
        kernel_initializer=keras.initializers.RandomNormal(seed=1),
        use_bias=False,  # a single bias trains at lr, not lr / e
        **extra,
    )


def test_kernel_regularizer_applies_to_the_mixed_kernel_once():
    x = np.ones((2, 4), "float32")
    plain = regularized_dense(None)
    plain(x)
    model = keras.Sequential([keras.Input((4,)), plain])
    mk = keras_mk.clone_model(model, seed=0)
    mk(x, training=False)
    np.testing.assert_allclose(
        float(sum(numpy(v) for v in mk.losses)),
        float(sum(numpy(v) for v in model.losses)),
        rtol=1e-6,
    )
    # In training the penalty is on the sampled kernel, not on each copy.
    layer = mk.layers[0]
    for k, copy in enumerate(layer.kernel_copies):
        copy.assign(np.full((4, 3), float(k), "float32"))
    mk(x, training=True)
    (penalty,) = mk.losses
    # The mix of copies 0, 1, 2 is between 0 and 2 elementwise.
    assert 0.0 < float(numpy(penalty)) < 0.5 * 12 * 4.0


def test_lemma_b2_holds_with_a_kernel_regularizer():
    """Uniform p, SGD at lr equals plain SGD at lr / e, L2 included."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4)).astype("float32")
    y = rng.normal(size=(16, 3)).astype("float32")
    plain = keras.Sequential([keras.Input((4,)), regularized_dense(None)])
    mk = keras_mk.clone_model(plain, probabilities="uniform")
    plain.compile(keras.optimizers.SGD(0.1 / 3), "mse")
    mk.compile(keras.optimizers.SGD(0.1), "mse")
    plain.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    mk.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(
        numpy(mk.layers[0].kernel),
        numpy(plain.layers[0].kernel),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_mixes_in_float32(policy):
    keras.config.set_dtype_policy(policy)
    layer = keras_mk.layers.MKDense(64, use_bias=False, seed=0)
    x = np.eye(64, dtype="float32")
    layer.build((None, 64))
    # Kernel = p_1 exactly: copies 0, 1, 0 (a difference of sorted
    # uniforms, which rounds to 0 when taken in 16 bits).
    for k, copy in enumerate(layer.kernel_copies):
        copy.assign(np.full((64, 64), float(k == 1), "float32"))
    zeros = 0
    for _ in range(4):
        mixed = numpy(layer(x, training=True)).astype("float32")
        zeros += int(np.sum(mixed == 0.0))
        assert np.all(mixed >= 0.0) and np.all(mixed <= 1.0)
    assert zeros == 0
    # Inference: the mean in float32, then one cast, as the collapsed layer.
    rng = np.random.default_rng(0)
    for copy in layer.kernel_copies:
        copy.assign(rng.normal(size=(64, 64)).astype("float32"))
    plain = keras.layers.Dense(64, use_bias=False)
    plain.build((None, 64))
    plain.kernel.assign(sampling.mean([numpy(v) for v in layer.kernel_copies]))
    np.testing.assert_array_equal(
        numpy(layer(x, training=False)), numpy(plain(x))
    )


def test_counter_hash_never_returns_zero_or_one():
    for seed in range(3):
        u = numpy(sampling.hashed_uniforms((1 << 24,), seed))
        assert u.min() > 0.0
        assert u.max() < 1.0


class TwoLayers(keras.Model):
    def __init__(self, dense_class, **kwargs):
        super().__init__(**kwargs)
        self.hidden = dense_class(4, activation="relu")
        self.head = dense_class(3)

    def call(self, x, training=None):
        return self.head(self.hidden(x))


def test_plain_weight_file_replicates_into_every_copy(tmp_path):
    x = np.random.default_rng(0).normal(size=(2, 5)).astype("float32")
    plain = TwoLayers(keras.layers.Dense)
    plain(x)
    path = str(tmp_path / "plain.weights.h5")
    plain.save_weights(path)
    mk = TwoLayers(lambda units, **kw: keras_mk.layers.MKDense(units, **kw))
    mk(x)
    mk.load_weights(path)
    for mk_layer, plain_layer in (
        (mk.hidden, plain.hidden),
        (mk.head, plain.head),
    ):
        for copy in mk_layer.kernel_copies:
            np.testing.assert_array_equal(
                numpy(copy), numpy(plain_layer.kernel)
            )
    np.testing.assert_allclose(
        numpy(mk(x, training=True)), numpy(plain(x)), rtol=1e-6, atol=1e-6
    )


def test_plain_weights_of_a_sequential_name_the_route_that_works(tmp_path):
    # Keras files address the layers of a Sequential by class name
    # (`dense` vs `mk_dense`): the error says to convert a loaded plain model.
    plain = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    path = str(tmp_path / "plain.weights.h5")
    plain.save_weights(path)
    mk = keras_mk.clone_model(plain, seed=0)
    with pytest.raises(ValueError, match="keras_mk.clone_model"):
        mk.load_weights(path)
