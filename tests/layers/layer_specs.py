"""One small configuration per MK layer class, shared by the layer tests.

The classes come from `keras_mk.conversion.class_map.mk_classes()`, so a new MK
class is in every shared test (`run_layer_test`, the semantics against the
plain Keras layer, probability sharing, argument validation) as soon as it
is registered: until it has a spec here, those tests fail naming it.
"""

import dataclasses

import pytest

from keras_mk import layers
from keras_mk.conversion import class_map


@dataclasses.dataclass(frozen=True)
class Spec:
    """How to build and call one MK layer in a test.

    `units` are the kernel axes that index output units (one `p` per unit
    under `probability_sharing="unit"`); `bias` whether the layer has one.
    """

    kwargs: dict
    input_shape: tuple
    output_shape: tuple
    units: tuple
    bias: bool = True


def conv(filters, kernel_size, **kwargs):
    """A convolution's arguments."""
    return dict(filters=filters, kernel_size=kernel_size, **kwargs)


_EINSUM = {"equation": "abc,cde->abde", "output_shape": (3, 2, 4)}
_DEPTHWISE = {"kernel_size": 3, "depth_multiplier": 2}
SPECS = {
    layers.MKDense: Spec({"units": 4}, (2, 5), (2, 4), (1,)),
    layers.MKEinsumDense: Spec(
        {**_EINSUM, "bias_axes": "e"}, (2, 3, 5), (2, 3, 2, 4), (1, 2)
    ),
    layers.MKConv1D: Spec(conv(4, 3), (2, 8, 3), (2, 6, 4), (2,)),
    layers.MKConv2D: Spec(
        conv(4, 3, strides=2), (2, 7, 7, 3), (2, 3, 3, 4), (3,)
    ),
    layers.MKConv3D: Spec(conv(2, 2), (2, 4, 4, 4, 3), (2, 3, 3, 3, 2), (4,)),
    # A transposed conv's kernel is (..., filters, channels).
    layers.MKConv1DTranspose: Spec(
        conv(4, 3, strides=2), (2, 5, 3), (2, 11, 4), (1,)
    ),
    layers.MKConv2DTranspose: Spec(
        conv(4, 3, strides=2, padding="same"), (2, 4, 4, 3), (2, 8, 8, 4), (2,)
    ),
    layers.MKConv3DTranspose: Spec(
        conv(2, 2), (2, 3, 3, 3, 3), (2, 4, 4, 4, 2), (3,)
    ),
    layers.MKDepthwiseConv1D: Spec(_DEPTHWISE, (2, 8, 3), (2, 6, 6), (1, 2)),
    layers.MKDepthwiseConv2D: Spec(
        _DEPTHWISE, (2, 6, 6, 3), (2, 4, 4, 6), (2, 3)
    ),
    # "The kernel" of a separable conv is its depthwise kernel
    # (..., channels, depth multiplier).
    layers.MKSeparableConv1D: Spec(
        conv(4, 3, depth_multiplier=2), (2, 8, 3), (2, 6, 4), (1, 2)
    ),
    layers.MKSeparableConv2D: Spec(
        conv(4, 3, depth_multiplier=2), (2, 6, 6, 3), (2, 4, 4, 4), (2, 3)
    ),
}
# Registered classes whose call is not one tensor in, one out (a recurrent
# cell takes states; a recurrent layer holds no weights, its cell does):
# the same contract in their own file, never silently skipped.
_RECURRENT = "test_mk_separable_recurrent.py"
_TABLES = "test_mk_embeddings.py"
_TABLES_KERAS = "test_mk_embeddings_keras.py"
OWN_TESTS = {
    # class name: (test file, the class it is tested through there)
    "MKSimpleRNN": (_RECURRENT, "MKSimpleRNN"),
    "MKLSTM": (_RECURRENT, "MKLSTM"),
    "MKGRU": (_RECURRENT, "MKGRU"),
    "MKSimpleRNNCell": (_RECURRENT, "MKSimpleRNN"),
    "MKLSTMCell": (_RECURRENT, "MKLSTM"),
    "MKGRUCell": (_RECURRENT, "MKGRU"),
    "MKConvLSTM1D": (_RECURRENT, "MKConvLSTM1D"),
    "MKConvLSTM2D": (_RECURRENT, "MKConvLSTM2D"),
    "MKConvLSTM3D": (_RECURRENT, "MKConvLSTM3D"),
    "MKConvLSTMCell": (_RECURRENT, "MKConvLSTM2D"),
    # Tables: an integer input, a lookup (gather-then-mix) and a reverse
    # projection; KerasHub's are registered once keras_hub is imported.
    "MKEmbedding": (_TABLES, "MKEmbedding"),
    "MKReversibleEmbedding": (_TABLES, "MKReversibleEmbedding"),
    "MKHubReversibleEmbedding": (_TABLES_KERAS, "MKHubReversibleEmbedding"),
    "MKPositionEmbedding": (_TABLES_KERAS, "MKPositionEmbedding"),
}
# Every registered MK class the shared tests take, in a stable order.
MK_CLASSES = sorted(
    (c for c in class_map.mk_classes().values() if c.__name__ not in OWN_TESTS),
    key=lambda c: c.__name__,
)
IDS = [cls.__name__ for cls in MK_CLASSES]
_PLAIN = {mk: plain for plain, mk in class_map.mk_classes().items()}


def spec(cls):
    """The spec of `cls`; fails the test naming the class if it has none."""
    if cls not in SPECS:
        pytest.fail(
            f"{cls.__name__} is registered in keras_mk.conversion.class_map."
            "MK_CLASSES but has no test spec: add one to "
            "tests/layers/layer_specs.py"
        )
    return SPECS[cls]


def plain_class(cls):
    """The Keras layer an MK class extends."""
    return _PLAIN[cls]
