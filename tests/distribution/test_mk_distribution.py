"""MK training under `keras.distribution` (JAX) and `tf.distribute` (TF).

Multi-device runs happen in a fresh process (`mk_distributed_run.py`): the
number of CPU devices is fixed before JAX or TensorFlow starts. Each run
trains the same MK model for 3 steps on one device and on N devices with the
same global batch; `docs/distribution.md` says replicas share `p`, so the
two must agree up to float32 reduction-order noise.
"""

import json
import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tiny_hub

import keras_mk

BACKEND = keras.backend.backend()
SCRIPT = os.path.join(os.path.dirname(__file__), "mk_distributed_run.py")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
# Same p on every replica: only the order of float32 reductions differs.
TOLERANCE = 1e-5


def run_distributed(mode):
    env = dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join(
        [ROOT] + [p for p in [env.get("PYTHONPATH")] if p]
    )
    proc = subprocess.run(
        [sys.executable, SCRIPT, mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


def assert_one_device_matches_many(result):
    # The p a replica draws is the one-device p (replicas share p).
    np.testing.assert_array_equal(result["p_multi"], result["p_single"])
    for single, multi in zip(
        result["single"]["weights"], result["multi"]["weights"]
    ):
        np.testing.assert_allclose(multi, single, atol=TOLERANCE, rtol=0)
    np.testing.assert_allclose(
        result["multi"]["loss"], result["single"]["loss"], rtol=TOLERANCE
    )


@pytest.mark.skipif(BACKEND != "jax", reason="keras.distribution is JAX-only")
def test_data_parallel_on_8_devices_matches_one_device():
    result = run_distributed("data_parallel")
    assert result["replicas"] == 8
    assert_one_device_matches_many(result)


@pytest.mark.skipif(BACKEND != "jax", reason="keras.distribution is JAX-only")
def test_model_parallel_with_derived_layout_map():
    result = run_distributed("model_parallel")
    specs = result["specs"]
    for path, spec in specs.items():
        source = keras_mk.distribution.copy_source_path(path)
        if source is not None:
            assert spec == specs[source], path
    # JAX writes the spec as "P(...)" or, before 0.5, "PartitionSpec(...)".
    assert specs["mk_dense/kernel_copy_2"].endswith("(None, 'model')")
    assert_one_device_matches_many(result)


@pytest.mark.skipif(
    BACKEND != "tensorflow", reason="tf.distribute needs TensorFlow"
)
def test_mirrored_strategy_on_2_cpus_matches_one_device():
    result = run_distributed("mirrored")
    assert result["replicas"] == 2
    assert_one_device_matches_many(result)


# -- mk_layout_map (no devices needed) ----------------------------------------


def _plain_map():
    layout_map = keras.distribution.LayoutMap(None)
    layout_map["token_embedding/embeddings"] = ("model", None)
    layout_map[".*attention.*(query|key|value).kernel"] = ("model", None, None)
    layout_map[".*dense.*kernel"] = (None, "model")
    return layout_map


def _axes(layout):
    return None if layout is None else tuple(layout.axes)


def test_copies_are_laid_out_like_their_kernel():
    plain = _plain_map()
    derived = keras_mk.mk_layout_map(plain)
    for kernel in (
        "token_embedding/embeddings",
        "block_0/attention/query/kernel",
        "block_0/ffw_dense/kernel",
    ):
        expected = _axes(plain[kernel])
        assert _axes(derived[kernel]) == expected
        for k in (1, 2, 11):
            assert _axes(derived[f"{kernel}_copy_{k}"]) == expected
    # The plain map silently misses the copies: the reason for the helper.
    assert plain["block_0/ffw_dense/kernel_copy_1"] is None
    assert derived["block_0/ffw_dense/bias"] is None


def test_lora_factor_copies_are_laid_out_like_their_factor():
    plain = keras.distribution.LayoutMap(None)
    plain[".*query/lora_kernel_a"] = (None, None, "model")
    plain[".*query/lora_kernel_b"] = ("model", None)
    derived = keras_mk.mk_layout_map(plain)
    for factor in ("lora_kernel_a", "lora_kernel_b"):
        path = f"block_0/attention/query/{factor}"
        expected = _axes(plain[path])
        assert expected is not None
        for k in (1, 2):
            assert _axes(derived[f"{path}_copy_{k}"]) == expected
        assert plain[f"{path}_copy_1"] is None


def test_a_loose_rule_does_not_match_a_copy_twice():
    plain = keras.distribution.LayoutMap(None)
    plain[".*kernel.*"] = (None, "model")
    derived = keras_mk.mk_layout_map(plain)
    # Both derived rules could match a copy; only one does.
    assert _axes(derived["dense/kernel_copy_1"]) == (None, "model")
    assert _axes(derived["dense/kernel"]) == (None, "model")


def test_model_check_warns_about_rules_matching_nothing():
    inputs = keras.Input((4,))
    outputs = keras_mk.MKDense(2, expansion=2, name="dense")(inputs)
    model = keras.Model(inputs, outputs)
    plain = keras.distribution.LayoutMap(None)
    plain["dense/kernel"] = (None, "model")
    plain["no_such_layer/kernel"] = (None, "model")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        derived = keras_mk.mk_layout_map(plain, model=model)
    assert any("no_such_layer" in str(w.message) for w in caught)
    assert _axes(derived["dense/kernel_copy_1"]) == (None, "model")


def test_rejects_something_else_than_a_layout_map():
    with pytest.raises(TypeError, match="LayoutMap"):
        keras_mk.mk_layout_map({"dense/kernel": (None, "model")})


@pytest.mark.skipif(BACKEND != "jax", reason="keras.distribution is JAX-only")
def test_layout_map_derived_from_keras_hub_get_layout_map():
    """KerasHub's own layout rules, for a small Gemma built from config:
    the plain rules miss the copies silently, the derived ones lay every
    copy out like its kernel and leave no rule unmatched."""
    import keras_hub

    from keras_mk.distribution import copy_source_path

    devices = keras.distribution.list_devices()[:1]
    mesh = keras.distribution.DeviceMesh(
        (1, 1), ["batch", "model"], devices=devices
    )
    plain_map = keras_hub.models.GemmaBackbone.get_layout_map(mesh)
    gemma = tiny_hub.gemma_backbone(keras_hub, 64, layers=2, width=16)
    mk = keras_mk.clone_model(gemma, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a rule matching nothing warns
        derived = keras_mk.mk_layout_map(plain_map, model=mk)
    copies = [v.path for v in mk.variables if copy_source_path(v.path)]
    # 2 blocks x (query, key, value, attention_output, ffw_gating,
    # ffw_gating_2, ffw_linear) x 2 extra copies.
    assert len(copies) == 2 * 7 * 2

    def axes(layout_map, path):
        layout = layout_map[path]
        return None if layout is None else tuple(layout.axes)

    for path in copies:
        kernel = copy_source_path(path)
        assert axes(derived, kernel) is not None
        assert axes(derived, path) == axes(derived, kernel)
        assert axes(derived, kernel) == axes(plain_map, kernel)
        assert axes(plain_map, path) != axes(plain_map, kernel)
