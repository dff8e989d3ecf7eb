import itertools
import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_mk.baselines import SubsetDense
from keras_mk.baselines import greedy_subset
from keras_mk.baselines import subset_to_dense


def _numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def _reference_graph(rows, t):
    """Eq. F.9's utilities and edge weights, written out with loops."""
    n = len(rows)
    norms = [math.sqrt(sum(v * v for v in row)) for row in rows]
    s = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            dot = sum(a * b for a, b in zip(rows[i], rows[j]))
            s[i][j] = dot / (norms[i] * norms[j])
    edges = set()
    for i in range(n):
        others = sorted((j for j in range(n) if j != i), key=lambda j: -s[i][j])
        for j in others[:t]:
            edges.add(frozenset((i, j)))
    w = {edge: max(s[min(edge)][max(edge)], 0.0) for edge in edges}
    c = max(
        sum(w.get(frozenset((i, j)), 0.0) for j in range(n) if j != i)
        for i in range(n)
    )
    utility = [norm + c for norm in norms]
    return utility, w


def _objective(subset, utility, w, alpha=1.0, beta=1.0):
    total = alpha * sum(utility[i] for i in subset)
    for i, j in itertools.combinations(sorted(subset), 2):
        total -= beta * w.get(frozenset((i, j)), 0.0)
    return total


def _reference_greedy(rows, m, t, alpha=1.0, beta=1.0):
    utility, w = _reference_graph(rows, t)
    chosen = []
    for _ in range(m):
        base = _objective(chosen, utility, w, alpha, beta)
        gains = {
            i: _objective(chosen + [i], utility, w, alpha, beta) - base
            for i in range(len(rows))
            if i not in chosen
        }
        best = max(gains.values())
        chosen.append(min(i for i, g in gains.items() if g >= best - 1e-12))
    return sorted(chosen)


@pytest.mark.parametrize("seed", range(4))
def test_greedy_equals_reference_greedy(seed):
    rng = np.random.default_rng(seed)
    n, d, m, t = 15, 6, 5, 3
    rows = rng.normal(size=(n, d)) * rng.uniform(0.2, 2.0, size=(n, 1))
    expected = _reference_greedy(rows.tolist(), m, t, alpha=1.0, beta=0.7)
    got = _numpy(greedy_subset(rows.astype("float32"), m, t, beta=0.7))
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("seed", range(3))
def test_greedy_within_one_minus_one_over_e_of_optimum(seed):
    rng = np.random.default_rng(10 + seed)
    n, d, m, t = 10, 4, 4, 10
    # Clustered rows: similar neurons that the objective should spread out.
    centers = rng.normal(size=(3, d))
    rows = centers[rng.integers(0, 3, n)] + 0.3 * rng.normal(size=(n, d))
    utility, w = _reference_graph(rows.tolist(), t)
    optimum = max(
        _objective(list(s), utility, w)
        for s in itertools.combinations(range(n), m)
    )
    greedy = _numpy(greedy_subset(rows.astype("float32"), m, t))
    value = _objective(greedy.tolist(), utility, w)
    assert len(set(greedy.tolist())) == m
    assert (1 - 1 / math.e) * optimum <= value <= optimum + 1e-6


def test_subset_dense_trains_and_collapses_to_plain_shapes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 10)).astype("float32")
    y = (x[:, :3] @ rng.normal(size=(3, 3))).argmax(-1)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((10,)),
            SubsetDense(8, expansion=3, activation="relu"),
            SubsetDense(
                6,
                expansion=2,
                input_expansion=3,
                neighbours=4,
                activation="relu",
            ),
            keras.layers.Dense(3),
        ]
    )
    assert tuple(model.layers[0].kernel.shape) == (10, 24)
    assert tuple(model.layers[1].kernel.shape) == (24, 12)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(keras.optimizers.Adam(0.02), loss)
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    assert model.evaluate(x, y, verbose=0) < before

    plain = subset_to_dense(model)
    assert [type(layer) for layer in plain.layers] == [keras.layers.Dense] * 3
    shapes = [tuple(w.shape) for w in plain.weights]
    assert shapes == [(10, 8), (8,), (8, 6), (6,), (6, 3), (3,)]
    # With the final selection stored, the subset model is the plain model.
    for layer in model.layers[:2]:
        layer.selected.assign(layer.select())
    np.testing.assert_allclose(
        _numpy(plain(x[:16])), _numpy(model(x[:16])), atol=1e-5
    )


def test_subset_dense_selects_distinct_neurons_and_saves(tmp_path):
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [keras.Input((5,)), SubsetDense(4, expansion=3, name="subset")]
    )
    layer = model.layers[0]
    selected = _numpy(layer.selected)
    assert len(set(selected.tolist())) == 4
    assert np.all(np.diff(selected) > 0) and selected.max() < 12
    path = str(tmp_path / "subset.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    x = np.ones((2, 5), "float32")
    np.testing.assert_allclose(_numpy(restored(x)), _numpy(model(x)))
    assert restored.layers[0].get_config() == layer.get_config()
    with pytest.raises(ValueError, match="Received: units=0"):
        SubsetDense(0)


def _two_layer_subset_net(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((7,)),
            SubsetDense(5, expansion=3, activation="relu", name="hidden"),
            keras.layers.Dense(4, name="logits"),
        ]
    )


def test_two_layer_subset_net_equals_plain_net_of_selected_rows_and_columns():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 7)).astype("float32")
    y = rng.integers(0, 4, size=64)
    model = _two_layer_subset_net()
    assert tuple(model.layers[1].kernel.shape) == (15, 4)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(keras.optimizers.SGD(0.1), loss)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    hidden, logits = model.layers
    selected = _numpy(hidden.selected)
    # The plain network made of the selected columns of the first kernel and
    # the matching rows of the second, written out in NumPy.
    k1, b1 = _numpy(hidden.kernel), _numpy(hidden.bias)
    k2, b2 = _numpy(logits.kernel), _numpy(logits.bias)
    h = np.maximum(x @ k1[:, selected] + b1[selected], 0.0)
    expected = h @ k2[selected] + b2
    np.testing.assert_allclose(_numpy(model(x)), expected, atol=1e-5)
    # A training call with the same weights selects the same neurons, so
    # training evaluates the same network.
    np.testing.assert_allclose(
        _numpy(model(x, training=True)), expected, atol=1e-5
    )
    hidden.selected.assign(hidden.select())
    plain = subset_to_dense(model)
    assert [tuple(w.shape) for w in plain.weights] == [
        (7, 5),
        (5,),
        (5, 4),
        (4,),
    ]
    np.testing.assert_allclose(_numpy(plain(x)), _numpy(model(x)), atol=1e-5)


def test_unselected_neurons_and_their_next_layer_rows_get_no_gradient():
    x = np.random.default_rng(1).normal(size=(32, 7)).astype("float32")
    y = np.zeros(32, "int32")
    model = _two_layer_subset_net(seed=3)
    hidden, logits = model.layers
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(keras.optimizers.SGD(0.5), loss)
    before = [_numpy(hidden.kernel), _numpy(logits.kernel)]
    # The selection at build time is the one the first training step makes.
    selected = _numpy(hidden.select())
    model.train_on_batch(x, y)
    others = np.setdiff1d(np.arange(15), selected)
    np.testing.assert_array_equal(
        _numpy(hidden.kernel)[:, others], before[0][:, others]
    )
    np.testing.assert_array_equal(
        _numpy(logits.kernel)[others], before[1][others]
    )
    assert not np.allclose(_numpy(logits.kernel)[selected], before[1][selected])


@pytest.mark.parametrize("initializer", ["glorot_uniform", "seeded"])
def test_candidate_blocks_differ_at_initialization(initializer):
    if initializer == "seeded":
        initializer = keras.initializers.GlorotUniform(seed=5)
    layer = SubsetDense(
        4, expansion=3, input_expansion=2, kernel_initializer=initializer
    )
    layer.build((None, 6))
    kernel = _numpy(layer.kernel)
    blocks = [
        kernel[r * 3 : (r + 1) * 3, k * 4 : (k + 1) * 4]
        for r in range(2)
        for k in range(3)
    ]
    for a, b in itertools.combinations(blocks, 2):
        assert not np.allclose(a, b)
    # Each block is drawn on the kept layer's shape: Glorot's limit for
    # fan_in = 6 / 2 = 3 and fan_out = 4.
    assert np.abs(kernel).max() <= math.sqrt(6 / (3 + 4)) + 1e-6
    with pytest.raises(ValueError, match="input_expansion=4"):
        SubsetDense(4, input_expansion=4).build((None, 6))
