"""Every private Keras API keras_mk relies on, pinned one by one.

`keras_mk/_keras_private.py` is the only module touching private Keras API.
Each test here checks one of its functions against the installed Keras,
directly, so a Keras upgrade that breaks one fails here, with its name,
before it fails somewhere deep in a conversion.
"""

import json

import keras
import numpy as np
import pytest

import keras_mk
from keras_mk import _keras_private
from keras_mk.conversion import class_map

BACKEND = keras.backend.backend()


def numpy(x):
    return keras.ops.convert_to_numpy(x)


def _built(cls, **kwargs):
    layer = cls(**kwargs)
    layer.build((None, 4))
    return layer


def test_unlocked_state_lets_a_built_layer_add_a_weight_then_relocks():
    layer = _built(keras.layers.Dense, units=2)
    with pytest.raises(ValueError):  # Keras locks a built layer's state
        layer.add_weight(shape=(1,), name="extra")
    with _keras_private.unlocked_state(layer):
        extra = layer.add_weight(shape=(1,), name="extra")
    assert any(w is extra for w in layer.weights)
    with pytest.raises(ValueError):
        layer.add_weight(shape=(1,), name="another")


def test_untrack_removes_a_variable_from_a_built_layer():
    layer = _built(keras.layers.Dense, units=2)
    with _keras_private.unlocked_state(layer):
        extra = layer.add_weight(shape=(1,), name="extra")
    _keras_private.untrack(layer, [extra])
    assert not any(w is extra for w in layer.weights)
    assert len(layer.weights) == 2


def test_serialization_lib_asks_its_lazy_tensorflow_module():
    from keras.src.saving import serialization_lib

    assert hasattr(serialization_lib.tf, "available")
    if BACKEND != "tensorflow":
        assert isinstance(
            serialization_lib.tf, _keras_private._TensorFlowIfImported
        )


def test_sublayers_are_the_direct_children():
    inner = keras.Sequential([keras.layers.Dense(2, name="inner_dense")])
    inputs = keras.Input((3,))
    outer = keras.Model(inputs, keras.layers.Dense(2)(inner(inputs)))
    names = [layer.name for layer in _keras_private.sublayers(outer)]
    assert inner.name in names and "inner_dense" not in names
    mha = keras.layers.MultiHeadAttention(2, 4)
    mha(np.ones((1, 2, 4)), np.ones((1, 2, 4)))
    assert len(_keras_private.sublayers(mha)) >= 4  # query, key, value, out


def test_layer_test_case_offers_run_layer_test():
    assert callable(_keras_private.layer_test_case().run_layer_test)


def test_in_symbolic_scope_is_true_only_while_tracing():
    seen = []

    class Probe(keras.layers.Layer):
        def call(self, x):
            seen.append(_keras_private.in_symbolic_scope())
            return x

    probe = Probe()
    probe(keras.Input((2,)))
    probe(np.ones((1, 2), "float32"))
    assert seen[0] is True and seen[-1] is False


def test_call_context_is_one_object_per_outermost_call():
    seen = []

    class Probe(keras.layers.Layer):
        def call(self, x):
            seen.append(_keras_private.current_call_context())
            return x

    inner, outer = Probe(), Probe()
    model = keras.Sequential([inner, outer])
    x = np.ones((1, 2), "float32")
    model(x)  # builds (its own calls)
    seen.clear()
    model(x)
    model(x)
    assert len(seen) == 4
    assert seen[0] is seen[1] and seen[2] is seen[3]
    assert seen[0] is not seen[2]
    assert seen[0].entry_layer is model
    assert _keras_private.current_call_context() is None


def test_in_stateless_scope_is_true_only_inside_one():
    assert not _keras_private.in_stateless_scope()
    with keras.StatelessScope():
        assert _keras_private.in_stateless_scope()
    assert not _keras_private.in_stateless_scope()


def test_call_signature_cache_is_what_refresh_rewrites():
    layer = keras.layers.Conv2D(2, 1)
    for name in (
        "_call_signature",
        "call_signature_parameters",
        "_call_has_training_arg",
        "_call_has_mask_arg",
        "_call_context_args",
    ):
        assert hasattr(layer, name), name
    assert layer._call_has_training_arg is False

    class WithTraining(keras.layers.Conv2D):
        def call(self, inputs, training=None):
            return super().call(inputs)

    layer.__class__ = WithTraining
    _keras_private.refresh_call_signature(layer)
    assert layer._call_has_training_arg is True


def test_no_autocast_reads_a_variable_in_its_own_dtype():
    keras.config.set_dtype_policy("mixed_float16")
    layer = _built(keras.layers.Dense, units=2)
    seen = {}

    class Probe(keras.layers.Layer):
        def call(self, x):
            seen["autocast"] = layer.kernel.value.dtype
            with _keras_private.no_autocast():
                seen["own"] = layer.kernel.value.dtype
            return x

    Probe(dtype="mixed_float16")(np.ones((1, 2), "float32"))
    assert "float16" in str(seen["autocast"])
    assert "float32" in str(seen["own"])


def test_config_writing_saves_are_found_on_the_stack(tmp_path):
    from keras.src.saving import saving_lib

    for _, function in _keras_private._CONFIG_WRITING_SAVES[:2]:
        assert hasattr(saving_lib, function), function
    seen = []

    @keras.saving.register_keras_serializable(package="keras_mk_tests")
    class Probe(keras.layers.Dense):
        def save_own_variables(self, store):
            seen.append(_keras_private.in_config_writing_save())
            super().save_own_variables(store)

    model = keras.Sequential([keras.Input((2,)), Probe(1)])
    model.save(tmp_path / "m.keras")
    model.save_weights(tmp_path / "m.weights.h5")
    assert seen == [True, False]


def test_save_backbone_is_keras_hub_preset_saving_method():
    pytest.importorskip("keras_hub")
    from keras_hub.src.utils import preset_utils

    assert callable(preset_utils.KerasPresetSaver.save_backbone)


def test_layer_binds_build_and_quantize_per_instance():
    layer = keras.layers.Dense(2)
    assert "build" in layer.__dict__ and "quantize" in layer.__dict__
    _keras_private.drop_instance_method(layer, "quantize")
    assert "quantize" not in layer.__dict__
    _keras_private.set_instance_method(layer, "quantize", len)
    assert layer.quantize is len


def test_rewrap_quantize_rebuilds_keras_quantize_wrapper():
    from keras.src.quantizers.quantization_config import (  # noqa: F401
        validate_and_resolve_config,
    )

    layer = _built(keras.layers.Dense, units=2)
    assert callable(layer._check_quantize_args)
    _keras_private.rewrap_quantize(layer)
    layer.quantize("int8")
    assert layer.quantization_mode == "int8"


def test_instance_method_overrides_call_for_the_scope_only():
    layer = keras.layers.Dense(2, kernel_initializer="ones")
    x = np.ones((1, 3), "float32")
    plain = numpy(layer(x))

    def zeros(inputs, **kwargs):
        return inputs * 0

    with _keras_private.instance_method(layer, "call", zeros):
        np.testing.assert_array_equal(numpy(layer(x)), np.zeros((1, 3)))
    np.testing.assert_array_equal(numpy(layer(x)), plain)
    assert "call" not in layer.__dict__


@pytest.mark.parametrize(
    "plain_class",
    sorted(
        # A recurrent layer holds no weights: its cell does (tested here).
        (
            c
            for c, mk in class_map.mk_classes().items()
            if issubclass(mk, keras_mk.layers.MKLayer)
        ),
        key=lambda c: c.__name__,
    ),
)
def test_layers_keep_their_weights_where_swap_class_looks(plain_class):
    """MK layers read `_<name>`; Keras layers `_<name>` or `<name>`."""
    name = plain_class.__name__
    rank = {"1D": 3, "2D": 4, "3D": 5}
    ndim = next((n for k, n in rank.items() if k in name), 3)
    if name == "ConvLSTMCell":  # one time step of a 2D ConvLSTM
        kwargs, ndim = dict(rank=2, filters=2, kernel_size=1), 4
    elif name == "Dense" or name.endswith("Cell"):
        kwargs, ndim = dict(units=2), 2
    elif name == "EinsumDense":
        kwargs = dict(
            equation="abc,cd->abd", output_shape=(2, 2), bias_axes="d"
        )
    elif name.startswith("Depthwise"):
        kwargs = dict(kernel_size=1)
    elif name == "Embedding":
        kwargs, ndim = dict(input_dim=5, output_dim=3), 2
    elif name == "ReversibleEmbedding":
        kwargs = dict(input_dim=5, output_dim=3, tie_weights=False)
        ndim = 2
    elif name == "PositionEmbedding":  # KerasHub's, once it is imported
        kwargs = dict(sequence_length=4)
    else:
        kwargs = dict(filters=2, kernel_size=1)
    layer = plain_class(**kwargs)
    layer.build((2,) * (ndim - 1) + (4,))
    mk_class = class_map.mk_classes()[plain_class]
    names = [spec[0] for spec in mk_class.mk_weights] + ["bias"]
    weights = _keras_private.layer_weights(layer, names)
    if "Embedding" in plain_class.__name__:  # tables have no bias
        weights = {k: v for k, v in weights.items() if k != "bias"}
    assert all(w is not None for w in weights.values())
    assert {id(w) for w in weights.values()} == {id(w) for w in layer.weights}
    _keras_private.swap_class(layer, mk_class, weights)
    assert type(layer) is mk_class
    for name, variable in weights.items():
        assert layer.__dict__["_" + name] is variable
    _keras_private.swap_class(layer, plain_class, weights)
    assert type(layer) is plain_class
    restored = _keras_private.layer_weights(layer, list(weights))
    assert {k: id(v) for k, v in restored.items()} == {
        k: id(v) for k, v in weights.items()
    }


def test_object_sharing_scope_keeps_a_shared_layer_one_object():
    shared = keras.layers.Dense(3, name="shared")
    inputs = keras.Input((3,))
    model = keras.Model(inputs, shared(shared(inputs)))
    with _keras_private.object_sharing_scope():
        config = keras.saving.serialize_keras_object(model)
    with _keras_private.object_sharing_scope():
        copy = keras.saving.deserialize_keras_object(config)
    assert len([layer for layer in copy.layers if layer.name == "shared"]) == 1


def test_keras_archive_layout(tmp_path):
    path = tmp_path / "m.keras"
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.save(path)
    config = _keras_private.read_archive_config(path)
    assert config["class_name"] == "Sequential"
    config["config"]["name"] = "renamed"
    _keras_private.replace_archive_config(path, json.dumps(config))
    assert keras.saving.load_model(path).name == "renamed"
    weights = _keras_private.extract_archive_weights(path, tmp_path)
    model.load_weights(weights)


@pytest.mark.skipif(BACKEND != "jax", reason="the JAX trainer's API")
def test_jax_loss_is_the_compiled_loss():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    model.optimizer.build(model.trainable_variables)
    x, y = np.ones((4, 2), "float32"), np.zeros((4, 1), "float32")
    loss = _keras_private.jax_loss(
        model,
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in model.metrics_variables],
        [v.value for v in model.optimizer.variables],
        x,
        y,
        None,
    )
    expected = model.compute_loss(x, y, model(x), training=True)
    np.testing.assert_allclose(numpy(loss), numpy(expected), rtol=1e-6)


def test_this_file_pins_every_function_of_keras_private():
    public = {
        name
        for name, value in vars(_keras_private).items()
        if callable(value)
        and not name.startswith("_")
        and getattr(value, "__module__", None) == _keras_private.__name__
    }
    source = open(__file__).read()
    unpinned = {n for n in public if f"_keras_private.{n}(" not in source}
    # `serialize_without_importing_tensorflow` runs at import; its effect
    # is pinned by `test_serialization_lib_asks_its_lazy_tensorflow_module`.
    assert unpinned == {"serialize_without_importing_tensorflow"}, unpinned


def test_ask_to_overwrite_is_keras_prompt(tmp_path, monkeypatch):
    import builtins

    answers = iter(["n"])
    monkeypatch.setattr(builtins, "input", lambda *a: next(answers))
    assert _keras_private.ask_to_overwrite(str(tmp_path / "m.keras")) is False


def test_set_keras_mask_attaches_the_mask_a_layer_call_sets():
    from keras.src.backend.common.masking import get_keras_mask

    x = keras.ops.ones((2, 3))
    mask = keras.ops.convert_to_tensor(np.array([[True, False, True]] * 2))
    _keras_private.set_keras_mask(x, mask)
    np.testing.assert_array_equal(numpy(get_keras_mask(x)), numpy(mask))


def test_keras_layer_test_module_and_layers_replaced_reach_keras_tests():
    try:
        module = _keras_private.keras_layer_test_module("rnn.lstm_test")
    except ModuleNotFoundError:
        pytest.skip("this Keras wheel ships no layer tests (Keras 3.14)")
    assert issubclass(module.LSTMTest, _keras_private.layer_test_case())
    # What Keras's tests call is `keras.src.layers.LSTM`, as they see it.
    assert module.layers.LSTM is keras.layers.LSTM

    class Stand(keras.layers.LSTM):
        pass

    with pytest.raises(RuntimeError):
        with _keras_private.layers_replaced({"LSTM": Stand}):
            assert module.layers.LSTM is Stand
            raise RuntimeError
    assert module.layers.LSTM is keras.layers.LSTM


def test_conv_lstm_cell_class_is_the_cell_of_keras_conv_lstm_layers():
    cell_class = _keras_private.conv_lstm_cell_class()
    for layer in (keras.layers.ConvLSTM1D(2, 3), keras.layers.ConvLSTM2D(2, 3)):
        assert type(layer.cell) is cell_class


def test_convert_class_stores_weights_and_drops_the_quantize_wrapper():
    layer = keras.layers.Dense(2)
    layer.build((None, 3))
    assert "quantize" in layer.__dict__  # Keras's per-instance wrapper
    kernel = layer._kernel
    _keras_private.convert_class(layer, keras_mk.layers.MKDense, ["kernel"])
    assert type(layer) is keras_mk.layers.MKDense
    assert layer.__dict__["_kernel"] is kernel
    assert "quantize" not in layer.__dict__


def test_autocast_as_a_variable_reads_as_a_variable_does():
    from keras.src.backend.common.variables import AutocastScope

    variable = keras.Variable(np.ones((2,), "float32"))
    value = keras.ops.ones((2,), "float32")
    with AutocastScope("float16"):
        read = _keras_private.autocast_as_a_variable(value)
        assert keras.backend.standardize_dtype(read.dtype) == "float16"
        assert keras.backend.standardize_dtype(variable.value.dtype) == (
            "float16"
        )
    assert _keras_private.autocast_as_a_variable(value) is value


def test_set_own_trainable_leaves_nested_layers_and_variables():
    inner = keras.layers.Dense(2)
    outer = keras.Sequential([keras.Input((3,)), inner])
    _keras_private.set_own_trainable(outer, False)
    assert not outer.trainable
    assert inner.trainable and inner.kernel.trainable


def test_hub_lora_state_is_what_keras_hub_enable_lora_records():
    keras_hub = pytest.importorskip("keras_hub")
    import tiny_hub

    backbone = tiny_hub.gemma_backbone(keras_hub)
    assert _keras_private.hub_lora_state(backbone) == {}
    backbone.enable_lora(2)
    state = _keras_private.hub_lora_state(backbone)
    assert state == {
        "_lora_enabled_layers": list(backbone._lora_enabled_layers),
        "_lora_rank": 2,
    }
    other = tiny_hub.gemma_backbone(keras_hub)
    _keras_private.set_hub_lora_state(other, state)
    assert other._lora_rank == 2
    assert list(other._lora_enabled_layers) == state["_lora_enabled_layers"]
    assert other._lora_enabled_layers is not backbone._lora_enabled_layers


def test_unallocated_variables_are_given_values_or_replaced():
    source = keras.layers.Dense(3)
    source.build((None, 2))
    with _keras_private.unallocated_variables():
        layer = keras.layers.Dense(3)
        layer.build((None, 2))
        # A value-initialized variable (an optimizer's count) is allowed.
        count = keras.Variable(0, dtype="int32", trainable=False)
    assert _keras_private.is_unallocated(layer._kernel)
    assert not _keras_private.is_unallocated(count)
    assert _keras_private.holds_variable(layer, layer._kernel)
    assert not _keras_private.holds_variable(layer, source._kernel)
    _keras_private.initialize_with(layer.bias, np.ones(3, "float32"))
    _keras_private.replace_variable(layer, layer._kernel, source._kernel)
    assert layer._kernel is source._kernel
    assert any(v is source._kernel for v in layer.weights)
    x = np.ones((1, 2), "float32")
    np.testing.assert_allclose(
        numpy(layer(x)), numpy(x @ numpy(source.kernel) + 1.0), rtol=1e-6
    )
