"""MK on LoRA adapters: conversion, training, collapse and saving.

A model whose layers have LoRA enabled converts with its adapters
simulated: each factor gets `expansion` copies, the kernel stays one frozen
variable, and the same contract holds as for kernels (outputs unchanged
right after conversion, collapse exact, resume equal to uninterrupted
training). Enabling LoRA on the MK model instead gives the same model.
"""

import keras
import models
import numpy as np
import pytest

import keras_mk
from keras_mk import _keras_private
from keras_mk import layers as mk_layers

numpy = models.numpy
E = 3
LORA_NAMES = ("emb", "conv", "einsum", "dense")
FACTORS = {"emb": "lora_embeddings_"}


def base_model():
    """A model with every kind of LoRA layer, and a plain head."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,), dtype="int32")
    x = keras.layers.Embedding(20, 8, name="emb")(inputs)
    x = keras.layers.Conv1D(8, 3, name="conv")(x)
    x = keras.layers.EinsumDense(
        "abc,cd->abd", (4, 8), bias_axes="d", name="einsum"
    )(x)
    x = keras.layers.Dense(8, activation="tanh", name="dense")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(3, name="head")(x)
    return keras.Model(inputs, outputs, name="lora_model")


def _factors(layer):
    prefix = "lora_embeddings_" if "emb" in layer.name else "lora_kernel_"
    return prefix + "a", prefix + "b"


def enable_lora(model, rank=2, alpha=3, nonzero=True):
    """LoRA on every layer but the head, the factors set from a fixed
    draw; `b` off zero, so that the adapters change the outputs (alpha !=
    rank: its scale is kept)."""
    rng = np.random.default_rng(1)
    for name in LORA_NAMES:
        layer = model.get_layer(name)
        layer.enable_lora(rank, lora_alpha=alpha)
        for factor in _factors(layer):
            if isinstance(layer, mk_layers.MKLayer):  # enabled after
                copies = layer.weight_copies[factor]
            else:
                copies = [getattr(layer, factor)]
            value = rng.normal(size=copies[0].shape).astype("float32") * 0.3
            if factor.endswith("b") and not nonzero:
                value = np.zeros_like(value)
            for copy in copies:
                copy.assign(value)
    return model


def lora_model():
    return enable_lora(base_model())


def ids(batch=5, seed=0):
    return np.random.default_rng(seed).integers(0, 20, (batch, 6))


def targets(batch=5, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, 3))


def test_lora_model_converts_its_adapters_with_outputs_unchanged():
    model = lora_model()
    mk = keras_mk.clone_model(model, expansion=E, seed=1)
    x = ids()
    models.assert_same_outputs(model, mk, x)
    for name in LORA_NAMES:
        layer, original = mk.get_layer(name), model.get_layer(name)
        assert isinstance(layer, mk_layers.MKLayer)
        assert layer.lora_enabled and layer.lora_rank == 2
        assert layer.lora_alpha == 3
        a, b = _factors(layer)
        assert [v.name for v in layer.weight_copies[a]] == [a] + [
            f"{a}_copy_{k}" for k in range(1, E)
        ]
        assert len(layer.weight_copies[b]) == E
        # The base: one frozen variable; the bias: as it was.
        base = "embeddings" if name == "emb" else "kernel"
        assert not any(v.name.startswith(f"{base}_copy") for v in layer.weights)
        assert base not in layer.weight_copies
        frozen = [v for v in layer.weights if v.name == base]
        assert len(frozen) == 1 and not frozen[0].trainable
        assert len(layer.weight_copies.get("bias", [])) <= 1
        assert type(original) is not type(layer)  # the original untouched
    # The default converts the adapters: the plain head stays plain.
    assert type(mk.get_layer("head")) is keras.layers.Dense


def test_trainable_parameters_are_e_times_the_adapters_plus_the_rest():
    model = lora_model()
    mk = keras_mk.clone_model(model, expansion=E, seed=1)

    def count(variables, factor):
        return sum(int(np.prod(v.shape)) for v in variables if factor(v))

    def is_adapter(v):
        return v.name.startswith("lora_")

    plain_adapters = count(model.trainable_variables, is_adapter)
    plain_rest = count(model.trainable_variables, lambda v: not is_adapter(v))
    assert count(mk.trainable_variables, is_adapter) == E * plain_adapters
    assert count(mk.trainable_variables, lambda v: not is_adapter(v)) == (
        plain_rest
    )


def test_training_moves_the_adapters_and_never_the_base():
    mk = keras_mk.clone_model(lora_model(), expansion=E, seed=1)
    frozen = [
        v for v in mk.variables if not v.trainable and "seed" not in v.path
    ]
    before = [np.array(numpy(v.value)) for v in frozen]
    adapters = [v for v in mk.trainable_variables if v.name.startswith("lora")]
    adapters_before = [np.array(numpy(v.value)) for v in adapters]
    mk.compile(keras.optimizers.Adam(0.05), "mse")
    mk.fit(ids(), targets(), epochs=3, verbose=0)
    for v, old in zip(frozen, before):
        np.testing.assert_array_equal(numpy(v.value), old)
    moved = [
        not np.array_equal(numpy(v.value), old)
        for v, old in zip(adapters, adapters_before)
    ]
    assert all(moved)
    # Each factor's copies moved apart: every step mixed them with its p.
    for name in LORA_NAMES:
        for factor in _factors(mk.get_layer(name)):
            copies = mk.get_layer(name).weight_copies[factor]
            assert not np.array_equal(numpy(copies[0]), numpy(copies[1]))


def _trained(mk, epochs=2):
    mk.compile(keras.optimizers.Adam(0.05), "mse")
    mk.fit(ids(), targets(), epochs=epochs, verbose=0)
    return mk


def test_collapse_gives_plain_lora_layers_holding_the_means_exactly():
    mk = _trained(keras_mk.clone_model(lora_model(), expansion=E, seed=1))
    small = keras_mk.collapse(mk)
    x = ids(seed=3)
    np.testing.assert_array_equal(numpy(small(x)), numpy(mk(x)))
    for name in LORA_NAMES:
        layer, source = small.get_layer(name), mk.get_layer(name)
        assert not isinstance(layer, mk_layers.MKLayer)
        assert layer.lora_enabled and layer.lora_rank == 2
        assert layer.lora_alpha == 3
        for factor in _factors(layer):
            copies = [numpy(v) for v in source.weight_copies[factor]]
            mean = keras_mk.sampling.exact_mean(copies)
            np.testing.assert_array_equal(
                numpy(getattr(layer, factor)), numpy(mean)
            )
        # The trainable flags of the LoRA layer, as Keras sets them.
        assert [v.name for v in layer.trainable_variables if "lora" in v.name]


def _same_lora_layers(first, later, x):
    """Asserts the two orders give the same outputs, weight names and
    trainable flags; returns the pairs of LoRA layers."""
    models.assert_same_outputs(first, later, x)
    pairs = [(first.get_layer(n), later.get_layer(n)) for n in LORA_NAMES]
    for a, b in pairs:
        assert [v.name for v in a.weights] == [v.name for v in b.weights]
        assert [v.trainable for v in a.weights] == [
            v.trainable for v in b.weights
        ]
    return pairs


def test_enabling_lora_after_conversion_gives_the_same_model():
    x = ids()
    first = keras_mk.clone_model(lora_model(), expansion=E, seed=1)
    # The other order: convert every layer LoRA will go on, then enable it.
    later = keras_mk.clone_model(
        base_model(),
        expansion=E,
        seed=1,
        layers="emb|conv|einsum|dense$",
        embeddings=True,
    )
    enable_lora(later)
    for a, b in _same_lora_layers(first, later, x):
        assert a.lora_alpha == b.lora_alpha == 3
    for model in (first, later):
        small = keras_mk.collapse(_trained(model))
        np.testing.assert_array_equal(numpy(small(x)), numpy(model(x)))


def test_enabling_lora_on_a_trained_mk_layer_freezes_the_mean_kernel():
    layer = mk_layers.MKDense(4, expansion=E, seed=0)
    layer.build((None, 5))
    layer.set_expanded_kernel(
        np.random.default_rng(0).normal(size=(E, 5, 4)).astype("float32")
    )
    x = np.random.default_rng(1).normal(size=(2, 5)).astype("float32")
    before = numpy(layer(x))
    layer.enable_lora(2)
    np.testing.assert_array_equal(numpy(layer(x)), before)
    np.testing.assert_array_equal(numpy(layer(x, training=True)), before)
    assert [v.name for v in layer.trainable_weights] == [
        "bias",
        "lora_kernel_a",
        "lora_kernel_b",
        "lora_kernel_a_copy_1",
        "lora_kernel_a_copy_2",
        "lora_kernel_b_copy_1",
        "lora_kernel_b_copy_2",
    ]


def test_mk_layers_take_lora_rank_like_the_keras_layers():
    layer = mk_layers.MKDense(
        4,
        lora_rank=2,
        lora_alpha=6,
        expansion=E,
        seed=0,
        copy_initialization="independent",
    )
    layer.build((None, 5))
    assert layer.lora_enabled and layer.lora_alpha == 6
    a = [numpy(v) for v in layer.weight_copies["lora_kernel_a"]]
    assert not np.array_equal(a[0], a[1])  # one draw per copy
    restored = mk_layers.MKDense.from_config(layer.get_config())
    restored.build((None, 5))
    assert restored.lora_rank == 2 and restored.lora_alpha == 6
    with pytest.raises(ValueError, match="Received: lora_rank=2"):
        mk_layers.MKDepthwiseConv2D(3, lora_rank=2)
    depthwise = mk_layers.MKDepthwiseConv2D(3)
    depthwise.build((None, 5, 5, 2))
    with pytest.raises(NotImplementedError, match="has no LoRA"):
        depthwise.enable_lora(2)


def test_fixed_probabilities_mix_each_factor():
    layer = mk_layers.MKDense(3, lora_rank=2, expansion=E, seed=0)
    layer.build((None, 4))
    rng = np.random.default_rng(0)
    for name in ("lora_kernel_a", "lora_kernel_b"):
        layer.weight_copies[name][1].assign(
            rng.normal(size=layer.weight_copies[name][0].shape)
        )
    p = {
        name: rng.dirichlet(np.ones(E), size=tuple(copies[0].shape))
        .transpose((2, 0, 1))
        .astype("float32")
        for name, copies in layer.weight_copies.items()
        if name.startswith("lora")
    }
    x = rng.normal(size=(2, 4)).astype("float32")
    y = layer(x, training=True, fixed_probabilities=p)

    def mix(name):
        copies = np.stack([numpy(v) for v in layer.weight_copies[name]])
        return (copies * p[name]).sum(axis=0)

    kernel = numpy(layer._kernel) + mix("lora_kernel_a") @ mix("lora_kernel_b")
    np.testing.assert_allclose(
        numpy(y), x @ kernel + numpy(layer.bias), rtol=1e-5, atol=1e-6
    )


def test_uniform_probabilities_are_plain_lora_at_lr_over_e():
    """Lemma B.2 for the adapters: uniform p is plain LoRA at lr / e."""
    lr = 0.2
    plain = lora_model()
    mk = keras_mk.clone_model(
        lora_model(), expansion=E, probabilities="uniform"
    )
    # The lemma is about the simulated weights: the rest stays put.
    for model in (plain, mk):
        for v in model.trainable_variables:
            if not v.name.startswith("lora"):
                v.trainable = False
    plain.compile(keras.optimizers.SGD(lr / E), "mse")
    mk.compile(keras.optimizers.SGD(lr), "mse")
    for model in (plain, mk):
        model.fit(ids(), targets(), epochs=4, shuffle=False, verbose=0)
    small = keras_mk.collapse(mk)
    for a, b in zip(plain.variables, small.variables):
        np.testing.assert_allclose(
            numpy(a.value), numpy(b.value), rtol=1e-4, atol=1e-5
        )


def test_save_load_and_resume_equal_uninterrupted_training(tmp_path):
    x, y = ids(8), targets(8)

    def fresh():
        mk = keras_mk.clone_model(lora_model(), expansion=E, seed=1)
        mk.compile(keras.optimizers.Adam(0.05), "mse")
        return mk

    uninterrupted = fresh()
    uninterrupted.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    interrupted = fresh()
    interrupted.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    path = tmp_path / "mk_lora.keras"
    keras_mk.save_model(interrupted, path)
    resumed = keras_mk.load_model(path)
    for name in LORA_NAMES:
        assert resumed.get_layer(name).lora_alpha == 3
    resumed.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    models.assert_same_variables(uninterrupted, resumed)
    np.testing.assert_array_equal(numpy(uninterrupted(x)), numpy(resumed(x)))


def test_mixed_precision_lora_keeps_outputs_and_trains():
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = lora_model()
        mk = keras_mk.clone_model(model, expansion=E, seed=1)
        models.assert_same_outputs(model, mk, ids())
        layer = mk.get_layer("dense")
        assert layer.weight_copies["lora_kernel_a"][1].dtype == "float32"
        _trained(mk, epochs=1)
        small = keras_mk.collapse(mk)
        np.testing.assert_array_equal(numpy(small(ids())), numpy(mk(ids())))
    finally:
        keras.config.set_dtype_policy("float32")


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_conv_layers_of_every_rank_convert_with_lora(rank):
    conv = {1: keras.layers.Conv1D, 2: keras.layers.Conv2D}.get(
        rank, keras.layers.Conv3D
    )
    inputs = keras.Input((5,) * rank + (2,))
    outputs = conv(4, 3, name="conv")(inputs)
    model = keras.Model(inputs, outputs)
    model.get_layer("conv").enable_lora(2)
    b = model.get_layer("conv").lora_kernel_b
    b.assign(np.ones(b.shape, "float32"))
    mk = keras_mk.clone_model(model, expansion=E, seed=0)
    x = np.random.default_rng(0).normal(size=(2,) + (5,) * rank + (2,))
    models.assert_same_outputs(model, mk, x.astype("float32"))
    small = keras_mk.collapse(_conv_trained(mk, x))
    np.testing.assert_array_equal(numpy(small(x)), numpy(mk(x)))


def _conv_trained(mk, x):
    mk.compile("adam", "mse")
    y = np.zeros(tuple(mk.outputs[0].shape[1:]), "float32")[None]
    mk.fit(x, np.repeat(y, len(x), axis=0), epochs=1, verbose=0)
    return mk


def test_clone_function_simulates_the_adapters_of_lora_layers():
    model = lora_model()
    mk = keras.models.clone_model(
        model, clone_function=keras_mk.clone_function(expansion=E, seed=1)
    )
    models.assert_same_outputs(model, mk, ids())
    layer = mk.get_layer("dense")
    assert layer.lora_enabled and layer.lora_alpha == 3
    assert len(layer.weight_copies["lora_kernel_a"]) == E
    assert "kernel" not in layer.weight_copies


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_lora_on_a_quantized_base_keeps_the_quantized_kernel(mode, tmp_path):
    model = base_model()
    model.quantize(mode)
    enable_lora(model)
    quantized = {
        name: {
            v.path: np.array(numpy(v))
            for v in model.get_layer(name).weights
            if not v.trainable
        }
        for name in ("emb", "einsum", "dense")
    }
    mk = keras_mk.clone_model(model, expansion=E, seed=1)
    x = ids()
    models.assert_same_outputs(model, mk, x)
    for name in quantized:
        layer = mk.get_layer(name)
        assert layer.quantization_mode == mode
        assert not any("_copy_" in v.name for v in layer.non_trainable_weights)
    _trained(mk)
    # The quantized kernels and scales did not move.
    for name, before in quantized.items():
        frozen = {v.path: v for v in mk.get_layer(name)._frozen_base()}
        assert set(frozen) == set(before)
        for path, value in before.items():
            np.testing.assert_array_equal(numpy(frozen[path]), value)
    small = keras_mk.collapse(mk)
    assert small.get_layer("dense").quantization_mode == mode
    np.testing.assert_array_equal(numpy(small(x)), numpy(mk(x)))
    keras_mk.save_model(mk, tmp_path / "mk.keras")
    restored = keras_mk.load_model(tmp_path / "mk.keras")
    np.testing.assert_array_equal(numpy(restored(x)), numpy(mk(x)))
    # The merged file: Keras requantizes the kernel with the adapter in.
    small.save(tmp_path / "merged.keras")
    merged = keras.saving.load_model(tmp_path / "merged.keras")
    scale = np.abs(numpy(small(x))).max()
    np.testing.assert_allclose(
        numpy(merged(x)), numpy(small(x)), atol=0.1 * scale
    )


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_on_a_quantized_base_enabling_lora_after_conversion_is_the_same(mode):
    x = ids()
    first = base_model()
    first.quantize(mode)
    first = keras_mk.clone_model(enable_lora(first), expansion=E, seed=1)
    quantized = base_model()
    quantized.quantize(mode)
    expected = numpy(quantized(x))
    # Converted before LoRA: a quantized kernel does not train, so its
    # layer simulates nothing yet, and says so.
    with pytest.warns(UserWarning, match="quantized.*simulate nothing"):
        later = keras_mk.clone_model(
            quantized,
            expansion=E,
            seed=1,
            layers="emb|conv|einsum|dense$",
            embeddings=True,
        )
    np.testing.assert_array_equal(numpy(later(x)), expected)
    dense = later.get_layer("dense")
    assert isinstance(dense, mk_layers.MKLayer)
    assert dense.quantization_mode == mode
    assert "kernel" not in dense.weight_copies
    enable_lora(later)
    for _, b in _same_lora_layers(first, later, x):
        assert len(b.weight_copies[_factors(b)[0]]) == E
    small = keras_mk.collapse(_trained(later))
    assert small.get_layer("dense").quantization_mode == mode
    np.testing.assert_array_equal(numpy(small(x)), numpy(later(x)))


def test_a_float8_base_without_lora_is_still_refused():
    model = base_model()
    model.quantize("float8")
    with pytest.raises(
        ValueError, match="is quantized \\(float8\\) without LoRA"
    ):
        keras_mk.clone_model(model, expansion=E, seed=1)


def test_the_merged_save_of_a_collapsed_float_model_loads_without_keras_mk(
    tmp_path,
):
    small = keras_mk.collapse(
        _trained(keras_mk.clone_model(lora_model(), expansion=E, seed=1))
    )
    small.save(tmp_path / "merged.keras")
    config = (tmp_path / "merged.keras").read_bytes()
    assert b"keras_mk" not in config
    merged = keras.saving.load_model(tmp_path / "merged.keras")
    x = ids()
    np.testing.assert_allclose(
        numpy(merged(x)), numpy(small(x)), rtol=1e-5, atol=1e-5
    )


def test_the_frozen_base_is_the_originals_never_copied():
    model = lora_model()
    model.get_layer("head").trainable = False  # a frozen plain layer too
    x = ids()
    before = numpy(model(x))
    mk = keras_mk.clone_model(model, expansion=E, seed=1)
    for name in LORA_NAMES + ("head",):
        frozen = [v for v in model.get_layer(name).weights if not v.trainable]
        held = [v for v in mk.get_layer(name).weights if not v.trainable]
        held = [v for v in held if v.name != "seed_generator_state"]
        assert frozen and [id(v) for v in held] == [id(v) for v in frozen]
    originals = {id(v) for v in model.variables}
    assert not any(id(v) in originals for v in mk.trainable_variables)
    assert not any(_keras_private.is_unallocated(v) for v in mk.variables)
    # Training the MK model leaves the original as it was.
    _trained(mk)
    np.testing.assert_array_equal(numpy(model(x)), before)
