import keras
import numpy as np
import pytest
from keras import ops

from keras_mk.baselines import Ensemble
from keras_mk.baselines import baseline_schedule
from keras_mk.baselines import distillation_baseline
from keras_mk.baselines import greedy_soup
from keras_mk.baselines import uniform_soup

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def _data(n=192, d=10, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    y = (x[:, :classes] @ rng.normal(size=(classes, classes))).argmax(-1)
    return x, y


def _mlp(seed, hidden=12):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((10,)),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(3),
        ]
    )


def _loss(model, x, y):
    return float(_numpy(LOSS(y, model(x))))


def _trained_members(x, y, k=3):
    members = []
    for seed in range(k):
        member = _mlp(seed)
        member.compile(keras.optimizers.Adam(0.02), LOSS)
        member.fit(x, y, epochs=3, batch_size=32, verbose=0)
        members.append(member)
    return members


def test_ensemble_averages_members_and_saves(tmp_path):
    x, y = _data()
    untrained = Ensemble([_mlp(s) for s in range(3)])
    members = _trained_members(x, y)
    ensemble = Ensemble(members, name="ensemble")
    out = _numpy(ensemble(x[:7]))
    assert out.shape == (7, 3)
    mean = np.mean([_numpy(m(x[:7])) for m in members], axis=0)
    np.testing.assert_allclose(out, mean, atol=1e-6)
    # Training improved it; the cross-entropy is convex in the logits, so
    # the ensemble is no worse than its average member (Jensen).
    assert _loss(ensemble, x, y) < _loss(untrained, x, y)
    assert _loss(ensemble, x, y) <= np.mean([_loss(m, x, y) for m in members])

    path = str(tmp_path / "ensemble.keras")
    ensemble.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, Ensemble) and len(restored.members) == 3
    np.testing.assert_allclose(_numpy(restored(x[:7])), out, atol=1e-6)

    probabilities = Ensemble(members, activation="softmax")
    np.testing.assert_allclose(
        _numpy(probabilities(x[:7])).sum(-1), 1.0, rtol=1e-6
    )
    with pytest.raises(ValueError, match="Received: models=\\[\\]"):
        Ensemble([])


def test_distilled_baseline_trains_the_student(tmp_path):
    x, y = _data()
    teacher = Ensemble(_trained_members(x, y, k=2))
    student = _mlp(7, hidden=6)
    distiller = distillation_baseline(teacher, student, temperature=2.0)
    assert isinstance(distiller, keras.distillation.Distiller)
    distiller.compile(keras.optimizers.Adam(0.02), LOSS)
    before = _loss(student, x, y)
    teacher_before = _numpy(teacher(x[:5]))
    history = distiller.fit(x, y, epochs=3, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert _loss(distiller.student, x, y) < before
    # The teacher is frozen.
    np.testing.assert_allclose(_numpy(teacher(x[:5])), teacher_before)
    assert _numpy(distiller(x[:4])).shape == (4, 3)
    path = str(tmp_path / "student.keras")
    distiller.student.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(
        _numpy(restored(x[:4])), _numpy(student(x[:4])), atol=1e-6
    )
    with pytest.raises(ValueError, match="Received: temperature=0"):
        distillation_baseline(teacher, student, temperature=0)


def test_soups_from_fine_tuned_copies(tmp_path):
    x_all, y_all = _data(n=288)
    x, y, x_val, y_val = x_all[:192], y_all[:192], x_all[192:], y_all[192:]
    pretrained = _mlp(0)
    pretrained.compile(keras.optimizers.Adam(0.02), LOSS)
    pretrained.fit(x[:64], y[:64], epochs=1, batch_size=32, verbose=0)
    ingredients = []
    for seed in range(3):
        model = keras.models.clone_model(pretrained)
        model.set_weights(pretrained.get_weights())
        model.compile(keras.optimizers.Adam(0.01), LOSS)
        keras.utils.set_random_seed(seed)
        model.fit(x, y, epochs=2, batch_size=32, verbose=0)
        ingredients.append(model)

    soup = uniform_soup(ingredients)
    weights = [m.get_weights() for m in ingredients]
    for w, *ws in zip(soup.get_weights(), *weights):
        np.testing.assert_allclose(w, np.mean(ws, axis=0), atol=1e-6)
    assert _loss(soup, x_val, y_val) < _loss(pretrained, x_val, y_val)

    def score(model):
        return -_loss(model, x_val, y_val)

    greedy, used = greedy_soup(ingredients, score)
    best = max(score(m) for m in ingredients)
    assert score(greedy) >= best - 1e-6
    assert used[0] == int(np.argmax([score(m) for m in ingredients]))
    assert [w.shape for w in greedy.get_weights()] == [
        w.shape for w in pretrained.get_weights()
    ]
    path = str(tmp_path / "soup.keras")
    greedy.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(
        _numpy(restored(x_val[:4])), _numpy(greedy(x_val[:4])), atol=1e-6
    )
    with pytest.raises(ValueError, match="same weights"):
        uniform_soup([pretrained, _mlp(0, hidden=5)])


def test_baseline_schedules():
    schedule, epochs = baseline_schedule(0.1, 10, epochs=9)
    assert epochs == 9
    values = [float(_numpy(schedule(step))) for step in (0, 29, 31, 61, 89)]
    np.testing.assert_allclose(values, [0.1, 0.1, 0.01, 0.001, 0.001])
    schedule, epochs = baseline_schedule(0.1, 10, epochs=9, long=True)
    assert epochs == 33
    # Drops at 90/330, 180/330 and 240/330 of the 330 training steps.
    values = [float(_numpy(schedule(step))) for step in (89, 91, 181, 241)]
    np.testing.assert_allclose(values, [0.1, 0.01, 0.001, 0.0001], rtol=1e-6)
    with pytest.raises(ValueError, match="Received: epochs=0"):
        baseline_schedule(0.1, 10, epochs=0)
