import warnings

import keras
import numpy as np
import pytest
from keras import ops

import keras_mk
from keras_mk.diagnostics import copy_diversity
from keras_mk.training import AdversarialMK
from keras_mk.training import adversarial_mixing_weight
from keras_mk.training import probabilities_scope
from keras_mk.training import project_to_simplex

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _data(n=128, d=12, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    y = (x[:, :classes] @ rng.normal(size=(classes, classes))).argmax(-1)
    return x, y


def _mk_model(probabilities="exponential", copy_initialization="replicate"):
    keras.utils.set_random_seed(3)
    kwargs = dict(
        probabilities=probabilities,
        copy_initialization=copy_initialization,
    )
    return keras.Sequential(
        [
            keras.Input((12,)),
            keras_mk.layers.MKDense(16, activation="tanh", seed=1, **kwargs),
            keras_mk.layers.MKDense(3, seed=2, **kwargs),
        ]
    )


def _numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def _loss_at(model, x, y, ps):
    layers = keras_mk.training.mk_layers(model)
    with probabilities_scope(list(zip(layers, ps))):
        return float(_numpy(LOSS(y, model(x, training=False))))


def test_epsilon_zero_adversarial_only_is_uniform_training():
    x, y = _data()
    adversarial = AdversarialMK(_mk_model(), epsilon=0.0, adversarial_only=True)
    adversarial.compile(keras.optimizers.SGD(0.2), LOSS)
    uniform = _mk_model("uniform")
    uniform.compile(keras.optimizers.SGD(0.2), LOSS)
    for a, b in zip(adversarial.get_weights(), uniform.get_weights()):
        np.testing.assert_array_equal(a, b)
    kwargs = dict(epochs=2, batch_size=32, shuffle=False, verbose=0)
    history_a = adversarial.fit(x, y, **kwargs).history["loss"]
    history_u = uniform.fit(x, y, **kwargs).history["loss"]
    np.testing.assert_allclose(history_a, history_u, rtol=1e-5)
    for a, b in zip(adversarial.model.weights, uniform.weights):
        if "float" in str(a.dtype):
            np.testing.assert_allclose(_numpy(a), _numpy(b), atol=1e-5)


def test_project_to_simplex():
    # Already on the simplex: unchanged; shifted by a constant: back.
    p = np.array([[0.2, 0.5], [0.3, 0.25], [0.5, 0.25]], "float32")
    np.testing.assert_allclose(_numpy(project_to_simplex(p)), p, atol=1e-6)
    np.testing.assert_allclose(
        _numpy(project_to_simplex(p + 0.7)), p, atol=1e-6
    )
    # Far outside: the nearest vertex or edge.
    v = np.array([[3.0, 0.8], [0.0, 0.6], [-1.0, -2.0]], "float32")
    expected = np.array([[1.0, 0.6], [0.0, 0.4], [0.0, 0.0]], "float32")
    np.testing.assert_allclose(
        _numpy(project_to_simplex(v)), expected, atol=1e-6
    )
    # Random points: on the simplex, and no simplex point is closer (e = 3
    # uses a sorting network, other sizes a sort).
    rng = np.random.default_rng(0)
    for e in (2, 3, 5):
        v = rng.normal(size=(e, 200)).astype("float32")
        q = _numpy(project_to_simplex(v))
        assert q.min() >= 0
        np.testing.assert_allclose(q.sum(0), 1.0, atol=1e-5)
        others = rng.dirichlet(np.ones(e), size=(50, 200)).transpose(0, 2, 1)
        best = np.linalg.norm(v - q, axis=0)
        assert np.all(np.linalg.norm(v - others, axis=1) >= best - 1e-5)


def test_mixing_weight_is_kl_to_uniform_over_log_e():
    e = 3
    uniform = np.full((e, 5), 1.0 / e, "float32")
    np.testing.assert_allclose(
        _numpy(adversarial_mixing_weight(uniform)), 0.0, atol=1e-6
    )
    vertex = np.eye(e, dtype="float32")
    np.testing.assert_allclose(
        _numpy(adversarial_mixing_weight(vertex)), 1.0, atol=1e-6
    )
    p = np.random.default_rng(0).dirichlet([0.3] * e, size=1000).T
    u = _numpy(adversarial_mixing_weight(p.astype("float32")))
    assert u.shape == (1000,)
    # The NumPy reference: KL(p || uniform) / log e, with 0 log 0 = 0.
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p * e), 0.0)
    np.testing.assert_allclose(u, terms.sum(0) / np.log(e), atol=1e-4)
    assert u.std() > 0.05


@pytest.mark.parametrize("epsilon,step", [(0.25, "scaled"), (1e3, "raw")])
def test_adversarial_probabilities_on_simplex_and_increase_loss(epsilon, step):
    x, y = _data()
    model = _mk_model(copy_initialization="independent")
    adversarial = AdversarialMK(model, epsilon=epsilon, step=step)
    adversarial.compile(keras.optimizers.SGD(0.1), LOSS)
    p_adv = adversarial.adversarial_probabilities(x, y)
    layers = adversarial.mk_layers
    assert len(p_adv) == len(layers) == 2
    for p, layer in zip(p_adv, layers):
        p = _numpy(p)
        assert p.shape == tuple(layer.expanded_kernel.shape)
        assert p.min() >= 0.0
        np.testing.assert_allclose(p.sum(0), 1.0, atol=1e-5)
        assert np.abs(p - 1.0 / 3).max() > 1e-4
    uniform = [np.full(tuple(p.shape), 1.0 / 3, "float32") for p in p_adv]
    assert _loss_at(model, x, y, p_adv) > _loss_at(model, x, y, uniform)


def test_adversarial_step_is_uphill_to_first_order():
    x, y = _data()
    model = _mk_model(copy_initialization="independent")
    small = AdversarialMK(model, epsilon=1e-2, adversarial_only=True)
    small.compile(keras.optimizers.SGD(0.1), LOSS)
    p_adv = small.adversarial_probabilities(x, y)
    uniform = [np.full(tuple(p.shape), 1.0 / 3, "float32") for p in p_adv]
    base = _loss_at(model, x, y, uniform)
    # Halfway along the same direction the loss is in between.
    half = [0.5 * (_numpy(p) + q) for p, q in zip(p_adv, uniform)]
    assert base < _loss_at(model, x, y, half) < _loss_at(model, x, y, p_adv)


def test_fit_trains_and_d2_keeps_copies_apart():
    x, y = _data()
    results = {}
    for adversarial_only in (True, False):
        model = _mk_model()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            adversarial = AdversarialMK(
                model, epsilon=0.5, adversarial_only=adversarial_only
            )
        # D.1 on replicated copies warns that it cannot work.
        assert any("independent" in str(w.message) for w in caught) == (
            adversarial_only
        )
        adversarial.compile(keras.optimizers.Adam(0.02), LOSS)
        before = adversarial.evaluate(x, y, verbose=0)
        adversarial.fit(x, y, epochs=3, batch_size=32, verbose=0)
        assert adversarial.evaluate(x, y, verbose=0) < before
        results[adversarial_only] = copy_diversity(model)
    # Algorithm D.1 from replicated copies: the adversary sees equal copies,
    # answers with the uniform p and the copies never separate (the
    # collapse of Appendix D); D.2's random part separates them.
    assert all(v == 0.0 for v in results[True].values())
    assert all(v > 1e-3 for v in results[False].values())


def test_config_round_trip_and_validation():
    adversarial = AdversarialMK(
        _mk_model(), epsilon=0.25, adversarial_only=True
    )
    clone = AdversarialMK.from_config(adversarial.get_config())
    assert clone.epsilon == 0.25 and clone.adversarial_only
    assert len(clone.mk_layers) == 2
    with pytest.raises(ValueError, match="Received: epsilon=-1"):
        AdversarialMK(_mk_model(), epsilon=-1)
    with pytest.raises(ValueError, match="Received: step='big'"):
        AdversarialMK(_mk_model(), step="big")
    with pytest.raises(ValueError, match="probability_sharing='row'"):
        AdversarialMK(_mk_model(), probability_sharing="row")
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no MK layer"):
        AdversarialMK(plain)


def _trained_mk_model(x, y):
    """An MK model after a few epochs of plain MK training."""
    model = _mk_model()
    model.compile(keras.optimizers.Adam(0.02), LOSS)
    model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    return model


def test_default_epsilon_moves_p_and_raw_step_barely_does():
    x, y = _data()
    model = _trained_mk_model(x, y)
    default = AdversarialMK(model)
    default.compile(keras.optimizers.Adam(0.02), LOSS)
    stats = default.probability_statistics(x, y)
    # The scaled step moves p by about epsilon (RMS, before projection).
    assert 0.05 < stats["mean_abs_deviation"] < 0.34
    assert stats["mean_u"] > 0.02
    # The paper's raw step at the old default leaves p nearly uniform.
    raw = AdversarialMK(model, epsilon=0.1, step="raw")
    raw.compile(keras.optimizers.Adam(0.02), LOSS)
    raw_stats = raw.probability_statistics(x, y)
    assert raw_stats["mean_abs_deviation"] < 0.1 * stats["mean_abs_deviation"]


def test_unit_sharing_gives_one_p_per_output_unit_and_copy():
    x, y = _data()
    model = _trained_mk_model(x, y)
    adversarial = AdversarialMK(model, probability_sharing="unit")
    adversarial.compile(keras.optimizers.Adam(0.02), LOSS)
    p_adv = adversarial.adversarial_probabilities(x, y)
    assert [tuple(p.shape) for p in p_adv] == [(3, 1, 16), (3, 1, 3)]
    for p in p_adv:
        np.testing.assert_allclose(_numpy(p).sum(0), 1.0, atol=1e-5)
    assert adversarial.probability_statistics(x, y)["mean_abs_deviation"] > 0.05
    before = adversarial.evaluate(x, y, verbose=0)
    adversarial.fit(x, y, epochs=2, batch_size=32, verbose=0)
    assert adversarial.evaluate(x, y, verbose=0) < before
