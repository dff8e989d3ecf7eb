"""KerasHub tasks keep their preprocessors through conversion.

A task loaded from a local preset (`save_to_preset`, `from_preset`) with
its preprocessor: WordPiece, byte-pair and SentencePiece tokenizers, whose
vocabularies, merges and protos are assets, not config, and an image
converter. The cheap checks run for every task on every backend; the whole
user path (fit on raw inputs, generate, preset of the collapsed model read
in a fresh process without keras_mk, `keras_mk.save_model` round trip) runs
for each family on one backend, where it costs least.
"""

import json
import os
import subprocess
import sys
import warnings

import hub_tasks
import keras
import numpy as np
import pytest

import keras_mk
from keras_mk.conversion import class_map

keras_hub = pytest.importorskip("keras_hub")
BACKEND = keras.backend.backend()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def _numpy(tree):
    return keras.tree.map_structure(keras.ops.convert_to_numpy, tree)


def outputs(task, name):
    """What the task's preprocessor makes of raw inputs, and the outputs.

    Called eagerly (`predict` on raw strings traces the byte-pair tokenizer
    into a `tf.data` pipeline: ~10 s a call). A masked LM's preprocessor
    masks at random: its tokenizer's output and the model on one fixed
    preprocessed batch are compared instead.
    """
    x, _ = hub_tasks.raw_inputs(name)
    if name == "masked_lm":
        features = hub_tasks.masked_lm_features()
        return _numpy(task.preprocessor.tokenizer(x)), _numpy(task(features))
    features = task.preprocessor(_string_lists(x))
    if isinstance(features, tuple):
        features = features[0]  # (x, y, sample_weight) of an LM
    return _numpy(features), _numpy(task(features))


def _string_lists(x):
    """NumPy string arrays as lists: KerasHub's byte-pair tokenizers take
    strings or lists of them (from 0.32, also inside a dict)."""
    if isinstance(x, dict):
        return {key: _string_lists(value) for key, value in x.items()}
    if isinstance(x, np.ndarray) and x.dtype.kind == "U":
        return x.tolist()
    return x


def assert_equal(a, b):
    keras.tree.map_structure(np.testing.assert_array_equal, a, b)


def assert_close(a, b):
    # The mean of `e` equal copies can differ from the kernel in its last
    # bit; collapse == MK inference is exact (`assert_equal`).
    keras.tree.map_structure(
        lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6),
        a,
        b,
    )


def tokenizer_state(task):
    """What a tokenizer keeps as assets, comparable across copies."""
    tokenizer = getattr(task.preprocessor, "tokenizer", None)
    if tokenizer is None:
        return None
    return tokenizer.get_vocabulary()


@pytest.mark.parametrize("name", sorted(hub_tasks.TASKS))
def test_converted_and_collapsed_task_keep_their_preprocessor(name, tmp_path):
    task = hub_tasks.from_local_preset(name, tmp_path / "preset")
    expected = outputs(task, name)

    mk = keras_mk.clone_model(task, seed=0)
    assert tokenizer_state(mk) == tokenizer_state(task)
    assert_close(outputs(mk, name), expected)

    small = keras_mk.collapse(mk)
    assert tokenizer_state(small) == tokenizer_state(task)
    assert_equal(outputs(small, name), outputs(mk, name))


def test_converted_task_shares_the_preprocessor_its_config_cannot_record(
    tmp_path,
):
    task = hub_tasks.from_local_preset("bart_seq2seq_lm", tmp_path / "p")
    assert task.preprocessor.encoder_sequence_length == 8  # not in config
    mk = keras_mk.clone_model(task, seed=0)
    assert mk.preprocessor is task.preprocessor
    assert keras_mk.collapse(mk).preprocessor is task.preprocessor
    # The original is untouched: its backbone is not the copy's.
    assert mk.backbone is not task.backbone
    assert not class_map.mk_layers_of(task)


def test_clone_function_route_warns_that_the_task_loses_its_preprocessor(
    tmp_path,
):
    task = hub_tasks.from_local_preset("text_classifier", tmp_path / "p")
    with pytest.warns(UserWarning, match="keras_mk.clone_model"):
        clone = keras.models.clone_model(
            task, clone_function=keras_mk.clone_function(seed=0)
        )
    assert not hasattr(clone, "preprocessor")
    # A plain Sequential or Functional model gets no such warning.
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        keras.models.clone_model(model, clone_function=keras_mk.clone_function)


# Each family's whole path on one backend (20-220 s a family, see
# docs/coverage.md), spread so that the suites CI runs side by side stay
# balanced: TensorFlow's suite is shorter than JAX's, which runs beside it.
FAMILY_BACKEND = {
    "text_classifier": "tensorflow",
    "masked_lm": "tensorflow",
    "gpt2_causal_lm": "tensorflow",
    "gemma_causal_lm": "tensorflow",
    "bart_seq2seq_lm": "torch",
    "image_classifier": "jax",
}

FRESH_SCRIPT = """
import json, sys
import keras, keras_hub, numpy as np
sys.path[:0] = sys.argv[3:]  # hub_tasks and the tiny builders it uses
import hub_tasks
name, preset = sys.argv[1], sys.argv[2]
task = hub_tasks.load(name, preset)
x, _ = hub_tasks.raw_inputs(name)
report = {"class": type(task).__name__}
if name in hub_tasks.GENERATES:
    report["generated"] = [str(s) for s in np.asarray(
        task.generate(hub_tasks.prompts(name), max_length=8)).ravel()]
if name == "masked_lm":
    report["outputs"] = keras.ops.convert_to_numpy(
        task(hub_tasks.masked_lm_features())).tolist()
else:
    report["outputs"] = np.asarray(task.predict(x, verbose=0)).tolist()
report["keras_mk_modules"] = sorted(
    m for m in sys.modules if m.split(".")[0] == "keras_mk")
print(json.dumps(report))
"""


def _generated(task, name):
    text = task.generate(hub_tasks.prompts(name), max_length=8)
    return [str(s) for s in np.asarray(text).ravel()]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FAMILY_BACKEND))
def test_keras_hub_task_trains_generates_and_ships_as_a_preset(
    name, tmp_path, request
):
    every = request.config.getoption("--all-families")
    if FAMILY_BACKEND[name] != BACKEND and not every:
        pytest.skip(f"runs on {FAMILY_BACKEND[name]} (one backend a family)")
    task = hub_tasks.from_local_preset(name, tmp_path / "preset")
    mk = keras_mk.clone_model(task, seed=0)
    if name in hub_tasks.GENERATES:
        # Right after conversion MK generates what the original does.
        mk.compile(sampler="greedy")
        assert _generated(mk, name) == _generated(task, name)

    # Train on raw inputs, through the task's own preprocessor.
    x, y = hub_tasks.raw_inputs(name)
    mk.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = mk.fit(x, y, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])

    small = keras_mk.collapse(mk)
    assert_equal(outputs(small, name), outputs(mk, name))
    predicted = None
    if name != "masked_lm":  # its preprocessor masks at random
        predicted = _numpy(small.predict(x, verbose=0))
        assert_equal(_numpy(mk.predict(x, verbose=0)), predicted)
    if name in hub_tasks.GENERATES:
        # The MK model generates with its mean kernels: the collapsed model.
        mk.compile(sampler="greedy")
        small.compile(sampler="greedy")
        assert _generated(small, name) == _generated(mk, name)

    # The training state round-trips through `keras_mk.save_model`.
    path = str(tmp_path / "mk.keras")
    keras_mk.save_model(mk, path)
    restored = keras_mk.load_model(path, compile=False)
    assert type(restored) is type(mk)
    if name == "bart_seq2seq_lm":
        # KerasHub's config drops its sequence lengths, for any `.keras`
        # file: its users attach the preprocessor again (`hub_tasks.load`).
        restored.preprocessor = mk.preprocessor
    assert_equal(outputs(restored, name), outputs(mk, name))

    # The deployable model is a preset that loads without keras_mk.
    preset = tmp_path / "collapsed"
    small.save_to_preset(str(preset))
    for config in preset.glob("*.json"):
        assert "keras_mk" not in config.read_text(), config.name
    result = subprocess.run(
        [sys.executable, "-c", FRESH_SCRIPT, name, str(preset)]
        + [os.path.dirname(__file__), os.path.join(ROOT, "tests")],
        check=True,
        capture_output=True,
        text=True,
        env=dict(os.environ),
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["keras_mk_modules"] == []
    assert report["class"] == type(task).__name__
    if name in hub_tasks.GENERATES:
        assert report["generated"] == _generated(small, name)
    expected = predicted
    if name == "masked_lm":  # its outputs on one fixed preprocessed batch
        expected = outputs(small, name)[1]
    np.testing.assert_allclose(
        np.asarray(report["outputs"]), expected, rtol=1e-5, atol=1e-6
    )
