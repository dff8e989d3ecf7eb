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
# Only the LoRA tests of these: the rest of their layers' contract is
# checked by `test_mk_keras_contract.py` on every backend.
KERAS_LORA_TESTS = {
    "core.dense_test": (("DenseTest",), {"Dense": layers.MKDense}),
    "core.einsum_dense_test": (
        ("EinsumDenseTest",),
        {"EinsumDense": layers.MKEinsumDense},
    ),
    "convolutional.conv_test": (
        ("ConvBasicTest",),
        {
            "Conv1D": layers.MKConv1D,
            "Conv2D": layers.MKConv2D,
            "Conv3D": layers.MKConv3D,
        },
    ),
}

_QUANTIZE = (
    "MK layers refuse `quantize` (a quantized MK layer would silently stop "
    "training its copies): collapse first, then quantize the plain model"
)

_LORA_SAVES = (
    "an MK layer with LoRA saves its frozen kernel and every copy of its "
    "factors, so that training resumes exactly; a Keras LoRA layer saves "
    "its factors merged into the kernel (`keras_mk.collapse(model).save` "
    "writes that file, see docs/lora.md)"
)

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
    "test_enable_lora_conv": _LORA_SAVES,
    "test_enable_lora": _LORA_SAVES,
}
# Tests under those prefixes that pass: those that only ask for a
# `ValueError` from `quantize` (MK's refusal is one), and the LoRA tests
# that save nothing.
REFUSALS_THAT_PASS = (
    "test_quantize_invalid_mode",
    "test_quantize_on_unbuilt",
    "test_enable_lora_with",
    "test_enable_lora_on",
    "test_enable_lora_when",
)


def difference(test_name):
    """Why `test_name` is expected to fail on an MK class, or None."""
    if test_name.startswith(REFUSALS_THAT_PASS):
        return None
    for prefix, why in DIFFERENCES.items():
        if test_name.startswith(prefix):
            return why
    return None


def _keras_test_classes():
    tests = [(k, v, False) for k, v in KERAS_TESTS.items()]
    tests += [(k, v, True) for k, v in KERAS_LORA_TESTS.items()]
    for module_name, (class_names, replaced), lora_only in tests:
        module = _keras_private.keras_layer_test_module(module_name)
        replacements = {
            name: at_expansion_one(cls) for name, cls in replaced.items()
        }
        for class_name in class_names:
            base = getattr(module, class_name)
            yield f"MK{class_name}", base, replacements, lora_only


def _with_mk_classes(base, replacements, lora_only):
    @pytest.fixture(autouse=True)
    def mk_classes(self, request):
        why = difference(request.node.name)
        if why:
            request.node.add_marker(pytest.mark.xfail(reason=why, strict=True))
        with _keras_private.layers_replaced(replacements):
            yield

    members = {"_mk_classes": mk_classes}
    if lora_only:  # a non-callable attribute is not collected
        members.update(
            {
                name: None
                for name in dir(base)
                if name.startswith("test") and "lora" not in name
            }
        )
    return type(base.__name__, (base,), members)


try:
    _CLASSES = list(_keras_test_classes())
except ModuleNotFoundError:  # Keras 3.14's wheel ships no layer tests
    pytest.skip(
        "this Keras wheel ships no layer tests", allow_module_level=True
    )
for _name, _base, _replacements, _lora_only in _CLASSES:
    globals()[_name] = _with_mk_classes(_base, _replacements, _lora_only)
# Keras's own (unpatched) class must not be collected as a test here.
del _name, _base, _replacements, _lora_only
