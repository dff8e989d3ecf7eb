"""Keras's own tests of the layers MK extends, run against the MK classes.

Each Keras test class below (from `keras/src/layers/.../*_test.py`, which
Keras's wheel ships) runs here with the Keras classes it builds replaced by
the MK classes at `expansion=1`, documented to be exactly the plain layer.
Every test passes except those in `DIFFERENCES`, each with its reason; they
are strict expected failures, so a listed test that starts passing fails
and the list cannot go stale. One backend (JAX) runs them: they check
Keras's layer contract, which does not depend on the backend.
"""

import keras
import pytest

from keras_mk import _keras_private
from keras_mk import layers

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="Keras's own layer tests run on one backend (JAX)",
)


def at_expansion_one(mk_class):
    """`mk_class` with `expansion=1` by default, registered for loading."""

    def __init__(self, *args, expansion=1, **kwargs):
        mk_class.__init__(self, *args, expansion=expansion, **kwargs)

    cls = type(mk_class.__name__, (mk_class,), {"__init__": __init__})
    return keras.saving.register_keras_serializable(
        package="keras_mk_keras_tests"
    )(cls)


# Keras test module -> (its test classes, the Keras classes they build
# -> their MK versions).
KERAS_TESTS = {
    "rnn.simple_rnn_test": (
        ("SimpleRNNTest",),
        {
            "SimpleRNN": layers.MKSimpleRNN,
            "SimpleRNNCell": layers.MKSimpleRNNCell,
        },
    ),
    "rnn.lstm_test": (
        ("LSTMTest",),
        {"LSTM": layers.MKLSTM, "LSTMCell": layers.MKLSTMCell},
    ),
    "rnn.gru_test": (
        ("GRUTest",),
        {"GRU": layers.MKGRU, "GRUCell": layers.MKGRUCell},
    ),
    "convolutional.separable_conv_test": (
        ("SeparableConvBasicTest", "SeparableConvCorrectnessTest"),
        {
            "SeparableConv1D": layers.MKSeparableConv1D,
            "SeparableConv2D": layers.MKSeparableConv2D,
        },
    ),
    "core.embedding_test": (
        ("EmbeddingTest",),
        {"Embedding": layers.MKEmbedding},
    ),
    "core.reversible_embedding_test": (
        ("ReversibleEmbeddingTest",),
        {"ReversibleEmbedding": layers.MKReversibleEmbedding},
    ),
}

_QUANTIZE = (
    "MK layers refuse `quantize` (a quantized MK layer would silently stop "
    "training its copies): collapse first, then quantize the plain model"
)
_LORA = "MK layers refuse LoRA: collapse first, then enable LoRA"

# Test name prefix (parameterized tests add suffixes) -> why it differs.
DIFFERENCES = {
    "test_int4_": _QUANTIZE,
    "test_int8_": _QUANTIZE,
    "test_quantize": _QUANTIZE,
    "test_embedding_quantize": _QUANTIZE,
    "test_embedding_int8": _QUANTIZE,
    "test_reversible_embedding_quantize": _QUANTIZE,
    "test_reversible_embedding_int8": _QUANTIZE,
    "test_legacy_load_own_variables": _QUANTIZE,
    "test_enable_lora": _LORA,
    "test_lora": _LORA,
}
# Tests under those prefixes that only ask for a `ValueError` from
# `quantize`: MK's refusal is one, so they pass.
REFUSALS_THAT_PASS = ("test_quantize_invalid_mode", "test_quantize_on_unbuilt")


def difference(test_name):
    """Why `test_name` is expected to fail on an MK class, or None."""
    if test_name.startswith(REFUSALS_THAT_PASS):
        return None
    for prefix, why in DIFFERENCES.items():
        if test_name.startswith(prefix):
            return why
    return None


def _keras_test_classes():
    for module_name, (class_names, replaced) in KERAS_TESTS.items():
        module = _keras_private.keras_layer_test_module(module_name)
        replacements = {
            name: at_expansion_one(cls) for name, cls in replaced.items()
        }
        for class_name in class_names:
            yield f"MK{class_name}", getattr(module, class_name), replacements


def _with_mk_classes(base, replacements):
    @pytest.fixture(autouse=True)
    def mk_classes(self, request):
        why = difference(request.node.name)
        if why:
            request.node.add_marker(pytest.mark.xfail(reason=why, strict=True))
        with _keras_private.layers_replaced(replacements):
            yield

    return type(base.__name__, (base,), {"_mk_classes": mk_classes})


try:
    _CLASSES = list(_keras_test_classes())
except ModuleNotFoundError:  # Keras 3.14's wheel ships no layer tests
    pytest.skip(
        "this Keras wheel ships no layer tests", allow_module_level=True
    )
for _name, _base, _replacements in _CLASSES:
    globals()[_name] = _with_mk_classes(_base, _replacements)
# Keras's own (unpatched) class must not be collected as a test here.
del _name, _base, _replacements
