"""MK on the LoRA adapters of KerasHub causal LMs, from local presets.

The path a KerasHub user takes: `backbone.enable_lora(rank)`, convert,
`fit` on raw strings, `generate`, collapse, then ship the adapters
(`save_lora_weights`) or the merged model (`save_to_preset`, `save`).
"""

import hub_tasks
import keras
import numpy as np
import pytest

import keras_mk

keras_hub = pytest.importorskip("keras_hub")
BACKEND = keras.backend.backend()
RANK = 4
# One backend a model in CI (`--all-families` runs each on every backend).
FAMILY_BACKEND = {"gpt2_causal_lm": "jax", "gemma_causal_lm": "torch"}


def _numpy(tree):
    return keras.tree.map_structure(keras.ops.convert_to_numpy, tree)


def _features(task):
    x, _ = hub_tasks.raw_inputs("gpt2_causal_lm")
    features = task.preprocessor(x.tolist())
    return features[0] if isinstance(features, tuple) else features


def _logits(model, features):
    return _numpy(model(features))


def _generated(task):
    task.compile(sampler="greedy")
    text = task.generate(hub_tasks.prompts("gpt2_causal_lm"), max_length=8)
    return [str(s) for s in np.asarray(text).ravel()]


def _lora_task(name, directory):
    task = hub_tasks.from_local_preset(name, directory)
    task.backbone.enable_lora(RANK)
    # KerasHub's adapter file holds the factors alone: the LoRA layers'
    # biases (trainable after `enable_lora`) are frozen, as its users must
    # for that file to be the whole fine-tuning (docs/lora.md).
    for layer in task.backbone._flatten_layers(include_self=False):
        if getattr(layer, "lora_enabled", False) and layer.bias is not None:
            layer.bias.trainable = False
    # `b` off zero, so that the adapters change the outputs.
    rng = np.random.default_rng(0)
    for variable in task.backbone.variables:
        if "lora_kernel_b" in variable.path:
            shape = tuple(variable.shape)
            variable.assign(rng.normal(size=shape).astype("float32") * 0.1)
    return task


def _state(model):
    return [
        (layer.path, layer.trainable, getattr(layer, "lora_enabled", False))
        for layer in model.backbone._flatten_layers(include_self=False)
    ]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FAMILY_BACKEND))
def test_lora_task_converts_trains_generates_and_ships(name, tmp_path, request):
    every = request.config.getoption("--all-families")
    if FAMILY_BACKEND[name] != BACKEND and not every:
        pytest.skip(f"runs on {FAMILY_BACKEND[name]} (one backend a model)")
    task = _lora_task(name, tmp_path / "preset")
    mk = keras_mk.clone_model(task, seed=0)
    features = _features(task)

    # Only the adapters are simulated; KerasHub's LoRA state is kept.
    simulated = {
        path.rsplit("/", 1)[-1]
        for path, layer in keras_mk.conversion.class_map.mk_layers_of(mk)
    }
    assert simulated == {
        layer.name
        for layer in task.backbone._flatten_layers()
        if getattr(layer, "lora_enabled", False)
    }
    assert mk.backbone._lora_enabled_layers == (
        task.backbone._lora_enabled_layers
    )
    assert mk.backbone._lora_rank == RANK
    assert _state(mk) == _state(task)
    adapters = sum(
        int(np.prod(v.shape))
        for v in task.trainable_variables
        if "lora" in v.path
    )
    mk_adapters = sum(
        int(np.prod(v.shape))
        for v in mk.trainable_variables
        if "lora" in v.path
    )
    assert mk_adapters == 3 * adapters
    np.testing.assert_array_equal(
        _logits(mk, features), _logits(task, features)
    )
    assert _generated(mk) == _generated(task)

    # Train on raw strings, through the task's own preprocessor.
    x, _ = hub_tasks.raw_inputs(name)
    mk.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = mk.fit(x, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])

    small = keras_mk.collapse(mk)
    np.testing.assert_array_equal(
        _logits(small, features), _logits(mk, features)
    )
    assert _state(small) == _state(task)
    assert small.backbone._lora_enabled_layers == (
        task.backbone._lora_enabled_layers
    )
    assert _generated(small) == _generated(mk)

    # The training state round-trips through `keras_mk.save_model`.
    path = str(tmp_path / "mk.keras")
    keras_mk.save_model(mk, path)
    restored = keras_mk.load_model(path, compile=False)
    np.testing.assert_array_equal(
        _logits(restored, features), _logits(mk, features)
    )
    assert _state(restored) == _state(mk)

    # Ship the adapters: KerasHub's file, into a fresh plain backbone.
    adapters_file = str(tmp_path / "adapters.lora.h5")
    small.backbone.save_lora_weights(adapters_file)
    fresh = hub_tasks.load(name, tmp_path / "preset")
    fresh.backbone.enable_lora(RANK)
    fresh.backbone.load_lora_weights(adapters_file)
    np.testing.assert_array_equal(
        _logits(fresh, features), _logits(small, features)
    )

    # Ship the merged model: a preset with no trace of keras_mk.
    preset = tmp_path / "merged"
    small.save_to_preset(str(preset))
    for config in preset.glob("*.json"):
        assert "keras_mk" not in config.read_text(), config.name
    merged = hub_tasks.load(name, preset)
    np.testing.assert_allclose(
        _logits(merged, features),
        _logits(small, features),
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.slow
def test_enabling_lora_on_the_converted_backbone_keeps_every_output(tmp_path):
    name = "gpt2_causal_lm"
    if FAMILY_BACKEND[name] != BACKEND:
        pytest.skip(f"runs on {FAMILY_BACKEND[name]}")
    task = hub_tasks.from_local_preset(name, tmp_path / "preset")
    features = _features(task)
    mk = keras_mk.clone_model(task, seed=0)
    mk.backbone.enable_lora(RANK)
    np.testing.assert_array_equal(
        _logits(mk, features), _logits(task, features)
    )
    targets = set(mk.backbone.default_lora_layer_names())
    for _, layer in keras_mk.conversion.class_map.mk_layers_of(mk):
        if layer.name in targets:
            assert layer.lora_enabled and layer.trainable
            assert "kernel" not in layer.weight_copies
        else:  # frozen by KerasHub, its copies kept
            assert not layer.trainable
    small = keras_mk.collapse(mk)
    np.testing.assert_array_equal(
        _logits(small, features), _logits(mk, features)
    )
